"""src/evaluation.py: data paths and checks, COCOeval wrapper (incl. empty results), table, atomic files."""
import contextlib
import io
import json
import os
import shutil

import numpy as np
import pytest

from src.evaluation import (STAT_NAMES, CocoData, DataError, coco_evaluate, format_table, resolve_data_paths,
                            write_json_atomic)


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


def test_annotation_file_checks(synthetic_coco, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="malformed json"):
        CocoData(str(bad), "")
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="not a COCO file"):
        CocoData(str(bad), "")
    data = CocoData(synthetic_coco.val_ann, synthetic_coco.val_images)
    assert data.category_ids == [3, 7, 12, 20, 41] and data.class_names[0] == "red_circle"
    with pytest.raises(DataError, match="num_classes is 80 .* has 5 categories"):
        data.check_num_classes(80)
    images = tmp_path / "images"
    shutil.copytree(synthetic_coco.val_images, images)
    gone = sorted(os.listdir(images))[:2]
    for name in gone:
        os.remove(images / name)
    with pytest.raises(DataError, match="2 image.*%s, %s" % tuple(gone)):
        CocoData(synthetic_coco.val_ann, str(images)).check_images()


def test_atomic_json_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "results.json"
    write_json_atomic(str(path), [1, 2])
    with pytest.raises(TypeError):
        write_json_atomic(str(path), [object()])
    assert json.loads(path.read_text()) == [1, 2] and os.listdir(tmp_path) == ["results.json"]
