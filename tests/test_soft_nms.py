"""Soft-NMS: compiled equals numpy on random boxes; behaviour on hand-made cases."""
import numpy as np
import pytest

from src import soft_nms as nms

# The official CenterNet settings (sigma, Nt, threshold), the yaml's defaults.
OFFICIAL = (0.5, 0.5, 0.001)


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
        expected = nms.soft_nms_numpy(boxes, *OFFICIAL, method=method)
        got = nms.soft_nms(boxes, *OFFICIAL, method=method)
        assert got.dtype == np.float32 and np.array_equal(got, expected), trial


def test_gaussian_decay_by_hand():
    boxes = np.array([[0, 0, 9, 9, 0.9],      # 10x10, the best
                      [0, 0, 9, 4, 0.8],      # half of it: IoU 0.5
                      [50, 50, 60, 60, 0.3]], np.float32)
    out = nms.soft_nms(boxes, *OFFICIAL, "gaussian")
    assert out.shape == (3, 5)
    np.testing.assert_allclose(out[:, 4], [0.9, 0.8 * np.exp(-0.25 / 0.5), 0.3], rtol=1e-6)


def test_boxes_decayed_below_threshold_are_dropped():
    boxes = np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 9, 0.0015]], np.float32)
    out = nms.soft_nms(boxes, *OFFICIAL, "gaussian")   # identical box: weight exp(-2) -> 0.0002 < 0.001
    assert out.shape == (1, 5)
    hard = nms.soft_nms(np.array([[0, 0, 9, 9, 0.9], [1, 1, 9, 9, 0.8], [30, 30, 40, 40, 0.5]], np.float32),
                        *OFFICIAL, method=0)
    np.testing.assert_allclose(hard[:, 4], [0.9, 0.5])


def test_empty_input():
    assert nms.soft_nms(np.zeros((0, 5), np.float32), *OFFICIAL, "gaussian").shape == (0, 5)
    assert nms.soft_nms_numpy(np.zeros((0, 5), np.float32), *OFFICIAL, "gaussian").shape == (0, 5)


def test_settings_come_from_the_eval_config(make_config):
    boxes = np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 4, 0.8]], np.float32)  # IoU 0.5
    default = nms.SoftNMS.from_config(make_config().eval_config)
    assert default == (True, "gaussian") + OFFICIAL
    wide = nms.SoftNMS.from_config(make_config(eval_config__soft_nms_sigma=2.0).eval_config)
    np.testing.assert_allclose(wide(boxes)[:, 4], [0.9, 0.8 * np.exp(-0.25 / 2.0)], rtol=1e-6)
    hard = nms.SoftNMS.from_config(make_config(eval_config__soft_nms_method="hard",
                                               eval_config__soft_nms_Nt=0.4).eval_config)
    assert len(hard(boxes)) == 1
    with pytest.raises(ValueError, match="soft_nms_sigma"):
        nms.SoftNMS.from_config(make_config(eval_config__soft_nms_sigma=0.0).eval_config)
