"""Shared fixtures: a small synthetic COCO set, its MindRecord, configs.

The small network (``SMALL``, ``SMALL_TRAIN``) and the spelling of overrides as arguments
(``override_args``) live in testkit/small_network.py (bench/ uses them too); tests import them
from here, with the yaml spelling (``override_yaml``).

The repository root is importable by pytest.ini's ``pythonpath = .``; subprocesses (launchers,
tools, benchmarks run as scripts) get it through PYTHONPATH, as an editable install
(scripts/setup_env.sh) gives it to a user's shell.

``synthetic_coco`` and ``synthetic_mindrecord`` are session-scoped (one copy per xdist
worker) and must be treated as read-only; tests that modify data copy it to tmp_path.

A test that needs a tool or module outside the Python requirements (g++, torch, network
namespaces) calls ``require_tool``, ``require_module`` or ``missing``: the test is skipped
locally but fails under CI=true, where CI installs them, so a broken install cannot pass as skips.
"""
import collections
import importlib
import os
import shutil

import cv2
import mindspore as ms
import pytest
import yaml

from testkit.small_network import (SMALL, SMALL_RES, SMALL_TRAIN, SYNTHETIC_CLASSES,  # noqa: F401  (tests import them
                                   override_args)                                      # from here)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                     if p and p != ROOT])
# OpenCV single-threaded in the test processes: a test process runs many things in turn, and a
# training pipeline worker forked from a process whose OpenCV pool has threads hangs for ever in
# cv2.setNumThreads (TrainTransform's first call): the pool's threads do not exist in the child.
# train.py forks its workers before any OpenCV work, so only a long-lived process meets this.
cv2.setNumThreads(1)

SYNTHETIC_TRAIN, SYNTHETIC_VAL, SYNTHETIC_SEED = 24, 8, 0
# Small images keep generation, conversion and the pipeline tests fast.
SYNTHETIC_OPTIONS = {"min_side": 96, "max_side": 192, "min_obj": 16, "max_obj": 64, "max_objects": 4}

SyntheticCoco = collections.namedtuple(
    "SyntheticCoco", ["root", "train_ann", "val_ann", "train_images", "val_images", "num_train", "num_val"])
ExportedSmall = collections.namedtuple("ExportedSmall", ["checkpoint", "dynamic", "fixed"])
SyntheticMindRecord = collections.namedtuple(
    "SyntheticMindRecord", ["root", "train_ann", "val_ann", "mindrecord_dir", "prefix", "num_images", "num_classes"])


def in_ci():
    """True when the environment variable CI is "true" (as CI services set it)."""
    return os.environ.get("CI", "").lower() == "true"


def missing(reason):
    """Skip the calling test for a missing prerequisite; fail it instead under CI=true."""
    if in_ci():
        pytest.fail("%s (CI=true: CI provides this, so its absence is an error)" % reason, pytrace=False)
    pytest.skip(reason)


def require_tool(name, why):
    """The path of the command ``name``; ``missing`` when it is not on PATH (``why``: what needs it)."""
    path = shutil.which(name)
    if path is None:
        missing("no '%s' command on PATH: %s" % (name, why))
    return path


def require_module(name, why):
    """The module ``name`` imported; ``missing`` when it cannot be imported (``why``: what needs it)."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing("cannot import %s (%s): %s" % (name, e, why))


def override_yaml(overrides):
    """A configuration file's text (one document of nested sections) holding an overrides dict."""
    nested = {}
    for key, value in overrides.items():
        *sections, name = key.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = list(value) if isinstance(value, tuple) else value
    return yaml.safe_dump(nested, default_flow_style=None, sort_keys=False)


def make_config(overrides=None, **kwargs):
    """Config from default_config.yaml with overrides.

    ``overrides`` maps dotted keys to values ({"dataset_config.max_objs": 8}); keyword
    arguments may spell the dots as double underscores (dataset_config__max_objs=8).
    """
    from src.model_utils.config import get_config
    items = dict(overrides or {})
    items.update({k.replace("__", "."): v for k, v in kwargs.items()})
    return get_config(override_args(items))


def small_config(overrides=None, **kwargs):
    """make_config on the small network (SMALL) plus ``overrides``."""
    return make_config(dict(SMALL, **(overrides or {})), **kwargs)


@pytest.fixture(name="make_config")
def make_config_fixture():
    """The make_config function: make_config({"train_config.batch_size": 2}, seed=1)."""
    return make_config


@pytest.fixture(name="small_config")
def small_config_fixture():
    """The small_config function: small_config({"net_config.head_conv": 32})."""
    return small_config


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


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory):
    """The small network (5 classes, randomised: deformable offsets of several pixels, 8x8 boxes) as a
    checkpoint and its export.py ONNX files: ``dynamic`` (free height/width) and ``fixed`` (SMALL_RES)."""
    import export as export_script
    from eval_helpers import small_checkpoint
    folder = tmp_path_factory.mktemp("small_onnx")
    ckpt = small_checkpoint(folder / "small.ckpt", randomise=True)
    options = dict(SMALL, **{"device_target": "CPU", "export_load_ckpt": ckpt, "export_format": "ONNX",
                             "export_config.input_res": SMALL_RES, "dataset_config.num_classes": SYNTHETIC_CLASSES})
    for name, dynamic in (("dynamic", True), ("fixed", False)):
        code = export_script.main(override_args(dict(options, export_name=str(folder / name),
                                                     export_dynamic_shape=dynamic)))
        assert code == 0, "export.py failed on the small network"
    return ExportedSmall(ckpt, str(folder / "dynamic.onnx"), str(folder / "fixed.onnx"))


@pytest.fixture
def two_hosts():
    """Two hosts as network namespaces joined by a veth pair (tools.netns.TwoHosts), removed at
    teardown with everything still running in them. Without root or iproute2: ``missing``."""
    from tools import netns
    try:
        hosts = netns.TwoHosts()
    except netns.NetnsError as e:
        missing("cannot make two hosts as network namespaces: %s" % e)
    with hosts:
        yield hosts


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size, read_only=False)``: a folder on a real tmpfs of ``size`` ("1m"), unmounted at
    teardown. Mounting needs root: ``missing`` otherwise."""
    import subprocess
    mounts = []

    def mount(size, read_only=False):
        folder = tmp_path / ("disk%d" % len(mounts))
        folder.mkdir()
        options = "size=%s%s" % (size, ",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                              text=True)
        if done.returncode:
            missing("cannot mount a tmpfs (needs root): %s" % done.stderr.strip())
        mounts.append(folder)
        return folder
    yield mount
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="session", autouse=True)
def mindspore_cpu():
    """Every test runs MindSpore on CPU in graph mode."""
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
