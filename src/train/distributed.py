"""Data-parallel set-up and the few values the ranks exchange outside the gradients.

init_distributed joins the launcher's cluster; RankAgreement gathers small integer vectors
from every rank (which checkpoints each holds, which received SIGTERM); BufferAverager keeps
the BatchNorm statistics identical on every rank; StopRequest turns SIGTERM into a flag that
the ranks agree on between steps.
"""
import os
import signal

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

from src.model_utils.config import ConfigError

# Environment variables that show a distributed launcher started this process.
LAUNCHER_ENV = ("MS_ROLE", "RANK_TABLE_FILE", "MINDSPORE_HCCL_CONFIG_PATH", "OMPI_COMM_WORLD_SIZE")


def init_distributed(cfg):
    """(rank, group size); data-parallel with averaged gradients when ``cfg.distribute``.

    Sets ``cfg.device_num`` to the group size the launcher started.
    """
    if not cfg.distribute:
        return 0, 1
    if not any(name in os.environ for name in LAUNCHER_ENV):
        raise ConfigError("--distribute=true needs a launcher that starts one process per device: msrun "
                          "(scripts/run_distributed_train_{cpu,gpu,ascend_msrun}.sh) or an HCCL rank table "
                          "(scripts/run_distributed_train_ascend.sh); for one device use --distribute=false")
    from mindspore.communication.management import get_group_size, get_rank, init
    init()  # HCCL on Ascend, NCCL on GPU, msrun's own cluster on CPU
    rank, group_size = get_rank(), get_group_size()
    if cfg.device_num not in (1, group_size):
        raise ConfigError("--device_num=%d but the launcher started %d processes" % (cfg.device_num, group_size))
    cfg.device_num = group_size
    fusion = {}
    if cfg.allreduce_fusion_size > 0:  # one AllReduce per N MB of gradients instead of one per tensor
        fusion = {"comm_fusion": {"allreduce": {"mode": "size", "config": cfg.allreduce_fusion_size}}}
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=group_size, **fusion)
    return rank, group_size


class _Gather(nn.Cell):
    def __init__(self):
        super().__init__()
        self.gather = ops.AllGather()

    def construct(self, x):
        return self.gather(x)


class RankAgreement:
    """Small int32 vectors gathered from every rank (AllGather: the CPU backend only sums in AllReduce)."""

    def __init__(self, group_size):
        self.group_size = group_size
        self._cell = _Gather() if group_size > 1 else None

    def gather(self, values):
        """(group_size, k) int numpy array: row r is rank r's ``values``."""
        values = np.asarray(values, np.int32).reshape(1, -1)
        if self._cell is None:
            return values
        return self._cell(Tensor(values)).asnumpy().reshape(self.group_size, -1)

    def ranks_with(self, flag):
        """Ranks whose ``flag`` is true (every rank gets the same list)."""
        return [int(r) for r in np.flatnonzero(self.gather([int(bool(flag))])[:, 0])]


class _SumOverRanks(nn.Cell):
    def __init__(self):
        super().__init__()
        self.all_reduce = ops.AllReduce()

    def construct(self, x):
        return self.all_reduce(x)


class BufferAverager:
    """Averages the network's non-trainable buffers (BatchNorm moving statistics) over the ranks.

    Data parallelism averages gradients, so the weights and the optimizer state stay identical
    on every rank, but each rank updates its BatchNorm moving mean/variance from its own
    batches. Before each checkpoint they are replaced, in place and on every rank, by their
    mean over the ranks (as timm's distribute_bn), so all ranks save the same state and an
    interrupted run resumes exactly as an uninterrupted one continues.
    """

    def __init__(self, network, group_size):
        self.params = list(network.untrainable_params()) if group_size > 1 else []
        self.group_size = group_size
        self._cell = _SumOverRanks() if self.params else None

    def average(self):
        if not self.params:
            return
        flat = np.concatenate([p.asnumpy().reshape(-1) for p in self.params]).astype(np.float32)
        total = self._cell(Tensor(flat)).asnumpy() / np.float32(self.group_size)
        offset = 0
        for p in self.params:
            size = int(np.prod(p.shape))
            p.set_data(Tensor(total[offset:offset + size].reshape(p.shape).astype(p.asnumpy().dtype)))
            offset += size


class StopRequest:
    """Turns SIGTERM into a flag checked between steps (checkpoint, then a clean exit).

    Use as a context manager: the previous handler is restored on exit.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._previous)
        return False

    def _handle(self, signum, frame):
        self.requested = True

    def ranks(self, agreement):
        """Ranks that received SIGTERM, agreed over ``agreement`` so every rank stops at the same step."""
        return agreement.ranks_with(self.requested)
