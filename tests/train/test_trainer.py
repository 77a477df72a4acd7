"""src/train/trainer.py and the step contract it relies on: named step outputs, loss inputs by column
name, the configured loss-scale window, the SIGTERM agreement of one rank."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from mindspore import Tensor

from conftest import SMALL
from testkit.ops_support import TINY
from src.centernet_det import CenterNetDet, CenterNetLossCell, StepOutputs
from src.data.train_targets import train_columns
from src.model_utils.config import get_config
from src.train.trainer import Trainer



def _inputs(columns, batch=2, classes=3, size=16, k=8):
    """Random but valid inputs (image 4x the head size) keyed by column name."""
    rng = np.random.default_rng(0)
    ind = np.zeros((batch, k), np.int32)
    ind[:, :2] = rng.integers(0, size * size, (batch, 2))
    reg_mask = np.zeros((batch, k), np.float32)
    reg_mask[:, :2] = 1
    values = {"image": rng.random((batch, 3, 4 * size, 4 * size), np.float32),
              "hm": rng.random((batch, classes, size, size), np.float32) * 0.9,
              "reg_mask": reg_mask, "ind": ind,
              "wh": rng.random((batch, k, 2), np.float32) * 8, "reg": rng.random((batch, k, 2), np.float32),
              "cat_spec_wh": rng.random((batch, k, 2 * classes), np.float32) * 8,
              "cat_spec_mask": np.repeat(reg_mask[:, :, None], 2 * classes, axis=2).astype(np.float32)}
    return [Tensor(values[name]) for name in columns]


@pytest.mark.parametrize("layout", [{}, {"net_config.cat_spec_wh": True, "net_config.reg_offset": False}])
def test_loss_inputs_are_picked_by_column_name(make_config, layout):
    cfg = make_config(dict(SMALL, **layout))
    net = CenterNetDet(cfg.net_config, 3)
    columns = train_columns(cfg.net_config)
    reordered = columns[::-1]
    in_order = CenterNetLossCell(net, cfg.net_config)(*_inputs(columns))
    shuffled = CenterNetLossCell(net, cfg.net_config, reordered)(*_inputs(reordered))
    np.testing.assert_allclose([t.asnumpy() for t in shuffled], [t.asnumpy() for t in in_order], rtol=1e-6)
    assert float(in_order[2].asnumpy()) > 0  # the wh loss saw its target


def test_loss_cell_names_a_missing_column(make_config):
    cfg = make_config(SMALL)
    with pytest.raises(ValueError, match="lack \\['reg'\\]"):
        CenterNetLossCell(CenterNetDet(cfg.net_config, 3), cfg.net_config, ["image", "hm", "reg_mask", "ind", "wh"])


def test_step_outputs_name_the_train_step_tuple():
    raw = tuple(Tensor(np.float32(v)) for v in (1.5, 1.0, 4.0, 0.1, 1.0, 512.0, 7.5))
    outputs = StepOutputs.of(raw)
    assert outputs.loss == 1.5 and outputs.wh_loss == 4.0 and outputs.off_loss == pytest.approx(0.1)
    assert outputs.overflow is True and outputs.loss_scale == 512.0 and outputs.grad_norm == 7.5


def test_loss_scale_window_comes_from_the_config(synthetic_mindrecord, tmp_path):
    cfg = get_config(TINY + ["--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir,
                             "--save_checkpoint_path=%s" % tmp_path,
                             "--train_config.loss_scale_window=7", "--train_config.loss_scale_value=64",
                             "--amp_level=O2"])  # fp16: the level that scales the loss
    update = Trainer(cfg, 0, 1).train_step.scale_update_cell
    assert int(update.scale_window) == 7 and float(update.get_loss_scale()) == 64.0


def test_sigterm_becomes_a_stop_agreed_by_the_one_rank():
    """A real SIGTERM sets the flag and the one rank agrees on it; the previous handler comes back.

    Run in a fresh interpreter: in a test worker that already ran MindSpore graphs the signal
    could meet another handler than the one under test (a CI run once lost its worker here).
    """
    script = textwrap.dedent("""
        import os, signal
        from src.train.distributed import RankAgreement, StopRequest
        before = signal.getsignal(signal.SIGTERM)
        with StopRequest() as stop:
            assert stop.ranks(RankAgreement(1)) == []
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.requested and stop.ranks(RankAgreement(1)) == [0]
        assert signal.getsignal(signal.SIGTERM) == before
        print("stopped at the agreed step")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "stopped at the agreed step", done.stderr
