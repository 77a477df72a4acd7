"""Operations on the head output maps shared by the training loss and the decoder."""
from mindspore import ops
from mindspore.common import dtype as mstype


def gather_feat(feat, ind):
    """Pick the feature vector of each object: feat (B, C, H, W), ind (B, K) -> (B, K, C).

    ``ind`` indexes the flattened map: ind = y * W + x.
    """
    batch, channels, height, width = feat.shape
    feat = ops.transpose(ops.reshape(feat, (batch, channels, height * width)), (0, 2, 1))
    index = ops.broadcast_to(ops.expand_dims(ops.cast(ind, mstype.int32), 2), (batch, ind.shape[1], channels))
    return ops.gather_elements(feat, 1, index)
