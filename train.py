"""Train CenterNet-ResNet101-DCN on MindRecord data (Ascend, GPU or CPU; standalone or data-parallel).

    python train.py --device_target=CPU --mindrecord_dir=/data/mindrecord --epoch_size=1 \
        --save_checkpoint_path=./ckpt [--load_checkpoint_path=...] [--resume=true]

Distributed runs (``--distribute=true``) are started by a launcher: ``msrun`` on every
backend (scripts/run_distributed_train_{cpu,gpu,ascend_msrun}.sh) or an HCCL rank table on
Ascend (scripts/run_distributed_train_ascend.sh). See docs/training_ops.md.
"""
import logging
import os
import signal
import sys
import time

import numpy as np

_PROCESS_START = time.time()  # before the slow imports: "seconds from start" figures include them

import mindspore as ms  # noqa: E402
from mindspore import Tensor, nn, ops  # noqa: E402
from mindspore.communication.management import get_group_size, get_rank, init  # noqa: E402

from src.centernet_det import CenterNetDet, CenterNetLossCell, CenterNetTrainStep  # noqa: E402
from src.dataset import dataset_size, mindrecord_files  # noqa: E402
from src.lr_schedule import adam_eps, build_lr  # noqa: E402
from src.model_utils.config import ConfigError, get_config  # noqa: E402
from src.model_utils.device_adapter import get_device_id  # noqa: E402
from src.model_utils.moxing_adapter import ModelArtsError, local_path, moxing_wrapper  # noqa: E402
from src.train_data import SamplePlan, create_train_dataset  # noqa: E402
from src.training_log import TrainingLog, plot_curves  # noqa: E402
from src.utils import (CheckpointError, build_optimizer, checkpoint_name, checkpoint_position,  # noqa: E402
                       list_checkpoints, load_network_weights, load_train_state, prune_checkpoints,
                       remove_stale_temporaries, save_checkpoint_atomic)
from src.model_utils.entry import setup_logging  # noqa: E402

logger = logging.getLogger("train")

# Environment variables that show a distributed launcher started this process.
_LAUNCHER_ENV = ("MS_ROLE", "RANK_TABLE_FILE", "MINDSPORE_HCCL_CONFIG_PATH", "OMPI_COMM_WORLD_SIZE")


class StopRequest:
    """Turns SIGTERM into a flag checked between steps (checkpoint, then a clean exit)."""

    def __init__(self):
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.requested = True

    def restore(self):
        signal.signal(signal.SIGTERM, self._previous)


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
        self.params = [p for p in network.untrainable_params()] if group_size > 1 else []
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


def set_context(cfg):
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        _set_device(cfg)
    except RuntimeError as err:
        raise ConfigError("--device_target=%s cannot be used: %s" % (cfg.device_target,
                                                                     str(err).strip().split("\n")[0])) from err
    if cfg.deterministic:
        ms.set_context(deterministic="ON")


def _set_device(cfg):
    if cfg.device_target == "CPU":
        ms.set_device("CPU")
    elif cfg.distribute and "MS_ROLE" in os.environ:
        ms.set_device(cfg.device_target)  # msrun negotiates the device of each worker
    elif cfg.distribute or cfg.enable_modelarts:
        ms.set_device(cfg.device_target, get_device_id(cfg))  # DEVICE_ID exported by the launcher
    else:
        ms.set_device(cfg.device_target, cfg.device_id)


def init_distributed(cfg):
    """(rank, group size); data-parallel with averaged gradients when ``distribute``."""
    if not cfg.distribute:
        return 0, 1
    if not any(name in os.environ for name in _LAUNCHER_ENV):
        raise ConfigError("--distribute=true needs a launcher that starts one process per device: msrun "
                          "(scripts/run_distributed_train_{cpu,gpu,ascend_msrun}.sh) or an HCCL rank table "
                          "(scripts/run_distributed_train_ascend.sh); for one device use --distribute=false")
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


def apply_modelarts_paths(cfg):
    """ModelArts: read data from data_path, write under output_path, find checkpoints under load_path."""
    if not cfg.enable_modelarts:
        return
    cfg.mindrecord_dir = local_path(cfg, cfg.mindrecord_dir, "data_path")
    cfg.load_checkpoint_path = local_path(cfg, cfg.load_checkpoint_path, "load_path", keep_empty=True)
    cfg.save_checkpoint_path = local_path(cfg, cfg.save_checkpoint_path, "output_path")
    cfg.save_result_dir = local_path(cfg, cfg.save_result_dir, "output_path", keep_empty=True)
    cfg.profiler_path = local_path(cfg, cfg.profiler_path, "output_path", keep_empty=True)


