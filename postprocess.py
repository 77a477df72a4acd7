"""Ascend 310 chain, last step: inference outputs -> results.json, COCO table in acc.log.

    python postprocess.py --val_data_dir=/data/coco --pre_result_path=./preprocess_Result \
        --result_path=./result_Files --save_result_dir=.

Reads every <meta_path>/<image_id>.json written by preprocess.py (meta_path defaults to
<pre_result_path>/meta) and the matching <result_path>/<image_id>_0.bin ((1, K, 6) float32
detections on the output map, from the 310 app or tools/infer_mindir.py), post-processes them
exactly as eval.py does (back to image coordinates, soft-NMS per eval_config.SOFT_NMS,
max_per_image) and writes into save_result_dir (default: the current folder):
results.json (COCO detection results), and for run_mode=val metrics.json and acc.log (the
COCO AP/AR table under a heading line; also printed). Nothing is written when an output is
missing or malformed.
"""
import glob
import json
import logging
import os
import sys

import numpy as np

from preprocess import META_DIR, chain_data
from src.coco import DataError
from src.evaluation import coco_evaluate, metrics_document
from src.file_io import write_json_atomic, write_text_atomic
from src.model_utils.config import ConfigError, get_config
from src.post_process import coco_records, post_process_image
from src.soft_nms import warn_if_not_compiled
from src.model_utils.entry import setup_logging

logger = logging.getLogger("postprocess")

ACC_HEADING = "=============coco2017 310 infer result========="


def read_metas(meta_dir):
    paths = sorted(glob.glob(os.path.join(meta_dir, "*.json")))
    if not paths:
        raise DataError("no preprocess metadata (*.json) in %s: run preprocess.py first" % meta_dir)
    metas = []
    for path in paths:
        try:
            with open(path, "r", encoding="utf-8") as f:
                meta = json.load(f)
            meta["image_id"] = int(meta["image_id"])
            for key in ("c", "s", "out_height", "out_width"):
                meta[key]  # noqa: B018  (presence check)
        except (ValueError, KeyError, TypeError) as err:
            raise DataError("malformed preprocess metadata %s: %r" % (path, err)) from err
        metas.append(meta)
    return sorted(metas, key=lambda m: m["image_id"])


def read_detections(result_dir, image_id):
    """(K, 6) float32 detections of one image from <result_dir>/<image_id>_0.bin."""
    path = os.path.join(result_dir, "%d_0.bin" % image_id)
    if not os.path.isfile(path):
        raise DataError("inference output missing: %s (did the app run on every input?)" % path)
    dets = np.fromfile(path, np.float32)
    if dets.size == 0 or dets.size % 6:
        raise DataError("%s holds %d floats: not (1, K, 6) detections" % (path, dets.size))
    return dets.reshape(-1, 6)


def run_postprocess(cfg):
    data = chain_data(cfg, need_images=False)
    num_classes = cfg.dataset_config.num_classes
    data.check_num_classes(num_classes)
    meta_dir = cfg.meta_path or os.path.join(cfg.pre_result_path, META_DIR)
    metas = read_metas(meta_dir)
    known = {int(e["id"]) for e in data.doc["images"]}
    unknown = [m["image_id"] for m in metas if m["image_id"] not in known]
    if unknown:
        raise DataError("%d preprocessed image(s) are not in %s (ids %s): preprocess and postprocess must use "
                        "the same data" % (len(unknown), data.ann_file, unknown[:5]))
    ev = cfg.eval_config
    warn_if_not_compiled()
    records = []
    for meta in metas:
        dets = read_detections(cfg.result_path, meta["image_id"])
        per_class = post_process_image([(dets, meta, float(meta.get("scale", 1.0)))], num_classes, ev.SOFT_NMS,
                                       ev.max_per_image)
        records.extend(coco_records(meta["image_id"], per_class, data.category_ids))
    out_dir = cfg.save_result_dir or "."
    results_path = write_json_atomic(os.path.join(out_dir, "results.json"), records)
    logger.info("%d images, %d detections -> %s", len(metas), len(records), results_path)
    summary = {"results": results_path, "stats": None, "num_images": len(metas)}
    if cfg.run_mode == "val" and cfg.enable_eval:
        stats, table = coco_evaluate(data, records, [m["image_id"] for m in metas])
        print(ACC_HEADING)
        print(table, end="", flush=True)
        acc_path = write_text_atomic(os.path.join(out_dir, "acc.log"), ACC_HEADING + "\n" + table)
        write_json_atomic(os.path.join(out_dir, "metrics.json"), metrics_document(
            stats, num_images=len(metas), num_detections=len(records), run_mode=cfg.run_mode,
            ann_file=os.path.abspath(data.ann_file), soft_nms=bool(ev.SOFT_NMS),
            max_per_image=int(ev.max_per_image)), indent=2)
        logger.info("COCO table: %s", acc_path)
        summary["stats"] = stats
    return summary


def main(argv=None):
    setup_logging()
    try:
        cfg = get_config(argv, script="postprocess.py")
        setup_logging(cfg.log_level)
        run_postprocess(cfg)
    except (ConfigError, DataError, OSError, ValueError) as err:
        logger.error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
