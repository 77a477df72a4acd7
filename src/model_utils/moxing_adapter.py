"""ModelArts support: copy data and checkpoints in from OBS before the job and outputs back after.

With ``enable_modelarts=True`` an entry script wrapped by ``moxing_wrapper(config)``:

1. copies ``data_url`` to ``data_path`` and ``checkpoint_url`` to ``load_path``;
2. takes the device id, device count and rank from the environment ModelArts sets
   (DEVICE_ID, RANK_SIZE, RANK_ID);
3. runs the job, which reads and writes local paths (see ``local_path``);
4. copies ``output_path`` to ``train_url``, also when the job failed (its logs matter then).

``moxing`` exists only on ModelArts and is imported when a copy is needed. One process per
server copies (the first device of each server: DEVICE_ID % devices-per-server == 0); the
other local ranks wait for its marker file, which also carries a failure, so no rank waits
for a copy that failed. Before the output copy the copier waits for every local rank to
finish. Marker files live in ``$CENTERNET_SYNC_DIR`` (default /tmp), named by the job id.
"""
import functools
import glob
import logging
import os
import time

from src.model_utils.file_io import write_text_atomic
from src.model_utils.local_adapter import get_device_id, get_device_num, get_rank_id  # ModelArts sets the same variables

logger = logging.getLogger(__name__)

DEVICES_PER_SERVER = 8
SYNC_TIMEOUT_S = 3600
_sync_count = 0

__all__ = ["ModelArtsError", "get_device_id", "get_device_num", "get_rank_id", "get_job_id", "local_path",
           "sync_data", "moxing_wrapper"]


class ModelArtsError(RuntimeError):
    """A ModelArts copy failed (moxing missing, url unreachable, copy error or a waiting timeout)."""


def get_job_id():
    return os.getenv("JOB_ID", "default") or "default"


def local_ranks():
    """Number of ranks on this server (the copier's audience)."""
    return max(1, min(get_device_num(), DEVICES_PER_SERVER))


def is_copier():
    """True for the one process per server that performs the copies."""
    return get_device_id() % local_ranks() == 0


def local_path(config, path, base_key, keep_empty=False):
    """Where a path option points inside the job's local folders.

    Off ModelArts ``path`` is returned unchanged. On ModelArts an absolute path is kept, a
    relative one is placed under ``config.<base_key>`` (data_path, load_path or output_path)
    and an empty one becomes that folder itself (or stays empty with ``keep_empty``).
    """
    if not config.enable_modelarts:
        return path
    base = getattr(config, base_key)
    if not path:
        return "" if keep_empty else base
    if os.path.isabs(path):
        return path
    return os.path.join(base, path)


def _marker_dir():
    folder = os.getenv("CENTERNET_SYNC_DIR", "/tmp")
    os.makedirs(folder, exist_ok=True)
    return folder


def _import_moxing():
    try:
        import moxing as mox
    except ImportError as err:
        raise ModelArtsError("enable_modelarts=True needs the 'moxing' module, which exists only on ModelArts; "
                             "set enable_modelarts=False to run locally") from err
    return mox


def _copy(from_path, to_path):
    mox = _import_moxing()
    try:
        reachable = mox.file.exists(from_path)
    except Exception as err:  # moxing raises its own error types for network/permission failures
        raise ModelArtsError("cannot reach %s: %s" % (from_path, err)) from err
    if not reachable:
        raise ModelArtsError("cannot reach %s: it does not exist or is not readable" % from_path)
    try:
        mox.file.copy_parallel(from_path, to_path)
    except Exception as err:
        raise ModelArtsError("copy from %s to %s failed: %s" % (from_path, to_path, err)) from err


def sync_data(from_path, to_path, timeout_s=SYNC_TIMEOUT_S):
    """Copy ``from_path`` to ``to_path`` once per server; the other local ranks wait for it.

    Raises ModelArtsError naming the url on every local rank when the copy fails.
    """
    global _sync_count
    marker = os.path.join(_marker_dir(), "centernet_sync_%s_%d" % (get_job_id(), _sync_count))
    _sync_count += 1
    if is_copier() and not os.path.exists(marker + ".done"):
        logger.info("ModelArts copy: %s -> %s", from_path, to_path)
        start = time.time()
        try:
            _copy(from_path, to_path)
        except ModelArtsError as err:
            write_text_atomic(marker + ".failed", str(err))
            raise
        logger.info("ModelArts copy done in %.1f s", time.time() - start)
        write_text_atomic(marker + ".done", to_path)
        return
    deadline = time.time() + timeout_s
    while not os.path.exists(marker + ".done"):
        if os.path.exists(marker + ".failed"):
            with open(marker + ".failed", encoding="utf-8") as f:
                raise ModelArtsError("the copy of %s (by this server's first device) failed: %s"
                                     % (from_path, f.read()))
        if time.time() > deadline:
            raise ModelArtsError("waited %d s for this server's first device to copy %s (marker %s)"
                                 % (timeout_s, from_path, marker))
        time.sleep(0.5)


def _wait_local_ranks(name, timeout_s):
    """Every local rank marks ``name`` done; the copier waits (bounded) until all have."""
    prefix = os.path.join(_marker_dir(), "centernet_%s_%s_rank" % (name, get_job_id()))
    write_text_atomic("%s%d" % (prefix, get_device_id()), "done")
    if not is_copier():
        return
    deadline = time.time() + timeout_s
    while len(glob.glob(prefix + "[0-9]*")) < local_ranks() and time.time() < deadline:
        time.sleep(0.5)
    have = len(glob.glob(prefix + "[0-9]*"))
    if have < local_ranks():
        logger.warning("copying the outputs although only %d of %d local ranks finished within %d s",
                       have, local_ranks(), timeout_s)


def moxing_wrapper(config, pre_process=None, post_process=None, finish_timeout_s=600):
    """Decorator: ModelArts copies around ``run_func`` when ``config.enable_modelarts`` (else a no-op)."""

    def decorator(run_func):
        @functools.wraps(run_func)
        def wrapped(*args, **kwargs):
            if not config.enable_modelarts:
                return run_func(*args, **kwargs)
            if config.data_url:
                sync_data(config.data_url, config.data_path)
            if config.checkpoint_url:
                sync_data(config.checkpoint_url, config.load_path)
            config.device_num = get_device_num()
            config.device_id = get_device_id()
            os.makedirs(config.output_path, exist_ok=True)
            logger.info("ModelArts job %s: device %d, rank %d of %d", get_job_id(), config.device_id,
                        get_rank_id(), config.device_num)
            if pre_process:
                pre_process()
            try:
                return run_func(*args, **kwargs)
            finally:
                if post_process:
                    post_process()
                if config.train_url:
                    _wait_local_ranks("finished", finish_timeout_s)
                    sync_data(config.output_path, config.train_url)
        return wrapped
    return decorator
