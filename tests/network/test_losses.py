"""Losses against hand computation: focal loss (also with no object), masked L1 variants, MSE."""
import numpy as np
import pytest
from mindspore import Tensor

from src.network.losses import CenterNetLoss, FocalLoss, HeatmapMSELoss, MaskedRegLoss
from src.model_utils.config import get_config


def _sig(x):
    return 1 / (1 + np.exp(-x))


def test_focal_loss_by_hand():
    logits = np.zeros((1, 1, 2, 2), np.float32)
    logits[0, 0, 0, 0] = 2.0     # positive at (0, 0)
    logits[0, 0, 1, 1] = -1.0
    gt = np.zeros((1, 1, 2, 2), np.float32)
    gt[0, 0, 0, 0] = 1.0
    gt[0, 0, 0, 1] = 0.5
    p = _sig(logits.astype(np.float64))
    pos = np.log(p[0, 0, 0, 0]) * (1 - p[0, 0, 0, 0]) ** 2
    neg = sum(np.log(1 - p[0, 0, y, x]) * p[0, 0, y, x] ** 2 * (1 - gt[0, 0, y, x]) ** 4
              for y, x in ((0, 1), (1, 0), (1, 1)))
    expected = -(pos + neg) / 1.0
    got = float(FocalLoss()(Tensor(logits), Tensor(gt)).asnumpy())
    assert got == pytest.approx(expected, rel=1e-5)


def test_focal_loss_without_objects_is_finite():
    logits = np.full((2, 3, 4, 4), -1.0, np.float32)
    gt = np.zeros_like(logits)
    p = _sig(-1.0)
    expected = -(np.log(1 - p) * p ** 2) * logits.size  # negatives only, divided by max(0, 1)
    got = float(FocalLoss()(Tensor(logits), Tensor(gt)).asnumpy())
    assert np.isfinite(got) and got == pytest.approx(expected, rel=1e-5)


def test_focal_loss_normalises_by_object_count():
    logits = np.zeros((1, 1, 3, 3), np.float32)
    gt = np.zeros((1, 1, 3, 3), np.float32)
    gt[0, 0, 0, 0] = gt[0, 0, 2, 2] = 1.0
    p = 0.5
    expected = -(2 * np.log(p) * (1 - p) ** 2 + 7 * np.log(1 - p) * p ** 2) / 2
    assert float(FocalLoss()(Tensor(logits), Tensor(gt)).asnumpy()) == pytest.approx(expected, rel=1e-5)


def test_mse_heatmap_loss():
    logits = np.array([[[[0.0, 1.0]]]], np.float32)
    gt = np.array([[[[1.0, 0.0]]]], np.float32)
    expected = ((0.5 - 1) ** 2 + _sig(1.0) ** 2) / 2
    assert float(HeatmapMSELoss()(Tensor(logits), Tensor(gt)).asnumpy()) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kind", ["l1", "sl1"])
def test_masked_regression_losses(kind):
    pred = np.array([[[1.0, 2.0], [10.0, 10.0]]], np.float32)
    target = np.array([[[1.5, 0.0], [0.0, 0.0]]], np.float32)
    mask = np.array([[[1.0, 1.0], [0.0, 0.0]]], np.float32)
    diffs = np.array([0.5, 2.0])
    per = diffs if kind == "l1" else np.where(diffs < 1, 0.5 * diffs ** 2, diffs - 0.5)
    expected = per.sum() / (2 + 1e-4)
    got = float(MaskedRegLoss(kind)(Tensor(pred), Tensor(target), Tensor(mask)).asnumpy())
    assert got == pytest.approx(expected, rel=1e-5)


def test_normalised_wh_loss_is_relative():
    pred = np.array([[[12.0, 5.0]]], np.float32)
    target = np.array([[[10.0, 5.0]]], np.float32)
    mask = np.ones_like(pred)
    expected = (abs(12 / (10 + 1e-4) - 1) + abs(5 / (5 + 1e-4) - 1)) / (2 + 1e-4)
    got = float(MaskedRegLoss("l1", normalise=True)(Tensor(pred), Tensor(target), Tensor(mask)).asnumpy())
    assert got == pytest.approx(expected, rel=1e-4)


