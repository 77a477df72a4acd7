"""tools/make_synthetic_coco.py: determinism and the COCO contents other tests rely on."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
from pycocotools.coco import COCO

from tools.make_synthetic_coco import CATEGORIES, make_dataset, rle_encode

SMALL = {"min_side": 64, "max_side": 128, "min_obj": 12, "max_obj": 40}


def _tree(root):
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def _load(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def test_same_seed_gives_identical_bytes_also_with_workers(tmp_path):
    make_dataset(str(tmp_path / "a"), 12, 6, seed=5, **SMALL)
    make_dataset(str(tmp_path / "b"), 12, 6, seed=5, workers=2, **SMALL)
    make_dataset(str(tmp_path / "c"), 12, 6, seed=6, **SMALL)
    a, b, c = (_tree(str(tmp_path / n)) for n in "abc")
    assert len(a) == 12 + 6 + 2
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_categories_are_non_contiguous_and_named(synthetic_coco):
    cats = _load(synthetic_coco.train_ann)["categories"]
    ids = [c["id"] for c in cats]
    assert len(ids) == 5 and ids != list(range(1, 6)) and ids != list(range(5))
    assert len({c["name"] for c in cats}) == 5
    assert _load(synthetic_coco.val_ann)["categories"] == cats


def test_special_images_exist_in_both_splits(synthetic_coco):
    for ann_file, image_dir in ((synthetic_coco.train_ann, synthetic_coco.train_images),
                                (synthetic_coco.val_ann, synthetic_coco.val_images)):
        doc = _load(ann_file)
        with_objects = {a["image_id"] for a in doc["annotations"]}
        kinds = set()
        for entry in doc["images"]:
            img = cv2.imread(os.path.join(image_dir, entry["file_name"]), cv2.IMREAD_UNCHANGED)
            assert img.shape[:2] == (entry["height"], entry["width"])
            if img.ndim == 2:
                kinds.add("gray")
            elif img.shape[2] == 4:
                assert entry["file_name"].endswith(".png")
                kinds.add("rgba_png")
            if entry["id"] not in with_objects:
                kinds.add("empty")
        assert {"gray", "rgba_png", "empty"} <= kinds
        sizes = {(e["width"], e["height"]) for e in doc["images"]}
        assert len(sizes) > len(doc["images"]) // 2
        assert any(e["width"] != e["height"] for e in doc["images"])


def test_annotations_load_with_pycocotools_and_boxes_are_tight(synthetic_coco):
    coco = COCO(synthetic_coco.train_ann)
    anns = coco.loadAnns(coco.getAnnIds())
    crowd = [a for a in anns if a["iscrowd"]]
    assert crowd and isinstance(crowd[0]["segmentation"]["counts"], list)
    for ann in crowd:
        mask = coco.annToMask(ann)
        assert mask.sum() == ann["area"] > 0
        ys, xs = np.nonzero(mask)
        assert [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1] == ann["bbox"]
    normal = [a for a in anns if not a["iscrowd"]]
    assert len(normal) > synthetic_coco.num_train  # several objects per image on average
    per_image = [len(coco.getAnnIds(imgIds=[i], iscrowd=False)) for i in coco.getImgIds()]
    assert max(per_image) >= 2
    valid_ids = {c[0] for c in CATEGORIES}
    for ann in normal:
        img = coco.imgs[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert ann["category_id"] in valid_ids
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= img["width"] and y + h <= img["height"]
        ys, xs = np.nonzero(coco.annToMask(ann))
        # pycocotools rasterises polygons (continuous coordinates) differently from cv2.fillPoly
        # (inclusive integer vertices): the box is tight around the drawn pixels, within 2 px.
        assert np.allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], [x, y, x + w, y + h], atol=2.01)
        assert 0.25 * w * h < ann["area"] <= w * h


def test_box_matches_drawn_pixels(synthetic_coco):
    """The object colour is found inside its box (the box is where the shape was drawn)."""
    doc = _load(synthetic_coco.train_ann)
    entry = doc["images"][0]
    img = cv2.imread(os.path.join(synthetic_coco.train_images, entry["file_name"]), cv2.IMREAD_COLOR)
    colours = {cid: np.array(c, np.float32) for cid, _, c in CATEGORIES}
    checked = 0
    for ann in (a for a in doc["annotations"] if a["image_id"] == entry["id"]):
        x, y, w, h = (int(v) for v in ann["bbox"])
        centre = img[y + h // 2 - 1:y + h // 2 + 2, x + w // 2 - 1:x + w // 2 + 2].reshape(-1, 3).mean(axis=0)
        dists = {cid: np.linalg.norm(centre - c) for cid, c in colours.items()}
        if ann["category_id"] != min(dists, key=dists.get):
            continue  # an overlapping later object may cover this centre
        assert dists[ann["category_id"]] < 90
        checked += 1
    assert checked >= 1


def test_rle_encode_round_trips_through_pycocotools():
    from pycocotools import mask as mask_utils
    mask = np.zeros((7, 5), np.uint8)
    mask[0, 0] = 1
    mask[2:5, 1:4] = 1
    rle = rle_encode(mask)
    decoded = mask_utils.decode(mask_utils.frPyObjects(rle, 7, 5))
    assert np.array_equal(decoded, mask)


def test_cli_writes_layout(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = tmp_path / "cli"
    res = subprocess.run([sys.executable, os.path.join(root, "tools", "make_synthetic_coco.py"), "--out", str(out),
                          "--num_train", "6", "--num_val", "5", "--seed", "3", "--min_side", "64", "--max_side", "96",
                          "--min_obj", "12", "--max_obj", "30"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert len(os.listdir(out / "train2017")) == 6 and len(os.listdir(out / "val2017")) == 5
    assert len(_load(str(out / "annotations" / "instances_val2017.json"))["images"]) == 5
    bad = subprocess.run([sys.executable, os.path.join(root, "tools", "make_synthetic_coco.py"), "--out",
                          str(tmp_path / "bad"), "--difficulty", "3"], capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and "difficulty" in bad.stderr
