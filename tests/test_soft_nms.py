"""Soft-NMS: compiled equals numpy on random boxes; behaviour on hand-made cases."""
import numpy as np
import pytest

from src import soft_nms as nms


def _random_boxes(rng, n, ties=False):
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(1, 80, (n, 2))
    scores = rng.random((n, 1))
    if ties:
        scores = np.round(scores, 1)
    return np.concatenate([xy, xy + wh, scores], 1).astype(np.float32)


def test_compiled_version_is_built():
    assert nms.is_compiled(), "run 'python setup.py build_ext --inplace' (scripts/setup_env.sh does it)"


@pytest.mark.parametrize("method", [0, 1, 2])
def test_compiled_equals_numpy_on_random_boxes(method):
    rng = np.random.default_rng(method)
    for trial in range(150):
        boxes = _random_boxes(rng, int(rng.integers(0, 80)), ties=trial % 3 == 0)
        expected = nms.soft_nms_numpy(boxes, method=method)
        got = nms.soft_nms(boxes, method=method)
        assert got.dtype == np.float32 and np.array_equal(got, expected), trial


def test_gaussian_decay_by_hand():
    boxes = np.array([[0, 0, 9, 9, 0.9],      # 10x10, the best
                      [0, 0, 9, 4, 0.8],      # half of it: IoU 0.5
                      [50, 50, 60, 60, 0.3]], np.float32)
    out = nms.soft_nms(boxes)
    assert out.shape == (3, 5)
    np.testing.assert_allclose(out[:, 4], [0.9, 0.8 * np.exp(-0.25 / 0.5), 0.3], rtol=1e-6)


def test_boxes_decayed_below_threshold_are_dropped():
    boxes = np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 9, 0.0015]], np.float32)
    out = nms.soft_nms(boxes)   # identical box: weight exp(-2) -> 0.0002 < 0.001
    assert out.shape == (1, 5)
    hard = nms.soft_nms(np.array([[0, 0, 9, 9, 0.9], [1, 1, 9, 9, 0.8], [30, 30, 40, 40, 0.5]], np.float32),
                        method=0)
    np.testing.assert_allclose(hard[:, 4], [0.9, 0.5])


def test_empty_input():
    assert nms.soft_nms(np.zeros((0, 5), np.float32)).shape == (0, 5)
    assert nms.soft_nms_numpy(np.zeros((0, 5), np.float32)).shape == (0, 5)
