"""EMA of the weights (src/train/ema.py): the compiled update, its place in the training checkpoint,
exact resume with it on, and the weight choice of evaluation (eval_weights)."""
import math

import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn

import train
from testkit.ops_support import TINY
from src.train.ema import TrainStepWithEMA, WeightEMA
from src.utils import select_weights
from src.model_utils.config import get_config
from src.centernet_det import CenterNetDet
from src.infer.detector import build_eval_network
from src.utils import list_checkpoints, load_network_weights
from test_resume import SCHEDULE, _assert_same_checkpoint, train_full_and_split

EMA = ["--train_config.ema=true", "--train_config.ema_decay=0.9", "--train_config.ema_tau=2"]


class _Step(nn.Cell):
    """A stand-in train step: adds ``delta`` to the weight; its 5th output is the overflow flag."""

    def __init__(self, weight):
        super().__init__(auto_prefix=False)
        self.weight = weight

    def construct(self, delta, overflow):
        ms.ops.assign(self.weight, self.weight + delta)
        return delta, delta, delta, delta, overflow, delta


def test_ema_update_follows_the_ramp_and_skips_overflowed_steps():
    weight = Parameter(Tensor(np.zeros(3, np.float32)), name="w")
    ema = WeightEMA([weight], decay=0.9, tau=2.0)
    cell = TrainStepWithEMA(_Step(weight), ema)
    assert [p.name for p in ema.get_parameters()] == ["w", "ema.w", "ema.updates"]  # the weight is shared
    expected, value, updates = 0.0, 0.0, 0
    for delta, overflow in [(1.0, False), (1.0, False), (5.0, True), (1.0, False)]:
        cell(Tensor(np.float32(delta)), Tensor(overflow))
        value += delta
        if not overflow:
            updates += 1
            d = 0.9 * (1 - math.exp(-updates / 2.0))
            expected = d * expected + (1 - d) * value
    assert int(ema.updates.asnumpy()) == 3
    np.testing.assert_allclose(ema.averages[0].asnumpy(), np.full(3, expected, np.float32), rtol=1e-6)


def test_select_weights_ema_raw_auto():
    saved = {"a.weight": 1, "bn.moving_mean": 2, "ema.a.weight": 3, "ema.updates": 4, "moment1.a.weight": 5}
    chosen, used = select_weights(saved, "auto", "x.ckpt")
    assert used and chosen["a.weight"] == 3 and chosen["bn.moving_mean"] == 2 and "ema.updates" not in chosen
    assert select_weights(saved, "raw", "x.ckpt")[0]["a.weight"] == 1
    raw_only = {"a.weight": 1}
    assert select_weights(raw_only, "auto", "x.ckpt") == ({"a.weight": 1}, False)
    with pytest.raises(ValueError, match="holds no EMA weights"):
        select_weights(raw_only, "ema", "x.ckpt")


def _args(data, out, *extra):
    return TINY + SCHEDULE + EMA + ["--mindrecord_dir=%s" % data, "--save_checkpoint_path=%s" % out] + list(extra)


def test_exact_resume_with_ema_and_eval_uses_the_ema_weights(synthetic_mindrecord, tmp_path):
    data = synthetic_mindrecord.mindrecord_dir
    train_full_and_split(lambda out, *extra: _args(data, out, *extra), tmp_path, 4)

    name = "checkpoint_centernet-1_4.ckpt"
    values = _assert_same_checkpoint(str(tmp_path / "full" / "ckpt_0" / name),
                                     str(tmp_path / "split" / "ckpt_0" / name))
    assert int(values["ema.updates"]) == 4
    weights = [n for n in values if not n.startswith(("ema.", "moment")) and "ema." + n in values]
    assert weights and all(not np.array_equal(values[n], values["ema." + n]) for n in weights[:5])

    path = str(tmp_path / "full" / "ckpt_0" / name)
    cfg = get_config(TINY + ["--eval_config.fold_bn=false"])  # the loaded weights themselves, not folded
    net = build_eval_network(cfg, cfg.dataset_config.num_classes, path)  # eval_weights: auto
    name0 = weights[0]
    loaded = {p.name: p.asnumpy() for p in net.network.get_parameters()}
    np.testing.assert_array_equal(loaded[name0], values["ema." + name0])
    raw = CenterNetDet(cfg.net_config, cfg.dataset_config.num_classes)
    load_network_weights(raw, path, weights="raw")
    np.testing.assert_array_equal({p.name: p.asnumpy() for p in raw.get_parameters()}[name0], values[name0])


def test_resuming_a_checkpoint_without_ema_with_ema_on_is_refused(synthetic_mindrecord, tmp_path, caplog):
    out = tmp_path / "run"
    base = TINY + ["--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir, "--train_steps=2",
                   "--save_checkpoint_path=%s" % out]
    assert train.main(base + ["--stop_at_step=1"]) == 0
    assert list_checkpoints(str(out / "ckpt_0"))
    assert train.main(base + ["--resume=true", "--train_config.ema=true"]) == 2
    assert "missing ema." in caplog.text


@pytest.mark.parametrize("key, value", [("ema_decay", "1.5"), ("ema_tau", "0")])
def test_bad_ema_settings_are_refused(synthetic_mindrecord, tmp_path, caplog, key, value):
    argv = TINY + ["--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir, "--train_config.ema=true",
                   "--train_config.%s=%s" % (key, value), "--save_checkpoint_path=%s" % tmp_path]
    assert train.main(argv) == 2
    assert "--train_config.%s=%s" % (key, value) in caplog.text
