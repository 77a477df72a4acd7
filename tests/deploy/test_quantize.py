"""int8 post-training quantization (src/deploy/quantize.py) of the small network's ONNX export.

The network is the test-size CenterNet with ``bench.agreement.live_random_weights`` (BatchNorm
statistics from the calibration images, deformable offsets of about half a pixel, heads spread
as a trained network's), calibrated on the synthetic training images and compared on the
validation images, pre-processed as the detection loop does.

Tolerance. Static int8 rounds every quantized tensor to a step of (its calibrated range) / 255:
the first such tensor is the input image, whose step Delta is the scale of the model's first
QuantizeLinear. Every layer after it adds rounding noise of its own step, which the network
propagates as it would noise on the input. So the heads' error is measured in the unit of the
network's own sensitivity: the fp32 heads' change when Gaussian noise of standard deviation
k * Delta is added to the input. Measured on this network (Intel Xeon), as relative RMS of each
head's spread for hm / wh / reg: the int8 heads differ from fp32 by 0.24 / 0.27 / 0.34 in ONNX
Runtime and 0.24 / 0.28 / 0.40 in OpenVINO (its own integer kernels and requantization), about
what k = 2 gives; k = 1 gives 0.10 / 0.13 / 0.16 and the tolerance, k = 4 (a factor 2 in noise
over the measurement), 0.41 / 0.39 / 0.64. The negative control, calibrated on inputs scaled by
0.25 (ranges 4 times too narrow: activations clipped), is 0.78 / 0.91 / 1.46, above it for every
head. Random weights amplify noise far more than trained ones, hence these large relative figures;
what int8 costs a trained model is its AP (bench/bench_int8_accuracy.py: none measurable on the
quick-start model).
"""
import os
import sys

import numpy as np
import pytest
import mindspore as ms
import onnx  # imported after mindspore: the other order breaks mindspore's protobuf modules
import onnxruntime as ort

import export as export_script
from bench.agreement import live_random_weights
from conftest import make_config, require_module
from eval_helpers import FIXED, argv, small_checkpoint
from src.centernet_det import CenterNetDet
from src.decode import CenterNetDetEval
from src.deploy.onnx_export import build_model
from src.deploy.quantize import folder_calibration, int8_path, mindrecord_calibration, quantize_onnx
from src.deploy.runtimes import model_predictor, open_model
from src.infer.detect import EvalSettings

NOISE_STEPS = 4  # the tolerance, in input quantization steps of noise (see the module docstring)
METADATA = {"num_classes": 5, "flip_test": False, "K": 100}


def _settings():
    return EvalSettings(make_config(FIXED), scales=[1.0], keep_res=False)


@pytest.fixture(name="inputs", scope="module")
def inputs_fixture(synthetic_coco):
    """(calibration inputs: 8 training images, test inputs: 4 validation images), pre-processed at 128x128."""
    prepare = _settings().prepare
    return (folder_calibration(synthetic_coco.train_images, 8, prepare),
            folder_calibration(synthetic_coco.val_images, 4, prepare))


@pytest.fixture(name="float_model", scope="module")
def float_model_fixture(inputs, tmp_path_factory):
    """The small network's fp32 ONNX with its heads as extra outputs (hm, wh, reg)."""
    cfg = make_config(FIXED)
    ms.set_seed(3)
    network = CenterNetDet(cfg.net_config, 5)
    live_random_weights(network, np.concatenate(inputs[0]), 0, offset_px=0.5, branch_gamma=(0.02, 0.05))
    net = CenterNetDetEval(network, 100, False, True)
    net.set_train(False)
    path = str(tmp_path_factory.mktemp("quantize") / "float.onnx")
    onnx.save(build_model(net, (128, 128), metadata=METADATA, with_heads=True), path)
    return path


@pytest.fixture(name="int8_model", scope="module")
def int8_model_fixture(float_model, inputs):
    path = int8_path(float_model)
    return path, quantize_onnx(float_model, path, inputs[0])


def _heads(path, images, noise=0.0):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    return [session.run(None, {"image": (x + rng.normal(0, noise, x.shape)).astype(np.float32) if noise else x})[1:]
            for x in images]


