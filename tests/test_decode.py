"""In-graph decode on hand-made heatmaps: peaks, scores, classes, offsets, sizes, suppression, tiny maps."""
import numpy as np
import pytest
from mindspore import Tensor

from src.decode import CenterNetDetEval, DetectionDecode


def _maps(classes=3, height=8, width=10):
    return (np.zeros((1, classes, height, width), np.float32), np.zeros((1, 2, height, width), np.float32),
            np.zeros((1, 2, height, width), np.float32))


def test_peaks_scores_classes_and_boxes():
    heat, wh, reg = _maps()
    heat[0, 2, 3, 4] = 0.9          # class 2 at (x=4, y=3)
    heat[0, 2, 3, 5] = 0.5          # its neighbour: suppressed by the 3x3 max-pool
    heat[0, 0, 6, 1] = 0.7          # class 0 at (x=1, y=6)
    wh[0, :, 3, 4] = (4.0, 2.0)
    reg[0, :, 3, 4] = (0.25, 0.5)
    wh[0, :, 6, 1] = (2.0, 2.0)
    dets = DetectionDecode(K=3)(Tensor(heat), Tensor(wh), Tensor(reg)).asnumpy()[0]
    assert dets.shape == (3, 6)
    np.testing.assert_allclose(dets[0], [4.25 - 2, 3.5 - 1, 4.25 + 2, 3.5 + 1, 0.9, 2], atol=1e-6)
    np.testing.assert_allclose(dets[1], [1 - 1, 6 - 1, 1 + 1, 6 + 1, 0.7, 0], atol=1e-6)
    assert dets[2, 4] == 0.0  # the suppressed neighbour does not appear


def test_same_position_different_classes_are_both_kept():
    heat, wh, reg = _maps()
    heat[0, 0, 2, 2] = 0.6
    heat[0, 1, 2, 2] = 0.8
    dets = DetectionDecode(K=2)(Tensor(heat), Tensor(wh), Tensor(reg)).asnumpy()[0]
    assert [tuple(d[4:6]) for d in dets] == [pytest.approx((0.8, 1)), pytest.approx((0.6, 0))]


def test_without_offsets_the_pixel_centre_is_used():
    heat, wh, _ = _maps()
    heat[0, 1, 4, 7] = 0.8
    dets = DetectionDecode(K=1, reg_offset=False)(Tensor(heat), Tensor(wh)).asnumpy()[0]
    np.testing.assert_allclose(dets[0, :4], [7.5, 4.5, 7.5, 4.5], atol=1e-6)


def test_category_specific_sizes():
    heat, _, reg = _maps()
    wh = np.zeros((1, 6, 8, 10), np.float32)
    heat[0, 1, 4, 4] = 0.8
    wh[0, 2:4, 4, 4] = (6.0, 2.0)   # class 1's channels
    wh[0, 0:2, 4, 4] = (100.0, 100.0)
    dets = DetectionDecode(K=1, cat_spec_wh=True)(Tensor(heat), Tensor(wh), Tensor(reg)).asnumpy()[0]
    np.testing.assert_allclose(dets[0, :4], [1, 3, 7, 5], atol=1e-6)


def test_map_smaller_than_k_gives_all_its_peaks():
    """A tiny image under keep_res has fewer map pixels than K: every peak, no crash."""
    heat = np.zeros((1, 3, 4, 5), np.float32)
    heat[0, 1, 2, 3] = 0.9
    heat[0, 2, 0, 0] = 0.4
    wh = np.zeros((1, 6, 4, 5), np.float32)
    wh[0, 2:4, 2, 3] = (2.0, 4.0)                 # class 1's size channels (category-specific sizes)
    reg = np.zeros((1, 2, 4, 5), np.float32)
    dets = DetectionDecode(K=100, cat_spec_wh=True)(Tensor(heat), Tensor(wh), Tensor(reg)).asnumpy()[0]
    assert dets.shape == (20, 6)                  # min(K, H * W) rows
    np.testing.assert_allclose(dets[0], [2, 0, 4, 4, 0.9, 1], atol=1e-6)
    np.testing.assert_allclose(dets[1, 4:], [0.4, 2], atol=1e-6)


def test_flip_test_averages_mirrored_heatmaps_and_sizes():
    from mindspore import nn, ops

    ramp = Tensor(np.arange(8, dtype=np.float32).reshape(1, 1, 1, 8) * 0.1)

    class Heads(nn.Cell):
        """Heads that depend on the absolute column, so the mirrored pass differs."""

        def construct(self, x):
            hm = x[:, 0:1] * 10 - 5 + ramp
            wh = ops.ones_like(x[:, 1:3]) * 4 + ramp
            return hm, wh, ops.zeros_like(wh)

    image = np.zeros((1, 3, 6, 8), np.float32)
    image[0, 0, 2, 1] = 1.0            # the object at (x=1, y=2); the mirror sees it at x=6
    dets = CenterNetDetEval(Heads(), K=1, flip_test=True)(Tensor(image)).asnumpy()[0]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    assert dets[0, 4] == pytest.approx((sig(5.1) + sig(5.6)) / 2, rel=1e-5)
    half = (4.1 + 4.6) / 2 / 2
    np.testing.assert_allclose(dets[0, :4], [1 - half, 2 - half, 1 + half, 2 + half], rtol=1e-5)
    plain = CenterNetDetEval(Heads(), K=1, flip_test=False)(Tensor(image)).asnumpy()[0]
    assert plain[0, 4] == pytest.approx(sig(5.1), rel=1e-5)
