"""The runtimes that run an exported model, behind one interface: MINDIR (MindSpore), ONNX (ONNX Runtime
or OpenVINO).

``open_model(path, runtime=None, precision="fp32")`` returns a runner; the runtime is ``mindspore``,
``onnxruntime`` or ``openvino`` (``RUNTIMES``), by default the one of the file's extension
(.mindir: mindspore, .onnx: onnxruntime). Its members:

    runner.path        the model file
    runner.shape       its input shape, None for a dimension the model leaves free
    runner.dynamic     whether some dimension is free (export.py --export_dynamic_shape=true)
    runner.metadata    what export.py recorded in the model (num_classes, flip_test; {} for MINDIR)
    runner(array)      one float32 (1, 3, H, W) input -> the list of the model's output arrays
    runner.check_shape(shape, source)   a ValueError naming ``source`` when ``shape`` does not fit

The .bin runners of the Ascend 310 chain (tools/infer_mindir.py, tools/infer_onnx.py) and
eval.py / tools/detect_images.py (src/infer/predictor.py, ``--infer_runtime``) use them;
``model_predictor`` is the plain adapter of a runner to the detection loop (the benchmarks). A runtime added later is one more
class with the same members and one more entry in ``RUNTIMES``.

Precision (``PRECISIONS``, configuration key ``infer_precision``): every runtime computes in
fp32; OpenVINO also in bf16 on a CPU that has it natively (``bf16_supported``), and refuses
bf16 elsewhere rather than silently running fp32 or a slow emulation. An int8 model is a
property of the file (a quantized ONNX), which ONNX Runtime and OpenVINO both run.

OpenVINO reads the project's ONNX directly: its ONNX reader has no rule for the standard
DeformConv (opset 19), so ``deform_conv_extension`` maps that node to OpenVINO's
DeformableConvolution (opset 8) at load time. No OpenVINO IR file is written or read: converting
the ONNX at load costs little next to OpenVINO's compilation and keeps one deployable file.
"""
import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")

_MINDIR_DTYPES = {1: np.float32}  # mind_ir TensorProto.DataType FLOAT (the only input type our export produces)


_MINDIR_PRODUCER = "MindSpore"  # the producer_name of every model ms.export writes


def not_a_mindir(path, reason):
    """The ValueError for a file given as a MINDIR that is not one (an ONNX model, garbage)."""
    return ValueError("%s is not a MINDIR (%s): give the .mindir file export.py wrote (an ONNX model runs with "
                      "tools/infer_onnx.py)" % (path, reason))


def model_inputs(path):
    """[(name, shape, numpy dtype)] of a MINDIR's graph inputs, read from the model file (a protobuf).

    A dimension the model leaves free is stored as a negative size. A file that is no MindSpore
    model protobuf (an ONNX model, garbage) raises ``not_a_mindir``.
    """
    from google.protobuf.message import DecodeError
    from mindspore.train.mind_ir_pb2 import ModelProto
    proto = ModelProto()
    with open(path, "rb") as f:
        data = f.read()
    try:
        proto.ParseFromString(data)
    except DecodeError as err:
        raise not_a_mindir(path, "not a MindSpore model protobuf: %s" % str(err).rstrip(".")) from err
    if proto.producer_name != _MINDIR_PRODUCER:
        raise not_a_mindir(path, "producer %r, not %s" % (proto.producer_name, _MINDIR_PRODUCER))
    found = []
    for item in proto.graph.input:
        if not item.tensor:
            raise not_a_mindir(path, "graph input %r describes no tensor" % item.name)
        tensor = item.tensor[0]
        dtype = _MINDIR_DTYPES.get(tensor.data_type)
        if dtype is None:
            raise ValueError("%s: input %s has data type %d, only float32 is supported"
                             % (path, item.name, tensor.data_type))
        found.append((item.name, tuple(int(d) for d in tensor.dims), dtype))
    return found


