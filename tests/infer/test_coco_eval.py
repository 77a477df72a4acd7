"""src/infer/coco_eval.py: data paths, COCOeval wrapper (incl. empty results), table."""
import contextlib
import io

import numpy as np
import pytest

from src.data.coco import CocoData, DataError
from src.data.coco import resolve_data_paths
from src.infer.coco_eval import STAT_NAMES, coco_evaluate, format_table


def _gt_records(data, shift=0.0, drop=0):
    """Detections equal to the ground truth (boxes shifted by ``shift``), minus every ``drop``-th one."""
    records = []
    for i, ann in enumerate(data.doc["annotations"]):
        if ann.get("iscrowd") or (drop and i % drop == 0):
            continue
        x, y, w, h = ann["bbox"]
        records.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                        "bbox": [x + shift, y, w, h], "score": 0.5 + 0.01 * (i % 40)})
    return records


def test_table_has_the_pycocotools_format(synthetic_coco):
    from pycocotools.cocoeval import COCOeval
    data = CocoData(synthetic_coco.val_ann, synthetic_coco.val_images)
    records = _gt_records(data, shift=3.0, drop=3)
    stats, table = coco_evaluate(data, records, [e["id"] for e in data.images])
    assert 0.1 < stats["AP"] < 0.9
    assert table == format_table([stats[n] for n in STAT_NAMES])
    evaluator = COCOeval(data.coco, data.coco.loadRes(records), "bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        evaluator.summarize()
    assert captured.getvalue() == table
    np.testing.assert_array_equal(evaluator.stats, [stats[n] for n in STAT_NAMES])


def test_only_the_evaluated_images_count(synthetic_coco):
    data = CocoData(synthetic_coco.val_ann, synthetic_coco.val_images).select(3)
    ids = [e["id"] for e in data.images]
    records = [r for r in _gt_records(data) if r["image_id"] in ids]
    assert len(data) == 3 and coco_evaluate(data, records, ids)[0]["AP"] > 0.99


def test_empty_results_give_zero_metrics_and_a_warning(synthetic_coco, caplog):
    data = CocoData(synthetic_coco.val_ann, synthetic_coco.val_images)
    stats, table = coco_evaluate(data, [], [e["id"] for e in data.images])
    assert list(stats) == list(STAT_NAMES) and not any(stats.values())
    assert table.count("= 0.000") == 12 and "no detections at all" in caplog.text


def test_data_paths_by_run_mode_and_errors(synthetic_coco, tmp_path):
    ann, images = resolve_data_paths(synthetic_coco.root, "val")
    assert ann == synthetic_coco.val_ann and images == synthetic_coco.val_images
    with pytest.raises(DataError, match="image_info_test-dev2017.json"):
        resolve_data_paths(synthetic_coco.root, "test")
    with pytest.raises(DataError, match="folder not found"):
        resolve_data_paths(str(tmp_path / "nothing"), "val")
    with pytest.raises(DataError, match="give --data_dir"):
        resolve_data_paths("", "val")
    with pytest.raises(DataError, match="image folder not found: .*elsewhere"):
        resolve_data_paths("", "val", synthetic_coco.val_ann, str(tmp_path / "elsewhere"))
    assert resolve_data_paths("", "val", synthetic_coco.val_ann, need_images=False)[0] == synthetic_coco.val_ann
