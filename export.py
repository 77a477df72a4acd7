"""Export the CenterNet eval network (decode included) to MINDIR, ONNX, or AIR on the Ascend backend.

    python export.py --device_target=CPU --export_load_ckpt=model.ckpt --export_format=MINDIR \
        --export_name=centernet
    python export.py --export_load_ckpt=model.ckpt --export_format=ONNX --export_name=centernet \
        [--export_dynamic_shape=true]
    python export.py --export_load_ckpt=model.ckpt --export_format=MINDIR --export_dynamic_shape=true

The exported graph takes one (1, 3, H, W) float32 image normalised as eval.py does, at
H, W = export_config.input_res (multiples of 32), and returns the (1, K, 6) detections
[x1, y1, x2, y2, score, class] on the output map (input / 4); flip_test=true exports the
flip-averaged network. The file is written to a temporary name and renamed when complete:
<export_name>.mindir (or .air, .onnx), under output_path on ModelArts. ONNX (opset 19, with
the standard DeformConv; written by src/deploy/onnx_export.py, needs the optional package onnx) and
MINDIR take any H, W (multiples of 32) with export_dynamic_shape=true (for keep_res inputs; the
Ascend 310 chain keeps the fixed shape).
"""
from src.model_utils import signals

if __name__ == "__main__":
    signals.install()  # before the imports below load MindSpore (src/model_utils/signals.py)

import logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import mindspore as ms  # noqa: E402
from mindspore import Tensor  # noqa: E402

from src.model_utils.file_io import atomic_path, prepare_output_folder  # noqa: E402
from src.infer.detector import (build_eval_network, dynamic_input, dynamic_shape_blocker,  # noqa: E402
                                exportable_with_dynamic_shape)
from src.model_utils.config import ConfigError, check_input_res  # noqa: E402
from src.model_utils.device_adapter import set_device  # noqa: E402
from src.model_utils.entry import entry_main  # noqa: E402
from src.utils import CheckpointError  # noqa: E402

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
    if cfg.export_dynamic_shape and fmt == "AIR":
        raise ConfigError("--export_dynamic_shape=true needs --export_format=MINDIR or ONNX: AIR models (the Ascend "
                          "310 chain) take a fixed export_config.input_res")
    blocker = dynamic_shape_blocker(cfg.net_config)
    if cfg.export_dynamic_shape and fmt == "MINDIR" and blocker:
        raise ConfigError("--export_dynamic_shape=true with MINDIR needs net_config.dcn_impl=gather (same weights): "
                          "%s" % blocker)
    check_input_res(cfg.export_config.input_res, "export_config.input_res")
    if not cfg.export_load_ckpt:
        raise ConfigError("--export_load_ckpt is required: the checkpoint to export")
    if not os.path.isfile(cfg.export_load_ckpt):
        raise CheckpointError("checkpoint not found: %s" % cfg.export_load_ckpt)
    if not cfg.export_name:
        raise ConfigError("--export_name must not be empty")
    if cfg.export_quantize != "none":
        if fmt != "ONNX":
            raise ConfigError("--export_quantize=%s needs --export_format=ONNX (the model ONNX Runtime quantizes)"
                              % cfg.export_quantize)
        from src.deploy.quantize import calibration_source, import_quantization
        import_quantization()
        calibration_source(cfg)


def export_path(cfg):
    """Target file: export_name + extension (under output_path on ModelArts when relative)."""
    name = cfg.export_name
    ext = EXTENSIONS[cfg.export_format]
    if name.lower().endswith(ext):
        name = name[:-len(ext)]
    if cfg.enable_modelarts and not os.path.isabs(name):
        name = os.path.join(cfg.output_path, name)
    return name + ext


def parameter_nbytes(net):
    """Bytes of the parameters of ``net``: about the size of its exported model."""
    return sum(int(p.data.nbytes) for p in net.get_parameters())


def export_network(net, path, example, file_format):
    """ms.export ``net`` for the input Tensor ``example`` (a value, or ``dynamic_input()`` for a free
    height/width) onto ``path`` through a hidden temporary beside it (src.model_utils.file_io.atomic_path)."""
    ext = EXTENSIONS[file_format]
    with atomic_path(path, suffix=ext, nbytes=parameter_nbytes(net), what="model",
                     setting="--export_name") as tmp:  # ms.export keeps a name that already ends in ext
        staging = None
        target = tmp
        if not MS_SAFE_FILE_NAME.match(tmp):
            # ms.export refuses names with other characters (a space, say): export into a temporary
            # folder of our own, then copy the file onto the temporary beside the target.
            staging = tempfile.mkdtemp(prefix="centernet_export_")
            target = os.path.join(staging, "model" + ext)
        try:
            ms.export(net, example, file_name=target, file_format=file_format)
            if not os.path.isfile(target):
                raise RuntimeError("ms.export wrote no %s file (expected %s)" % (file_format, target))
            if staging:
                shutil.copyfile(target, tmp)
        finally:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)
    return path


def run_export(cfg):
    """Export; the target folder is checked (writable, room for the parameters) before the export runs."""
    check_export_config(cfg)
    path = export_path(cfg)
    folder = os.path.dirname(os.path.abspath(path))
    prepare_output_folder(folder, "--export_name", create=False)
    calibration = None
    if cfg.export_quantize == "int8":  # read before anything is built or written: a bad source leaves no file
        from src.deploy.quantize import calibration_from_config
        from src.infer.detect import EvalSettings
        calibration = calibration_from_config(cfg, EvalSettings.for_export(cfg, cfg.export_dynamic_shape).prepare)
    set_device(cfg)
    num_classes = cfg.dataset_config.num_classes
    net = build_eval_network(cfg, num_classes, cfg.export_load_ckpt)
    prepare_output_folder(folder, "--export_name", need=parameter_nbytes(net), create=False)
    shape = (1, 3) + tuple(cfg.export_config.input_res)
    if cfg.export_format == "ONNX":
        from src.deploy.onnx_export import export_onnx
        export_onnx(net, path, cfg.export_config.input_res, cfg.export_dynamic_shape,
                    metadata={"num_classes": num_classes, "K": cfg.eval_config.K, "flip_test": cfg.flip_test})
        if calibration is not None:
            from src.deploy.quantize import int8_path, quantize_from_config
            quantize_from_config(cfg, path, int8_path(path), calibration)
    elif cfg.export_dynamic_shape:
        export_network(exportable_with_dynamic_shape(net), path, dynamic_input(), cfg.export_format)
    else:
        export_network(net, path, Tensor(np.zeros(shape, np.float32)), cfg.export_format)
    if cfg.export_dynamic_shape:
        shape = (1, 3, "height", "width")
    logger.info("exported %s (%.1f MB): input %s float32, output (1, %d, 6) detections; %d classes, flip_test=%s",
                path, os.path.getsize(path) / 2 ** 20, shape, cfg.eval_config.K, num_classes, cfg.flip_test)
    return path


def main(argv=None):
    return entry_main("export.py", run_export, argv)


if __name__ == "__main__":
    sys.exit(main())
