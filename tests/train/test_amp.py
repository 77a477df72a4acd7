"""src/train/amp.py and its wiring: amp levels per backend, where the network casts, the loss-scale
policy, exact resume in mixed precision and the Ascend precision_mode passthrough.

CPU runs fp16 convolutions, BatchNorm and the deformable convolution in MindSpore 2.8, so
every level is trained here for real; the cast placement (which cells compute in fp16) is
checked from the cells' precision flags, which are what the graph compiler turns into casts.
"""
import logging

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from conftest import SMALL
from test_centernet_det import _targets
from src.train.amp import AUTO_LEVEL, apply_amp, cell_precisions, resolve_amp_level
from src.centernet_det import CenterNetDet, StepOutputs
from src.model_utils.config import ConfigError
from src.model_utils import device_adapter
from src.train.amp import build_train_step
from src.utils import load_train_state, save_checkpoint_atomic

CLASSES = 3


def _config(make_config, **overrides):
    return make_config(dict(SMALL, **{"device_target": "CPU", "dataset_config.num_classes": CLASSES}),
                       **overrides)


def _batch(batch=2, size=64):
    image = np.random.default_rng(0).random((batch, 3, size, size), np.float32)
    return [Tensor(a) for a in (image,) + _targets(batch, CLASSES, size // 4, size // 4)]


def test_auto_level_per_backend_and_bad_level():
    assert [resolve_amp_level("auto", t) for t in ("CPU", "GPU", "Ascend")] == ["O0", "O2", "O2"]
    assert AUTO_LEVEL["CPU"] == "O0" and resolve_amp_level("O3", "CPU") == "O3"
    with pytest.raises(ConfigError, match="--amp_level=O4"):
        resolve_amp_level("O4", "GPU")


def _kind(name):
    """The role of a parameter-owning cell of CenterNetDet in the cast rules."""
    if ".conv_offset_mask" in name or name in ("deconv_layers.0", "deconv_layers.6", "deconv_layers.12"):
        return "dcn"
    if ".bn" in name or ".downsample.1" in name or name in ("deconv_layers.1", "deconv_layers.4",
                                                            "deconv_layers.7", "deconv_layers.10",
                                                            "deconv_layers.13", "deconv_layers.16"):
        return "bn"
    return "conv"


# Expected compute precision of each kind of cell per level.
EXPECTED = {"O0": {"conv": "fp32", "bn": "fp32", "dcn": "fp32"},
            "O1": {"conv": "fp16", "bn": "fp32", "dcn": "fp32"},
            "O2": {"conv": "fp16", "bn": "fp32", "dcn": "fp32"},
            "O3": {"conv": "fp16", "bn": "fp16", "dcn": "fp32"}}


@pytest.mark.parametrize("level", sorted(EXPECTED))
def test_cast_placement_per_level(make_config, level):
    cfg = _config(make_config)
    net = CenterNetDet(cfg.net_config, CLASSES)
    names = [p.name for p in net.get_parameters()]
    kinds = {name: _kind(name) for name in cell_precisions(net)}
    assert sorted(set(kinds.values())) == ["bn", "conv", "dcn"] and "backbone.bn1" in kinds
    wrapped = apply_amp(net, level)
    got = cell_precisions(wrapped)
    assert sorted(got) == sorted(kinds)  # the wrappers add no cell names
    assert {name: got[name] for name in kinds} == {name: EXPECTED[level][kind] for name, kind in kinds.items()}
    assert [p.name for p in wrapped.get_parameters()] == names  # checkpoints do not depend on the level


def test_mixed_precision_runs_fp16_and_returns_fp32(make_config):
    cfg = _config(make_config)
    ms.set_seed(3)
    net = CenterNetDet(cfg.net_config, CLASSES)
    net.set_train(False)
    image = _batch(1)[0]
    fp32 = [o.asnumpy() for o in net(image)]
    mixed = apply_amp(net, "O2")
    mixed.set_train(False)
    half = mixed(image)
    assert all(o.dtype == ms.float32 for o in half)
    for a, b in zip(fp32, (o.asnumpy() for o in half)):
        assert not np.array_equal(a, b)  # fp16 arithmetic really ran
        np.testing.assert_allclose(b, a, rtol=0.02, atol=1e-4)  # fp16 rounding, not a different network


@pytest.mark.parametrize("level,lossscale,expect_scale", [("auto", True, None), ("O0", True, None),
                                                          ("O2", True, 64.0), ("O2", False, None)])
def test_loss_scale_only_with_fp16(make_config, level, lossscale, expect_scale):
    cfg = _config(make_config, amp_level=level, enable_lossscale=lossscale,
                  train_config__loss_scale_value=64, train_config__loss_scale_window=7)
    net = CenterNetDet(cfg.net_config, CLASSES)
    step = build_train_step(cfg, net, nn.Adam(net.trainable_params(), 1e-3))
    assert step.loss_scaling == (expect_scale is not None)
    if expect_scale is None:
        assert step.scale_update_cell is None
    else:
        assert float(step.scale_update_cell.get_loss_scale()) == expect_scale
        assert int(step.scale_update_cell.scale_window) == 7


def test_o0_step_has_no_loss_scale_work(make_config):
    cfg = _config(make_config)  # CPU, amp_level auto
    net = CenterNetDet(cfg.net_config, CLASSES)
    step = build_train_step(cfg, net, nn.Adam(net.trainable_params(), 1e-3))
    step.set_train()
    outputs = StepOutputs.of(step(*_batch()))
    assert outputs.overflow is False and outputs.loss_scale == 1.0 and outputs.grad_norm > 0


def _o2_step(cfg):
    ms.set_seed(5)
    net = CenterNetDet(cfg.net_config, CLASSES)
    step = build_train_step(cfg, net, nn.Adam(net.trainable_params(), 1e-3))
    step.set_train()
    return step


def test_exact_resume_in_mixed_precision(make_config, tmp_path):
    """O2 with a loss scale that grows every step: a resumed run continues bit for bit."""
    cfg = _config(make_config, amp_level="O2", train_config__loss_scale_value=16,
                  train_config__loss_scale_window=1)
    batch = _batch()
    step = _o2_step(cfg)
    for _ in range(2):
        step(*batch)
    meta = {"total_steps": 4, "steps_per_epoch": 4, "batch_size": 2, "group_size": 1, "seed": 1}
    path = save_checkpoint_atomic(step, str(tmp_path / "state.ckpt"), dict(meta, data_step=2, epoch=1))
    assert float(step.scale_sense.asnumpy()) == 64.0  # 16, doubled after each clean step
    straight = [StepOutputs.of(step(*batch)) for _ in range(2)]
    resumed_step = _o2_step(cfg)
    load_train_state(resumed_step, path, meta)
    resumed = [StepOutputs.of(resumed_step(*batch)) for _ in range(2)]
    assert resumed == straight
    for a, b in zip(step.optimizer.parameters, resumed_step.optimizer.parameters):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    assert float(resumed_step.scale_sense.asnumpy()) == 256.0


def test_precision_mode_is_ignored_off_ascend(make_config, caplog):
    cfg = _config(make_config, precision_mode="force_fp16")
    with caplog.at_level(logging.WARNING):
        device_adapter.set_device(cfg)
    assert "--precision_mode=force_fp16 applies to Ascend only: ignored on CPU" in caplog.text


def test_precision_mode_reaches_ascend(make_config, monkeypatch):
    """Test doubles stand in for the Ascend runtime (absent here): ms.set_device and the
    op_precision setter record their calls."""
    from mindspore.device_context.ascend import op_precision
    calls = []
    monkeypatch.setattr(ms, "set_device", lambda *args: calls.append(("device",) + args))
    monkeypatch.setattr(op_precision, "precision_mode", lambda mode: calls.append(("precision_mode", mode)))
    cfg = _config(make_config, device_target="Ascend", device_id=3, precision_mode="must_keep_origin_dtype")
    device_adapter.set_device(cfg)
    assert calls == [("device", "Ascend", 3), ("precision_mode", "must_keep_origin_dtype")]
    calls.clear()
    device_adapter.set_device(_config(make_config, device_target="Ascend", device_id=3))
    assert calls == [("device", "Ascend", 3)]  # empty: the device's own default stays
