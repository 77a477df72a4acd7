"""src/deploy/runtimes.py: the runtime choice, the precision option and OpenVINO's DeformConv mapping.

The network is the small test one of tests/deploy/test_onnx_export.py (random weights, offset
convs giving offsets of several pixels), exported with its heads as extra outputs.

Tolerances:
- OpenVINO fp32 against ONNX Runtime: two float32 arithmetics of one graph, tests/agreement.py's
  HEAD_RTOL and tie rule (measured: at most 1.2e-6 of a head's largest magnitude). The negative
  control (OpenVINO's default bilinear_interpolation_pad=False, which zeroes samples within one
  pixel outside the input) is off by 1e-2 to 1e-1 of the range.
- bf16 against fp32: bf16 keeps 8 significant bits, a relative rounding error of up to 2^-8 per
  rounding; OpenVINO rounds each layer's inputs and weights to bf16 and accumulates in float32, so
  a head carries a few such errors: measured 4.3e-3 (hm), 8.5e-3 (wh), 8.7e-3 (reg) of the largest
  magnitude, 1.1 to 2.2 x 2^-8, on an Intel Xeon with AMX. BF16_RTOL = 4 x 2^-8. bf16 changes
  detections beyond the tie rule (rounded logits tie), so its cost is measured as AP
  (bench/bench_deploy_accuracy.py), not asserted here.
"""
import os
import sys

import numpy as np
import pytest
import mindspore as ms

from agreement import HEAD_RTOL, assert_detections_agree, assert_heads_close, score_maps
from conftest import make_config, require_module
from eval_helpers import SMALL, randomise_weights
from src.deploy import runtimes
from src.deploy.onnx_export import build_model, export_onnx
from src.infer.detector import build_eval_network

onnx = require_module("onnx", "ONNX export")
require_module("onnxruntime", "the reference runtime")
require_module("openvino", "the OpenVINO runtime")

SHAPE = (128, 96)
BF16_RTOL = 4 * 2.0 ** -8


@pytest.fixture(name="net", scope="module")
def net_fixture():
    cfg = make_config(dict(SMALL, **{"eval_config.fold_bn": False}))
    ms.set_seed(3)
    net = build_eval_network(cfg, 5)
    randomise_weights(net)
    return net


@pytest.fixture(name="heads_model", scope="module")
def heads_model_fixture(net, tmp_path_factory):
    """The small network's ONNX with its heads as outputs hm, wh, reg after the detections."""
    path = str(tmp_path_factory.mktemp("runtimes") / "heads.onnx")
    onnx.save_model(build_model(net, SHAPE, with_heads=True, metadata={"num_classes": 5, "flip_test": False}), path)
    return path


def _maps(outputs):
    """score_maps' (heat, reg) from ONNX Runtime's heads (equal to MindSpore's to 1e-6 of the range,
    tests/deploy/test_onnx_export.py), without a MindSpore run."""
    return 1 / (1 + np.exp(-outputs[1][0].astype(np.float64))), outputs[3][0].astype(np.float64)


def _image(shape, seed=1):
    return np.random.default_rng(seed).normal(0, 1, (1, 3) + tuple(shape)).astype(np.float32)


def test_openvino_fp32_equals_onnx_runtime_and_the_wrong_mapping_does_not(heads_model):
    x = _image(SHAPE)
    want = runtimes.open_model(heads_model)(x)
    model = runtimes.open_model(heads_model, "openvino")
    assert model.shape == (1, 3) + SHAPE and not model.dynamic and model.metadata["num_classes"] == "5"
    got = model(x)
    assert_heads_close(got[1:], want[1:])
    assert_detections_agree(got[0][0], want[0][0], lambda: _maps(want))

    control = runtimes.OpenVinoModel(heads_model, bilinear_interpolation_pad=False)(x)
    for head, want_head in zip(control[1:], want[1:]):  # measured: 1e-2 (hm) to 1e-1 (wh) of the range
        assert np.abs(head - want_head).max() > 10 * HEAD_RTOL * np.abs(want_head).max()
    with pytest.raises(AssertionError):
        assert_detections_agree(control[0][0], want[0][0], lambda: _maps(want))


def test_openvino_runs_a_dynamic_shape_export_on_two_shapes(net, tmp_path):
    path = export_onnx(net, str(tmp_path / "dynamic.onnx"), SHAPE, dynamic_shape=True)
    model, reference = runtimes.open_model(path, "openvino"), runtimes.open_model(path)
    assert model.shape == (1, 3, None, None) and model.dynamic
    for shape in ((64, 160), (96, 64)):
        x = _image(shape, seed=sum(shape))
        assert_detections_agree(model(x)[0][0], reference(x)[0][0], lambda: score_maps(net, x))


