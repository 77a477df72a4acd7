"""src/coco.py: the COCO json reader (checks, one exception type), training objects, facts."""
import json
import os
import shutil

import pytest

from src.coco import COCO_CATEGORY_IDS, EVAL_LAYOUT, TRAIN_LAYOUT, CocoData, DataError


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
    assert stats == {"dropped_annotations": {"unknown_image": 1, "non_positive_size": 1}}
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
    assert info.objects_by_image()[0] == {}
    data = CocoData(synthetic_coco.val_ann, synthetic_coco.val_images)
    image_id = doc["annotations"][0]["image_id"]
    assert data.annotations_of(image_id) == [a for a in doc["annotations"] if a["image_id"] == image_id]


def test_facts():
    assert len(COCO_CATEGORY_IDS) == 80 and len(set(COCO_CATEGORY_IDS)) == 80 and COCO_CATEGORY_IDS[-1] == 90
    assert TRAIN_LAYOUT == ("annotations/instances_train2017.json", "train2017")
    assert EVAL_LAYOUT["val"][1] == "val2017" and EVAL_LAYOUT["test"][1] == "test2017"