def _net_cfg(*extra):
    return get_config(list(extra)).net_config


def test_centernet_loss_combines_weighted_terms():
    rng = np.random.default_rng(0)
    hm_pred = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    wh_pred = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    reg_pred = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    hm = np.zeros((1, 2, 4, 4), np.float32)
    hm[0, 1, 2, 3] = 1
    reg_mask = np.array([[1, 0]], np.float32)
    ind = np.array([[2 * 4 + 3, 0]], np.int32)
    wh = np.array([[[3.0, 4.0], [0, 0]]], np.float32)
    reg = np.array([[[0.5, 0.25], [0, 0]]], np.float32)
    loss = CenterNetLoss(_net_cfg())
    total, hm_l, wh_l, off_l = [float(v.asnumpy()) for v in loss(
        (Tensor(hm_pred), Tensor(wh_pred), Tensor(reg_pred)), Tensor(hm), Tensor(reg_mask), Tensor(ind),
        Tensor(wh), None, Tensor(reg))]
    exp_wh = np.abs(wh_pred[0, :, 2, 3] - wh[0, 0]).sum() / (2 + 1e-4)
    exp_off = np.abs(reg_pred[0, :, 2, 3] - reg[0, 0]).sum() / (2 + 1e-4)
    assert wh_l == pytest.approx(exp_wh, rel=1e-5) and off_l == pytest.approx(exp_off, rel=1e-5)
    assert total == pytest.approx(hm_l + 0.1 * exp_wh + exp_off, rel=1e-5)


def test_cat_spec_and_dense_wh_layouts():
    rng = np.random.default_rng(1)
    wh_pred = rng.standard_normal((1, 4, 3, 3)).astype(np.float32)   # 2 classes x 2
    hm_pred = np.zeros((1, 2, 3, 3), np.float32)
    hm = np.zeros((1, 2, 3, 3), np.float32)
    ind = np.array([[4]], np.int32)
    reg_mask = np.array([[1]], np.float32)
    cat_wh = np.array([[[0, 0, 2.0, 3.0]]], np.float32)
    cat_mask = np.array([[[0, 0, 1.0, 1.0]]], np.float32)
    loss = CenterNetLoss(_net_cfg("--net_config.cat_spec_wh=true", "--net_config.reg_offset=false"))
    _, _, wh_l, off_l = [float(v.asnumpy()) for v in loss(
        (Tensor(hm_pred), Tensor(wh_pred)), Tensor(hm), Tensor(reg_mask), Tensor(ind), Tensor(cat_wh),
        Tensor(cat_mask), None)]
    expected = np.abs(wh_pred[0, 2:, 1, 1] - [2.0, 3.0]).sum() / (2 + 1e-4)
    assert wh_l == pytest.approx(expected, rel=1e-5) and off_l == 0.0

    dense_pred = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    dense = np.full((1, 2, 3, 3), 5.0, np.float32)
    dense_mask = np.zeros((1, 2, 3, 3), np.float32)
    dense_mask[0, :, 1, 1] = 1.0
    dense_mask[0, :, 1, 2] = 0.5
    loss = CenterNetLoss(_net_cfg("--net_config.dense_wh=true", "--net_config.reg_offset=false"))
    _, _, wh_l, _ = [float(v.asnumpy()) for v in loss(
        (Tensor(hm_pred), Tensor(dense_pred)), Tensor(hm), Tensor(reg_mask), Tensor(ind), Tensor(dense),
        Tensor(dense_mask), None)]
    expected = (np.abs(dense_pred - dense) * dense_mask).sum() / (dense_mask.sum() + 1e-4)
    assert wh_l == pytest.approx(expected, rel=1e-5)
