"""Shared fixtures: repo root on sys.path, a small synthetic COCO set, its MindRecord, configs.

``synthetic_coco`` and ``synthetic_mindrecord`` are session-scoped (one copy per xdist
worker) and must be treated as read-only; tests that modify data copy it to tmp_path.
"""
import collections
import json
import os
import sys

import mindspore as ms
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SYNTHETIC_TRAIN, SYNTHETIC_VAL, SYNTHETIC_SEED = 24, 8, 0
# Small images keep generation, conversion and the pipeline tests fast.
SYNTHETIC_OPTIONS = {"min_side": 96, "max_side": 192, "min_obj": 16, "max_obj": 64, "max_objects": 4}

SyntheticCoco = collections.namedtuple(
    "SyntheticCoco", ["root", "train_ann", "val_ann", "train_images", "val_images", "num_train", "num_val"])
SyntheticMindRecord = collections.namedtuple(
    "SyntheticMindRecord", ["root", "train_ann", "val_ann", "mindrecord_dir", "prefix", "num_images", "num_classes"])


def _override_text(value):
    """Command-line text of an override value (YAML flow syntax for lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)


def make_config(overrides=None, **kwargs):
    """Config from default_config.yaml with overrides.

    ``overrides`` maps dotted keys to values ({"dataset_config.max_objs": 8}); keyword
    arguments may spell the dots as double underscores (dataset_config__max_objs=8).
    """
    from src.model_utils.config import get_config
    items = dict(overrides or {})
    items.update({k.replace("__", "."): v for k, v in kwargs.items()})
    return get_config(["--%s=%s" % (k, _override_text(v)) for k, v in items.items()])


@pytest.fixture(name="make_config")
def make_config_fixture():
    """The make_config function: make_config({"train_config.batch_size": 2}, seed=1)."""
    return make_config


@pytest.fixture(scope="session")
def synthetic_coco(tmp_path_factory):
    """A generated COCO-format set: 24 train / 8 val images, 5 classes with ids 3, 7, 12, 20, 41."""
    from tools.make_synthetic_coco import make_dataset
    root = str(tmp_path_factory.mktemp("synthetic_coco"))
    paths = make_dataset(root, SYNTHETIC_TRAIN, SYNTHETIC_VAL, seed=SYNTHETIC_SEED, **SYNTHETIC_OPTIONS)
    return SyntheticCoco(root, paths["train"], paths["val"], os.path.join(root, "train2017"),
                         os.path.join(root, "val2017"), SYNTHETIC_TRAIN, SYNTHETIC_VAL)


@pytest.fixture(scope="session")
def synthetic_mindrecord(synthetic_coco, tmp_path_factory):
    """synthetic_coco's train split converted to 2 MindRecord shards (prefix coco_det.train.mind)."""
    from src.dataset import coco_to_mindrecord
    out = str(tmp_path_factory.mktemp("synthetic_mindrecord"))
    summary = coco_to_mindrecord(synthetic_coco.train_ann, synthetic_coco.train_images, out, shards=2, workers=1)
    return SyntheticMindRecord(synthetic_coco.root, synthetic_coco.train_ann, synthetic_coco.val_ann, out,
                               summary["prefix"], summary["num_images"], summary["num_classes"])


@pytest.fixture(scope="session", autouse=True)
def mindspore_cpu():
    """Every test runs MindSpore on CPU in graph mode."""
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
