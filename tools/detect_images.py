"""Run the detector on a folder of images (no annotations needed): drawn images plus a results json.

    python tools/detect_images.py --image_dir=photos --load_checkpoint_path=model.ckpt \
        --save_result_dir=detections [--device_target=CPU] [--eval_ann_file=classes.json] \
        [--eval_config.score_thresh=0.3] [--eval_config.keep_res=false] [--flip_test=true] ...

Every .jpg/.jpeg/.png/.bmp/.tif/.tiff/.webp directly in image_dir is detected with the same
pre- and post-processing as eval.py (keep_res or input_res_test, multi_scales, flip_test,
soft-NMS, max_per_image; every configuration key applies). With
--infer_runtime=onnxruntime|openvino --infer_model=centernet.onnx (export.py --export_format=ONNX;
--onnx_model=centernet.onnx is the ONNX Runtime shorthand) that runtime runs the exported model
instead of the checkpoint (a fixed-shape model needs keep_res=false and its input_res_test; a
dynamic one takes any).
Photos of any sizes run through one graph compiled with a free input height/width
(eval_config.dynamic_shape, docs/EVALUATION.md).
Written under save_result_dir:

    images/<stem>.png   the image with the detections scoring >= eval_config.score_thresh
                        (class name and score, colours from eval_config.color_list)
    results.json        every detection: {"file_name", "image_id", "category_id",
                        "category_name", "bbox": [x, y, w, h], "score"}

Class names and category ids come from --eval_ann_file (any COCO-format json: its categories
sorted by id; image ids of the files it lists) when given; otherwise names are
dataset_config.coco_classes and ids COCO's for the 80 COCO classes (1..N for another count),
and image_id is the file's position in the sorted listing (after the json's largest id when a
json is given but does not list the file). Unreadable images are skipped with a warning naming
the file and counted: undecodable ones, anything not a regular file (a FIFO, a device, a folder),
files over dataset_config.max_image_mb and images over dataset_config.max_image_pixels (read from
the header, before decoding). results.json is written atomically once every image is done.
"""
from src.model_utils import signals

if __name__ == "__main__":
    signals.install()  # before the imports below load MindSpore (src/model_utils/signals.py)

import sys  # noqa: E402

from src.infer.folder import run_detect  # noqa: E402
from src.model_utils.entry import entry_main  # noqa: E402


def main(argv=None):
    return entry_main("tools/detect_images.py", run_detect, argv, modelarts=False)


if __name__ == "__main__":
    sys.exit(main())
