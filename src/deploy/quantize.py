"""int8 post-training quantization of the exported ONNX model (ONNX Runtime's static QDQ quantizer).

``quantize_onnx`` runs ``onnxruntime.quantization.quant_pre_process`` (shape inference and graph
clean-up) then ``quantize_static``: per-channel int8 weights and per-tensor activations for the
Conv, ConvTranspose and MatMul nodes, written as QuantizeLinear/DequantizeLinear pairs (QDQ), which
ONNX Runtime fuses into integer kernels (VNNI/AMX on CPUs that have them). The activation ranges
come from calibration inputs: real images pre-processed exactly as the detection loop does
(``src.infer.detect.EvalSettings.prepare``), drawn from the training MindRecord or an image folder
(``mindrecord_calibration``, ``folder_calibration``).

What stays float:

- the three ``DeformConv`` nodes (ONNX Runtime has no integer kernel for them; their input is the
  dequantized output of the layer before, their weights stay float);
- with ``float_offsets`` (the default) the convolutions that compute the DCN offsets and masks:
  an offset error moves the sampling point of every kernel tap, which costs more than the int8
  error of an ordinary convolution (bench/bench_int8_accuracy.py measures both);
- with ``float_heads`` the head convolutions (after the last transposed convolution);
- the decode (sigmoid, max-pool, TopK, gathers) is not quantized at all.

The output keeps export.py's metadata (num_classes, flip_test, K) so
``src.deploy.runtimes.model_predictor`` still checks it, and adds ``quantization``. It is written
atomically: a failure leaves no file.
"""
import collections
import itertools
import logging
import os
import tempfile

import numpy as np

from src.model_utils.file_io import atomic_path

logger = logging.getLogger(__name__)

QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul")
ACTIVATION_TYPES = ("uint8", "int8")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
PRODUCER = "centernet-mindspore"  # src/deploy/onnx_export.py's producer_name

QuantizeSummary = collections.namedtuple(
    "QuantizeSummary", "path quantized float_nodes calibration_images size_bytes float_size_bytes")


def import_quantization():
    """``onnx`` and ``onnxruntime.quantization``, or a one-line error saying what to install."""
    try:
        import onnx
        import onnxruntime.quantization as quantization
    except ImportError as err:
        raise RuntimeError("int8 quantization needs the optional packages onnx and onnxruntime: pip install onnx "
                           "onnxruntime (the tested versions are in requirements-test.txt)") from err
    return onnx, quantization


def check_project_model(model, path):
    """Raise a ValueError unless ``model`` is an ONNX written by this project's export (and not yet quantized)."""
    metadata = {p.key: p.value for p in model.metadata_props}
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if model.producer_name != PRODUCER or "num_classes" not in metadata or inputs != ["image"]:
        raise ValueError("%s is not a CenterNet ONNX of this project (export one with export.py "
                         "--export_format=ONNX)" % path)
    if "quantization" in metadata or any(n.op_type == "QuantizeLinear" for n in model.graph.node):
        raise ValueError("%s is already quantized (%s): quantize the float model" % (path, metadata.get(
            "quantization", "QuantizeLinear nodes")))
    return metadata


def _producers(graph):
    return {out: node for node in graph.node for out in node.output}


def offset_convs(graph):
    """Names of the Conv nodes that compute DeformConv offsets and masks (through Split / Sigmoid)."""
    producers = _producers(graph)
    found = set()
    for node in graph.node:
        if node.op_type != "DeformConv":
            continue
        pending = [node.input[2]] + ([node.input[4]] if len(node.input) > 4 and node.input[4] else [])
        while pending:
            source = producers.get(pending.pop())
            if source is None:
                continue
            if source.op_type == "Conv":
                found.add(source.name)
            elif source.op_type in ("Split", "Sigmoid", "Identity"):
                pending.append(source.input[0])
    return found