def is_dynamic(shape):
    """Whether a model input shape leaves some dimension free (None, or a negative size in a MINDIR)."""
    return any(d is None or d < 0 for d in shape)


def check_precision(runtime, precision, available):
    """A ValueError naming the runtime when it cannot compute in ``precision``."""
    if precision not in PRECISIONS:
        raise ValueError("unknown precision %r (infer_precision takes %s)" % (precision, " or ".join(PRECISIONS)))
    if precision not in available:
        raise ValueError("runtime %s computes in %s only, not %s: set infer_precision=%s, or run %s on openvino "
                         "(an int8 model is a quantized .onnx file, run at fp32)"
                         % (runtime, " or ".join(available), precision, available[0], precision))


class ExportedModel:
    """What every runtime shares: the input shape check."""

    path = ""
    shape = ()
    metadata = {}

    @property
    def dynamic(self):
        return is_dynamic(self.shape)

    def check_shape(self, shape, source):
        """Raise a ValueError naming ``source`` when ``shape`` does not fit the model's input."""
        if len(shape) != len(self.shape) or any(m is not None and m != s for m, s in zip(self.shape, shape)):
            wanted = tuple("?" if m is None else m for m in self.shape)
            raise ValueError("%s has shape %s but %s takes %s (export with --export_dynamic_shape=true for "
                             "other sizes)" % (source, tuple(shape), self.path, wanted))


class MindirModel(ExportedModel):
    """A MINDIR loaded as a MindSpore GraphCell (the device is set by the caller: set_device)."""

    def __init__(self, path, precision="fp32"):
        import mindspore as ms
        from mindspore import Tensor, nn
        check_precision("mindspore", precision, ("fp32",))
        if not os.path.isfile(path):
            raise FileNotFoundError("MINDIR not found: %s" % path)
        inputs = model_inputs(path)
        if len(inputs) != 1:
            raise ValueError("%s has %d inputs; this runner feeds one" % (path, len(inputs)))
        _, shape, self.dtype = inputs[0]
        self.path = path
        self.shape = tuple(d if d >= 0 else None for d in shape)
        self.metadata = {}
        self._tensor = Tensor
        try:
            self.net = nn.GraphCell(ms.load(path))
        except (RuntimeError, ValueError, TypeError) as err:
            raise RuntimeError("MindSpore cannot load %s: %s" % (path, str(err).strip().splitlines()[0])) from err
        if self.dynamic:
            # Without this a loaded dynamic-shape graph is compiled for the first input's shape only.
            self.net.set_inputs(Tensor(shape=list(self.shape), dtype=ms.float32))

    def __call__(self, inp):
        outputs = self.net(self._tensor(np.ascontiguousarray(inp, self.dtype)))
        return [o.asnumpy() for o in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))]


