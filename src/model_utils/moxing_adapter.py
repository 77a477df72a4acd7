"""ModelArts support: copy data and checkpoints in from OBS before the job and outputs back after.

``moxing`` exists only on ModelArts; it is imported when a sync is needed. One process per
server copies (the first device of each server) while the other ranks wait for its marker.
"""
import functools
import logging
import os
import time

from .local_adapter import get_device_id, get_device_num, get_rank_id  # ModelArts sets the same variables

logger = logging.getLogger(__name__)

DEVICES_PER_SERVER = 8
SYNC_TIMEOUT_S = 3600
_sync_count = 0


def get_job_id():
    return os.getenv("JOB_ID", "default") or "default"


def _import_moxing():
    try:
        import moxing as mox
    except ImportError as err:
        raise RuntimeError("enable_modelarts=True needs the 'moxing' module, which exists only on ModelArts; "
                           "set enable_modelarts=False to run locally") from err
    return mox


def sync_data(from_path, to_path, timeout_s=SYNC_TIMEOUT_S):
    """Copy ``from_path`` to ``to_path`` once per server; the other local ranks wait for it."""
    global _sync_count
    marker = os.path.join("/tmp", "centernet_sync_%s_%d.done" % (get_job_id(), _sync_count))
    _sync_count += 1
    if get_device_id() % min(get_device_num(), DEVICES_PER_SERVER) == 0 and not os.path.exists(marker):
        mox = _import_moxing()
        logger.info("ModelArts sync: %s -> %s", from_path, to_path)
        start = time.time()
        try:
            mox.file.copy_parallel(from_path, to_path)
        except Exception as err:
            raise RuntimeError("ModelArts sync from %s to %s failed: %s" % (from_path, to_path, err)) from err
        logger.info("ModelArts sync done in %.1f s", time.time() - start)
        with open(marker, "w", encoding="utf-8") as f:
            f.write(to_path)
    deadline = time.time() + timeout_s
    while not os.path.exists(marker):
        if time.time() > deadline:
            raise TimeoutError("waited %d s for the ModelArts copy of %s (marker %s)" % (timeout_s, from_path, marker))
        time.sleep(1)


def moxing_wrapper(config, pre_process=None, post_process=None):
    """Decorate an entry function: sync inputs before it and outputs after it on ModelArts."""
    def decorator(run_func):
        @functools.wraps(run_func)
        def wrapped(*args, **kwargs):
            if config.enable_modelarts:
                if config.data_url:
                    sync_data(config.data_url, config.data_path)
                if config.checkpoint_url:
                    sync_data(config.checkpoint_url, config.load_path)
                config.device_num = get_device_num()
                config.device_id = get_device_id()
                os.makedirs(config.output_path, exist_ok=True)
                if pre_process:
                    pre_process()
            result = run_func(*args, **kwargs)
            if config.enable_modelarts:
                if post_process:
                    post_process()
                if config.train_url:
                    sync_data(config.output_path, config.train_url)
            return result
        return wrapped
    return decorator
