"""src/dataset.py: COCO -> MindRecord conversion, targets, and the training pipeline contract."""
import json
import os
import shutil
import subprocess
import sys

import cv2
import mindspore.dataset as ds
import numpy as np
import pytest

from conftest import SMALL as SMALL_NET, SMALL_RES
from src import dataset as D
from src import image as im

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(SMALL_NET, **{"dataset_config.input_res_train": SMALL_RES, "dataset_config.max_objs": 16})
BATCH = 4


def _load(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def _rows(mindrecord_dir, prefix=D.DEFAULT_PREFIX):
    files = D.mindrecord_files(mindrecord_dir, prefix)
    data = ds.MindDataset(files, shuffle=False)
    return {int(r["image_id"]): r for r in data.create_dict_iterator(output_numpy=True, num_epochs=1)}


def _copy_coco(coco, dst):
    """A writable copy of the synthetic train split: (ann_file, image_dir)."""
    image_dir = os.path.join(dst, "train2017")
    shutil.copytree(coco.train_images, image_dir)
    ann_file = os.path.join(dst, "instances_train2017.json")
    shutil.copy(coco.train_ann, ann_file)
    return ann_file, image_dir


def _batches(dataset):
    return [tuple(np.array(c) for c in b) for b in dataset.create_tuple_iterator(output_numpy=True, num_epochs=1)]


# ----------------------------------------------------------------------------- conversion

def test_round_trip_bytes_boxes_classes_and_empty_image(synthetic_coco, synthetic_mindrecord):
    doc = _load(synthetic_coco.train_ann)
    cat_index = {c["id"]: k for k, c in enumerate(sorted(doc["categories"], key=lambda c: c["id"]))}
    rows = _rows(synthetic_mindrecord.mindrecord_dir)
    assert len(rows) == synthetic_coco.num_train == synthetic_mindrecord.num_images
    empty_seen = False
    for entry in doc["images"]:
        row = rows[entry["id"]]
        with open(os.path.join(synthetic_coco.train_images, entry["file_name"]), "rb") as f:
            assert row["image"].tobytes() == f.read()
        anns = [a for a in doc["annotations"] if a["image_id"] == entry["id"]]
        boxes, classes, crowd = D._as_objects(row["bboxes"], row["category_id"], row["iscrowd"])
        expected = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                             for a in anns], np.float32).reshape(-1, 4)
        assert np.array_equal(boxes, expected)
        assert classes.tolist() == [cat_index[a["category_id"]] for a in anns]
        assert crowd.tolist() == [a["iscrowd"] for a in anns]
        if not anns:
            empty_seen = True
            assert row["bboxes"].shape == ()  # MindRecord's empty-array quirk that _as_objects undoes
            assert boxes.shape == (0, 4)
    assert empty_seen


def test_meta_sidecar_describes_classes(synthetic_coco, synthetic_mindrecord):
    meta = D.read_meta(synthetic_mindrecord.mindrecord_dir, synthetic_mindrecord.prefix)
    cats = sorted(_load(synthetic_coco.train_ann)["categories"], key=lambda c: c["id"])
    assert [(c["index"], c["id"], c["name"]) for c in meta["categories"]] == \
        [(k, c["id"], c["name"]) for k, c in enumerate(cats)]
    assert meta["num_classes"] == 5 and meta["num_images"] == 24 and meta["num_skipped"] == 0
    assert meta["shards"] == 2
    files = D.mindrecord_files(synthetic_mindrecord.mindrecord_dir, synthetic_mindrecord.prefix)
    assert [os.path.basename(f) for f in files] == ["coco_det.train.mind0", "coco_det.train.mind1"]