def output_paths(cfg, rank, group_size):
    """(checkpoint folder, training CSV, loss-curve PNG, data-order CSV) of this rank.

    ``{rank}`` in save_checkpoint_path is replaced by the rank (the msrun scripts put each
    rank's outputs in its own LOG<rank> folder that way).
    """
    base = (cfg.save_checkpoint_path or ".").replace("{rank}", str(rank))
    ckpt_dir = os.path.join(base, "ckpt_%d" % rank)
    result_dir = (cfg.save_result_dir or ckpt_dir).replace("{rank}", str(rank))
    suffix = "" if group_size == 1 else "_rank%d" % rank
    return (ckpt_dir, os.path.join(result_dir, "training_log%s.csv" % suffix),
            os.path.join(result_dir, "loss_curve%s.png" % suffix),
            os.path.join(result_dir, "data_order%s.csv" % suffix))


def profiler_dir(cfg, rank):
    if cfg.profiler_path:
        return cfg.profiler_path.replace("{rank}", str(rank))
    return os.path.join((cfg.save_checkpoint_path or ".").replace("{rank}", str(rank)), "profiler")


class StepProfiler:
    """MindSpore's profiler over the first ``steps`` training steps (after the compiling first one)."""

    def __init__(self, path, steps, rank, device_target):
        from mindspore.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler
        self.path, self.steps, self.done = path, max(1, steps), False
        os.makedirs(path, exist_ok=True)
        activities = [ProfilerActivity.CPU] + {"Ascend": [ProfilerActivity.NPU],
                                               "GPU": [ProfilerActivity.GPU]}.get(device_target, [])
        self._prof = profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=self.steps, repeat=1),
                             on_trace_ready=tensorboard_trace_handler(path, worker_name="rank%d" % rank))
        self._count = 0
        self._prof.start()
        logger.info("profiling steps 2..%d (step 1 compiles the graph) into %s", self.steps + 1, path)

    def step(self):
        if self.done:
            return
        self._prof.step()
        self._count += 1
        if self._count >= self.steps + 1:
            self.stop()

    def stop(self):
        if not self.done:
            self.done = True
            self._prof.stop()
            logger.info("profiler output written to %s", os.path.abspath(self.path))


