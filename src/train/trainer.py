"""The training loop of one rank: network, optimizer, data, checkpoints and what each step records.

Trainer(cfg, rank, group_size) takes its checkpoint folder (locked until ``close()``; a fresh run
into a folder with checkpoints is refused), builds everything and loads a resumed state; ``run(stop)``
feeds steps until the run's end or an agreed SIGTERM:

    for each step (or sink of steps):
        outputs = train step            # StepOutputs: losses, overflow, loss scale
        record it                       # training log, data order, profiler (StepRecorder)
        checkpoint when due
        stop when any rank got SIGTERM  # checkpoint first
"""
import logging
import os
import time

import mindspore as ms

from src.centernet_det import CenterNetDet, StepOutputs
from src.data.mindrecord import dataset_size, pipeline_error
from src.data.train_data import Cursor, SamplePlan, create_train_dataset
from src.model_utils.config import ConfigError
from src.model_utils.file_io import FolderLock, prepare_output_folder, remove_stale_temporaries
from src.train.amp import build_train_step
from src.train.distributed import BufferAverager, RankAgreement
from src.train.ema import TrainStepWithEMA, WeightEMA, check_ema_config
from src.train.lr_schedule import adam_eps, build_lr
from src.train.training_log import DataOrderRecord, StepProfiler, TrainingLog, plot_curves
from src.utils import (CheckpointError, build_optimizer, checkpoint_name, checkpoint_position, list_checkpoints,
                       load_network_weights, load_train_state, prune_checkpoints, read_checkpoint,
                       save_checkpoint_atomic, saved_run_meta)

logger = logging.getLogger("train")

_IMPORTED = time.time()
_RESUME_CANDIDATES = 16  # newest checkpoints per rank compared when the ranks agree on a resume step


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


class StepRecorder:
    """Everything a run writes per step besides checkpoints: training log, data order, profiler.

    The first step of a run compiles the graph: it is logged with the time since the process
    started and without a throughput figure.
    """

    def __init__(self, trainer, process_start):
        cfg = trainer.cfg
        self.start_step, self.process_start = trainer.start_step, process_start
        self.log = TrainingLog(trainer.csv_path, trainer.batch_size, trainer.group_size, trainer.steps_per_epoch,
                               trainer.total_steps, cfg.log_steps, trainer.epoch_position)
        self.order = (DataOrderRecord(trainer.order_path, cfg, trainer.batch_size, trainer.rank, trainer.group_size,
                                      trainer.cursor) if cfg.record_data_order else None)
        self.profiler = (StepProfiler(profiler_dir(cfg, trainer.rank), cfg.profiler_steps, trainer.rank,
                                      cfg.device_target) if cfg.need_profiler else None)
        self.started = time.perf_counter()
        self.log.start(self.start_step)

    @property
    def overflows(self):
        return self.log.overflows

    def record(self, previous, step, outputs, lr):
        """Steps previous+1 .. step are done with ``outputs`` (of the last one) at learning rate ``lr``."""
        first = previous == self.start_step
        if self.profiler:
            self.profiler.step()
        if self.order:
            self.order.record(previous, step - previous)
        self.log.record(step, outputs, lr, timed=not first)
        if first:
            logger.info("first step (%d) done %.1f s after the process started (%.1f s in the step, graph "
                        "compilation included)", step, time.time() - self.process_start,
                        time.perf_counter() - self.started)
            self.log.start(step)

    def close(self):
        if self.profiler:
            self.profiler.stop()
        if self.order:
            self.order.close()
        self.log.close()


