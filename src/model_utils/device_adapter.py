"""Device set-up and device/rank information, from ModelArts or the local launcher's environment."""
import logging
import os

from src.model_utils import local_adapter, moxing_adapter


def _adapter(config):
    return moxing_adapter if config is not None and config.enable_modelarts else local_adapter


def get_device_id(config=None):
    return _adapter(config).get_device_id()


def get_device_num(config=None):
    return _adapter(config).get_device_num()


def get_rank_id(config=None):
    return _adapter(config).get_rank_id()


def get_job_id(config=None):
    return _adapter(config).get_job_id()


def _device_id(config):
    """None lets msrun choose each worker's device; launchers and ModelArts export DEVICE_ID."""
    distribute = bool(getattr(config, "distribute", False))
    if distribute and "MS_ROLE" in os.environ:
        return None
    if distribute or config.enable_modelarts:
        return get_device_id(config)
    return config.device_id


def set_device(config, device_target=None, device_id=None):
    """Graph mode on ``config.device_target`` (or ``device_target``), deterministic kernels if asked.

    The one context set-up of every entry script. A backend this MindSpore build cannot use
    raises ConfigError naming the value, instead of the runtime's multi-line report. Scripts
    without a yaml configuration pass ``device_target`` (and ``device_id`` off CPU) with
    ``config`` None or their own options object.
    """
    import mindspore as ms
    from src.model_utils.config import ConfigError
    target = device_target or config.device_target
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        if target == "CPU":
            ms.set_device("CPU")
        else:
            chosen = device_id if device_id is not None else _device_id(config)
            if chosen is None:
                ms.set_device(target)
            else:
                ms.set_device(target, chosen)
    except RuntimeError as err:
        raise ConfigError("--device_target=%s cannot be used: %s"
                          % (target, str(err).strip().split("\n")[0])) from err
    if getattr(config, "deterministic", False):
        ms.set_context(deterministic="ON")
    _set_precision_mode(getattr(config, "precision_mode", ""), target)


def _set_precision_mode(mode, target):
    """Pass ``precision_mode`` to the Ascend operator compiler; other backends have none."""
    if not mode:
        return
    if target != "Ascend":
        logging.getLogger(__name__).warning("--precision_mode=%s applies to Ascend only: ignored on %s", mode, target)
        return
    from mindspore.device_context.ascend.op_precision import precision_mode
    precision_mode(mode)
    logging.getLogger(__name__).info("Ascend operator precision mode: %s", mode)
