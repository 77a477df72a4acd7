"""The small network of the tests and benchmarks, and the spelling of configuration overrides as arguments.

tests/conftest.py re-exports these (tests import them from there); testkit/ops_support.py and
bench/ import them from here.
"""
import json

# Classes of the synthetic COCO set of the tests (tests/conftest.py makes it).
SYNTHETIC_CLASSES = 5

# The small network of the tests: ResNet with one BasicBlock per stage, for the synthetic set's 5 classes.
SMALL = {"net_config.block_type": "BasicBlock", "net_config.block_class": [1, 1, 1, 1],
         "dataset_config.num_classes": SYNTHETIC_CLASSES}
# Its input size: a multiple of 32 that compiles in seconds.
SMALL_RES = [128, 128]
# A small training run on CPU: a step takes well under a second.
SMALL_TRAIN = dict(SMALL, **{"device_target": "CPU", "dataset_config.input_res_train": SMALL_RES,
                             "train_config.batch_size": 2, "num_parallel_workers": 1})


def _override_text(value):
    """Command-line text of an override value (YAML flow syntax for lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))
    return str(value)


def override_args(overrides):
    """--key=value command-line arguments of an overrides dict ({"net_config.head_conv": 32})."""
    return ["--%s=%s" % (key, _override_text(value)) for key, value in overrides.items()]