class Trainer:
    """Builds the network, optimizer and data for one rank and runs the steps."""

    def __init__(self, cfg, rank, group_size, process_start=None):
        self.cfg, self.rank, self.group_size = cfg, rank, group_size
        self.process_start = _IMPORTED if process_start is None else process_start
        self.agree = RankAgreement(group_size)
        self.batch_size = cfg.train_config.batch_size
        self.steps_per_epoch, self.total_steps = self._run_length()
        self.schedule_steps_per_epoch = self.steps_per_epoch  # of the learning-rate schedule
        self.ckpt_dir, self.csv_path, self.png_path, self.order_path = output_paths(cfg, rank, group_size)
        self.lock = FolderLock(self.ckpt_dir)
        self._claim_output()
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self):
        cfg, rank, group_size = self.cfg, self.rank, self.group_size
        remove_stale_temporaries(self.ckpt_dir)  # the folder is this run's: no other run is saving there
        resumed = self._check_resume() if cfg.resume else None

        ms.set_seed(cfg.seed)  # identical initial weights on every rank
        self.network = CenterNetDet(cfg.net_config, cfg.dataset_config.num_classes)
        if cfg.load_checkpoint_path and not cfg.resume:
            load_network_weights(self.network, cfg.load_checkpoint_path, cfg.filter_weight)
        self.lr = build_lr(cfg.train_config, self.total_steps, self.schedule_steps_per_epoch)
        self.optimizer = build_optimizer(self.network, cfg.train_config, self.lr, adam_eps(cfg.train_config))
        self.train_step = build_train_step(cfg, self.network, self.optimizer)
        self.train_step.set_train()
        self.step_cell = self.train_step  # what runs and is saved: the train step, with the EMA update when on
        if cfg.train_config.ema:
            self.step_cell = TrainStepWithEMA(self.train_step, WeightEMA(self.network.trainable_params(),
                                                                         *check_ema_config(cfg.train_config)))
            self.step_cell.set_train()
        self.buffers = BufferAverager(self.network, group_size)

        self.cursor = self._resume(*resumed) if resumed else None
        self.start_step = self.cursor.step if self.cursor else 0
        self.plan = SamplePlan(self.num_images, self.batch_size, cfg.seed, rank, group_size, cfg.do_shuffle,
                               self.cursor)
        self.opt_step = self._optimizer_step()
        self.sink = 0

    def _claim_output(self):
        """Make the checkpoint folder this run's, before anything in it is written or deleted.

        The folder (and the result folder) must be writable; it is locked for the run's life
        (FolderLock: a second run into it is refused with the owner's pid and host). A fresh run
        (resume false) into a folder that already holds checkpoints is refused: its pruning would
        delete them, or its own saves. In distributed runs every rank stops when any rank refuses.
        Both refusals exit 2 (before training).
        """
        problem = None
        try:
            prepare_output_folder(self.ckpt_dir, "--save_checkpoint_path")
            result_dir = os.path.dirname(self.csv_path)
            if os.path.abspath(result_dir) != os.path.abspath(self.ckpt_dir):
                prepare_output_folder(result_dir, "--save_result_dir")
            self.lock.acquire("training run", ": wait for it to finish, or choose another --save_checkpoint_path")
            found = [] if self.cfg.resume else list_checkpoints(self.ckpt_dir)
            if found:
                problem = ConfigError(
                    "%s holds the checkpoints of an earlier run (newest: %s) and this is a fresh run "
                    "(--resume=false), whose saves would replace or delete them: continue that run with "
                    "--resume=true, or choose another --save_checkpoint_path"
                    % (self.ckpt_dir, os.path.basename(found[-1])))
        except OSError as err:  # FolderInUseError, or a folder that cannot be created
            problem = err
        refused = self.agree.ranks_with(problem is not None)
        if problem is None and refused:
            problem = ConfigError("rank(s) %s cannot use their output folder (see their log): stopping"
                                  % ", ".join(map(str, refused)))
        if problem is not None:
            self.close()
            raise problem

    def close(self):
        """Release the checkpoint folder (the end of the process releases it too)."""
        self.lock.release()

    def _run_length(self):
        """(steps per epoch, total steps) from the dataset size, the group and the configuration."""
        cfg = self.cfg
        if not cfg.mindrecord_dir:
            raise ConfigError("--mindrecord_dir is required: the folder written by src/dataset.py "
                              "(scripts/convert_dataset_to_mindrecord.sh)")
        self.num_images = num_images = dataset_size(cfg.mindrecord_dir, cfg.mindrecord_prefix)
        steps_per_epoch = (num_images // self.group_size) // self.batch_size
        if steps_per_epoch == 0:
            raise ConfigError("the MindRecord dataset in %s has %d images: too few for one global batch of %d "
                              "device(s) x batch_size %d (train_config.batch_size is per device)"
                              % (cfg.mindrecord_dir, num_images, self.group_size, self.batch_size))
        unused = num_images - steps_per_epoch * self.batch_size * self.group_size
        if unused:
            logger.info("%d of %d images are left out of each epoch (global batch %d x %d devices)", unused,
                        num_images, self.batch_size, self.group_size)
        total = cfg.train_steps if cfg.train_steps > 0 else cfg.epoch_size * steps_per_epoch
        return steps_per_epoch, total

    def _optimizer_step(self):
        return int(self.optimizer.global_step.asnumpy().reshape(-1)[0])

    def _check_resume(self):
        """(path, checkpoint, expected run metadata) to resume from, checked before anything is built.

        The learning-rate schedule (total_steps, steps_per_epoch) is the checkpoint's. A
        checkpoint of another group size (devices lost or added) is an elastic resume: the
        global step, schedule position, optimizer and EMA state carry over and the data order
        is re-planned from the images of the interrupted epoch already read (SamplePlan).
        """
        cfg = self.cfg
        path = self._resume_path()
        saved = read_checkpoint(path)
        meta = saved_run_meta(saved, path)
        self.elastic = meta.get("group_size", self.group_size) != self.group_size
        expected = {"batch_size": self.batch_size, "seed": cfg.seed}
        if "num_images" in meta:
            expected["num_images"] = self.num_images
        elif not self.elastic:
            expected["steps_per_epoch"] = self.steps_per_epoch
        if "steps_per_epoch" in meta and cfg.train_steps <= 0:
            self.schedule_steps_per_epoch = meta["steps_per_epoch"]
            self.total_steps = cfg.epoch_size * self.schedule_steps_per_epoch
        expected["total_steps"] = self.total_steps
        return path, saved, expected

    def _resume(self, path, saved, expected):
        """Load the training state to resume from; returns the Cursor of its data position."""
        started = time.perf_counter()
        meta = load_train_state(self.step_cell, path, expected, saved)
        step = meta["data_step"]
        if "epoch_samples" in meta:
            cursor = Cursor(step, meta["epoch"] - 1, meta["epoch_step"], meta["epoch_samples"])
        else:  # written before the cursor was saved: the plan of an uninterrupted run of its group
            epoch, in_epoch = divmod(step - 1, meta["steps_per_epoch"])
            cursor = Cursor(step, epoch, in_epoch + 1, (in_epoch + 1) * self.batch_size * meta["group_size"])
        logger.info("resumed from %s at step %d of %d (state loaded in %.1f s)", path, step, self.total_steps,
                    time.perf_counter() - started)
        if self.elastic:
            plan = SamplePlan(self.num_images, self.batch_size, self.cfg.seed, self.rank, self.group_size,
                              self.cfg.do_shuffle, cursor)
            logger.warning("elastic resume: the checkpoint was written by %d device(s), this run has %d; global "
                           "step %d, the learning-rate schedule (%d steps) and the optimizer state continue; "
                           "epoch %d continues after its %d images already read with %d step(s) of %d x %d "
                           "images, then %d steps per epoch", meta["group_size"], self.group_size, step,
                           self.total_steps, cursor.epoch + 1, cursor.epoch_samples, plan.head_steps,
                           self.group_size, self.batch_size, plan.steps_per_epoch)
        return cursor

    def _resume_path(self):
        """The checkpoint to resume from; in distributed runs the newest step that every rank holds."""
        if self.cfg.load_checkpoint_path:
            return self.cfg.load_checkpoint_path
        # keyed by (epoch, step in epoch) of the name: ordered like the steps whatever group wrote them
        found = {checkpoint_position(path): path for path in list_checkpoints(self.ckpt_dir)}
        if self.group_size > 1:
            newest = sorted(found, reverse=True)[:_RESUME_CANDIDATES]
            flat = [v for key in newest for v in key] + [-1, -1] * (_RESUME_CANDIDATES - len(newest))
            table = self.agree.gather(flat).reshape(self.group_size, -1, 2)
            held = [{(int(e), int(i)) for e, i in row if e >= 0} for row in table]
            common = set.intersection(*held)
            if not common:
                raise CheckpointError("--resume=true: the ranks hold no checkpoint of a common step (newest per "
                                      "rank: %s); give --load_checkpoint_path"
                                      % ", ".join("%d_%d" % max(h) if h else "none" for h in held))
            key = max(common)
            if key != max(found):
                logger.warning("resuming from %s, the newest checkpoint every rank holds (this rank has %s)",
                               os.path.basename(found[key]), os.path.basename(found[max(found)]))
            return found[key]
        if not found:
            raise CheckpointError("--resume=true: no checkpoint in %s and no --load_checkpoint_path given"
                                  % self.ckpt_dir)
        return found[max(found)]

    def run_meta(self, data_step=None):
        meta = {"total_steps": self.total_steps, "steps_per_epoch": self.schedule_steps_per_epoch,
                "batch_size": self.batch_size, "group_size": self.group_size, "seed": self.cfg.seed,
                "num_images": self.num_images}
        if data_step is not None:
            cursor = self.plan.cursor(data_step)
            meta.update(data_step=data_step, epoch=cursor.epoch + 1, epoch_step=cursor.epoch_step,
                        epoch_samples=cursor.epoch_samples)
        return meta

    def epoch_position(self, step):
        """(epoch, step in epoch), both 1-based, of global ``step`` under this run's sample plan."""
        cursor = self.plan.cursor(step)
        return cursor.epoch + 1, cursor.epoch_step

    def save(self, step):
        if not self.cfg.enable_save_ckpt:
            return None
        self.buffers.average()  # every rank saves the same BatchNorm statistics
        path = save_checkpoint_atomic(self.step_cell, os.path.join(
            self.ckpt_dir, checkpoint_name(*self.epoch_position(step))), append_dict=self.run_meta(step))
        prune_checkpoints(self.ckpt_dir, self.cfg.save_checkpoint_num)
        logger.info("checkpoint saved: %s", path)
        return path

    def end_step(self):
        """The global step this run stops after (total_steps, or stop_at_step when earlier)."""
        if self.cfg.stop_at_step > 0:
            return min(self.total_steps, self.cfg.stop_at_step)
        return self.total_steps

    def run(self, stop):
        """Train from start_step to end_step(); returns the last global step done.

        ``stop`` is a StopRequest: after a step in which any rank received SIGTERM, every rank
        saves a checkpoint of that step and returns.
        """
        end_step = self.end_step()
        remaining = end_step - self.start_step
        if remaining <= 0:
            logger.info("nothing to do: the checkpoint is already at step %d (run ends at step %d)",
                        self.start_step, end_step)
            return self.start_step
        if stop.requested and self.group_size == 1:  # distributed: the ranks agree after the first step
            logger.warning("stop requested (SIGTERM) before the first step: exiting without training")
            return self.start_step
        steps = self._feed(remaining)
        recorder = StepRecorder(self, self.process_start)
        logger.info("training steps %d..%d of %d (%d per epoch, batch %d x %d device(s))", self.start_step + 1,
                    end_step, self.total_steps, self.steps_per_epoch, self.batch_size, self.group_size)
        step, saved_step = self.start_step, None
        try:
            for done, outputs in steps:
                previous, step = step, step + done
                recorder.record(previous, step, outputs, self._advance_lr(outputs))
                if step % self.cfg.save_checkpoint_steps == 0 or step == end_step:
                    self.save(step)
                    saved_step = step
                if self._stop_agreed(stop, step):
                    if saved_step != step:
                        self.save(step)
                    break
        finally:
            recorder.close()
        self._report(step, recorder)
        return step

    def _feed(self, remaining):
        """The dataset for ``remaining`` steps and an iterator of (steps done, StepOutputs) over it.

        With data sinking each item is a sink of ``self.sink`` steps run on the device; without,
        one step fed from the host.
        """
        cfg = self.cfg
        dataset = create_train_dataset(cfg, remaining, self.start_step, self.rank, self.group_size, self.cursor)
        self.sink = self._sink_size(remaining)
        if self.sink:
            run_sink = ms.data_sink(self.step_cell, dataset, sink_size=self.sink)
            return ((self.sink, StepOutputs.of(self._read(run_sink))) for _ in range(remaining // self.sink))
        batches = dataset.create_tuple_iterator(num_epochs=1, do_copy=False)
        return ((1, StepOutputs.of(self.step_cell(*batch))) for batch in self._batches(batches))

    def _read(self, fetch):
        """``fetch()``, a failure of the data pipeline reported as one line (pipeline_error)."""
        try:
            return fetch()
        except RuntimeError as err:
            clear = pipeline_error(err, self.cfg.mindrecord_dir)
            if clear is None:
                raise
            raise clear from err

    def _batches(self, batches):
        """The batches of the iterator ``batches``, a failure of the data pipeline reported as one line."""
        batches = iter(batches)
        end = object()
        while True:
            batch = self._read(lambda: next(batches, end))
            if batch is end:
                return
            yield batch

    def _advance_lr(self, outputs):
        """The learning rate the step(s) just done used; advances the optimizer-step counter.

        A step fed from the host counts unless it overflowed (skipped); after a device sink the
        counter is read back from the optimizer.
        """
        lr = float(self.lr[min(self.opt_step, len(self.lr) - 1)])
        if self.sink:
            self.opt_step = self._optimizer_step()
        elif not outputs.overflow:
            self.opt_step += 1
        return lr

    def _stop_agreed(self, stop, step):
        """True when any rank received SIGTERM (every rank decides the same after each step)."""
        stopping = stop.ranks(self.agree)
        if stopping:
            logger.warning("stop requested (SIGTERM%s): stopping after step %d", "" if self.group_size == 1
                           else " on rank %s" % ", ".join(map(str, stopping)), step)
        return bool(stopping)

    def _report(self, step, recorder):
        if self.rank == 0:
            logger.info("training finished: steps %d..%d (%d) in %.1f s; %d overflowed steps skipped; "
                        "checkpoints in %s", self.start_step + 1, step, step - self.start_step,
                        time.perf_counter() - recorder.started, recorder.overflows, os.path.abspath(self.ckpt_dir))
        if os.path.exists(self.csv_path):
            plot_curves(self.csv_path, self.png_path)
            logger.info("loss curve: %s (data: %s)", self.png_path, self.csv_path)

    def _sink_size(self, remaining):
        """Steps per device sink: 0 feeds step by step (CPU, or data sinking off)."""
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
