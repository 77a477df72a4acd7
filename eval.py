"""Evaluate CenterNet on COCO (or COCO-format) data; write results.json and metrics.json.

    python eval.py --device_target=CPU --data_dir=/data/coco --run_mode=val \
        --load_checkpoint_path=model.ckpt --save_result_dir=./out
    python eval.py --data_dir=/data/coco --infer_runtime=onnxruntime --infer_model=centernet.onnx ...

run_mode=val reads <data_dir>/annotations/instances_val2017.json and val2017/, evaluates with
pycocotools, prints the COCO AP/AR table and writes <save_result_dir>/results.json (COCO
detection results, original category ids) and metrics.json (the 12 COCOeval figures by
name). run_mode=test reads annotations/image_info_test-dev2017.json and test2017/ and only
writes results.json (for upload). --eval_ann_file/--eval_image_dir select custom data.
Options: eval_config.{keep_res, multi_scales, K, SOFT_NMS, max_per_image, dynamic_shape}, flip_test,
eval_max_images, visual_image (PNGs of ground truth and predictions under
<save_result_dir>/visual). --infer_runtime (mindspore | onnxruntime | openvino) with --infer_model runs
an exported model instead of the checkpoint, through the same pre- and post-processing
(src/infer/predictor.py). Images of many sizes (keep_res, multi_scales) run through one graph
compiled with a free input height/width (docs/EVALUATION.md).
"""
from src.model_utils import signals

if __name__ == "__main__":
    signals.install()  # before the imports below load MindSpore (src/model_utils/signals.py)

import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from src.data.coco import CocoData, DataError, resolve_data_paths  # noqa: E402
from src.infer.coco_eval import coco_evaluate, metrics_document  # noqa: E402
from src.model_utils.file_io import (claim_output_folder, remove_own_temporaries,  # noqa: E402
                                     remove_stale_temporaries, replace_folder, temporary_folder, write_json_atomic)
from src.infer.detect import EvalSettings, detect_images  # noqa: E402
from src.infer.predictor import build_predictor, describe, model_choice  # noqa: E402
from src.model_utils.entry import entry_main  # noqa: E402
from src.infer.soft_nms import warn_if_not_compiled  # noqa: E402
from src.visual import draw_detections, draw_ground_truth, save_image  # noqa: E402

logger = logging.getLogger("eval")

RESULTS_NAME = "results.json"
METRICS_NAME = "metrics.json"


def output_dir(cfg):
    """save_result_dir (default: the current folder); under output_path on ModelArts."""
    out = cfg.save_result_dir or "."
    if cfg.enable_modelarts and not os.path.isabs(out):
        out = os.path.join(cfg.output_path, out)
    return out


def data_root(cfg):
    if cfg.data_dir:
        return cfg.data_dir
    return cfg.data_path if cfg.enable_modelarts else ""


def load_data(cfg, num_classes):
    """The evaluation data, checked before any inference: paths, class count, images present."""
    ann_file, image_dir = resolve_data_paths(data_root(cfg), cfg.run_mode, cfg.eval_ann_file, cfg.eval_image_dir)
    data = CocoData(ann_file, image_dir).select(cfg.eval_max_images)
    data.check_num_classes(num_classes)
    if not data.images:
        raise DataError("%s lists no images" % ann_file)
    data.check_images()
    if cfg.run_mode == "val" and cfg.enable_eval and not data.has_annotations:
        raise DataError("%s has no 'annotations' to evaluate against: use --run_mode=test or --enable_eval=false"
                        % ann_file)
    return data


class Drawer:
    """visual_image: PNGs of the ground truth and of the predictions of every image.

    They are drawn into a hidden temporary folder that replaces ``<save_result_dir>/visual`` when
    the run succeeds (``publish``), so an interrupted or failed run leaves the earlier drawings
    as they were and no partial set (the caller removes the temporary folder however it ends).
    """

    def __init__(self, cfg, data, folder):
        self.data, self.target = data, folder
        self.folder = temporary_folder(folder)
        self.colors = cfg.eval_config.color_list
        self.score_thresh = cfg.eval_config.score_thresh
        self.count = 0

    def __call__(self, entry, image, per_class):
        stem = os.path.splitext(os.path.basename(entry["file_name"]))[0]
        names, ids = self.data.class_names, self.data.category_ids
        if self.data.has_annotations:
            gt = draw_ground_truth(image, self.data.annotations_of(entry["id"]), ids, names, self.colors)
            save_image(os.path.join(self.folder, stem + "_gt.png"), gt)
        pred = draw_detections(image, per_class, names, self.colors, self.score_thresh)
        save_image(os.path.join(self.folder, stem + "_pred.png"), pred)
        self.count += 1

    def publish(self):
        replace_folder(self.folder, self.target)
        self.folder = self.target


def run_eval(cfg):
    """Evaluate; returns a summary dict (paths, metrics or None, timings).

    The result folder is checked (created, writable) and owned by this run (FolderLock) before
    the network is built: a second evaluation into it is refused, naming this one.
    """
    t_start = time.perf_counter()
    settings = EvalSettings(cfg)
    choice = model_choice(cfg)
    data = load_data(cfg, settings.num_classes)
    out_dir = output_dir(cfg)
    with claim_output_folder(out_dir, "--save_result_dir", "evaluation"):
        remove_stale_temporaries(out_dir, "visual")  # drawings of a killed evaluation
        return _evaluate(cfg, settings, choice, data, out_dir, t_start)


