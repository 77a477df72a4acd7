"""Train CenterNet-ResNet101-DCN on MindRecord data (Ascend, GPU or CPU; standalone or data-parallel).

    python train.py --device_target=CPU --mindrecord_dir=/data/mindrecord --epoch_size=1 \
        --save_checkpoint_path=./ckpt [--load_checkpoint_path=...] [--resume=true]

Distributed runs (``--distribute=true``) are started by a launcher: ``msrun`` on every
backend (scripts/run_distributed_train_{cpu,gpu,ascend_msrun}.sh) or an HCCL rank table on
Ascend (scripts/run_distributed_train_ascend.sh). See docs/training_ops.md. The loop itself is
src/train/trainer.py.
"""
from src.model_utils import signals

if __name__ == "__main__":
    signals.install()  # before the imports below load MindSpore (src/model_utils/signals.py)

import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

_PROCESS_START = time.time()  # before the slow imports: "seconds from start" figures include them

from src.train.distributed import StopRequest, init_distributed  # noqa: E402
from src.model_utils.device_adapter import set_device  # noqa: E402
from src.model_utils.entry import entry_main, setup_logging  # noqa: E402
from src.model_utils.moxing_adapter import local_path  # noqa: E402
from src.train.trainer import Trainer  # noqa: E402

logger = logging.getLogger("train")


def apply_modelarts_paths(cfg):
    """ModelArts: read data from data_path, write under output_path, find checkpoints under load_path."""
    if not cfg.enable_modelarts:
        return
    cfg.mindrecord_dir = local_path(cfg, cfg.mindrecord_dir, "data_path")
    cfg.load_checkpoint_path = local_path(cfg, cfg.load_checkpoint_path, "load_path", keep_empty=True)
    cfg.save_checkpoint_path = local_path(cfg, cfg.save_checkpoint_path, "output_path")
    cfg.save_result_dir = local_path(cfg, cfg.save_result_dir, "output_path", keep_empty=True)
    cfg.profiler_path = local_path(cfg, cfg.profiler_path, "output_path", keep_empty=True)


def run_train(cfg):
    """Set up device and ranks, build the trainer, train; returns the last global step done."""
    with StopRequest() as stop:  # from here on SIGTERM means: finish the current step, checkpoint, exit 0
        apply_modelarts_paths(cfg)
        set_device(cfg)
        rank, group_size = init_distributed(cfg)
        setup_logging(cfg.log_level, rank=rank if group_size > 1 else None)
        logger.info("rank %d of %d, pid %d, device %s", rank, group_size, os.getpid(), cfg.device_target)
        trainer = Trainer(cfg, rank, group_size, process_start=_PROCESS_START)  # owns its checkpoint folder
        try:
            return trainer.run(stop)
        finally:
            trainer.close()


def main(argv=None):
    # msrun's scheduler process only serves the cluster inside init(): no ModelArts copies there.
    return entry_main("train.py", run_train, argv, modelarts=os.environ.get("MS_ROLE") != "MS_SCHED")


if __name__ == "__main__":
    sys.exit(main())
