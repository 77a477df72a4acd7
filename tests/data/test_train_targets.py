"""src/data/train_targets.py: targets and augmentation of one training sample against hand computation."""
import os

import cv2
import numpy as np
import pytest

from src import image as im
from src.data import train_targets as T
from data_helpers import SMALL, exif_jpeg, load_json as _load, mindrecord_rows as _rows


def test_train_columns_layouts(make_config):
    assert T.train_columns(make_config().net_config) == ["image", "hm", "reg_mask", "ind", "wh", "reg"]
    assert T.train_columns(make_config(net_config__dense_wh=True).net_config) == \
        ["image", "hm", "reg_mask", "ind", "dense_wh", "dense_wh_mask", "reg"]
    assert T.train_columns(make_config(net_config__cat_spec_wh=True, net_config__reg_offset=False).net_config) == \
        ["image", "hm", "reg_mask", "ind", "cat_spec_wh", "cat_spec_mask"]


def test_targets_for_a_known_box(make_config):
    t = T.TrainTransform(make_config(SMALL, net_config__cat_spec_wh=True))
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
    t = T.TrainTransform(make_config(SMALL, dataset_config__max_objs=2))
    boxes = np.array([[3, 3, 3, 9], [1, 1, 5, 5], [10, 10, 20, 14], [0, 0, 8, 8]], np.float32)
    targets = t.make_targets(boxes, np.array([0, 1, 3, 4]))
    assert targets["reg_mask"].tolist() == [1, 1]
    assert targets["ind"].tolist() == [3 * 32 + 3, 12 * 32 + 15]
    assert targets["hm"][0].max() == 0 and targets["hm"][4].max() == 0  # zero width; beyond max_objs


def test_dense_wh_targets(make_config):
    t = T.TrainTransform(make_config(SMALL, net_config__dense_wh=True))
    targets = t.make_targets(np.array([[4, 6, 13, 11], [20, 20, 30, 28]], np.float32), np.array([2, 0]))
    hm_max = targets["hm"].max(axis=0)
    assert np.array_equal(targets["dense_wh_mask"], np.stack([hm_max, hm_max]))
    dense = targets["dense_wh"]
    assert np.allclose(dense[:, 8, 8], [9, 5]) and np.allclose(dense[:, 24, 25], [10, 8])
    assert np.array_equal(dense[0] != 0, hm_max > 0)


def test_identity_warp_known_box_end_to_end(make_config):
    t = T.TrainTransform(make_config(SMALL))
    img = np.zeros((128, 128, 3), np.uint8)
    aug = T.Aug(np.array([64, 64], np.float32), 128.0, 0.0, False, None)
    out = dict(zip(t.columns, t.process(img, [[16, 24, 52, 44]], [3], [0], aug)))
    # Input 128 -> output 32 is a 1/4 scale: (4, 6)-(13, 11) as in test_targets_for_a_known_box.
    assert out["ind"][0] == 264 and np.allclose(out["wh"][0], [9, 5]) and np.allclose(out["reg"][0], [0.5, 0.5])
    assert out["hm"][3, 8, 8] == 1.0
    expected = ((0 - np.array(SMALL_MEAN)) / np.array(SMALL_STD)).astype(np.float32)
    assert np.allclose(out["image"][:, 5, 5], expected, atol=1e-5)


SMALL_MEAN = [0.40789654, 0.44719302, 0.47026115]
SMALL_STD = [0.28863828, 0.27408164, 0.27809835]


def test_crowd_objects_get_no_targets(make_config):
    t = T.TrainTransform(make_config(SMALL))
    img = np.zeros((128, 128, 3), np.uint8)
    aug = T.Aug(np.array([64, 64], np.float32), 128.0, 0.0, False, None)
    out = dict(zip(t.columns, t.process(img, [[16, 24, 52, 44], [60, 60, 100, 100]], [3, 1], [1, 0], aug)))
    assert out["reg_mask"].sum() == 1 and out["hm"][3].max() == 0 and out["hm"][1].max() == 1