class DataOrderRecord:
    """Debug record of the images this rank reads: one CSV row per sample (step, position, row, image_id).

    Rows come from the same SamplePlan that create_train_dataset follows, so they name the
    images of each step without touching the pipeline; written after each step completes.
    """

    def __init__(self, path, cfg, batch_size, rank, group_size):
        import mindspore.dataset as ds
        files = mindrecord_files(cfg.mindrecord_dir, cfg.mindrecord_prefix)
        reader = ds.MindDataset(files, columns_list=["image_id"], shuffle=False)
        self.image_ids = np.array([int(r[0]) for r in reader.create_tuple_iterator(output_numpy=True, num_epochs=1)])
        self.plan = SamplePlan(len(self.image_ids), batch_size, cfg.seed, rank, group_size, cfg.do_shuffle)
        self.batch_size = batch_size
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self._file = open(path, "a", encoding="utf-8")
        if new:
            self._file.write("step,position,row,image_id\n")

    def record(self, first_step, steps):
        """Rows of global steps first_step+1 .. first_step+steps."""
        start = first_step * self.batch_size
        rows = self.plan.indices(start, steps * self.batch_size)
        for offset, row in enumerate(rows):
            position = start + offset
            self._file.write("%d,%d,%d,%d\n" % (position // self.batch_size + 1, position, row, self.image_ids[row]))
        self._file.flush()

    def close(self):
        self._file.close()


class Trainer:
    """Builds the network, optimizer and data for one rank and runs the steps."""

    def __init__(self, cfg, rank, group_size):
        self.cfg, self.rank, self.group_size = cfg, rank, group_size
        self.agree = RankAgreement(group_size)
        batch_size = cfg.train_config.batch_size
        self.batch_size = batch_size
        if not cfg.mindrecord_dir:
            raise ConfigError("--mindrecord_dir is required: the folder written by src/dataset.py "
                              "(scripts/convert_dataset_to_mindrecord.sh)")
        num_images = dataset_size(cfg.mindrecord_dir, cfg.mindrecord_prefix)
        num_classes = cfg.dataset_config.num_classes
        self.steps_per_epoch = (num_images // group_size) // batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError("the MindRecord dataset in %s has %d images: too few for one global batch of %d "
                              "device(s) x batch_size %d (train_config.batch_size is per device)"
                              % (cfg.mindrecord_dir, num_images, group_size, batch_size))
        unused = num_images - self.steps_per_epoch * batch_size * group_size
        if unused:
            logger.info("%d of %d images are left out of each epoch (global batch %d x %d devices)", unused,
                        num_images, batch_size, group_size)
        self.total_steps = cfg.train_steps if cfg.train_steps > 0 else cfg.epoch_size * self.steps_per_epoch

        ms.set_seed(cfg.seed)  # identical initial weights on every rank
        self.network = CenterNetDet(cfg.net_config, num_classes)
        if cfg.load_checkpoint_path and not cfg.resume:
            load_network_weights(self.network, cfg.load_checkpoint_path, cfg.filter_weight)
        self.lr = build_lr(cfg.train_config, self.total_steps, self.steps_per_epoch)
        self.optimizer = build_optimizer(self.network, cfg.train_config, self.lr, adam_eps(cfg.train_config))
        loss_net = CenterNetLossCell(self.network, cfg.net_config)
        scale = cfg.train_config.loss_scale_value if cfg.enable_lossscale else 1.0
        update = nn.DynamicLossScaleUpdateCell(float(scale), 2, 1000) if cfg.enable_lossscale else None
        self.train_step = CenterNetTrainStep(loss_net, self.optimizer, update, scale)
        self.train_step.set_train()
        self.buffers = BufferAverager(self.network, group_size)

        self.ckpt_dir, self.csv_path, self.png_path, self.order_path = output_paths(cfg, rank, group_size)
        if os.path.isdir(self.ckpt_dir):
            remove_stale_temporaries(self.ckpt_dir)
        self.start_step = 0
        if cfg.resume:
            path = self._resume_path()
            started = time.perf_counter()
            saved = load_train_state(self.train_step, path, self.run_meta())
            self.start_step = saved["data_step"]
            logger.info("resumed from %s at step %d of %d (state loaded in %.1f s)", path, self.start_step,
                        self.total_steps, time.perf_counter() - started)
        self.opt_step = int(self.optimizer.global_step.asnumpy().reshape(-1)[0])

    def _resume_path(self):
        """The checkpoint to resume from; in distributed runs the newest step that every rank holds."""
        cfg = self.cfg
        if cfg.load_checkpoint_path:
            return cfg.load_checkpoint_path
        found = {}
        for path in list_checkpoints(self.ckpt_dir):
            epoch, in_epoch = checkpoint_position(path)
            found[(epoch - 1) * self.steps_per_epoch + in_epoch] = path
        if self.group_size > 1:
            newest = sorted(found, reverse=True)[:16]
            table = self.agree.gather(newest + [-1] * (16 - len(newest)))
            common = set.intersection(*({int(s) for s in row if s >= 0} for row in table))
            if not common:
                raise CheckpointError("--resume=true: the ranks hold no checkpoint of a common step (newest per "
                                      "rank: %s); give --load_checkpoint_path"
                                      % ", ".join(str(max(row)) for row in table))
            step = max(common)
            if step != max(found):
                logger.warning("resuming at step %d, the newest step every rank holds (this rank has %d)",
                               step, max(found))
            return found[step]
        if not found:
            raise CheckpointError("--resume=true: no checkpoint in %s and no --load_checkpoint_path given"
                                  % self.ckpt_dir)
        return found[max(found)]

    def run_meta(self, data_step=None):
        meta = {"total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                "batch_size": self.batch_size, "group_size": self.group_size, "seed": self.cfg.seed}
        if data_step is not None:
            meta.update(data_step=data_step, epoch=(data_step - 1) // self.steps_per_epoch + 1)
        return meta

    def save(self, step):
        if not self.cfg.enable_save_ckpt:
            return None
        epoch = (step - 1) // self.steps_per_epoch + 1
        in_epoch = (step - 1) % self.steps_per_epoch + 1
        self.buffers.average()  # every rank saves the same BatchNorm statistics
        path = save_checkpoint_atomic(self.train_step, os.path.join(self.ckpt_dir, checkpoint_name(epoch, in_epoch)),
                                      append_dict=self.run_meta(step))
        prune_checkpoints(self.ckpt_dir, self.cfg.save_checkpoint_num)
        logger.info("checkpoint saved: %s", path)
        return path

    def _stop_ranks(self, requested):
        """Ranks that received SIGTERM (every rank stops at the same step when one of them did)."""
        if self.group_size == 1:
            return [0] if requested else []
        return [int(r) for r in np.flatnonzero(self.agree.gather([int(requested)])[:, 0])]

    def run(self, stop):
        cfg = self.cfg
        end_step = self.total_steps
        if cfg.stop_at_step > 0:
            end_step = min(end_step, cfg.stop_at_step)
        remaining = end_step - self.start_step
        if remaining <= 0:
            logger.info("nothing to do: the checkpoint is already at step %d (run ends at step %d)",
                        self.start_step, end_step)
            return self.start_step
        if stop.requested and self.group_size == 1:  # distributed: the ranks agree after the first step
            logger.warning("stop requested (SIGTERM) before the first step: exiting without training")
            return self.start_step
        dataset = create_train_dataset(cfg, remaining, self.start_step, self.rank, self.group_size)
        log = TrainingLog(self.csv_path, self.batch_size, self.group_size, self.steps_per_epoch, self.total_steps,
                          cfg.log_steps)
        order = (DataOrderRecord(self.order_path, cfg, self.batch_size, self.rank, self.group_size)
                 if cfg.record_data_order else None)
        profiler = StepProfiler(profiler_dir(cfg, self.rank), cfg.profiler_steps, self.rank, cfg.device_target) \
            if cfg.need_profiler else None
        logger.info("training steps %d..%d of %d (%d per epoch, batch %d x %d device(s))", self.start_step + 1,
                    end_step, self.total_steps, self.steps_per_epoch, self.batch_size, self.group_size)
        step, saved_step, t_start = self.start_step, None, time.perf_counter()
        sink = self._sink_size(remaining)
        log.start(step)
        if sink:
            run_sink = ms.data_sink(self.train_step, dataset, sink_size=sink)
            batches = (None for _ in range(remaining // sink))
        else:
            batches = dataset.create_tuple_iterator(num_epochs=1, do_copy=False)
        try:
            for batch in batches:
                outputs = run_sink() if sink else self.train_step(*batch)
                values = [float(o.asnumpy().reshape(-1)[0]) for o in outputs]
                first = step == self.start_step
                previous, step = step, step + (sink or 1)
                lr = float(self.lr[min(self.opt_step, len(self.lr) - 1)])
                if sink:
                    self.opt_step = int(self.optimizer.global_step.asnumpy().reshape(-1)[0])
                elif not values[4]:
                    self.opt_step += 1
                if profiler:
                    profiler.step()
                if order:
                    order.record(previous, step - previous)
                log.record(step, values, lr, timed=not first)
                if first:
                    logger.info("first step (%d) done %.1f s after the process started (%.1f s in the step, graph "
                                "compilation included)", step, time.time() - _PROCESS_START,
                                time.perf_counter() - t_start)
                    log.start(step)
                if step % cfg.save_checkpoint_steps == 0 or step == end_step:
                    self.save(step)
                    saved_step = step
                stopping = self._stop_ranks(stop.requested)
                if stopping:
                    logger.warning("stop requested (SIGTERM%s): stopping after step %d", "" if self.group_size == 1
                                   else " on rank %s" % ", ".join(map(str, stopping)), step)
                    if saved_step != step:
                        self.save(step)
                    break
        finally:
            if profiler:
                profiler.stop()
            if order:
                order.close()
            log.close()
        elapsed = time.perf_counter() - t_start
        done = step - self.start_step
        if self.rank == 0:
            logger.info("training finished: steps %d..%d (%d) in %.1f s; %d overflowed steps skipped; "
                        "checkpoints in %s", self.start_step + 1, step, done, elapsed, log.overflows,
                        os.path.abspath(self.ckpt_dir))
        if os.path.exists(self.csv_path):
            plot_curves(self.csv_path, self.png_path)
            logger.info("loss curve: %s (data: %s)", self.png_path, self.csv_path)
        return step

    def _sink_size(self, remaining):
        cfg = self.cfg
        if not cfg.enable_data_sink or cfg.device_target == "CPU":
            if cfg.enable_data_sink:
                logger.info("data sinking is unavailable on CPU: feeding the device step by step")
            return 0
        if cfg.need_profiler or cfg.record_data_order:
            logger.info("need_profiler/record_data_order: sinking 1 step at a time")
            return 1
        sink = max(1, cfg.data_sink_steps)
        if remaining % sink:
            logger.warning("data_sink_steps %d does not divide the %d remaining steps: sinking 1 step at a time",
                           sink, remaining)
            sink = 1
        return sink


def run_train(cfg):
    stop = StopRequest()  # from here on SIGTERM means: finish the current step, checkpoint, exit 0
    try:
        return _run_train(cfg, stop)
    finally:
        stop.restore()


def _run_train(cfg, stop):
    apply_modelarts_paths(cfg)
    set_context(cfg)
    rank, group_size = init_distributed(cfg)
    setup_logging(cfg.log_level, rank=rank if group_size > 1 else None)
    logger.info("rank %d of %d, pid %d, device %s", rank, group_size, os.getpid(), cfg.device_target)
    trainer = Trainer(cfg, rank, group_size)
    return trainer.run(stop)


def main(argv=None):
    setup_logging()
    try:
        cfg = get_config(argv, script="train.py")
        setup_logging(cfg.log_level)
        if os.environ.get("MS_ROLE") == "MS_SCHED":
            run_train(cfg)  # msrun's scheduler process: it only serves the cluster inside init()
        else:
            moxing_wrapper(cfg)(run_train)(cfg)
    except (ConfigError, CheckpointError, ModelArtsError, OSError, ValueError) as err:
        logger.error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
