"""src/network/head_ops.py: reading head maps at flat object positions."""
import numpy as np
from mindspore import Tensor

from src.network.head_ops import gather_feat


def test_gather_feat_uses_flat_index():
    feat = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    ind = np.array([[0, 7], [19, 6]], np.int32)  # y * W + x
    got = gather_feat(Tensor(feat), Tensor(ind)).asnumpy()
    assert got.shape == (2, 2, 3)
    np.testing.assert_array_equal(got[0, 1], feat[0, :, 1, 2])
    np.testing.assert_array_equal(got[1, 0], feat[1, :, 3, 4])