def test_corrupt_missing_images_skipped_and_bad_boxes_dropped(synthetic_coco, tmp_path):
    ann_file, image_dir = _copy_coco(synthetic_coco, str(tmp_path))
    doc = _load(ann_file)
    corrupt, missing = doc["images"][5], doc["images"][6]
    with open(os.path.join(image_dir, corrupt["file_name"]), "wb") as f:
        f.write(b"\xff\xd8 this is not a jpeg" * 50)
    os.remove(os.path.join(image_dir, missing["file_name"]))
    doc["annotations"].append(dict(doc["annotations"][0], id=10 ** 6, bbox=[5, 5, 0, 7]))
    doc["annotations"].append(dict(doc["annotations"][0], id=10 ** 6 + 1, bbox=[5, 5, 3, -1]))
    with open(ann_file, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    out = str(tmp_path / "mr")
    summary = D.coco_to_mindrecord(ann_file, image_dir, out, "p.mind", shards=3, workers=2)
    assert summary["num_images"] == 22 and summary["num_skipped"] == 2
    assert summary["skipped_reasons"] == {"undecodable": 1, "missing": 1}
    assert {(s["image_id"], s["reason"]) for s in summary["skipped"]} == \
        {(corrupt["id"], "undecodable"), (missing["id"], "missing")}
    assert summary["num_dropped_annotations"] == 2
    assert summary["dropped_annotations"] == {"non_positive_size": 2}
    rows = _rows(out, "p.mind")
    assert len(rows) == 22 and corrupt["id"] not in rows and missing["id"] not in rows
    first = rows[doc["annotations"][0]["image_id"]]
    assert D._as_objects(first["bboxes"], first["category_id"], first["iscrowd"])[0].shape[0] == \
        sum(1 for a in doc["annotations"][:-2] if a["image_id"] == doc["annotations"][0]["image_id"])
    assert D.read_meta(out, "p.mind")["skipped_reasons"] == {"undecodable": 1, "missing": 1}


def test_existing_output_needs_overwrite(synthetic_coco, tmp_path):
    out = str(tmp_path / "mr")
    D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "p.mind", shards=3, workers=1)
    with pytest.raises(FileExistsError, match="p.mind") as err:
        D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "p.mind", shards=1, workers=1)
    assert out in str(err.value)
    assert len(D.mindrecord_files(out, "p.mind")) == 3
    D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "p.mind", shards=1,
                         workers=1, overwrite=True)
    assert sorted(os.listdir(out)) == ["p.mind", "p.mind.db", "p.mind.meta.json"]
    assert len(_rows(out, "p.mind")) == 24
    D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "other", shards=1, workers=1)
    assert len(os.listdir(out)) == 6  # a different prefix coexists


def test_missing_inputs_raise_naming_the_path_and_write_nothing(synthetic_coco, tmp_path):
    out = str(tmp_path / "mr")
    missing_ann = str(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        D.coco_to_mindrecord(missing_ann, synthetic_coco.train_images, out)
    with pytest.raises(FileNotFoundError, match="no_images"):
        D.coco_to_mindrecord(synthetic_coco.train_ann, str(tmp_path / "no_images"), out)
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json"):
        D.coco_to_mindrecord(str(bad), synthetic_coco.train_images, out)
    bad.write_text('{"annotations": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json"):
        D.coco_to_mindrecord(str(bad), synthetic_coco.train_images, out)
    assert not os.path.exists(out)


def test_unknown_category_is_an_error_and_orphan_annotations_are_dropped(synthetic_coco, tmp_path):
    doc = _load(synthetic_coco.train_ann)
    doc["annotations"].append(dict(doc["annotations"][0], id=10 ** 6, image_id=424242))
    orphan = tmp_path / "orphan.json"
    orphan.write_text(json.dumps(doc), encoding="utf-8")
    summary = D.coco_to_mindrecord(str(orphan), synthetic_coco.train_images, str(tmp_path / "mr"), workers=1)
    assert summary["dropped_annotations"] == {"unknown_image": 1} and summary["num_images"] == 24
    doc["annotations"][-1] = dict(doc["annotations"][0], id=10 ** 6, category_id=999)
    unknown = tmp_path / "unknown_cat.json"
    unknown.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown_cat.json.*999"):
        D.coco_to_mindrecord(str(unknown), synthetic_coco.train_images, str(tmp_path / "mr2"), workers=1)
    assert not os.path.exists(str(tmp_path / "mr2"))


def test_failure_mid_write_leaves_no_partial_output(synthetic_coco, tmp_path, monkeypatch):
    from mindspore.mindrecord import FileWriter
    out = str(tmp_path / "mr")
    D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "p.mind", shards=2, workers=1)
    before = {n: (tmp_path / "mr" / n).read_bytes() for n in os.listdir(out)}
    calls = []

    def failing_write(self, rows, parallel_writer=False):
        calls.append(len(rows))
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(FileWriter, "write_raw_data", failing_write)
    with pytest.raises(OSError, match="simulated"):
        D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, "p.mind", shards=2,
                             workers=1, overwrite=True)
    assert calls
    assert {n: (tmp_path / "mr" / n).read_bytes() for n in os.listdir(out)} == before
    fresh = str(tmp_path / "fresh")
    with pytest.raises(OSError):
        D.coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, fresh, "p.mind", workers=1)
    assert not os.path.exists(fresh)


