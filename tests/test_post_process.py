"""Post-processing: zero-score peaks dropped, soft-NMS selection, the per-image cap, COCO records."""
import numpy as np

import pytest

from src.post_process import coco_records, merge_outputs, post_process_image
from src.infer.soft_nms import SoftNMS

# A 100x100 square centred at (50, 40) on a 25x25 map: 4 image pixels per map pixel, map (0, 0) at image (0, -10).
META = {"c": [50.0, 40.0], "s": [100.0, 100.0], "out_height": 25, "out_width": 25}


@pytest.fixture(name="nms")
def nms_fixture(make_config):
    """{True: the default soft-NMS, False: the same switched off}."""
    return {on: SoftNMS.from_config(make_config(eval_config__SOFT_NMS=on).eval_config) for on in (True, False)}


def _dets(rows):
    return np.array(rows, np.float32).reshape(-1, 6)


def test_zero_score_peaks_are_dropped(nms):
    zeros = _dets([[1, 1, 3, 3, 0.0, 0]] * 5 + [[2, 2, 4, 4, 0.5, 1]])
    out = post_process_image([(zeros, META, 1.0)], 2, nms[True], 100)
    assert len(out[0]) == 0 and len(out[1]) == 1
    assert all(len(c) == 0 for c in post_process_image([(_dets([[1, 1, 3, 3, 0, 0]]), META, 1.0)], 2, nms[True], 100))


def test_boxes_map_back_to_image_pixels_and_scale(nms):
    dets = _dets([[2, 3, 6, 8, 0.9, 0]])
    np.testing.assert_allclose(post_process_image([(dets, META, 1.0)], 1, nms[False], 100)[0][0], [8, 2, 24, 22, 0.9],
                               rtol=1e-5)
    np.testing.assert_allclose(post_process_image([(dets, META, 2.0)], 1, nms[False], 100)[0][0], [4, 1, 12, 11, 0.9],
                               rtol=1e-5)


def test_soft_nms_when_asked_or_when_scales_are_merged(nms):
    one = [np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 9, 0.8]], np.float32)]
    plain = merge_outputs([one], 1, nms[False], 100)[0]
    np.testing.assert_allclose(plain[:, 4], [0.9, 0.8])
    decayed = merge_outputs([one], 1, nms[True], 100)[0]
    np.testing.assert_allclose(decayed[:, 4], [0.9, 0.8 * np.exp(-2)], rtol=1e-6)   # IoU 1: exp(-1 / 0.5)
    merged = merge_outputs([one, one], 1, nms[False], 100)[0]
    assert len(merged) == 4 and np.isclose(merged[1, 4], 0.9 * np.exp(-2))          # scales merged: soft-NMS


def test_at_most_max_per_image_detections_highest_first(nms):
    rng = np.random.default_rng(0)
    per_class = [np.concatenate([rng.uniform(0, 100, (60, 2)), rng.uniform(100, 200, (60, 2)),
                                 rng.random((60, 1))], 1).astype(np.float32) for _ in range(3)]
    out = merge_outputs([per_class], 3, nms[False], max_per_image=100)
    kept = np.concatenate([o[:, 4] for o in out])
    everything = np.sort(np.concatenate([p[:, 4] for p in per_class]))[::-1]
    assert len(kept) == 100 and np.allclose(np.sort(kept)[::-1], everything[:100])


def test_coco_records_use_original_category_ids_and_xywh():
    per_class = [np.zeros((0, 5), np.float32), np.array([[10, 20, 40, 60, 0.75]], np.float32)]
    assert coco_records(7, per_class, [3, 12]) == [
        {"image_id": 7, "category_id": 12, "bbox": [10.0, 20.0, 30.0, 40.0], "score": 0.75}]