def _relative_rms(got, want):
    """Per head, the largest over images of RMS(got - want) / std(want)."""
    return np.array([[np.sqrt(np.mean((g - w) ** 2)) / w.std() for g, w in zip(gs, ws)]
                     for gs, ws in zip(got, want)]).max(axis=0)


def _input_step(path):
    """Delta: the scale of the QuantizeLinear of the input image."""
    model = onnx.load(path)
    inits = {t.name: t for t in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "image")
    return float(onnx.numpy_helper.to_array(inits[node.input[1]]))


def _tolerance(float_model, images, step):
    reference = _heads(float_model, images)
    return reference, _relative_rms(_heads(float_model, images, NOISE_STEPS * step), reference)


def test_int8_heads_agree_within_the_noise_tolerance_and_a_miscalibrated_model_does_not(float_model, int8_model,
                                                                                         inputs, tmp_path):
    path, summary = int8_model
    step = _input_step(path)
    assert 0.005 < step < 0.05  # (normalised pixels span about 4.5: 1/255 of that is 0.018)
    reference, tolerance = _tolerance(float_model, inputs[1], step)
    error = _relative_rms(_heads(path, inputs[1]), reference)
    assert (error < tolerance).all(), (error, tolerance)

    require_module("openvino", "the int8 model in OpenVINO")
    runner = open_model(path, "openvino")  # its own int8 kernels and requantization: the same bound
    assert (_relative_rms([runner(x)[1:] for x in inputs[1]], reference) < tolerance).all()

    narrow = str(tmp_path / "narrow.onnx")
    quantize_onnx(float_model, narrow, [x * np.float32(0.25) for x in inputs[0]])
    assert (_relative_rms(_heads(narrow, inputs[1]), reference) > tolerance).all()


def test_summary_metadata_and_float_deformable_convolutions(float_model, int8_model):
    path, summary = int8_model
    model = onnx.load(path)
    ops = [n.op_type for n in model.graph.node]
    # every Conv and ConvTranspose of the float model but the 3 offset convs
    float_ops = [n.op_type for n in onnx.load(float_model).graph.node]
    assert summary.quantized == float_ops.count("Conv") - 3 + float_ops.count("ConvTranspose")
    assert sorted(s.split()[0] for s in summary.float_nodes) == ["Conv"] * 3 + ["DeformConv"] * 3
    assert ops.count("DeformConv") == 3 and summary.calibration_images == 8
    assert summary.size_bytes == os.path.getsize(path) < summary.float_size_bytes / 2
    producers = {out: n for n in model.graph.node for out in n.output}
    inits = {t.name for t in model.graph.initializer}
    for node in (n for n in model.graph.node if n.op_type == "DeformConv"):
        assert node.input[1] in inits and node.input[3] in inits  # float weights and bias
        assert producers[node.input[2]].op_type == "Split" and producers[node.input[4]].op_type == "Sigmoid"
        offset_conv = producers[producers[node.input[2]].input[0]]
        assert offset_conv.op_type == "Conv" and offset_conv.input[1] in inits  # not fed by a DequantizeLinear
    props = {p.key: p.value for p in model.metadata_props}
    assert {k: props[k] for k in METADATA} == {k: str(v) for k, v in METADATA.items()}
    assert props["quantization"].startswith("int8 static QDQ, per-channel weights, uint8 activations")
    predict = model_predictor(path, 5, False)
    assert predict(_zeros(model)).shape == (100, 6)
    with pytest.raises(ValueError, match="was exported with num_classes=5"):
        model_predictor(path, 4, False)


def _zeros(model):
    return np.zeros([d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim], np.float32)


def test_variants_keep_heads_or_quantize_offsets(float_model, inputs, tmp_path):
    summary = quantize_onnx(float_model, str(tmp_path / "v.onnx"), inputs[0][:2], float_offsets=False,
                            float_heads=True, activation_type="int8", calibration="percentile")
    assert sorted(s.split()[0] for s in summary.float_nodes) == ["Conv"] * 6 + ["DeformConv"] * 3  # 3x3 + 1x1 per head
    assert "int8 activations, percentile calibration on 2 inputs, heads float" in summary_text(tmp_path / "v.onnx")