def test_all_images_unreadable_is_an_error_without_output(synthetic_coco, tmp_path):
    ann_file, image_dir = _copy_coco(synthetic_coco, str(tmp_path))
    for name in os.listdir(image_dir):
        (tmp_path / "train2017" / name).write_bytes(b"garbage")
    out = str(tmp_path / "mr")
    with pytest.raises(RuntimeError, match="no readable image"):
        D.coco_to_mindrecord(ann_file, image_dir, out, workers=1)
    assert not os.path.exists(out)


def test_mindrecord_files_errors_and_numeric_order(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent"):
        D.mindrecord_files(str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        D.mindrecord_files(str(tmp_path))
    for i in range(12):  # a legacy dataset without meta file
        (tmp_path / ("x.mind%d" % i)).write_bytes(b"")
        (tmp_path / ("x.mind%d.db" % i)).write_bytes(b"")
    names = [os.path.basename(f) for f in D.mindrecord_files(str(tmp_path), "x.mind")]
    assert names == ["x.mind%d" % i for i in range(12)]
    with pytest.raises(FileNotFoundError, match="coco_det"):
        D.mindrecord_files(str(tmp_path), "coco_det.train.mind")


def test_cli_and_shell_script(synthetic_coco, tmp_path):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    out = str(tmp_path / "mr")
    cmd = [sys.executable, os.path.join(ROOT, "src", "dataset.py"), "--coco_data_dir", synthetic_coco.root,
           "--mindrecord_dir", out, "--mindrecord_shards=3", "--convert_workers=2"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path), env=env, check=False)
    assert res.returncode == 0, res.stderr
    assert "converted 24 images" in res.stdout
    assert len(D.mindrecord_files(out)) == 3
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path), env=env, check=False)
    assert again.returncode == 1 and out in again.stderr
    script = os.path.join(ROOT, "scripts", "convert_dataset_to_mindrecord.sh")
    usage = subprocess.run(["bash", script], capture_output=True, text=True, env=env, check=False)
    assert usage.returncode != 0 and "Usage" in usage.stdout + usage.stderr
    nodir = subprocess.run(["bash", script, str(tmp_path / "nothing"), out], capture_output=True, text=True,
                           env=env, check=False)
    assert nodir.returncode != 0 and "nothing" in nodir.stdout + nodir.stderr
    rel_coco = os.path.relpath(synthetic_coco.root, str(tmp_path))
    ok = subprocess.run(["bash", script, rel_coco, "mr2"], capture_output=True, text=True, cwd=str(tmp_path),
                        env=env, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert D.read_meta(str(tmp_path / "mr2"))["num_images"] == 24


# ----------------------------------------------------------------------------- targets and augmentation

def test_train_columns_layouts(make_config):
    assert D.train_columns(make_config().net_config) == ["image", "hm", "reg_mask", "ind", "wh", "reg"]
    assert D.train_columns(make_config(net_config__dense_wh=True).net_config) == \
        ["image", "hm", "reg_mask", "ind", "dense_wh", "dense_wh_mask", "reg"]
    assert D.train_columns(make_config(net_config__cat_spec_wh=True, net_config__reg_offset=False).net_config) == \
        ["image", "hm", "reg_mask", "ind", "cat_spec_wh", "cat_spec_mask"]


def test_targets_for_a_known_box(make_config):
    t = D.TrainTransform(make_config(SMALL, net_config__cat_spec_wh=True))
    # Output box (4, 6)-(13, 11): w = 9, h = 5, centre (8.5, 8.5) -> ct_int (8, 8), reg (0.5, 0.5),
    # ind = 8 * 32 + 8 = 264; radius = int(gaussian_radius((5, 9))) = int(1.77) = 1.
    targets = t.make_targets(np.array([[4, 6, 13, 11]], np.float32), np.array([2]))
    assert targets["ind"][0] == 264 and np.allclose(targets["reg"][0], [0.5, 0.5])
    assert np.allclose(targets["wh"][0], [9, 5])
    assert targets["reg_mask"].tolist() == [1] + [0] * 15
    hm = targets["hm"]
    assert hm.shape == (5, 32, 32) and hm[2, 8, 8] == 1.0 and hm.max() == 1.0
    assert np.count_nonzero(hm) == 9 and np.count_nonzero(hm[2, 7:10, 7:10]) == 9
    assert np.allclose(targets["cat_spec_wh"][0], [0, 0, 0, 0, 9, 5, 0, 0, 0, 0])
    assert targets["cat_spec_mask"][0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]


def test_targets_skip_degenerate_boxes_and_respect_max_objs(make_config):
    t = D.TrainTransform(make_config(SMALL, dataset_config__max_objs=2))
    boxes = np.array([[3, 3, 3, 9], [1, 1, 5, 5], [10, 10, 20, 14], [0, 0, 8, 8]], np.float32)
    targets = t.make_targets(boxes, np.array([0, 1, 3, 4]))
    assert targets["reg_mask"].tolist() == [1, 1]
    assert targets["ind"].tolist() == [3 * 32 + 3, 12 * 32 + 15]
    assert targets["hm"][0].max() == 0 and targets["hm"][4].max() == 0  # zero width; beyond max_objs


def test_dense_wh_targets(make_config):
    t = D.TrainTransform(make_config(SMALL, net_config__dense_wh=True))
    targets = t.make_targets(np.array([[4, 6, 13, 11], [20, 20, 30, 28]], np.float32), np.array([2, 0]))
    hm_max = targets["hm"].max(axis=0)
    assert np.array_equal(targets["dense_wh_mask"], np.stack([hm_max, hm_max]))
    dense = targets["dense_wh"]
    assert np.allclose(dense[:, 8, 8], [9, 5]) and np.allclose(dense[:, 24, 25], [10, 8])
    assert np.array_equal(dense[0] != 0, hm_max > 0)


def test_identity_warp_known_box_end_to_end(make_config):
    t = D.TrainTransform(make_config(SMALL))
    img = np.zeros((128, 128, 3), np.uint8)
    aug = D.Aug(np.array([64, 64], np.float32), 128.0, 0.0, False, None)
    out = dict(zip(t.columns, t.process(img, [[16, 24, 52, 44]], [3], [0], aug)))
    # Input 128 -> output 32 is a 1/4 scale: (4, 6)-(13, 11) as in test_targets_for_a_known_box.
    assert out["ind"][0] == 264 and np.allclose(out["wh"][0], [9, 5]) and np.allclose(out["reg"][0], [0.5, 0.5])
    assert out["hm"][3, 8, 8] == 1.0
    expected = ((0 - np.array(SMALL_MEAN)) / np.array(SMALL_STD)).astype(np.float32)
    assert np.allclose(out["image"][:, 5, 5], expected, atol=1e-5)


SMALL_MEAN = [0.40789654, 0.44719302, 0.47026115]
SMALL_STD = [0.28863828, 0.27408164, 0.27809835]


def test_crowd_objects_get_no_targets(make_config):
    t = D.TrainTransform(make_config(SMALL))
    img = np.zeros((128, 128, 3), np.uint8)
    aug = D.Aug(np.array([64, 64], np.float32), 128.0, 0.0, False, None)
    out = dict(zip(t.columns, t.process(img, [[16, 24, 52, 44], [60, 60, 100, 100]], [3, 1], [1, 0], aug)))
    assert out["reg_mask"].sum() == 1 and out["hm"][3].max() == 0 and out["hm"][1].max() == 1


def _box_in_image(chw):
    """Extent (x1, y1, x2, y2) of the bright region of a normalised (3, H, W) image."""
    grey = chw.mean(axis=0)
    ys, xs = np.nonzero(grey > (grey.max() + grey.min()) / 2)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("rand_crop", [False, True])
def test_augmented_image_and_targets_agree(make_config, rand_crop):
    """A white box in a black image: flip + affine + rotation move image and target together."""
    cfg = make_config(SMALL, dataset_config__flip_prop=1.0, dataset_config__aug_rot=1.0,
                      dataset_config__rotate=12.0, dataset_config__rand_crop=rand_crop,
                      dataset_config__shift=0.05, dataset_config__scale=0.1)
    t = D.TrainTransform(cfg)
    img = np.zeros((240, 320, 3), np.uint8)
    img[60:130, 100:180] = 255  # box x1, y1, x2, y2 = 100, 60, 180, 130 (x2, y2 exclusive)
    data = np.frombuffer(cv2.imencode(".png", img)[1].tobytes(), np.uint8)
    checked = 0
    for position in range(12):
        aug = t.sample_aug(t.rng(position), 240, 320)
        assert aug.flipped and aug.rot != 0
        out = dict(zip(t.columns, t(data, 1, np.array([[100, 60, 180, 130]], np.float32), np.array([2], np.int32),
                                    np.array([0], np.int32), position)))
        if out["reg_mask"][0] == 0:
            continue
        seen = _box_in_image(out["image"]) / 4.0  # input -> output resolution
        if seen[0] <= 0.5 or seen[1] <= 0.5 or seen[2] >= 31.5 or seen[3] >= 31.5:
            continue  # clipped by the crop: the hull comparison below needs the whole box
        ct = np.array([out["ind"][0] % 32, out["ind"][0] // 32]) + out["reg"][0]
        assert np.allclose(ct, [(seen[0] + seen[2]) / 2, (seen[1] + seen[3]) / 2], atol=0.4), (position, ct, seen)
        assert np.allclose(out["wh"][0], [seen[2] - seen[0], seen[3] - seen[1]], atol=0.5), (position, seen)
        assert np.unravel_index(out["hm"][2].argmax(), (32, 32)) == (out["ind"][0] // 32, out["ind"][0] % 32)
        checked += 1
    assert checked >= 4


def test_flip_mirrors_image_and_box(make_config):
    t = D.TrainTransform(make_config(SMALL))
    img = np.zeros((128, 128, 3), np.uint8)
    img[24:44, 16:52] = 255
    plain = D.Aug(np.array([64, 64], np.float32), 128.0, 0.0, False, None)
    flipped = D.Aug(np.array([128 - 64 - 1, 64], np.float32), 128.0, 0.0, True, None)
    a = dict(zip(t.columns, t.process(img, [[16, 24, 52, 44]], [0], [0], plain)))
    b = dict(zip(t.columns, t.process(img, [[16, 24, 52, 44]], [0], [0], flipped)))
    assert np.array_equal(np.flip(a["image"], axis=2)[:, :, :-1], b["image"][:, :, 1:])
    ct_a = a["ind"][0] % 32 + a["reg"][0][0]
    ct_b = b["ind"][0] % 32 + b["reg"][0][0]
    # Image column o shows what column 128 - o shows unflipped; centres mirror the same way: about x = 16.
    assert ct_a + ct_b == pytest.approx(32, abs=1e-4)


def test_colour_aug_is_applied_in_the_transform(make_config):
    t_on = D.TrainTransform(make_config(SMALL, dataset_config__color_aug=True))
    t_off = D.TrainTransform(make_config(SMALL, dataset_config__color_aug=False))
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    aug = t_on.sample_aug(np.random.default_rng(1), 128, 128)
    on = t_on.warp_image(img, aug)
    off = t_off.warp_image(img, aug._replace(color=None))
    warped = cv2.warpAffine(cv2.flip(img, 1) if aug.flipped else img,
                            im.get_affine_transform(aug.center, aug.scale, aug.rot, (128, 128)), (128, 128))
    expected = im.color_aug_reference(warped.astype(np.float32) / 255, aug.color, t_on.eig_val, t_on.eig_vec)
    expected = ((expected - np.array(SMALL_MEAN, np.float32)) / np.array(SMALL_STD, np.float32)).transpose(2, 0, 1)
    assert np.allclose(on, expected, atol=5e-5) and not np.allclose(on, off, atol=1e-2)


def test_transform_is_picklable_and_deterministic(make_config, synthetic_mindrecord):
    import pickle
    t = D.TrainTransform(make_config(SMALL))
    row = next(iter(_rows(synthetic_mindrecord.mindrecord_dir).values()))
    args = (row["image"], row["image_id"], row["bboxes"], row["category_id"], row["iscrowd"])
    first = t(*args, np.int64(7))
    again = pickle.loads(pickle.dumps(t))(*args, np.int64(7))
    other = t(*args, np.int64(8))
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_transform_handles_gray_rgba_png_and_empty_rows(make_config, synthetic_coco, synthetic_mindrecord):
    t = D.TrainTransform(make_config(SMALL))
    doc = _load(synthetic_coco.train_ann)
    with_objects = {a["image_id"] for a in doc["annotations"]}
    rows = _rows(synthetic_mindrecord.mindrecord_dir)
    kinds = set()
    for entry in doc["images"]:
        raw = cv2.imread(os.path.join(synthetic_coco.train_images, entry["file_name"]), cv2.IMREAD_UNCHANGED)
        kind = "gray" if raw.ndim == 2 else "rgba" if raw.shape[2] == 4 else "empty" \
            if entry["id"] not in with_objects else None
        if kind is None:
            continue
        row = rows[entry["id"]]
        out = dict(zip(t.columns, t(row["image"], row["image_id"], row["bboxes"], row["category_id"],
                                    row["iscrowd"], np.int64(0))))
        assert out["image"].shape == (3, 128, 128) and np.isfinite(out["image"]).all()
        if kind == "empty":
            assert out["reg_mask"].sum() == 0 and out["hm"].max() == 0
        kinds.add(kind)
    assert kinds == {"gray", "rgba", "empty"}


# ----------------------------------------------------------------------------- training pipeline

@pytest.mark.parametrize("layout", ["default", "dense_wh", "cat_spec_wh"])
def test_pipeline_columns_shapes_dtypes(make_config, synthetic_mindrecord, layout):
    extra = {"net_config.%s" % layout: True} if layout != "default" else {}
    cfg = make_config(dict(SMALL, **extra))
    dataset, steps = D.create_train_dataset(cfg, synthetic_mindrecord.mindrecord_dir, synthetic_mindrecord.prefix,
                                            BATCH, total_steps=2, num_parallel_workers=1)
    assert steps == 24 // BATCH and dataset.get_dataset_size() == 2
    columns = D.train_columns(cfg.net_config)
    assert dataset.get_col_names() == columns
    batches = _batches(dataset)
    assert len(batches) == 2
    m, c = 16, 5
    shapes = {"image": ((3, 128, 128), np.float32), "hm": ((c, 32, 32), np.float32),
              "reg_mask": ((m,), np.float32), "ind": ((m,), np.int32), "wh": ((m, 2), np.float32),
              "reg": ((m, 2), np.float32), "dense_wh": ((2, 32, 32), np.float32),
              "dense_wh_mask": ((2, 32, 32), np.float32), "cat_spec_wh": ((m, 2 * c), np.float32),
              "cat_spec_mask": ((m, 2 * c), np.float32)}
    for name, value in zip(columns, batches[0]):
        shape, dtype = shapes[name]
        assert value.shape == (BATCH,) + shape and value.dtype == dtype, name
    assert batches[0][columns.index("reg_mask")].sum() > 0
    assert D.sample_nbytes(cfg) * BATCH == sum(v.nbytes for v in batches[0])


def test_prefetch_is_lowered_for_big_batches_only(make_config):
    before = ds.config.get_prefetch_size()
    try:
        ds.config.set_prefetch_size(16)
        D._limit_prefetch(4 << 20)
        assert ds.config.get_prefetch_size() == 16
        big = make_config(**{"dataset_config.num_classes": 80})
        assert D.sample_nbytes(big) == 4 * (3 * 512 * 512 + 80 * 128 * 128 + 6 * 128)
        D._limit_prefetch(D.sample_nbytes(big) * 32)
        assert ds.config.get_prefetch_size() == 2
    finally:
        ds.config.set_prefetch_size(before)


def test_pipeline_deterministic_resumable_and_worker_independent(make_config, synthetic_mindrecord):
    cfg = make_config(SMALL)
    args = (cfg, synthetic_mindrecord.mindrecord_dir, synthetic_mindrecord.prefix, BATCH)
    full = _batches(D.create_train_dataset(*args, total_steps=8, num_parallel_workers=1)[0])  # crosses epoch 0 -> 1
    two_workers = _batches(D.create_train_dataset(*args, total_steps=8, num_parallel_workers=2)[0])
    resumed = _batches(D.create_train_dataset(*args, start_step=5, total_steps=3, num_parallel_workers=1)[0])
    assert len(full) == 8 and len(resumed) == 3
    for a, b in zip(full, two_workers):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for a, b in zip(full[5:], resumed):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(full[0][0], full[6][0])
    # The sample at position p is TrainTransform(row of plan index p, p): nothing else is random.
    plan = D.SamplePlan(24, BATCH, cfg.seed)
    row_index = int(plan.indices(6 * BATCH + 1, 1)[0])
    files = D.mindrecord_files(synthetic_mindrecord.mindrecord_dir)
    row = next(ds.MindDataset(files, columns_list=D.SOURCE_COLUMNS[:-1], sampler=ds.SubsetSampler([row_index]))
               .create_tuple_iterator(output_numpy=True, num_epochs=1))
    direct = D.TrainTransform(cfg)(*row, np.int64(6 * BATCH + 1))
    assert all(np.array_equal(x, y[1]) for x, y in zip(direct, full[6]))


def test_ranks_read_disjoint_halves(synthetic_mindrecord):
    files = D.mindrecord_files(synthetic_mindrecord.mindrecord_dir)
    ids = {}
    for rank in (0, 1):
        plan = D.SamplePlan(24, BATCH, 317, rank=rank, group_size=2)
        assert plan.steps_per_epoch == 3
        source = D._StreamSource(files, plan, 0, 2 * plan.epoch_len)
        ids[rank] = [int(r[1]) for r in source]
        assert len(ids[rank]) == 24
    for epoch in (0, 1):
        a, b = (set(ids[r][12 * epoch:12 * epoch + 12]) for r in (0, 1))
        assert len(a) == len(b) == 12 and not a & b
    assert ids[0][:12] != ids[0][12:]  # reshuffled every epoch


def test_sample_plan_order_rules():
    plan = D.SamplePlan(10, 3, seed=5, rank=1, group_size=2)
    perm = np.random.default_rng([5, 4]).permutation(10)
    assert plan.steps_per_epoch == 1 and np.array_equal(plan.epoch_indices(4), perm[1::2][:5][:3])
    fixed = D.SamplePlan(10, 3, seed=5, shuffle=False)
    assert fixed.steps_per_epoch == 3 and fixed.epoch_len == 9  # row 9 is never read: 10 // 3 * 3
    assert fixed.indices(0, 12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2]
    assert fixed.indices(7, 4).tolist() == [7, 8, 0, 1]


def test_pipeline_errors(make_config, synthetic_mindrecord, tmp_path):
    cfg = make_config(SMALL)
    with pytest.raises(ValueError, match=synthetic_mindrecord.mindrecord_dir):
        D.create_train_dataset(cfg, synthetic_mindrecord.mindrecord_dir, synthetic_mindrecord.prefix, 16,
                               group_size=2, rank=1)
    with pytest.raises(ValueError, match="num_classes"):
        D.create_train_dataset(make_config(SMALL, dataset_config__num_classes=3), synthetic_mindrecord.mindrecord_dir,
                               synthetic_mindrecord.prefix, BATCH)
    with pytest.raises(FileNotFoundError, match="empty_dir"):
        (tmp_path / "empty_dir").mkdir()
        D.create_train_dataset(cfg, str(tmp_path / "empty_dir"), "coco_det.train.mind", BATCH)
