"""Learning-rate schedules: warm-up, polynomial decay, milestone decay."""
import numpy as np
import pytest

from src.train.lr_schedule import build_lr, multi_decay, poly_decay
from src.model_utils.config import get_config


def test_warmup_then_polynomial_decay():
    lr = poly_decay(100, 1e-3, 1e-5, 2.0, 10)
    np.testing.assert_allclose(lr[:10], 1e-3 * np.arange(1, 11) / 10, rtol=1e-6)
    assert lr[50] == pytest.approx((1e-3 - 1e-5) * 0.5 ** 2 + 1e-5, rel=1e-6)
    assert np.all(np.diff(lr[10:]) < 0) and lr.dtype == np.float32 and len(lr) == 100


def test_multi_decay_divides_at_milestone_epochs():
    lr = multi_decay(40, 0.1, 0, [2, 3], 10, steps_per_epoch=10)
    np.testing.assert_allclose(lr[[0, 19, 20, 29, 30, 39]], [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_default_schedule_runs_a_one_epoch_job():
    """The default milestones (270, 300) lie beyond a 1-epoch run: no error, no decay."""
    cfg = get_config(["--train_config.MultiDecay.warmup_steps=0"])
    lr = build_lr(cfg.train_config, 25, 25)
    assert np.allclose(lr, 0.00048)


def test_no_step_is_an_error():
    with pytest.raises(ValueError, match="no training step"):
        build_lr(get_config([]).train_config, 0, 10)
