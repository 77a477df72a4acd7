"""Export the CenterNet eval network (decode included) to MINDIR, ONNX, or AIR on the Ascend backend.

    python export.py --device_target=CPU --export_load_ckpt=model.ckpt --export_format=MINDIR \
        --export_name=centernet
    python export.py --export_load_ckpt=model.ckpt --export_format=ONNX --export_name=centernet \
        [--export_dynamic_shape=true]

The exported graph takes one (1, 3, H, W) float32 image normalised as eval.py does, at
H, W = export_config.input_res (multiples of 32), and returns the (1, K, 6) detections
[x1, y1, x2, y2, score, class] on the output map (input / 4); flip_test=true exports the
flip-averaged network. The file is written to a temporary name and renamed when complete:
<export_name>.mindir (or .air, .onnx), under output_path on ModelArts. ONNX (opset 19, with
the standard DeformConv; written by src/onnx_export.py, needs the optional package onnx) may
take any H, W (multiples of 32) with export_dynamic_shape=true.
"""
import glob
import logging
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import mindspore as ms
from mindspore import Tensor

from src.inference import build_eval_network
from src.model_utils.config import ConfigError, get_config
from src.model_utils.device_adapter import get_device_id
from src.model_utils.moxing_adapter import moxing_wrapper
from src.model_utils.entry import setup_logging
from src.utils import CheckpointError

logger = logging.getLogger("export")

EXTENSIONS = {"MINDIR": ".mindir", "AIR": ".air", "ONNX": ".onnx"}
# The file names ms.export accepts (it checks this pattern and refuses others).
MS_SAFE_FILE_NAME = re.compile(r"^[0-9a-zA-Z@_\-.:/\\]+$")


def check_export_config(cfg):
    """Reject what cannot be exported before anything is built or written."""
    fmt = cfg.export_format
    if fmt not in EXTENSIONS:
        raise ConfigError("--export_format=%s is not supported: use MINDIR (any backend), ONNX or AIR (Ascend)" % fmt)
    if fmt == "AIR" and cfg.device_target != "Ascend":
        raise ConfigError("--export_format=AIR needs the Ascend backend (--device_target=Ascend); on %s export "
                          "MINDIR, which the Ascend 310 also runs" % cfg.device_target)
    if cfg.export_dynamic_shape and fmt != "ONNX":
        raise ConfigError("--export_dynamic_shape=true needs --export_format=ONNX (%s graphs here have a fixed "
                          "input shape)" % fmt)
    res = list(cfg.export_config.input_res)
    if len(res) != 2 or any(r <= 0 or r % 32 for r in res):
        raise ConfigError("export_config.input_res must be [h, w], positive multiples of 32, got %r" % (res,))
    if not cfg.export_load_ckpt:
        raise ConfigError("--export_load_ckpt is required: the checkpoint to export")
    if not os.path.isfile(cfg.export_load_ckpt):
        raise CheckpointError("checkpoint not found: %s" % cfg.export_load_ckpt)
    if not cfg.export_name:
        raise ConfigError("--export_name must not be empty")


def export_path(cfg):
    """Target file: export_name + extension (under output_path on ModelArts when relative)."""
    name = cfg.export_name
    ext = EXTENSIONS[cfg.export_format]
    if name.lower().endswith(ext):
        name = name[:-len(ext)]
    if cfg.enable_modelarts and not os.path.isabs(name):
        name = os.path.join(cfg.output_path, name)
    return name + ext


def export_network(net, path, input_shape, file_format):
    """ms.export ``net`` to a hidden temporary beside ``path``, then rename it onto ``path``."""
    folder, base = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    ext = EXTENSIONS[file_format]
    tmp_base = os.path.join(folder, ".%s.tmp-%d" % (base[:-len(ext)], os.getpid()))
    staging = None
    export_base = tmp_base
    if not MS_SAFE_FILE_NAME.match(tmp_base):
        # ms.export refuses names with other characters (a space, say): export into a temporary
        # folder of our own, then copy the file beside the target before the final rename.
        staging = tempfile.mkdtemp(prefix="centernet_export_")
        export_base = os.path.join(staging, "model")
    try:
        ms.export(net, Tensor(np.zeros(input_shape, np.float32)), file_name=export_base, file_format=file_format)
        written = export_base + ext
        if not os.path.isfile(written):
            raise RuntimeError("ms.export wrote no %s file (expected %s)" % (file_format, written))
        if staging:
            shutil.copyfile(written, tmp_base + ext)
            written = tmp_base + ext
        os.replace(written, path)
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        for leftover in glob.glob(glob.escape(tmp_base) + "*"):
            if os.path.isfile(leftover):
                os.remove(leftover)
    return path


def run_export(cfg):
    check_export_config(cfg)
    ms.set_context(mode=ms.GRAPH_MODE)
    if cfg.device_target == "CPU":
        ms.set_device("CPU")
    else:
        ms.set_device(cfg.device_target, get_device_id(cfg) if cfg.enable_modelarts else cfg.device_id)
    num_classes = cfg.dataset_config.num_classes
    net = build_eval_network(cfg, num_classes, cfg.export_load_ckpt)
    shape = (1, 3) + tuple(cfg.export_config.input_res)
    path = export_path(cfg)
    if cfg.export_format == "ONNX":
        from src.onnx_export import export_onnx
        if cfg.export_dynamic_shape:
            shape = (1, 3, "height", "width")
        export_onnx(net, path, cfg.export_config.input_res, cfg.export_dynamic_shape,
                    metadata={"num_classes": num_classes, "K": cfg.eval_config.K, "flip_test": cfg.flip_test})
    else:
        export_network(net, path, shape, cfg.export_format)
    logger.info("exported %s (%.1f MB): input %s float32, output (1, %d, 6) detections; %d classes, flip_test=%s",
                path, os.path.getsize(path) / 2 ** 20, shape, cfg.eval_config.K, num_classes, cfg.flip_test)
    return path


def main(argv=None):
    setup_logging()
    try:
        cfg = get_config(argv, script="export.py")
        setup_logging(cfg.log_level)
        moxing_wrapper(cfg)(run_export)(cfg)
    except (ConfigError, CheckpointError, OSError, ValueError, RuntimeError) as err:
        logger.error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
