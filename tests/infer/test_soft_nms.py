"""Soft-NMS: both versions on a hand-computed case, compiled equals numpy on random boxes, edge cases."""
import numpy as np
import pytest

from src.infer import soft_nms as nms

# The official CenterNet settings (sigma, Nt, threshold), the yaml's defaults.
OFFICIAL = (0.5, 0.5, 0.001)


def _random_boxes(rng, n, ties=False):
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(1, 80, (n, 2))
    scores = rng.random((n, 1))
    if ties:
        scores = np.round(scores, 1)
    return np.concatenate([xy, xy + wh, scores], 1).astype(np.float32)


def _compiled(boxes, sigma=0.5, nt=0.5, threshold=0.001, method=2):
    """The compiled soft-NMS itself (not soft_nms, which falls back to numpy when it is not built)."""
    try:
        from src.infer._soft_nms import soft_nms_cython
    except ImportError:
        pytest.fail("compiled soft-NMS not built: run 'python setup.py build_ext --inplace' (setup_env.sh does)")
    return soft_nms_cython(np.ascontiguousarray(boxes, dtype=np.float64), sigma, nt, threshold, method)


def _numpy(boxes):
    return nms.soft_nms_numpy(boxes, *OFFICIAL, method=2)


@pytest.mark.parametrize("implementation", [_compiled, _numpy], ids=["compiled", "numpy"])
def test_gaussian_soft_nms_reorders_and_drops_by_hand(implementation):
    a, b = [0, 0, 9, 9], [0, 0, 9, 4]            # 10x10 and its top half (+1 pixel areas): IoU 0.5
    c, d = [20, 0, 29, 9], [20, 0, 29, 4]        # the same pair, apart from the first
    boxes = np.array([b + [0.85], d + [0.55], a + [0.9], c + [0.6],
                      a + [0.0015]], np.float32)  # a copy of a: IoU 1, decayed to 0.0015 e^-2 < 0.001
    out = implementation(boxes)
    decay = np.exp(-0.5 ** 2 / 0.5)
    # a first; b decays to 0.85 e^-0.5 = 0.516 and falls behind c (0.6), which then decays d to 0.334.
    np.testing.assert_array_equal(out[:, :4], np.array([a, c, b, d], np.float32))
    np.testing.assert_allclose(out[:, 4], [0.9, 0.6, 0.85 * decay, 0.55 * decay], rtol=1e-6)
    assert out.dtype == np.float32


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
