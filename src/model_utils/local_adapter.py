"""Device and rank information of a local (non-ModelArts) run, from the launcher's environment."""
import os


def _env_int(name, default):
    value = os.getenv(name, str(default))
    try:
        return int(value)
    except ValueError as err:
        raise ValueError("environment variable %s must be an integer, got %r" % (name, value)) from err


def get_device_id():
    """DEVICE_ID set by the launch scripts (0 when absent)."""
    return _env_int("DEVICE_ID", 0)


def get_device_num():
    """RANK_SIZE set by the launch scripts (1 when absent)."""
    return _env_int("RANK_SIZE", 1)


def get_rank_id():
    """RANK_ID set by the launch scripts (0 when absent)."""
    return _env_int("RANK_ID", 0)


def get_job_id():
    return "Local Job"