def test_openvino_bf16_agrees_with_fp32_to_bf16_rounding(heads_model):
    if not runtimes.bf16_supported():
        pytest.skip("this CPU has no native bf16 (test_bf16_is_refused_on_a_cpu_without_it covers it)")
    x = _image(SHAPE)
    fp32 = runtimes.open_model(heads_model, "openvino", precision="fp32")(x)
    bf16 = runtimes.open_model(heads_model, "openvino", precision="bf16")(x)
    assert_heads_close(bf16[1:], fp32[1:], rtol=BF16_RTOL)
    # bf16 is really in use: its heads differ from fp32's by far more than float32 noise.
    assert max(np.abs(b - f).max() / np.abs(f).max() for b, f in zip(bf16[1:], fp32[1:])) > 10 * HEAD_RTOL


def test_bf16_is_refused_on_a_cpu_without_it(heads_model, monkeypatch):
    """Bad input: infer_precision=bf16 on a CPU without native bf16 | one line naming the CPU's capabilities and
    saying to set infer_precision=fp32."""
    monkeypatch.setattr(runtimes, "openvino_cpu_capabilities", lambda: ["FP32", "FP16", "INT8"])
    assert not runtimes.bf16_supported()
    with pytest.raises(ValueError) as err:
        runtimes.open_model(heads_model, "openvino", precision="bf16")
    assert str(err.value) == ("infer_precision=bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX); OpenVINO "
                              "reports FP32/FP16/INT8 for this one: set infer_precision=fp32")
    assert runtimes.open_model(heads_model, "openvino", precision="fp32").precision == "fp32"


def test_runtimes_without_bf16_refuse_it(heads_model, tmp_path):
    """Bad input: infer_precision=bf16 on onnxruntime or mindspore, or an unknown precision | a one-line error
    naming the runtime and the precisions it has."""
    with pytest.raises(ValueError, match="^runtime onnxruntime computes in fp32 only, not bf16: set "
                                         "infer_precision=fp32, or run bf16 on openvino"):
        runtimes.open_model(heads_model, precision="bf16")
    (tmp_path / "m.mindir").write_bytes(b"")
    with pytest.raises(ValueError, match="^runtime mindspore computes in fp32 only, not bf16"):
        runtimes.open_model(str(tmp_path / "m.mindir"), precision="bf16")
    with pytest.raises(ValueError, match=r"^unknown precision 'int8' \(infer_precision takes fp32 or bf16\)"):
        runtimes.open_model(heads_model, "openvino", precision="int8")


def test_a_runtime_that_cannot_read_the_file_is_refused(heads_model, tmp_path):
    """Bad input: a runtime that cannot read the model file, or an unknown runtime | a one-line error naming the
    file, the formats the runtime reads and the runtime that reads this one."""
    mindir = str(tmp_path / "m.mindir")
    with pytest.raises(ValueError) as err:
        runtimes.open_model(mindir, "openvino")
    assert str(err.value) == ("%s: runtime openvino reads .onnx models, not .mindir: export it with export.py "
                              "--export_format=ONNX, or choose runtime mindspore" % mindir)
    with pytest.raises(ValueError, match="runtime mindspore reads .mindir models, not .onnx: export it with export.py "
                                         "--export_format=MINDIR, or choose runtime onnxruntime or openvino$"):
        runtimes.open_model(heads_model, "mindspore")
    with pytest.raises(ValueError, match=r"^unknown runtime 'tensorrt' \(expected one of mindspore, onnxruntime, "
                                         r"openvino\)$"):
        runtimes.open_model(heads_model, "tensorrt")


def test_a_garbage_onnx_in_openvino_is_one_line(tmp_path):
    """Bad input: a .onnx file that is no ONNX model, run on openvino | "OpenVINO cannot load <file> as ONNX: Model
    can't be parsed", one line."""
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"not a model\n" * 4)
    with pytest.raises(RuntimeError) as err:
        runtimes.open_model(str(path), "openvino")
    assert str(err.value) == "OpenVINO cannot load %s as ONNX: Model can't be parsed" % path
    with pytest.raises(FileNotFoundError, match="ONNX model not found"):
        runtimes.open_model(str(tmp_path / "none.onnx"), "openvino")
    assert sorted(os.listdir(tmp_path)) == ["garbage.onnx"]


def test_model_predictor_on_openvino_checks_the_recorded_settings(heads_model):
    predict = runtimes.model_predictor(heads_model, 5, False, runtime="openvino")
    assert predict(_image(SHAPE)).shape == (100, 6)
    with pytest.raises(ValueError, match="was exported with num_classes=5 but the configuration has 3"):
        runtimes.model_predictor(heads_model, 3, False, runtime="openvino")


def test_openvino_not_installed_is_one_line(heads_model, monkeypatch):
    """Bad input: runtime openvino without the optional package | "running models on OpenVINO needs the optional
    package openvino: pip install openvino ...", one line."""
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    with pytest.raises(RuntimeError, match="^running models on OpenVINO needs the optional package openvino: pip "
                                           r"install openvino \(the tested version is in requirements-test.txt\)$"):
        runtimes.open_model(heads_model, "openvino")
