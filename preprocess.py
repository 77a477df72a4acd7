"""Ascend 310 chain, step 1: turn the evaluation images into fixed-resolution network inputs.

    python preprocess.py --val_data_dir=/data/coco --pre_result_path=./preprocess_Result

For every image of the run_mode's annotation file (val: annotations/instances_val2017.json +
val2017/; custom data through --eval_ann_file/--eval_image_dir; --eval_max_images limits the
count) it writes, exactly as eval.py prepares a fixed-resolution input (scale 1):

    <pre_result_path>/images/<image_id>.bin   float32, C order, shape (1, 3, H, W) with
                                              H, W = export_config.input_res (the MINDIR input)
    <pre_result_path>/meta/<image_id>.json    {"image_id", "file_name", "height", "width", "c", "s",
                                               "out_height", "out_width", "inp_height", "inp_width", "scale"}
    <pre_result_path>/preprocess_info.json    input shape, annotation file, image count

Images over dataset_config.max_image_pixels are skipped with a warning and listed in
preprocess_info.json ("skipped"); postprocess.py then evaluates the other images. Any other
unreadable image stops the run, naming the file (exit 2).

Each file is written to a temporary name and renamed; earlier .bin/.json files in images/
and meta/ are removed first, so the folder holds exactly this run's images.
"""
from src.model_utils import signals

if __name__ == "__main__":
    signals.install()  # before the imports below load MindSpore (src/model_utils/signals.py)

import glob  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from src.data.coco import DataError  # noqa: E402
from src.model_utils.file_io import claim_output_folder, write_array_atomic, write_json_atomic  # noqa: E402
from src.data.image_file import TOO_MANY_PIXELS, ImageFileError, image_limits, read_image  # noqa: E402
from src.image import preprocess_test_image  # noqa: E402
from src.data.prefetch import Prefetcher  # noqa: E402
from src.deploy.chain import IMAGES_DIR, INFO_NAME, META_DIR, chain_data, input_resolution  # noqa: E402
from src.model_utils.entry import entry_main  # noqa: E402

logger = logging.getLogger("preprocess")


def run_preprocess(cfg):
    """Write the inputs; pre_result_path is checked and owned by this run (FolderLock) before any image is read."""
    res = input_resolution(cfg)  # a bad size fails before the images are checked
    data = chain_data(cfg)
    if not data.images:
        raise DataError("%s lists no images" % data.ann_file)
    data.check_images()
    with claim_output_folder(cfg.pre_result_path, "--pre_result_path", "preprocessing"):
        return _preprocess(cfg, data, res)


def _preprocess(cfg, data, res):
    ds = cfg.dataset_config
    out = cfg.pre_result_path
    image_out, meta_out = os.path.join(out, IMAGES_DIR), os.path.join(out, META_DIR)
    for folder, pattern in ((image_out, "*.bin"), (meta_out, "*.json")):
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, pattern)):
            os.remove(stale)

    limits = image_limits(cfg)

    def prepare(entry):
        try:
            image = read_image(data.image_path(entry), limits)
        except ImageFileError as err:
            if err.reason != TOO_MANY_PIXELS:
                raise
            logger.warning("skipped: %s", err)
            return entry["id"]
        inp, meta = preprocess_test_image(image, 1.0, False, res, ds.mean, ds.std, cfg.net_config.down_ratio)
        meta.update(image_id=entry["id"], file_name=entry["file_name"])
        write_array_atomic(os.path.join(image_out, "%d.bin" % entry["id"]), inp, setting="--pre_result_path")
        write_json_atomic(os.path.join(meta_out, "%d.json" % entry["id"]), meta, setting="--pre_result_path")
        return None

    start = time.perf_counter()
    with Prefetcher(prepare, data.images, workers=min(2, os.cpu_count() or 1), depth=8) as outcomes:
        skipped = sorted(i for i in outcomes if i is not None)
    count = len(data.images) - len(skipped)
    if not count:
        raise DataError("every image was skipped: nothing to preprocess (see dataset_config.max_image_pixels)")
    info = {"input_shape": [1, 3] + res, "dtype": "float32", "num_images": count, "skipped": skipped,
            "ann_file": os.path.abspath(data.ann_file), "image_dir": os.path.abspath(data.image_dir),
            "run_mode": cfg.run_mode, "images_dir": IMAGES_DIR, "meta_dir": META_DIR}
    write_json_atomic(os.path.join(out, INFO_NAME), info, indent=2, setting="--pre_result_path")
    logger.info("preprocessed %d images (%d skipped) in %.1f s -> %s (inputs %s float32) and %s", count,
                len(skipped), time.perf_counter() - start, image_out, info["input_shape"], meta_out)
    return info


def main(argv=None):
    return entry_main("preprocess.py", run_preprocess, argv, modelarts=False)


if __name__ == "__main__":
    sys.exit(main())
