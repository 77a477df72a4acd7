"""Exponential moving average (EMA) of the trainable weights, updated inside the compiled step.

After every applied optimizer step (an overflowed, skipped step does not count)::

    updates += 1
    d = decay * (1 - exp(-updates / tau))          # warm-up ramp: d ~ 0 at first, -> decay
    ema = d * ema + (1 - d) * weight               # for every trainable parameter

The EMA copies are Parameters named ``ema.<weight name>`` (plus the counter ``ema.updates``)
of the training cell, so a training checkpoint holds them and an exact resume restores them.
BatchNorm moving statistics are not averaged: evaluating the EMA weights uses the raw network's
moving mean/variance (already an exponential average, kept identical on every rank by
src.train.distributed.BufferAverager before each save), as timm's ModelEmaV3 with exclude_buffers.
Which weights of a checkpoint eval uses (ema | raw | auto) is checkpoint reading: src.utils.select_weights.
"""
import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from src.utils import EMA_PREFIX, UPDATES_NAME


_ema_update = ops.MultitypeFuncGraph("ema_update")


@_ema_update.register("Tensor", "Tensor", "Tensor")
def _update_one(decay, ema, weight):
    return ops.assign(ema, ema * ops.cast(decay, ops.dtype(ema)) + weight * ops.cast(1.0 - decay, ops.dtype(ema)))


def check_ema_config(train_cfg):
    """The (decay, tau) of train_config; a clear error for values outside their ranges."""
    decay, tau = float(train_cfg.ema_decay), float(train_cfg.ema_tau)
    if not 0.0 < decay < 1.0:
        raise ValueError("--train_config.ema_decay=%s must be in (0, 1) (e.g. 0.9998)" % train_cfg.ema_decay)
    if tau <= 0.0:
        raise ValueError("--train_config.ema_tau=%s must be positive (optimizer steps of the decay's warm-up "
                         "ramp, e.g. 2000)" % train_cfg.ema_tau)
    return decay, tau


class WeightEMA(nn.Cell):
    """EMA copies of ``weights`` (a list of trainable Parameters), started at their current values."""

    def __init__(self, weights, decay, tau):
        super().__init__(auto_prefix=False)
        self.weights = ParameterTuple(weights)
        self.averages = ParameterTuple([Parameter(Tensor(w.asnumpy()), name=EMA_PREFIX + w.name,
                                                  requires_grad=False) for w in weights])
        self.updates = Parameter(Tensor(0.0, ms.float32), name=UPDATES_NAME, requires_grad=False)
        self.decay, self.tau = float(decay), float(tau)
        self.hyper_map = ops.HyperMap()

    def construct(self):
        updates = self.updates + 1.0
        decay = self.decay * (1.0 - ops.exp(-updates / self.tau))
        ops.assign(self.updates, updates)
        return ops.depend(updates, self.hyper_map(ops.partial(_ema_update, decay), self.averages, self.weights))


class TrainStepWithEMA(nn.Cell):
    """``train_step`` followed by the EMA update when its step was applied (not overflowed).

    Returns the train step's outputs unchanged; one compiled graph, so data sinking works too.
    """

    def __init__(self, train_step, ema):
        super().__init__(auto_prefix=False)
        self.train_step = train_step
        self.ema = ema

    def construct(self, *inputs):
        outputs = self.train_step(*inputs)
        if not outputs[4]:  # overflow flag (StepOutputs order): the weights did not change
            outputs = ops.depend(outputs, self.ema())
        return outputs
