"""The network of a detection run: the checkpoint in MindSpore, or an exported model on a runtime.

eval.py and tools/detect_images.py choose it with the configuration keys ``infer_runtime``
(mindspore | onnxruntime | openvino), ``infer_model`` (the exported file) and ``infer_precision``;
``onnx_model=F`` is the shorthand of ``infer_runtime=onnxruntime infer_model=F``. With
``infer_runtime=mindspore`` and no ``infer_model`` the checkpoint (``load_checkpoint_path``) runs as
``Detector`` (src/infer/detector.py); any other choice opens the exported model through
src/deploy/runtimes.py. Either way the run's pre-processing, detection loop and post-processing
(src/infer/detect.py) are the same, so the records of two runtimes differ only by their arithmetic.

Everything an exported model cannot honour is a ConfigError raised before any image is read: a
fixed-shape model takes exactly its own input shape (keep_res, several test scales or another
input_res_test need a dynamic-shape export), its recorded class count and flip_test must match.
"""
import collections
import logging
import os
import time

import numpy as np

from src.deploy.runtimes import FORMATS, check_recorded, open_model
from src.model_utils.config import ConfigError

logger = logging.getLogger(__name__)

RUNTIME_LABELS = {"mindspore": "MindSpore", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
DYNAMIC_EXPORT = "export with --export_dynamic_shape=true"

ModelChoice = collections.namedtuple("ModelChoice", "runtime model checkpoint precision")


def model_choice(cfg):
    """The run's ModelChoice(runtime, exported model or "", checkpoint or "", precision), checked.

    Raises a ConfigError naming the keys for a missing model, two models at once, a file the
    runtime does not read, or a precision the runtime does not offer.
    """
    runtime, model, precision = cfg.infer_runtime, cfg.infer_model, cfg.infer_precision
    if cfg.onnx_model:
        if model or runtime == "openvino":
            raise ConfigError("--onnx_model=%s is the shorthand of --infer_runtime=onnxruntime --infer_model=%s: "
                              "give either, not both" % (cfg.onnx_model, cfg.onnx_model))
        runtime, model = "onnxruntime", cfg.onnx_model
    if model and cfg.load_checkpoint_path:
        raise ConfigError("both --infer_model=%s and --load_checkpoint_path=%s are set: a run uses one model, "
                          "clear the other" % (model, cfg.load_checkpoint_path))
    if not model:
        if runtime != "mindspore":
            raise ConfigError("--infer_runtime=%s runs an exported model: set --infer_model=<model%s> (export.py "
                              "--export_format=ONNX)" % (runtime, FORMATS[runtime][0]))
        if not cfg.load_checkpoint_path:
            raise ConfigError("--load_checkpoint_path is required (or --infer_model with --infer_runtime): "
                              "the model to run")
    else:
        extension = os.path.splitext(model)[1].lower()
        if extension not in FORMATS[runtime]:
            readers = [name for name, formats in FORMATS.items() if extension in formats]
            raise ConfigError("--infer_model=%s: --infer_runtime=%s reads %s files%s" % (
                model, runtime, "/".join(FORMATS[runtime]),
                ("; set --infer_runtime=%s" % " or ".join(readers)) if readers else ""))
        if not os.path.isfile(model):
            raise ConfigError("--infer_model=%s: no such file" % model)
    if precision != "fp32" and runtime != "openvino":
        raise ConfigError("--infer_precision=%s runs on OpenVINO only: set --infer_runtime=openvino (with an "
                          "exported .onnx --infer_model) or --infer_precision=fp32" % precision)
    return ModelChoice(runtime, model, "" if model else cfg.load_checkpoint_path, precision)


def describe(choice):
    """One line naming the run's model: 'ONNX Runtime (fp32): /abs/model.onnx'."""
    if not choice.model:
        return "MindSpore: checkpoint %s" % choice.checkpoint
    return "%s (%s): %s" % (RUNTIME_LABELS[choice.runtime], choice.precision, choice.model)


class ExportedDetector:
    """An exported model as the detection loop's predictor: (1, 3, H, W) float32 -> (K, 6), timed.

    The members eval.py reports are Detector's: ``forward_s`` (every call but the warm-up),
    ``compile_s`` (the warm-up call, where a runtime prepares its kernels), ``shapes`` (the
    input shapes seen), ``graphs_compiled`` (0: the runtime takes every shape its model allows),
    ``dynamic`` (the model leaves height and width free).
    """

    graphs_compiled = 0

    def __init__(self, runner):
        self.runner = runner
        self.dynamic = runner.dynamic
        self.shapes = set()
        self.compile_s = 0.0
        self.forward_s = 0.0
        self.calls = 0

    def __call__(self, inp):
        self.runner.check_shape(inp.shape, "the pre-processed input")
        start = time.perf_counter()
        dets = self.runner(inp)[0][0]
        self.forward_s += time.perf_counter() - start
        self.shapes.add(tuple(inp.shape))
        self.calls += 1
        return dets

    def warmup(self, shape):
        """One call on zeros of ``shape`` outside the loop, counted in ``compile_s``; returns its seconds."""
        start = time.perf_counter()
        self.runner(np.zeros(shape, np.float32))
        seconds = time.perf_counter() - start
        self.compile_s += seconds
        return seconds


def check_fixed_shape(runner, settings, shapes):
    """ConfigError unless every input of the run (``shapes``: expected_shapes) is the fixed-shape model's."""
    if runner.dynamic:
        return
    wanted = tuple(runner.shape)
    if settings.keep_res:
        raise ConfigError("%s takes one input shape %s: eval_config.keep_res=true feeds every image at its own "
                          "size: %s, or set --eval_config.keep_res=false" % (runner.path, wanted, DYNAMIC_EXPORT))
    if len(settings.scales) > 1:
        raise ConfigError("%s takes one input shape %s: eval_config.multi_scales=%s gives one shape per scale: %s"
                          % (runner.path, wanted, settings.scales, DYNAMIC_EXPORT))
    for shape in shapes or ():
        if tuple(shape) != wanted:
            raise ConfigError("%s takes input shape %s but dataset_config.input_res_test=%s gives %s: set "
                              "--dataset_config.input_res_test=[%d,%d] or %s" % (
                                  runner.path, wanted, settings.input_res, tuple(shape), wanted[2], wanted[3],
                                  DYNAMIC_EXPORT))


def open_exported(choice, threads=0):
    """The runner of ``choice``'s exported model (src/deploy/runtimes.py)."""
    options = {"precision": choice.precision}
    if choice.runtime != "mindspore":
        options["threads"] = threads
    return open_model(choice.model, runtime=choice.runtime, **options)


def build_predictor(cfg, settings, entries, choice):
    """The predictor of ``choice`` for ``entries``: the checkpoint's Detector, or an ExportedDetector
    whose model fits the run (``check_fixed_shape``, ``check_recorded``), warmed up on the first input shape."""
    from src.infer.detector import build_detector, expected_shapes
    from src.model_utils.device_adapter import set_device
    if choice.runtime == "mindspore":
        set_device(cfg)  # the checkpoint's network or a MINDIR's GraphCell runs on the configured device
    if not choice.model:
        return build_detector(cfg, settings, entries, choice.checkpoint)
    runner = open_exported(choice)
    check_recorded(runner, settings.num_classes, cfg.flip_test)
    shapes = expected_shapes(entries, settings)
    check_fixed_shape(runner, settings, shapes)
    detector = ExportedDetector(runner)
    first = shapes.most_common(1)[0][0] if shapes else (tuple(runner.shape) if not runner.dynamic
                                                        else settings.input_shape(512, 512))
    seconds = detector.warmup(first)
    logger.info("%s: %s input shape, first call %.2f s", describe(choice),
                "dynamic" if runner.dynamic else "fixed %s" % (tuple(runner.shape),), seconds)
    return detector
