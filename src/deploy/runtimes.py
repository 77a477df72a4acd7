"""The runtimes that run an exported model, behind one interface: MINDIR (MindSpore) and ONNX (ONNX Runtime).

``open_model(path, runtime)`` returns a runner of the named runtime (None: chosen by the file's extension):

    runner.path        the model file
    runner.shape       its input shape, None for a dimension the model leaves free
    runner.dynamic     whether some dimension is free (export.py --export_dynamic_shape=true)
    runner.metadata    what export.py recorded in the model (num_classes, flip_test; {} for MINDIR)
    runner(array)      one float32 (1, 3, H, W) input -> the list of the model's output arrays
    runner.check_shape(shape, source)   a ValueError naming ``source`` when ``shape`` does not fit

The .bin runners of the Ascend 310 chain (tools/infer_mindir.py, tools/infer_onnx.py) and the
folder detector (src/infer/folder.py, ``--onnx_model``) use them; ``model_predictor`` adapts a
runner to the detection loop (src.infer.detect.detect_images). A runtime added later is one more
class with the same members and one more extension in ``RUNTIMES``.
"""
import os

import numpy as np

_MINDIR_DTYPES = {1: np.float32}  # mind_ir TensorProto.DataType FLOAT (the only input type our export produces)


def model_inputs(path):
    """[(name, shape, numpy dtype)] of a MINDIR's graph inputs, read from the model file (a protobuf).

    A dimension the model leaves free is stored as a negative size.
    """
    from mindspore.train.mind_ir_pb2 import ModelProto
    proto = ModelProto()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    found = []
    for item in proto.graph.input:
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

    def __init__(self, path):
        import mindspore as ms
        from mindspore import Tensor, nn
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
        self.net = nn.GraphCell(ms.load(path))
        if self.dynamic:
            # Without this a loaded dynamic-shape graph is compiled for the first input's shape only.
            self.net.set_inputs(Tensor(shape=list(self.shape), dtype=ms.float32))

    def __call__(self, inp):
        outputs = self.net(self._tensor(np.ascontiguousarray(inp, self.dtype)))
        return [o.asnumpy() for o in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))]


class OnnxModel(ExportedModel):
    """An ONNX Runtime session (CPU provider) of a model with one float32 image input."""

    dtype = np.float32

    def __init__(self, path, threads=0):
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


RUNTIMES = {".mindir": MindirModel, ".onnx": OnnxModel}
# The runtime names of the configuration key infer_runtime.
RUNTIME_CLASSES = {"mindspore": MindirModel, "onnxruntime": OnnxModel}


def open_model(path, runtime=None, **options):
    """The runner of an exported model on ``runtime`` (a ``RUNTIME_CLASSES`` name; None: by extension, ``RUNTIMES``)."""
    if runtime is not None:
        if runtime not in RUNTIME_CLASSES:
            raise ValueError("%s: unknown runtime %r (expected one of %s)"
                             % (path, runtime, ", ".join(sorted(RUNTIME_CLASSES))))
        return RUNTIME_CLASSES[runtime](path, **options)
    cls = RUNTIMES.get(os.path.splitext(path)[1].lower())
    if cls is None:
        raise ValueError("%s: unknown model format (expected one of %s)" % (path, ", ".join(sorted(RUNTIMES))))
    return cls(path, **options)


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
