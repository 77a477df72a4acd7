"""Train CenterNet-ResNet101-DCN on MindRecord data (Ascend, GPU or CPU; standalone or data-parallel).

    python train.py --device_target=CPU --mindrecord_dir=/data/mindrecord --epoch_size=1 \
        --save_checkpoint_path=./ckpt [--load_checkpoint_path=...] [--resume=true]
"""
import logging
import os
import signal
import sys
import time

import mindspore as ms
from mindspore import nn
from mindspore.communication.management import get_group_size, get_rank, init

from src.centernet_det import CenterNetDet, CenterNetLossCell, CenterNetTrainStep
from src.dataset import create_train_dataset, dataset_size
from src.lr_schedule import adam_eps, build_lr
from src.model_utils.config import ConfigError, get_config
from src.model_utils.device_adapter import get_device_id
from src.model_utils.moxing_adapter import moxing_wrapper
from src.training_log import TrainingLog, plot_curves
from src.utils import (CheckpointError, build_optimizer, checkpoint_name, list_checkpoints, load_network_weights, load_train_state,
                       prune_checkpoints, remove_stale_temporaries, save_checkpoint_atomic, setup_logging)

logger = logging.getLogger("train")


class StopRequest:
    """Turns SIGTERM into a flag checked between steps (checkpoint, then a clean exit)."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.requested = True


def set_context(cfg):
    ms.set_context(mode=ms.GRAPH_MODE)
    if cfg.device_target == "CPU" or cfg.distribute:
        ms.set_device(cfg.device_target)  # distributed: the launcher assigns the device
    else:
        ms.set_device(cfg.device_target, get_device_id(cfg) if cfg.enable_modelarts else cfg.device_id)
    if cfg.deterministic:
        ms.set_context(deterministic="ON")


def init_distributed(cfg):
    """(rank, group size); data-parallel with averaged gradients when ``distribute``."""
    if not cfg.distribute:
        return 0, 1
    init()  # HCCL on Ascend, NCCL on GPU, msrun's cluster on CPU
    rank, group_size = get_rank(), get_group_size()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=group_size)
    return rank, group_size


def output_paths(cfg, rank, group_size):
    """(checkpoint folder, training CSV, loss-curve PNG) of this rank."""
    base = cfg.save_checkpoint_path or "."
    ckpt_dir = os.path.join(base, "ckpt_%d" % rank)
    result_dir = cfg.save_result_dir or ckpt_dir
    suffix = "" if group_size == 1 else "_rank%d" % rank
    return (ckpt_dir, os.path.join(result_dir, "training_log%s.csv" % suffix),
            os.path.join(result_dir, "loss_curve%s.png" % suffix))


def resume_path(cfg, ckpt_dir):
    if cfg.load_checkpoint_path:
        return cfg.load_checkpoint_path
    found = list_checkpoints(ckpt_dir)
    if not found:
        raise CheckpointError("--resume=true: no checkpoint in %s and no --load_checkpoint_path given" % ckpt_dir)
    return found[-1]


class Trainer:
    """Builds the network, optimizer and data for one rank and runs the steps."""

    def __init__(self, cfg, rank, group_size):
        self.cfg, self.rank, self.group_size = cfg, rank, group_size
        batch_size = cfg.train_config.batch_size
        self.batch_size = batch_size
        if not cfg.mindrecord_dir:
            raise ConfigError("--mindrecord_dir is required: the folder written by src/dataset.py "
                              "(scripts/convert_dataset_to_mindrecord.sh)")
        num_images = dataset_size(cfg.mindrecord_dir, cfg.mindrecord_prefix)
        num_classes = cfg.dataset_config.num_classes
        self.steps_per_epoch = (num_images // group_size) // batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError("the MindRecord dataset in %s has %d images: too few for %d device(s) x batch_size %d"
                              % (cfg.mindrecord_dir, num_images, group_size, batch_size))
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

        self.ckpt_dir, self.csv_path, self.png_path = output_paths(cfg, rank, group_size)
        if os.path.isdir(self.ckpt_dir):
            remove_stale_temporaries(self.ckpt_dir)
        self.start_step = 0
        if cfg.resume:
            path = resume_path(cfg, self.ckpt_dir)
            saved = load_train_state(self.train_step, path, self.run_meta())
            self.start_step = saved["data_step"]
            logger.info("resumed from %s at step %d of %d", path, self.start_step, self.total_steps)
        self.opt_step = int(self.optimizer.global_step.asnumpy().reshape(-1)[0])

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
        path = save_checkpoint_atomic(self.train_step, os.path.join(self.ckpt_dir, checkpoint_name(epoch, in_epoch)),
                                      append_dict=self.run_meta(step))
        prune_checkpoints(self.ckpt_dir, self.cfg.save_checkpoint_num)
        logger.info("checkpoint saved: %s", path)
        return path

    def run(self):
        cfg = self.cfg
        remaining = self.total_steps - self.start_step
        if remaining <= 0:
            logger.info("nothing to do: the checkpoint is already at step %d of %d", self.start_step,
                        self.total_steps)
            return None
        dataset, _ = create_train_dataset(cfg, cfg.mindrecord_dir, cfg.mindrecord_prefix, self.batch_size,
                                          rank=self.rank, group_size=self.group_size, start_step=self.start_step,
                                          total_steps=remaining, num_parallel_workers=cfg.num_parallel_workers,
                                          do_shuffle=cfg.do_shuffle)
        log = TrainingLog(self.csv_path, self.batch_size, self.group_size, self.steps_per_epoch, self.total_steps,
                          cfg.log_steps)
        stop = StopRequest()
        logger.info("training %d steps (%d per epoch, batch %d x %d device(s)), starting at step %d",
                    self.total_steps, self.steps_per_epoch, self.batch_size, self.group_size, self.start_step)
        step, last_saved, t_start = self.start_step, None, time.perf_counter()
        sink = self._sink_size(remaining)
        log.start(step)
        if sink:
            run_sink = ms.data_sink(self.train_step, dataset, sink_size=sink)
            batches = (None for _ in range(remaining // sink))
        else:
            batches = dataset.create_tuple_iterator(num_epochs=1, do_copy=False)
        for batch in batches:
            outputs = run_sink() if sink else self.train_step(*batch)
            step += sink or 1
            values = [float(o.asnumpy().reshape(-1)[0]) for o in outputs]
            lr = float(self.lr[min(self.opt_step, len(self.lr) - 1)])
            if sink:
                self.opt_step = int(self.optimizer.global_step.asnumpy().reshape(-1)[0])
            elif not values[4]:
                self.opt_step += 1
            if step == self.start_step + (sink or 1):
                logger.info("first step done in %.1f s (graph compilation included)", time.perf_counter() - t_start)
                log.start(step)
            else:
                log.record(step, values, lr)
            if step % cfg.save_checkpoint_steps == 0 or step == self.total_steps:
                last_saved = self.save(step)
            if stop.requested:
                logger.warning("SIGTERM received: stopping at step %d", step)
                if last_saved is None or step % cfg.save_checkpoint_steps:
                    self.save(step)
                break
        log.close()
        elapsed = time.perf_counter() - t_start
        if self.rank == 0:
            logger.info("training finished: %d steps in %.1f s; %d overflowed steps skipped; checkpoints in %s",
                        step - self.start_step, elapsed, log.overflows, os.path.abspath(self.ckpt_dir))
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
        sink = max(1, cfg.data_sink_steps)
        if remaining % sink:
            logger.warning("data_sink_steps %d does not divide the %d remaining steps: sinking 1 step at a time",
                           sink, remaining)
            sink = 1
        return sink


def run_train(cfg):
    set_context(cfg)
    rank, group_size = init_distributed(cfg)
    setup_logging(cfg.log_level, rank=rank if group_size > 1 else None)
    trainer = Trainer(cfg, rank, group_size)
    return trainer.run()


def main(argv=None):
    setup_logging()
    try:
        cfg = get_config(argv)
        setup_logging(cfg.log_level)
        moxing_wrapper(cfg)(run_train)(cfg)
    except (ConfigError, CheckpointError, OSError, ValueError) as err:
        logger.error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
