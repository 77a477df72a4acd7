"""Decode on maps with fewer pixels than K (a tiny image under keep_res): every peak, no crash."""
import numpy as np
from mindspore import Tensor

from src.decode import DetectionDecode


def test_map_smaller_than_k_gives_all_its_peaks():
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