class OnnxModel(ExportedModel):
    """An ONNX Runtime session (CPU provider) of a model with one float32 image input."""

    dtype = np.float32

    def __init__(self, path, threads=0, precision="fp32"):
        check_precision("onnxruntime", precision, ("fp32",))
        try:
            import onnxruntime
        except ImportError as err:
            raise RuntimeError("running ONNX models needs the optional package onnxruntime: pip install "
                               "onnxruntime (the tested version is in requirements-test.txt)") from err
        if not os.path.isfile(path):
            raise FileNotFoundError("ONNX model not found: %s" % path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001  (onnxruntime raises its own exception types)
            raise RuntimeError("ONNX Runtime cannot load %s: %s" % (path, str(err).splitlines()[0])) from err
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            raise ValueError("%s must have one float32 input, has %s" % (path, [(i.name, i.type) for i in inputs]))
        self.path = path
        self.input_name = inputs[0].name
        self.shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, inp):
        """float32 array -> list of output arrays."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(inp, np.float32)})


def import_openvino():
    """The ``openvino`` module, or a one-line error saying what to install."""
    try:
        import openvino
    except ImportError as err:
        raise RuntimeError("running models on OpenVINO needs the optional package openvino: pip install openvino "
                           "(the tested version is in requirements-test.txt)") from err
    return openvino


def openvino_cpu_capabilities():
    """OpenVINO's CPU device OPTIMIZATION_CAPABILITIES (e.g. FP32, BF16, INT8)."""
    return list(import_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def bf16_supported():
    """Whether this CPU runs bf16 natively (AVX512-BF16 or AMX), as OpenVINO's CPU device reports it."""
    return "BF16" in openvino_cpu_capabilities()


def deform_conv_extension(bilinear_interpolation_pad=True):
    """OpenVINO ConversionExtension mapping ONNX DeformConv (opset 19) to DeformableConvolution (opset 8).

    Both take the offsets as (y, x) pairs per kernel point and deformable group, and the mask
    as its own input; ONNX's optional bias is added after the convolution. ONNX samples a point
    outside the input by bilinear interpolation with zeros beyond the border (as MindSpore's
    deformable convolution): OpenVINO does so with ``bilinear_interpolation_pad=True``, while
    its default (False) zeroes every point within one pixel outside the input.
    ``bilinear_interpolation_pad=False`` is only for showing that the flag matters.
    """
    import openvino.opset8 as opset8
    import openvino.opset13 as opset13
    from openvino.frontend import ConversionExtension

    def convert(node):
        inputs = [node.get_input(i) for i in range(node.get_input_size())]
        if len(inputs) < 3:
            raise ValueError("DeformConv needs inputs X, W and offset, has %d" % len(inputs))
        data, weight, offset = inputs[:3]
        bias = inputs[3] if len(inputs) > 3 else None
        mask = inputs[4] if len(inputs) > 4 else None
        kernel = weight.get_partial_shape()
        spatial = kernel.rank.get_length() - 2
        pads = list(node.get_attribute("pads", [0] * 2 * spatial))
        out = opset8.deformable_convolution(
            data, offset, weight, strides=list(node.get_attribute("strides", [1] * spatial)),
            pads_begin=pads[:spatial], pads_end=pads[spatial:],
            dilations=list(node.get_attribute("dilations", [1] * spatial)), mask=mask,
            group=int(node.get_attribute("group", 1)), deformable_group=int(node.get_attribute("offset_group", 1)),
            bilinear_interpolation_pad=bilinear_interpolation_pad)
        if bias is not None:
            shape = opset13.constant(np.array([1, -1] + [1] * spatial, np.int64))
            out = opset13.add(out, opset13.reshape(bias, shape, special_zero=False))
        return out.outputs()

    return ConversionExtension("DeformConv", convert)


def _onnx_metadata(path):
    """export.py's metadata of an ONNX file (its metadata_props), read with the onnx package
    (OpenVINO does not keep them)."""
    try:
        import onnx
    except ImportError as err:
        raise RuntimeError("reading an ONNX model's metadata needs the optional package onnx: pip install onnx (the "
                           "tested version is in requirements-test.txt)") from err
    return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}


