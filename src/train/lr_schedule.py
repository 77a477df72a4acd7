"""Per-step learning-rate schedules (PolyDecay, MultiDecay), both with linear warm-up.

The whole schedule is computed once as an array indexed by the optimizer's global step, so
a resumed run continues it exactly where the saved global step stopped.
"""
import logging

import numpy as np

logger = logging.getLogger(__name__)


def _warmup(lr, base, warmup_steps):
    """Linear warm-up: step i (0-based) of the first warmup_steps gets base * (i + 1) / warmup_steps."""
    if warmup_steps > 0:
        n = min(warmup_steps, len(lr))
        lr[:n] = base * (np.arange(n) + 1) / warmup_steps
    return lr


def poly_decay(total_steps, learning_rate, end_learning_rate, power, warmup_steps):
    """(base - end) * (1 - step / total) ^ power + end after the warm-up."""
    steps = np.arange(total_steps, dtype=np.float64)
    lr = (learning_rate - end_learning_rate) * (1.0 - steps / max(total_steps, 1)) ** power + end_learning_rate
    return _warmup(lr, learning_rate, warmup_steps).astype(np.float32)


def multi_decay(total_steps, learning_rate, warmup_steps, multi_epochs, factor, steps_per_epoch):
    """base / factor^k, where k counts the milestone epochs already passed."""
    milestones = np.array(sorted(multi_epochs), dtype=np.int64) * steps_per_epoch
    beyond = [int(e) for e, m in zip(sorted(multi_epochs), milestones) if m >= total_steps]
    if beyond:
        logger.info("MultiDecay milestones at epochs %s lie beyond this run (%d steps): not reached",
                    beyond, total_steps)
    passed = np.searchsorted(milestones, np.arange(total_steps), side="right")
    lr = learning_rate / np.power(float(factor), passed)
    return _warmup(lr, learning_rate, warmup_steps).astype(np.float32)


def build_lr(train_cfg, total_steps, steps_per_epoch):
    """The learning rate of every step of the run, float32 (total_steps,)."""
    if total_steps <= 0:
        raise ValueError("the run has no training step (total steps %d)" % total_steps)
    if train_cfg.lr_schedule == "PolyDecay":
        c = train_cfg.PolyDecay
        return poly_decay(total_steps, c.learning_rate, c.end_learning_rate, c.power, c.warmup_steps)
    if train_cfg.lr_schedule == "MultiDecay":
        c = train_cfg.MultiDecay
        if c.factor <= 0:
            raise ValueError("train_config.MultiDecay.factor must be positive, got %r" % c.factor)
        return multi_decay(total_steps, c.learning_rate, c.warmup_steps, c.multi_epochs, c.factor, steps_per_epoch)
    raise ValueError("train_config.lr_schedule must be PolyDecay or MultiDecay, got %r" % train_cfg.lr_schedule)


def adam_eps(train_cfg):
    """Adam's epsilon (train_config.Adam.eps; the schedules' eps keys set it too)."""
    return train_cfg.Adam.eps