def _evaluate(cfg, settings, choice, data, out_dir, t_start):
    data_s = time.perf_counter() - t_start
    results_path = os.path.join(out_dir, RESULTS_NAME)
    logger.info("%s: %d images from %s (run_mode=%s, %s, scales %s, flip_test=%s, soft-NMS=%s, K=%d); %s",
                data.ann_file, len(data), data.image_dir, cfg.run_mode,
                "keep_res" if settings.keep_res else "fixed %s" % settings.input_res, settings.scales,
                cfg.flip_test, settings.soft_nms, cfg.eval_config.K, describe(choice))
    warn_if_not_compiled()

    t_build, cpu_build = time.perf_counter(), time.process_time()
    detector = build_predictor(cfg, settings, data.images, choice)
    setup_s, setup_cpu_s = time.perf_counter() - t_build, time.process_time() - cpu_build

    evaluate = cfg.run_mode == "val" and cfg.enable_eval
    drawer = None
    try:  # (whatever happens, no temporary drawing folder stays)
        if cfg.visual_image:
            drawer = Drawer(cfg, data, os.path.join(out_dir, "visual"))
        records, timing = detect_images(data.images, data.image_path, lambda inp, meta: detector(inp), settings,
                                        data.category_ids, on_image=drawer)
        preparation = ("first call %.1f s" % detector.compile_s if choice.model else
                       "%d graph(s) compiled in %.1f s" % (detector.graphs_compiled, detector.compile_s))
        logger.info("detected %d images in %.1f s: %.2f images/s, network %.1f s; %d input shape(s), %s; %d "
                    "detections", timing["images"], timing["wall_s"], timing["images_per_s"], detector.forward_s,
                    len(detector.shapes), preparation, timing["detections"])
        if timing["skipped"]:
            logger.warning("%d image(s) over dataset_config.max_image_pixels=%d skipped (listed above): they are "
                           "left out of results.json and of the evaluation", timing["skipped"],
                           settings.limits.max_pixels)
        if timing["size_mismatch"]:
            logger.warning("%d image(s) differ in size from the annotation file's width/height (listed above): "
                           "their ground truth describes another picture", timing["size_mismatch"])
        if not records and not evaluate:  # (the evaluation says it too)
            logger.warning("no detections at all on %d images: results.json is empty", timing["images"])
        write_json_atomic(results_path, records, setting="--save_result_dir")
        if drawer is not None:
            drawer.publish()
            logger.info("drawings of %d images in %s", drawer.count, drawer.folder)
    finally:
        remove_own_temporaries(out_dir, "visual")
    logger.info("results: %s (%d detections)", results_path, len(records))

    summary = {"results": results_path, "metrics": None, "stats": None, "timing": timing, "data_s": data_s,
               "setup_s": setup_s, "setup_cpu_s": setup_cpu_s, "forward_s": detector.forward_s,
               "compile_s": detector.compile_s, "dynamic_shape": detector.dynamic,
               "graphs_compiled": detector.graphs_compiled, "input_shapes": len(detector.shapes), "coco_eval_s": 0.0}
    if evaluate:
        t_eval = time.perf_counter()
        skipped = set(timing["skipped_ids"])
        evaluated = [e["id"] for e in data.images if e["id"] not in skipped]
        if not evaluated:
            raise DataError("every image was skipped: nothing to evaluate (see dataset_config.max_image_pixels)")
        stats, table = coco_evaluate(data, records, evaluated)
        print("overall performance on %s (%d images)" % (os.path.basename(data.ann_file), len(evaluated)))
        print(table, end="", flush=True)
        metrics_path = os.path.join(out_dir, METRICS_NAME)
        write_json_atomic(metrics_path, metrics_document(
            stats, num_images=len(evaluated), num_skipped=len(skipped), num_detections=len(records),
            run_mode=cfg.run_mode, ann_file=os.path.abspath(data.ann_file),
            checkpoint=os.path.abspath(choice.checkpoint) if choice.checkpoint else None,
            runtime=choice.runtime, model=os.path.abspath(choice.model) if choice.model else None,
            precision=choice.precision,
            keep_res=settings.keep_res, input_res_test=settings.input_res, multi_scales=settings.scales,
            flip_test=bool(cfg.flip_test), soft_nms=settings.soft_nms, K=cfg.eval_config.K,
            max_per_image=settings.max_per_image), indent=2, setting="--save_result_dir")
        summary["coco_eval_s"] = time.perf_counter() - t_eval
        logger.info("COCO evaluation in %.1f s; metrics: %s", summary["coco_eval_s"], metrics_path)
        summary.update(metrics=metrics_path, stats=stats)
    elif cfg.run_mode == "test":
        logger.info("test-dev results written without evaluation: rename to detections_test-dev2017_<name>"
                    "_results.json, zip and upload it to the COCO evaluation server")
    summary["total_s"] = total = time.perf_counter() - t_start
    logger.info("eval run %.1f s: network %.1f s (%.0f %%), compilation %.1f s (%.0f %%), everything else %.1f s "
                "(%.0f %%)", total, detector.forward_s, 100 * detector.forward_s / total, detector.compile_s,
                100 * detector.compile_s / total, total - detector.forward_s - detector.compile_s,
                100 * (total - detector.forward_s - detector.compile_s) / total)
    return summary


def main(argv=None):
    return entry_main("eval.py", run_eval, argv)


if __name__ == "__main__":
    sys.exit(main())
