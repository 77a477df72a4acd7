"""COCO-side helpers of evaluation: data paths, COCOeval, the AP table and metrics.json content.

Shared by eval.py, preprocess.py/postprocess.py (the Ascend 310 chain) and tools/detect_images.py;
annotation files are read by ``src.coco.CocoData``.
"""
import contextlib
import io
import logging
import os

import numpy as np

from .coco import EVAL_LAYOUT, DataError

logger = logging.getLogger(__name__)

# COCOeval.stats, in order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# (precision?, IoU threshold or None for 0.50:0.95, area, maxDets) of each line of COCOeval.summarize().
_STAT_LINES = ((True, None, "all", 100), (True, 0.5, "all", 100), (True, 0.75, "all", 100),
               (True, None, "small", 100), (True, None, "medium", 100), (True, None, "large", 100),
               (False, None, "all", 1), (False, None, "all", 10), (False, None, "all", 100),
               (False, None, "small", 100), (False, None, "medium", 100), (False, None, "large", 100))


def resolve_data_paths(data_dir, run_mode, ann_file="", image_dir="", root_key="data_dir", need_images=True):
    """(annotation file, image folder) for ``run_mode``, checked to exist (the folder when ``need_images``).

    ``ann_file`` / ``image_dir`` (custom data) override the COCO layout under ``data_dir``:
    val -> annotations/instances_val2017.json + val2017/, test -> annotations/
    image_info_test-dev2017.json + test2017/.
    """
    if run_mode not in EVAL_LAYOUT:
        raise DataError("run_mode must be val or test, got %r" % run_mode)
    rel_ann, rel_images = EVAL_LAYOUT[run_mode]
    custom = ann_file and (image_dir or not need_images)
    if not custom and not data_dir:
        raise DataError("give --%s (a COCO root), or both --eval_ann_file and --eval_image_dir" % root_key)
    if data_dir and not custom and not os.path.isdir(data_dir):
        raise DataError("--%s=%s: folder not found" % (root_key, data_dir))
    ann_file = ann_file or os.path.join(data_dir, rel_ann)
    image_dir = image_dir or os.path.join(data_dir or ".", rel_images)
    if not os.path.isfile(ann_file):
        raise DataError("annotation file not found: %s (run_mode=%s reads <%s>/%s; give --eval_ann_file for "
                        "custom data)" % (ann_file, run_mode, root_key, rel_ann))
    if need_images and not os.path.isdir(image_dir):
        raise DataError("image folder not found: %s (run_mode=%s reads <%s>/%s; give --eval_image_dir for "
                        "custom data)" % (image_dir, run_mode, root_key, rel_images))
    return ann_file, image_dir


def format_table(stats):
    """The 12 lines of COCOeval.summarize() for ``stats`` (same format, newline-terminated)."""
    lines = []
    for value, (precision, iou, area, max_dets) in zip(stats, _STAT_LINES):
        iou_text = "0.50:0.95" if iou is None else "%0.2f" % iou
        lines.append(" {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}".format(
            "Average Precision" if precision else "Average Recall", "(AP)" if precision else "(AR)",
            iou_text, area, max_dets, float(value)))
    return "\n".join(lines) + "\n"


def coco_evaluate(data, records, image_ids):
    """COCOeval (bbox) of ``records`` on ``image_ids``: (stats dict by STAT_NAMES, table text).

    An empty result list cannot be loaded by pycocotools: it gives all-zero stats and a
    warning instead of an exception.
    """
    if not data.has_annotations:
        raise DataError("%s has no 'annotations': it cannot be evaluated (use --run_mode=test or "
                        "--enable_eval=false to only write the results)" % data.ann_file)
    if not records:
        logger.warning("no detections at all on %d images: results.json is empty and every metric is 0",
                       len(image_ids))
        stats = np.zeros(len(STAT_NAMES))
        return dict(zip(STAT_NAMES, stats.tolist())), format_table(stats)
    from pycocotools.cocoeval import COCOeval
    gt = data.coco
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        dt = gt.loadRes(records)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
    logger.debug("COCOeval: %s", chatter.getvalue().strip())
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        evaluator.summarize()
    return dict(zip(STAT_NAMES, [float(v) for v in evaluator.stats])), table.getvalue()


def metrics_document(stats, **counts):
    """metrics.json content: the 12 figures by name, then counts and settings."""
    doc = {name: float(stats[name]) for name in STAT_NAMES}
    doc.update(counts)
    return doc
