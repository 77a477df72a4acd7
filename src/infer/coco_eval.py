"""COCO evaluation: COCOeval, the AP table and metrics.json content.

Shared by eval.py and postprocess.py (the Ascend 310 chain); annotation files are read by
``src.data.coco.CocoData`` and their paths resolved by ``src.data.coco.resolve_data_paths``.
"""
import contextlib
import io
import logging

import numpy as np

from src.data.coco import DataError

logger = logging.getLogger(__name__)

# COCOeval.stats, in order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# (precision?, IoU threshold or None for 0.50:0.95, area, maxDets) of each line of COCOeval.summarize().
_STAT_LINES = ((True, None, "all", 100), (True, 0.5, "all", 100), (True, 0.75, "all", 100),
               (True, None, "small", 100), (True, None, "medium", 100), (True, None, "large", 100),
               (False, None, "all", 1), (False, None, "all", 10), (False, None, "all", 100),
               (False, None, "small", 100), (False, None, "medium", 100), (False, None, "large", 100))


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
