"""Pick the ModelArts or the local adapter according to ``enable_modelarts``."""
from . import local_adapter, moxing_adapter


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
