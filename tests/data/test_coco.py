"""src/data/coco.py: the COCO json reader (checks, one exception type), training objects, facts."""
import json
import os
import shutil

import pytest

from src.data.coco import COCO_CATEGORY_IDS, EVAL_LAYOUT, TRAIN_LAYOUT, CocoData, DataError


def _load(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def _write(path, doc):
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


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


def test_every_reading_problem_is_a_data_error_naming_the_file(synthetic_coco, tmp_path):
    with pytest.raises(DataError, match="not found: .*absent.json"):
        CocoData(str(tmp_path / "absent.json"), "")
    doc = _load(synthetic_coco.train_ann)
    twice = _write(tmp_path / "twice.json", dict(doc, images=doc["images"] + doc["images"][:1]))
    with pytest.raises(DataError, match="twice.json: duplicate image ids"):
        CocoData(twice, "")
    no_id = _write(tmp_path / "no_id.json", dict(doc, categories=[{"name": "x"}]))
    with pytest.raises(DataError, match="no_id.json: an image or category entry"):
        CocoData(no_id, "")
    with pytest.raises(DataError, match="image folder not found: .*nowhere"):
        CocoData(synthetic_coco.train_ann, str(tmp_path / "nowhere")).check_image_dir()


def test_training_objects_are_x1y1x2y2_with_drops_counted(synthetic_coco, tmp_path):
    doc = _load(synthetic_coco.train_ann)
    first = doc["annotations"][0]
    doc["annotations"] += [dict(first, id=10 ** 6, image_id=424242),          # unknown image: dropped
                           dict(first, id=10 ** 6 + 1, bbox=[5, 5, 0, 3])]    # zero width: dropped
    data = CocoData(_write(tmp_path / "extra.json", doc), synthetic_coco.train_images)
    by_image, stats = data.objects_by_image()
    assert stats == {"dropped_annotations": {"unknown_image": 1, "zero_size": 1, "non_finite": 0, "outside_image": 0}}
    assert sum(len(v) for v in by_image.values()) == len(doc["annotations"]) - 2
    x, y, w, h = first["bbox"]
    assert by_image[first["image_id"]][0] == (x, y, x + w, y + h, first["category_id"], int(bool(first["iscrowd"])))
    doc["annotations"].append(dict(first, id=7, bbox="wide"))
    with pytest.raises(DataError, match="bad_box.json: annotation 7 has no valid bbox"):
        CocoData(_write(tmp_path / "bad_box.json", doc), "").objects_by_image()


def test_image_info_file_has_no_annotations_and_the_index_serves_evaluation(synthetic_coco, tmp_path):
    doc = _load(synthetic_coco.val_ann)
    info = CocoData(_write(tmp_path / "info.json", {"images": doc["images"], "categories": doc["categories"]}), "")
    assert not info.has_annotations and info.annotations_of(doc["images"][0]["id"]) == []
    with pytest.raises(DataError, match="no .annotations. list"):
        info.objects_by_image()                          # an image_info file cannot train
    data = CocoData(synthetic_coco.val_ann, synthetic_coco.val_images)
    image_id = doc["annotations"][0]["image_id"]
    assert data.annotations_of(image_id) == [a for a in doc["annotations"] if a["image_id"] == image_id]


def test_facts():
    assert len(COCO_CATEGORY_IDS) == 80 and len(set(COCO_CATEGORY_IDS)) == 80 and COCO_CATEGORY_IDS[-1] == 90
    assert TRAIN_LAYOUT == ("annotations/instances_train2017.json", "train2017")
    assert EVAL_LAYOUT["val"][1] == "val2017" and EVAL_LAYOUT["test"][1] == "test2017"


def test_non_finite_zero_size_and_outside_boxes_are_dropped_and_counted(synthetic_coco, tmp_path):
    """Bad input: NaN or infinite box coordinates, zero-size boxes, boxes entirely outside their image | dropped by the converter and counted by reason in its summary and meta ('dropped: 2 non-finite, 1 zero-size, 1 outside the image')."""
    doc = _load(synthetic_coco.train_ann)
    first = doc["annotations"][0]
    image = next(i for i in doc["images"] if i["id"] == first["image_id"])
    bad = [[float("nan"), 5, 10, 10], [5, 5, float("inf"), 10], [5, 5, 10, 0],
           [image["width"] + 1, 5, 10, 10]]
    doc["annotations"] += [dict(first, id=10 ** 6 + k, bbox=b) for k, b in enumerate(bad)]
    path = tmp_path / "bad_boxes.json"
    path.write_text(json.dumps(doc))  # json writes NaN and Infinity, as Python's reader accepts
    by_image, stats = CocoData(str(path), synthetic_coco.train_images).objects_by_image()
    assert stats["dropped_annotations"] == {"non_finite": 2, "zero_size": 1, "outside_image": 1, "unknown_image": 0}
    assert sum(len(v) for v in by_image.values()) == len(doc["annotations"]) - len(bad)


def test_annotation_file_without_annotations_is_an_error(synthetic_coco, tmp_path):
    """Bad input: an annotation file without an "annotations" key | the converter stops naming the file (an explicit empty list stays legal)."""
    doc = _load(synthetic_coco.train_ann)
    del doc["annotations"]
    with pytest.raises(DataError, match="no_anns.json has no 'annotations' list"):
        CocoData(_write(tmp_path / "no_anns.json", doc), synthetic_coco.train_images).objects_by_image()
    doc["annotations"] = []
    by_image, stats = CocoData(_write(tmp_path / "empty.json", doc), synthetic_coco.train_images).objects_by_image()
    assert not by_image and sum(stats["dropped_annotations"].values()) == 0