class OpenVinoModel(ExportedModel):
    """The project's ONNX compiled by OpenVINO for the CPU, in fp32 or (where the CPU has it) bf16.

    ``precision`` is OpenVINO's INFERENCE_PRECISION_HINT, set explicitly: on a CPU with bf16
    OpenVINO's own default is bf16. ``threads`` 0 lets OpenVINO choose.
    """

    dtype = np.float32

    def __init__(self, path, threads=0, precision="fp32", **convert_options):
        check_precision("openvino", precision, PRECISIONS)
        ov = import_openvino()
        if not os.path.isfile(path):
            raise FileNotFoundError("ONNX model not found: %s" % path)
        if precision == "bf16" and not bf16_supported():
            raise ValueError("infer_precision=bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX); OpenVINO "
                             "reports %s for this one: set infer_precision=fp32"
                             % "/".join(openvino_cpu_capabilities()))
        # OpenVINO's ONNX reader, as ov.convert_model(path, extension=[...]) uses it, in a fraction of the time
        # (0.1 s instead of 2 s for the small network) and without trying other frameworks' readers on a bad file.
        from openvino.frontend import FrontEndManager
        reader = FrontEndManager().load_by_framework("onnx")
        reader.add_extension(deform_conv_extension(**convert_options))
        try:
            model = reader.convert(reader.load(path))
        except Exception as err:  # noqa: BLE001  (OpenVINO raises its own exception types)
            raise RuntimeError("OpenVINO cannot load %s as ONNX: %s" % (path, _last_line(err))) from err
        if len(model.inputs) != 1 or model.input(0).get_element_type() != ov.Type.f32:
            raise ValueError("%s must have one float32 input, has %s" % (path, [str(i) for i in model.inputs]))
        config = {"INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision],
                  "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.path = path
        self.precision = precision
        self.shape = tuple(d.get_length() if d.is_static else None for d in model.input(0).get_partial_shape())
        self.metadata = _onnx_metadata(path)
        self.compiled = ov.Core().compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, inp):
        """float32 array -> list of output arrays (copies: the request reuses its buffers)."""
        self.request.infer([np.ascontiguousarray(inp, np.float32)])
        return [self.request.get_output_tensor(i).data.copy() for i in range(len(self.compiled.outputs))]


def _last_line(err):
    """The last line of an OpenVINO error, the one saying what is wrong (the first ones name its source files)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


RUNTIMES = {"mindspore": MindirModel, "onnxruntime": OnnxModel, "openvino": OpenVinoModel}
# The model formats each runtime reads, the first being the runtime chosen for that extension by default.
FORMATS = {"mindspore": (".mindir",), "onnxruntime": (".onnx",), "openvino": (".onnx",)}


def open_model(path, runtime=None, **options):
    """The runner of an exported model on ``runtime`` (``RUNTIMES``; None: by the file's extension)."""
    ext = os.path.splitext(path)[1].lower()
    if runtime is None:
        runtime = next((name for name, exts in FORMATS.items() if ext in exts), None)
        if runtime is None:
            raise ValueError("%s: unknown model format (expected one of %s)"
                             % (path, ", ".join(sorted({e for exts in FORMATS.values() for e in exts}))))
    elif runtime not in RUNTIMES:
        raise ValueError("unknown runtime %r (expected one of %s)" % (runtime, ", ".join(RUNTIMES)))
    elif ext not in FORMATS[runtime]:
        readers = [name for name, exts in FORMATS.items() if ext in exts]
        raise ValueError("%s: runtime %s reads %s models, not %s: export it with export.py --export_format=%s%s"
                         % (path, runtime, " or ".join(FORMATS[runtime]), ext or "this file",
                            FORMATS[runtime][0][1:].upper(),
                            ", or choose runtime " + " or ".join(readers) if readers else ""))
    return RUNTIMES[runtime](path, **options)


def check_recorded(runner, num_classes, flip_test):
    """The model's recorded class count and flip_test (export.py's metadata, when the format keeps it)
    must match the configuration, since post-processing relies on both: a ValueError saying what to do."""
    recorded = {"num_classes": str(num_classes), "flip_test": str(bool(flip_test))}
    for key, value in recorded.items():
        if key in runner.metadata and runner.metadata[key] != value:
            raise ValueError("%s was exported with %s=%s but the configuration has %s: export it again or set "
                             "--%s" % (runner.path, key, runner.metadata[key], value,
                                       "dataset_config.num_classes" if key == "num_classes" else key))


def model_predictor(path, num_classes, flip_test, runtime=None, **options):
    """predict(input (1, 3, H, W)) -> (K, 6) detections of an exported model, for the detection loop
    (``check_recorded`` first)."""
    runner = open_model(path, runtime, **options)
    check_recorded(runner, num_classes, flip_test)

    def predict(inp):
        runner.check_shape(inp.shape, "the pre-processed input")
        return runner(inp)[0][0]
    return predict