def summary_text(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}["quantization"]


def test_calibration_from_a_mindrecord_equals_the_same_images_from_a_folder(synthetic_mindrecord, synthetic_coco):
    prepare = _settings().prepare
    count = synthetic_coco.num_train
    from_record = mindrecord_calibration(synthetic_mindrecord.mindrecord_dir, count, prepare,
                                         synthetic_mindrecord.prefix)
    from_folder = folder_calibration(synthetic_coco.train_images, count, prepare)
    assert len(from_record) == len(from_folder) == count
    assert all(x.shape == (1, 3, 128, 128) and x.dtype == np.float32 for x in from_record)
    key = lambda arrays: sorted(a.tobytes() for a in arrays)  # noqa: E731  (order: by row vs by file name)
    assert key(from_record) == key(from_folder)
    assert len(mindrecord_calibration(synthetic_mindrecord.mindrecord_dir, 5, prepare,
                                      synthetic_mindrecord.prefix)) == 5


def test_bad_quantization_inputs(float_model, inputs, tmp_path, synthetic_coco):
    """Bad input: no calibration inputs, more calibration images than the source holds, a model that is not this project's ONNX or is already quantized, onnxruntime missing | a one-line ValueError/RuntimeError naming the file and what to do; no output file."""
    out = str(tmp_path / "out.onnx")
    with pytest.raises(ValueError, match="no calibration inputs"):
        quantize_onnx(float_model, out, [])
    with pytest.raises(ValueError, match="holds 8 images, fewer than the 9 calibration images asked for"):
        folder_calibration(synthetic_coco.val_images, 9, _settings().prepare)
    foreign = tmp_path / "foreign.onnx"
    model = onnx.load(float_model)
    model.producer_name = "pytorch"
    onnx.save(model, str(foreign))
    with pytest.raises(ValueError, match="foreign.onnx is not a CenterNet ONNX of this project"):
        quantize_onnx(str(foreign), out, inputs[0])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="garbage.onnx is not a readable ONNX model"):
        quantize_onnx(str(garbage), out, inputs[0])
    with pytest.raises(FileNotFoundError, match="ONNX model not found"):
        quantize_onnx(str(tmp_path / "none.onnx"), out, inputs[0])
    assert sorted(os.listdir(tmp_path)) == ["foreign.onnx", "garbage.onnx"]


def test_export_script_writes_the_int8_model_and_refuses_bad_calibration(synthetic_coco, tmp_path, capsys,
                                                                         monkeypatch):
    """Bad input: export_quantize=int8 with no calibration source, too few images, a missing folder, a non-ONNX format or onnxruntime missing | exit 2 with one line saying which option to set; nothing written."""
    ckpt = small_checkpoint(tmp_path / "small.ckpt")
    base = dict(FIXED, device_target="CPU", export_load_ckpt=ckpt, export_format="ONNX", export_quantize="int8",
                quant_calibration_images=2, quant_calibration_dir=synthetic_coco.val_images)
    assert export_script.main(argv(dict(base, export_name=str(tmp_path / "m")))) == 0
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m_int8.onnx")).metadata_props}
    assert props["num_classes"] == "5" and "2 inputs" in props["quantization"]
    capsys.readouterr()
    bad = [({"quant_calibration_dir": ""}, "needs calibration images: --mindrecord_dir"),
           ({"quant_calibration_images": 9}, "holds 8 images, fewer than the 9"),
           ({"quant_calibration_dir": str(tmp_path / "none")}, "--quant_calibration_dir=%s: folder not found"
            % (tmp_path / "none")),
           ({"export_format": "MINDIR"}, "--export_quantize=int8 needs --export_format=ONNX")]
    for overrides, message in bad:
        assert export_script.main(argv(dict(base, export_name=str(tmp_path / "bad"), **overrides))) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)
    assert export_script.main(argv(dict(base, export_name=str(tmp_path / "bad")))) == 2
    assert "pip install onnx onnxruntime" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m_int8.onnx", "small.ckpt"]
