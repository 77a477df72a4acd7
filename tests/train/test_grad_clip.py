"""Gradient clipping by global norm in CenterNetTrainStep (train_config.grad_clip_norm).

A linear model with a squared-error loss has gradients numpy can write down, so the clipped
update is checked against clip_by_global_norm's definition, g * clip / max(||g||, clip),
with plain SGD; clipping off is checked bit for bit against a step without clipping code.
"""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn, ops

from conftest import SMALL
from test_centernet_det import _targets
from src.centernet_det import CenterNetDet, CenterNetLossCell, CenterNetTrainStep, StepOutputs
from src.train.amp import build_train_step
from src.train.training_log import CSV_FIELDS, TrainingLog, read_csv

LR = 0.1


class _LinearLoss(nn.Cell):
    """(x (N, 3), y (N, 2)) -> (0.5 * sum((x W^T + b - y)^2), and three zero terms)."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(3, 2, weight_init=Tensor(np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]], np.float32)),
                              bias_init=Tensor(np.array([0.1, -0.2], np.float32)))

    def construct(self, x, y):
        total = 0.5 * ops.reduce_sum(ops.square(self.dense(x) - y))
        zero = total * 0.0
        return total, zero, zero, zero


def _data():
    rng = np.random.default_rng(4)
    return rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 2)).astype(np.float32) * 3


def _numpy_step(clip):
    """Expected (new W, new b, pre-clip norm) of one SGD step, clipped as clip_by_global_norm defines."""
    x, y = (a.astype(np.float64) for a in _data())
    w = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]])
    b = np.array([0.1, -0.2])
    err = x @ w.T + b - y
    gw, gb = err.T @ x, err.sum(0)
    norm = np.sqrt((gw ** 2).sum() + (gb ** 2).sum())
    factor = clip / max(norm, clip) if clip > 0 else 1.0
    return w - LR * factor * gw, b - LR * factor * gb, norm


def _run(clip, loss_scale=None):
    net = _LinearLoss()
    update = nn.DynamicLossScaleUpdateCell(loss_scale, 2, 1000) if loss_scale else None
    step = CenterNetTrainStep(net, nn.SGD(net.trainable_params(), LR), update, loss_scale, clip)
    step.set_train()
    outputs = StepOutputs.of(step(*(Tensor(a) for a in _data())))
    return net.dense.weight.asnumpy(), net.dense.bias.asnumpy(), outputs


@pytest.mark.parametrize("clip,loss_scale", [(0.0, None), (1.0, None), (1.0, 1024.0), (1e6, None)])
def test_clipping_matches_clip_by_global_norm(clip, loss_scale):
    weight, bias, outputs = _run(clip, loss_scale)
    want_w, want_b, norm = _numpy_step(clip)
    assert norm > 1.0  # so that clip=1 really clips
    assert outputs.grad_norm == pytest.approx(norm, rel=1e-5)
    np.testing.assert_allclose(weight, want_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bias, want_b, rtol=1e-5, atol=1e-6)


def test_overflow_step_is_skipped_with_clipping():
    net = _LinearLoss()
    step = CenterNetTrainStep(net, nn.SGD(net.trainable_params(), LR), nn.DynamicLossScaleUpdateCell(3e38, 2, 1000),
                              3e38, 1.0)
    step.set_train()
    before = net.dense.weight.asnumpy().copy()
    outputs = StepOutputs.of(step(*(Tensor(a) for a in _data())))
    assert outputs.overflow and not np.isfinite(outputs.grad_norm)
    np.testing.assert_array_equal(net.dense.weight.asnumpy(), before)


class _PlainStep(nn.Cell):
    """The fp32 step without clipping or loss-scale code: gradients of the total loss, then Adam."""

    def __init__(self, loss_net, optimizer):
        super().__init__(auto_prefix=False)
        self.network, self.optimizer, self.weights = loss_net, optimizer, optimizer.parameters
        self.network.set_grad()
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)

    def construct(self, *inputs):
        total, hm_loss, wh_loss, off_loss = self.network(*inputs)
        sens = (ops.ones_like(total), ops.zeros_like(hm_loss), ops.zeros_like(wh_loss), ops.zeros_like(off_loss))
        grads = self.grad(self.network, self.weights)(*inputs, sens)
        return ops.depend(total, self.optimizer(grads))


def test_clipping_off_is_bitwise_the_unclipped_step(make_config):
    cfg = make_config(dict(SMALL, device_target="CPU"))  # amp_level auto: O0 on CPU, grad_clip_norm 0
    assert cfg.train_config.grad_clip_norm == 0
    image = np.random.default_rng(0).random((2, 3, 64, 64), np.float32)
    batch = [Tensor(a) for a in (image,) + _targets(2, 3, 16, 16)]
    weights = []
    for plain in (False, True):
        ms.set_seed(2)
        net = CenterNetDet(cfg.net_config, 3)
        opt = nn.Adam(net.trainable_params(), 1e-3)
        step = _PlainStep(CenterNetLossCell(net, cfg.net_config), opt) if plain else build_train_step(cfg, net, opt)
        step.set_train()
        for _ in range(2):
            step(*batch)
        weights.append([p.asnumpy() for p in net.trainable_params()])
    for ours, plain in zip(*weights):
        np.testing.assert_array_equal(ours, plain)


def test_grad_norm_column(tmp_path):
    path = str(tmp_path / "training_log.csv")
    log = TrainingLog(path, batch_size=2, group_size=1, steps_per_epoch=4, total_steps=2)
    log.start(0)
    for step in (1, 2):
        log.record(step, StepOutputs(1.0, 0.5, 0.3, 0.2, False, 1.0, 12.5 * step), 1e-3)
    log.close()
    assert "grad_norm" in CSV_FIELDS
    assert [row["grad_norm"] for row in read_csv(path)] == [12.5, 25.0]