def head_convs(graph):
    """Names of the Conv nodes after the last ConvTranspose: the hm / wh / reg heads."""
    names = [n.name for n in graph.node]
    last_up = max((i for i, n in enumerate(graph.node) if n.op_type == "ConvTranspose"), default=-1)
    return {names[i] for i in range(last_up + 1, len(names)) if graph.node[i].op_type == "Conv"}


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over float32 (1, 3, H, W) inputs."""

    def __init__(self, inputs, name):
        self.inputs = iter(inputs)
        self.name = name
        self.count = 0

    def get_next(self):
        inp = next(self.inputs, None)
        if inp is None:
            return None
        inp = np.asarray(inp)
        if inp.dtype != np.float32 or inp.ndim != 4 or inp.shape[:2] != (1, 3):
            raise ValueError("calibration input %d is %s %s, expected float32 (1, 3, H, W)"
                             % (self.count, inp.dtype, inp.shape))
        self.count += 1
        return {self.name: inp}


def quantize_onnx(model_path, out_path, calibration_inputs, activation_type="uint8", calibration="minmax",
                  float_offsets=True, float_heads=False, percentile=99.999):
    """Write the int8 QDQ model of the float ONNX ``model_path`` to ``out_path``; returns a QuantizeSummary.

    calibration_inputs: an iterable of float32 (1, 3, H, W) network inputs (at least one).
    activation_type: uint8 (ONNX Runtime's x86 integer kernels take unsigned activations and
    signed weights) or int8. calibration: minmax, percentile (``percentile`` of |x|) or entropy.
    float_offsets / float_heads keep the DCN offset-and-mask convolutions / the heads in float.
    """
    onnx, quantization = import_quantization()
    if activation_type not in ACTIVATION_TYPES:
        raise ValueError("activation_type must be one of %s, got %r" % (ACTIVATION_TYPES, activation_type))
    if calibration not in CALIBRATION_METHODS:
        raise ValueError("calibration must be one of %s, got %r" % (CALIBRATION_METHODS, calibration))
    if not os.path.isfile(model_path):
        raise FileNotFoundError("ONNX model not found: %s" % model_path)
    try:
        model = onnx.load(model_path)
    except Exception as err:  # noqa: BLE001  (onnx raises protobuf's DecodeError and others)
        raise ValueError("%s is not a readable ONNX model: %s" % (model_path, str(err).splitlines()[0])) from err
    metadata = check_project_model(model, model_path)
    keep_float = offset_convs(model.graph) if float_offsets else set()
    if float_heads:
        keep_float |= head_convs(model.graph)
    method = {"minmax": quantization.CalibrationMethod.MinMax, "percentile": quantization.CalibrationMethod.Percentile,
              "entropy": quantization.CalibrationMethod.Entropy}[calibration]
    qtype = {"uint8": quantization.QuantType.QUInt8, "int8": quantization.QuantType.QInt8}
    inputs = iter(calibration_inputs)
    first = next(inputs, None)
    if first is None:
        raise ValueError("no calibration inputs: quantization needs at least one pre-processed image")
    reader = _Reader(itertools.chain([first], inputs), "image")
    with tempfile.TemporaryDirectory(prefix="centernet_quantize_") as work:
        prepared = os.path.join(work, "prepared.onnx")
        quantized = os.path.join(work, "quantized.onnx")
        quantization.quant_pre_process(model_path, prepared)
        quantization.quantize_static(
            prepared, quantized, reader, quant_format=quantization.QuantFormat.QDQ, per_channel=True,
            activation_type=qtype[activation_type], weight_type=quantization.QuantType.QInt8,
            op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_exclude=sorted(keep_float), calibrate_method=method,
            extra_options={"CalibPercentile": float(percentile)} if calibration == "percentile" else {})
        result = onnx.load(quantized)
        quantized_nodes, float_nodes = _node_counts(result)
        description = "int8 static QDQ, per-channel weights, %s activations, %s calibration on %d inputs%s%s" % (
            activation_type, calibration, reader.count, ", DCN offsets float" if float_offsets else "",
            ", heads float" if float_heads else "")
        props = dict(metadata, quantization=description)
        del result.metadata_props[:]
        onnx.helper.set_model_props(result, props)
        with atomic_path(out_path, durable=True) as tmp:
            onnx.save_model(result, tmp)
    summary = QuantizeSummary(out_path, quantized_nodes, float_nodes, reader.count, os.path.getsize(out_path),
                              os.path.getsize(model_path))
    logger.info("quantized %s -> %s: %d nodes int8, %d left float (%s); %.1f MB (float %.1f MB)", model_path,
                out_path, quantized_nodes, len(float_nodes), ", ".join(float_nodes) or "none",
                summary.size_bytes / 2 ** 20, summary.float_size_bytes / 2 ** 20)
    return summary


def _node_counts(model):
    """(number of Conv/ConvTranspose/MatMul/DeformConv nodes fed by dequantized weights, names of the others)."""
    dequantized = {out for n in model.graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    quantized, left = 0, []
    for node in model.graph.node:
        if node.op_type not in QUANTIZED_OPS + ("DeformConv",):
            continue
        if len(node.input) > 1 and node.input[1] in dequantized:
            quantized += 1
        else:
            left.append("%s %s" % (node.op_type, node.name))
    return quantized, left


def _spread(total, count):
    """``count`` indices spread evenly over range(total)."""
    return sorted({int(i) for i in np.linspace(0, total - 1, count)}) if count < total else list(range(total))


def _check_count(count, available, source):
    if int(count) < 1:
        raise ValueError("quant_calibration_images must be at least 1, got %s" % count)
    if available < int(count):
        raise ValueError("%s holds %d images, fewer than the %d calibration images asked for: lower "
                         "--quant_calibration_images or calibrate on more data" % (source, available, int(count)))


def mindrecord_calibration(mindrecord_dir, count, prepare, prefix=None):
    """``count`` network inputs from the images of a MindRecord dataset (spread evenly over it).

    prepare(BGR uint8 image) -> [(input, meta)] (EvalSettings.prepare); the first input of each is used.
    """
    import mindspore.dataset as ds
    from src.data.image_file import decode_image
    from src.data.mindrecord import mindrecord_files
    files = mindrecord_files(mindrecord_dir, prefix)
    data = ds.MindDataset(files, columns_list=["image", "image_id"], shuffle=False)
    _check_count(count, data.get_dataset_size(), "MindRecord %s" % mindrecord_dir)
    wanted = set(_spread(data.get_dataset_size(), int(count)))
    inputs = []
    for index, row in enumerate(data.create_dict_iterator(output_numpy=True, num_epochs=1)):
        if index not in wanted:
            continue
        image = decode_image(row["image"].tobytes(), "%d of MindRecord %s" % (int(row["image_id"]), mindrecord_dir))
        inputs.append(prepare(image)[0][0])
    return inputs


def folder_calibration(image_dir, count, prepare, limits=None):
    """``count`` network inputs from the images of a folder (spread evenly over its sorted names), read
    within ``limits`` (src/data/image_file.py's ImageLimits; default: the yaml's)."""
    from src.data.image_file import image_limits, list_image_files, read_image
    names = list_image_files(image_dir)
    _check_count(count, len(names), "image folder %s" % image_dir)
    limits = limits or image_limits()
    return [prepare(read_image(os.path.join(image_dir, names[i]), limits))[0][0]
            for i in _spread(len(names), int(count))]


def calibration_source(cfg):
    """('folder', quant_calibration_dir), else ('mindrecord', mindrecord_dir); a ValueError when neither is set."""
    if cfg.quant_calibration_dir:
        if not os.path.isdir(cfg.quant_calibration_dir):
            raise ValueError("--quant_calibration_dir=%s: folder not found" % cfg.quant_calibration_dir)
        return "folder", cfg.quant_calibration_dir
    if cfg.mindrecord_dir:
        return "mindrecord", cfg.mindrecord_dir
    raise ValueError("--export_quantize=int8 needs calibration images: --mindrecord_dir=<the training MindRecord> or "
                     "--quant_calibration_dir=<a folder of images>")


def calibration_from_config(cfg, prepare):
    """The calibration inputs export.py quantizes with: quant_calibration_images images of the source
    (``calibration_source``), each pre-processed by ``prepare`` (EvalSettings.for_export(...).prepare)."""
    kind, path = calibration_source(cfg)
    if kind == "folder":
        from src.data.image_file import image_limits
        return folder_calibration(path, cfg.quant_calibration_images, prepare, image_limits(cfg))
    return mindrecord_calibration(path, cfg.quant_calibration_images, prepare, cfg.mindrecord_prefix)


FLOAT_LAYERS = {"offsets": {"float_offsets": True}, "offsets_and_heads": {"float_offsets": True, "float_heads": True},
                "none": {"float_offsets": False}}


def quantize_from_config(cfg, model_path, out_path, calibration_inputs):
    """quantize_onnx with the quant_* keys of the configuration."""
    return quantize_onnx(model_path, out_path, calibration_inputs, calibration=cfg.quant_calibration,
                         **FLOAT_LAYERS[cfg.quant_float_layers])


def int8_path(path):
    """<name>_int8.onnx beside <name>.onnx."""
    stem, ext = os.path.splitext(path)
    return stem + "_int8" + ext