def _box_in_image(chw):
    """Extent (x1, y1, x2, y2) of the bright region of a normalised (3, H, W) image."""
    grey = chw.mean(axis=0)
    ys, xs = np.nonzero(grey > (grey.max() + grey.min()) / 2)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def test_an_exif_rotated_jpeg_trains_in_its_stored_orientation(make_config, tmp_path):
    """Bad input: a JPEG with EXIF orientation 6 (boxes and json size in the stored orientation) | trained as stored: the target sits on the object."""
    t = T.TrainTransform(make_config(SMALL, dataset_config__rand_crop=False, dataset_config__shift=0.0,
                                     dataset_config__scale=0.0, dataset_config__flip_prop=0.0))
    img = np.zeros((240, 320, 3), np.uint8)
    img[60:130, 100:180] = 255  # box x1, y1, x2, y2 = 100, 60, 180, 130 in the stored orientation
    with open(exif_jpeg(tmp_path / "turned.jpg", img), "rb") as f:
        data = np.frombuffer(f.read(), np.uint8)
    out = dict(zip(t.columns, t(data, 1, np.array([[100, 60, 180, 130]], np.float32), np.array([2], np.int32),
                                np.array([0], np.int32), 0)))
    seen = _box_in_image(out["image"]) / 4.0  # input -> output resolution
    ct = np.array([out["ind"][0] % 32, out["ind"][0] // 32]) + out["reg"][0]
    assert out["reg_mask"][0] == 1
    assert np.allclose(ct, [(seen[0] + seen[2]) / 2, (seen[1] + seen[3]) / 2], atol=0.5), (ct, seen)
    assert np.allclose(out["wh"][0], [seen[2] - seen[0], seen[3] - seen[1]], atol=0.5), seen


@pytest.mark.parametrize("rand_crop", [False, True])
def test_augmented_image_and_targets_agree(make_config, rand_crop):
    """A white box in a black image: flip + affine + rotation move image and target together."""
    cfg = make_config(SMALL, dataset_config__flip_prop=1.0, dataset_config__aug_rot=1.0,
                      dataset_config__rotate=12.0, dataset_config__rand_crop=rand_crop,
                      dataset_config__shift=0.05, dataset_config__scale=0.1)
    t = T.TrainTransform(cfg)
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
    t = T.TrainTransform(make_config(SMALL))
    img = np.zeros((128, 128, 3), np.uint8)
    img[24:44, 16:52] = 255
    plain = T.Aug(np.array([64, 64], np.float32), 128.0, 0.0, False, None)
    flipped = T.Aug(np.array([128 - 64 - 1, 64], np.float32), 128.0, 0.0, True, None)
    a = dict(zip(t.columns, t.process(img, [[16, 24, 52, 44]], [0], [0], plain)))
    b = dict(zip(t.columns, t.process(img, [[16, 24, 52, 44]], [0], [0], flipped)))
    assert np.array_equal(np.flip(a["image"], axis=2)[:, :, :-1], b["image"][:, :, 1:])
    ct_a = a["ind"][0] % 32 + a["reg"][0][0]
    ct_b = b["ind"][0] % 32 + b["reg"][0][0]
    # Image column o shows what column 128 - o shows unflipped; centres mirror the same way: about x = 16.
    assert ct_a + ct_b == pytest.approx(32, abs=1e-4)


def test_colour_aug_is_applied_in_the_transform(make_config):
    t_on = T.TrainTransform(make_config(SMALL, dataset_config__color_aug=True))
    t_off = T.TrainTransform(make_config(SMALL, dataset_config__color_aug=False))
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
    t = T.TrainTransform(make_config(SMALL))
    row = next(iter(_rows(synthetic_mindrecord.mindrecord_dir).values()))
    args = (row["image"], row["image_id"], row["bboxes"], row["category_id"], row["iscrowd"])
    first = t(*args, np.int64(7))
    again = pickle.loads(pickle.dumps(t))(*args, np.int64(7))
    other = t(*args, np.int64(8))
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_transform_handles_gray_rgba_png_and_empty_rows(make_config, synthetic_coco, synthetic_mindrecord):
    t = T.TrainTransform(make_config(SMALL))
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


def test_box_geometry_is_float64_as_the_official_affine_transform(make_config):
    # 96 -> 32 is a 1/3 scale: x2 = 50.999995 maps to 16.99999833 in float64, so the centre is
    # 15.9999992 (cell 15); float32 arithmetic rounds x2 to 17.0 and the centre to cell 16.
    t = T.TrainTransform(make_config(SMALL))
    aug = T.Aug(np.array([48, 48], np.float32), 96.0, 0.0, False, None)
    out = dict(zip(t.columns, t.process(np.zeros((96, 96, 3), np.uint8), [[45, 30, 50.999995, 40]], [0], [0], aug)))
    centre = (t.output_boxes([[45, 30, 50.999995, 40]], aug, 96)[0, [0, 2]]).mean()
    assert 15.999999 < centre < 16.0
    assert out["ind"][0] == 11 * 32 + 15


def test_crowd_boxes_train_as_objects_with_train_on_crowd(make_config):
    t = T.TrainTransform(make_config(SMALL, dataset_config__train_on_crowd=True))
    img = np.zeros((128, 128, 3), np.uint8)
    aug = T.Aug(np.array([64, 64], np.float32), 128.0, 0.0, False, None)
    out = dict(zip(t.columns, t.process(img, [[16, 24, 52, 44], [60, 60, 100, 100]], [3, 1], [1, 0], aug)))
    assert out["reg_mask"].sum() == 2 and out["hm"][3, 8, 8] == 1 and out["hm"][1].max() == 1


def test_max_objs_official_policy_keeps_the_first_annotations_before_filtering(make_config):
    # Annotation 0 falls outside the warped view, 1 is a crowd box, 2 and 3 are plain objects; max_objs 3.
    boxes = [[200, 200, 220, 220], [16, 24, 52, 44], [60, 60, 100, 100], [8, 8, 40, 40]]
    img = np.zeros((128, 128, 3), np.uint8)
    aug = T.Aug(np.array([64, 64], np.float32), 128.0, 0.0, False, None)
    official = T.TrainTransform(make_config(SMALL, dataset_config__max_objs=3, dataset_config__max_objs_policy="official"))
    out = dict(zip(official.columns, official.process(img, boxes, [0, 3, 1, 2], [0, 1, 0, 0], aug)))
    assert out["reg_mask"].tolist() == [0, 0, 1]           # slot 2 = annotation 2; annotation 3 is past max_objs
    assert out["hm"][2].max() == 0 and out["hm"][1].max() == 1
    surviving = T.TrainTransform(make_config(SMALL, dataset_config__max_objs=3))
    out = dict(zip(surviving.columns, surviving.process(img, boxes, [0, 3, 1, 2], [0, 1, 0, 0], aug)))
    assert out["reg_mask"].tolist() == [1, 1, 0] and out["hm"][2].max() == 1
