"""CenterNet losses: heatmap focal (or MSE) loss and masked L1 / smooth-L1 regression losses."""
from mindspore import nn, ops
from mindspore.common import dtype as mstype

from src.network.head_ops import gather_feat

EPS = 1e-4


def sigmoid_clamped(logits):
    """sigmoid clamped to [1e-4, 1 - 1e-4] so that log() stays finite (as the official code)."""
    return ops.clip_by_value(ops.sigmoid(logits), EPS, 1.0 - EPS)


class FocalLoss(nn.Cell):
    """Penalty-reduced focal loss of the paper (alpha=2, beta=4) on heatmap logits.

    loss = -1/N * sum(pos: (1-p)^2 log p ; neg: (1-y)^4 p^2 log(1-p)), N = number of
    positions where the target is exactly 1. N is clamped at 1, so a batch whose crops hold
    no object gives the (finite) negative term alone instead of dividing by zero.
    """

    def construct(self, logits, gt):
        pred = sigmoid_clamped(logits)
        pos = ops.cast(ops.equal(gt, 1.0), mstype.float32)
        neg = 1.0 - pos
        neg_weight = ops.pow(1.0 - gt, 4)
        pos_loss = ops.log(pred) * ops.pow(1.0 - pred, 2) * pos
        neg_loss = ops.log(1.0 - pred) * ops.pow(pred, 2) * neg_weight * neg
        num_pos = ops.maximum(pos.sum(), 1.0)
        return -(pos_loss.sum() + neg_loss.sum()) / num_pos


class HeatmapMSELoss(nn.Cell):
    """Mean squared error between sigmoid(logits) and the target heatmap (``mse_loss``)."""

    def construct(self, logits, gt):
        return ops.reduce_mean(ops.square(ops.sigmoid(logits) - gt))


class MaskedRegLoss(nn.Cell):
    """Masked L1 or smooth-L1 loss, summed and divided by the mask sum (+1e-4).

    pred, target and mask share one shape; with ``normalise`` the prediction is divided by
    the target first and compared with 1 (``norm_wh``: a relative size error).
    """

    def __init__(self, kind="l1", normalise=False):
        super().__init__()
        if kind not in ("l1", "sl1"):
            raise ValueError("net_config.reg_loss must be 'l1' or 'sl1', got %r" % kind)
        self.smooth = kind == "sl1"
        self.normalise = normalise

    def construct(self, pred, target, mask):
        if self.normalise:
            pred = pred / (target + EPS)
            target = ops.ones_like(target)
        diff = ops.abs(pred * mask - target * mask)
        if self.smooth:
            diff = ops.select(diff < 1.0, 0.5 * diff * diff, diff - 0.5)
        return diff.sum() / (mask.sum() + EPS)


class CenterNetLoss(nn.Cell):
    """hm_weight * heatmap loss + wh_weight * size loss + off_weight * offset loss.

    Size targets, by ``net_config``: gathered (B, K, 2) at ``ind`` with ``reg_mask``
    (default); gathered (B, K, 2C) with a per-channel mask (``cat_spec_wh``); dense
    (B, 2, H, W) weighted by the heatmap (``dense_wh``). Returns the total and each term.
    """

    def __init__(self, net_cfg):
        super().__init__()
        self.hm_loss = HeatmapMSELoss() if net_cfg.mse_loss else FocalLoss()
        self.wh_loss = MaskedRegLoss(net_cfg.reg_loss, normalise=bool(net_cfg.norm_wh))
        self.off_loss = MaskedRegLoss(net_cfg.reg_loss)
        self.dense_wh = bool(net_cfg.dense_wh)
        self.cat_spec_wh = bool(net_cfg.cat_spec_wh) and not self.dense_wh
        self.reg_offset = bool(net_cfg.reg_offset)
        self.hm_weight = float(net_cfg.hm_weight)
        self.wh_weight = float(net_cfg.wh_weight)
        self.off_weight = float(net_cfg.off_weight)

    def construct(self, outputs, hm, reg_mask, ind, wh_target, wh_mask, reg):
        hm_loss = self.hm_loss(outputs[0], hm)
        obj_mask = ops.expand_dims(reg_mask, 2)
        if self.dense_wh:
            wh_loss = self.wh_loss(outputs[1], wh_target, wh_mask)
        elif self.cat_spec_wh:
            wh_loss = self.wh_loss(gather_feat(outputs[1], ind), wh_target, wh_mask)
        else:
            pred = gather_feat(outputs[1], ind)
            wh_loss = self.wh_loss(pred, wh_target, ops.broadcast_to(obj_mask, pred.shape))
        if self.reg_offset:
            pred = gather_feat(outputs[2], ind)
            off_loss = self.off_loss(pred, reg, ops.broadcast_to(obj_mask, pred.shape))
        else:
            off_loss = ops.zeros_like(hm_loss)
        total = self.hm_weight * hm_loss + self.wh_weight * wh_loss + self.off_weight * off_loss
        return total, hm_loss, wh_loss, off_loss
