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
from src.model_utils import signals

if __name__ == "__main__":
    signals.install()  # before the imports below load MindSpore (src/model_utils/signals.py)

import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from src.data.coco import DataError  # noqa: E402
from src.infer.coco_eval import coco_evaluate, metrics_document  # noqa: E402
from src.model_utils.file_io import prepare_output_folder, write_json_atomic, write_text_atomic  # noqa: E402
from src.deploy.chain import chain_data, meta_dir, read_detections, read_metas  # noqa: E402
from src.model_utils.entry import entry_main  # noqa: E402
from src.post_process import coco_records, post_process_image  # noqa: E402
from src.infer.soft_nms import SoftNMS, warn_if_not_compiled  # noqa: E402

logger = logging.getLogger("postprocess")

ACC_HEADING = "=============coco2017 310 infer result========="


def run_postprocess(cfg):
    data = chain_data(cfg, need_images=False)
    num_classes = cfg.dataset_config.num_classes
    data.check_num_classes(num_classes)
    metas = read_metas(meta_dir(cfg))
    known = {int(e["id"]) for e in data.doc["images"]}
    unknown = [m["image_id"] for m in metas if m["image_id"] not in known]
    if unknown:
        raise DataError("%d preprocessed image(s) are not in %s (ids %s): preprocess and postprocess must use "
                        "the same data" % (len(unknown), data.ann_file, unknown[:5]))
    out_dir = cfg.save_result_dir or "."
    prepare_output_folder(out_dir, "--save_result_dir", create=False)
    ev = cfg.eval_config
    nms = SoftNMS.from_config(ev)
    warn_if_not_compiled()
    records = []
    for meta in metas:
        dets = read_detections(cfg.result_path, meta["image_id"])
        per_class = post_process_image([(dets, meta, float(meta.get("scale", 1.0)))], num_classes, nms,
                                       ev.max_per_image)
        records.extend(coco_records(meta["image_id"], per_class, data.category_ids))
    results_path = write_json_atomic(os.path.join(out_dir, "results.json"), records, setting="--save_result_dir")
    logger.info("%d images, %d detections -> %s", len(metas), len(records), results_path)
    summary = {"results": results_path, "stats": None, "num_images": len(metas)}
    if cfg.run_mode == "val" and cfg.enable_eval:
        stats, table = coco_evaluate(data, records, [m["image_id"] for m in metas])
        print(ACC_HEADING)
        print(table, end="", flush=True)
        acc_path = write_text_atomic(os.path.join(out_dir, "acc.log"), ACC_HEADING + "\n" + table,
                                     setting="--save_result_dir")
        write_json_atomic(os.path.join(out_dir, "metrics.json"), metrics_document(
            stats, num_images=len(metas), num_detections=len(records), run_mode=cfg.run_mode,
            ann_file=os.path.abspath(data.ann_file), soft_nms=bool(ev.SOFT_NMS),
            max_per_image=int(ev.max_per_image)), indent=2, setting="--save_result_dir")
        logger.info("COCO table: %s", acc_path)
        summary["stats"] = stats
    return summary


def main(argv=None):
    return entry_main("postprocess.py", run_postprocess, argv, modelarts=False)


if __name__ == "__main__":
    sys.exit(main())
