"""ONNX export (src/deploy/onnx_export.py) run by ONNX Runtime against the MindSpore network.

The network is the small test one (ResNet with one BasicBlock per stage, 5 classes) with
random weights, BatchNorm statistics away from identity, and offset convs with random
weights so that the deformable offsets reach several pixels: the regime where a wrong
offset layout changes the output.

Tolerance: MindSpore and ONNX Runtime compute in float32 with different kernels, summation
orders and BatchNorm folded into the weights on the ONNX side, so the heads agree to a few
float32 ulps of their magnitude accumulated over ~20 layers: the tolerance is 1e-4 of the
largest head value (measured: at most 1e-6, for every head). The negative control (offsets
left in MindSpore's layout) is off by 1e-2 to 2e-1 of the range. Detections and records are
compared by the tie rule of tests/agreement.py.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor
import onnx  # imported after mindspore: the other order breaks mindspore's protobuf modules
import onnxruntime as ort

import eval as eval_script
import export as export_script
from agreement import (HEAD_RTOL, NO_SOFT_NMS, PredictionLog, assert_detections_agree, assert_heads_close,
                       assert_records_agree, assert_runs_agree, score_maps)
from conftest import make_config, override_yaml
from eval_helpers import FIXED, SMALL, argv, pseudo_ground_truth, randomise_weights, small_checkpoint
from src.deploy.onnx_export import build_model, export_onnx, offset_channel_order
from src.infer.coco_eval import STAT_NAMES
from src.infer import folder as folder_module
from src.infer.detector import build_eval_network
from test_chain import ROOT
from tools import infer_onnx

SHAPE = (128, 96)  # not square: a height/width mix-up shows


@pytest.fixture(name="net", scope="module")
def net_fixture():
    cfg = make_config(dict(SMALL, **{"eval_config.fold_bn": False}))  # BatchNorms to randomise; the writer folds them
    ms.set_seed(3)
    net = build_eval_network(cfg, 5)
    randomise_weights(net)
    return net


def _checkpoint(path):
    """The small network, randomised as above, with 8x8 boxes (as eval_helpers.small_checkpoint)."""
    from src.centernet_det import CenterNetDet
    ms.set_seed(1)
    net = CenterNetDet(make_config(SMALL).net_config, 5)
    randomise_weights(net, seed=7)
    dict((p.name, p) for p in net.get_parameters())["wh.2.bias"].set_data(Tensor(np.full(2, 8.0, np.float32)))
    ms.save_checkpoint(net, str(path))
    return str(path)


def _image(shape, seed=1):
    return np.random.default_rng(seed).normal(0, 1, (1, 3) + tuple(shape)).astype(np.float32)


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _ms_heads(net, x):
    return [h.asnumpy() for h in net.network(Tensor(x))]


def _assert_detections_agree(got, net, x):
    """ONNX Runtime's (1, K, 6) detections against the MindSpore network's on ``x``, by the tie rule."""
    assert_detections_agree(got[0], net(Tensor(x)).asnumpy()[0], lambda: score_maps(net, x))


def test_offsets_are_several_pixels(net):
    """The test network's first DCN samples several pixels away from the regular grid."""
    feat = net.network.backbone(Tensor(_image(SHAPE)))
    dcn = net.network.deconv_layers[0]
    offsets = dcn.conv_offset_mask(feat).asnumpy()[:, :2 * dcn.points]
    assert np.abs(offsets).mean() > 2.0


def test_offset_channel_order():
    assert offset_channel_order(4).tolist() == [4, 0, 5, 1, 6, 2, 7, 3, 8, 9, 10, 11]
    assert offset_channel_order(4, permute=False).tolist() == list(range(12))


def test_onnx_runtime_equals_mindspore_and_the_unpermuted_control_does_not(net):
    x = _image(SHAPE)
    want_heads = _ms_heads(net, x)
    model = build_model(net, SHAPE, with_heads=True)
    onnx.checker.check_model(model, full_check=True)
    assert sum(n.op_type == "DeformConv" for n in model.graph.node) == 3
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)
    outputs = _session(model).run(None, {"image": x})
    assert_heads_close(outputs[1:], want_heads)
    _assert_detections_agree(outputs[0], net, x)

    control = _session(build_model(net, SHAPE, permute_offsets=False, with_heads=True)).run(None, {"image": x})
    for got, want_head in zip(control[1:], want_heads):  # measured: 1e-2 (hm) to 2e-1 (wh) of the range
        assert np.abs(got - want_head).max() > 10 * HEAD_RTOL * np.abs(want_head).max()
    with pytest.raises(AssertionError):
        _assert_detections_agree(control[0], net, x)


def test_flip_test_export_equals_mindspore(make_config):
    cfg = make_config(dict(SMALL, flip_test=True, **{"eval_config.fold_bn": False}))  # as the net fixture
    ms.set_seed(4)
    net = build_eval_network(cfg, 5)
    randomise_weights(net, seed=5)
    x = _image((96, 64), seed=2)
    _assert_detections_agree(_session(build_model(net, (96, 64))).run(None, {"image": x})[0], net, x)


def test_dynamic_shape_export_runs_on_two_shapes(net, tmp_path):
    path = export_onnx(net, str(tmp_path / "dynamic.onnx"), SHAPE, dynamic_shape=True)
    model = onnx.load(path)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, "height", "width"]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for shape in ((64, 160), (96, 64)):
        x = _image(shape, seed=sum(shape))
        _assert_detections_agree(session.run(None, {"image": x})[0], net, x)
    assert sorted(os.listdir(tmp_path)) == ["dynamic.onnx"]


def test_export_script_onnx_and_its_errors(tmp_path, capsys, monkeypatch):
    ckpt = small_checkpoint(tmp_path / "small.ckpt")
    base = dict(SMALL, device_target="CPU", export_load_ckpt=ckpt, export_format="ONNX",
                **{"export_config.input_res": [64, 96]})
    assert export_script.main(argv(dict(base, export_name=str(tmp_path / "model")))) == 0
    model = onnx.load(str(tmp_path / "model.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 64, 96]
    assert {p.key: p.value for p in model.metadata_props} == {"num_classes": "5", "K": "100", "flip_test": "False"}

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the optional package were not installed
    assert export_script.main(argv(dict(base, export_name=str(tmp_path / "missing")))) == 2
    assert "pip install onnx" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", "small.ckpt"]


def test_runner_refuses_wrong_sizes_and_dynamic_models(net, tmp_path, capsys):
    export_onnx(net, str(tmp_path / "fixed.onnx"), (64, 64))
    export_onnx(net, str(tmp_path / "dynamic.onnx"), (64, 64), dynamic_shape=True)
    inputs = tmp_path / "in"
    inputs.mkdir()
    np.zeros((1, 3, 32, 64), np.float32).tofile(inputs / "5.bin")
    common = ["--input_path", str(inputs), "--output_path", str(tmp_path / "out")]
    assert infer_onnx.main(["--onnx_path", str(tmp_path / "fixed.onnx")] + common) == 2
    assert "5.bin holds 24576 bytes" in capsys.readouterr().err
    assert infer_onnx.main(["--mindir_path", str(tmp_path / "dynamic.onnx")] + common) == 2
    assert "dynamic input shape" in capsys.readouterr().err
    assert infer_onnx.main(["--onnx_path", str(tmp_path / "none.onnx")] + common) == 2
    assert "ONNX model not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def _chain_log(work):
    """The 310 chain's inputs and detections (preprocess_Result/images, result_Files) as a PredictionLog."""
    log = PredictionLog()
    for name in sorted(os.listdir(work / "preprocess_Result" / "images")):
        image_id = int(name[:-len(".bin")])
        meta = json.loads((work / "preprocess_Result" / "meta" / ("%d.json" % image_id)).read_text())
        shape = (1, 3, meta.get("inp_height", FIXED["dataset_config.input_res_test"][0]),
                 meta.get("inp_width", FIXED["dataset_config.input_res_test"][1]))
        inp = np.fromfile(work / "preprocess_Result" / "images" / name, np.float32).reshape(shape)
        dets = np.fromfile(work / "result_Files" / ("%d_0.bin" % image_id), np.float32).reshape(-1, 6)
        log.calls.append((image_id, inp, dets))
    return log


def test_chain_through_run_infer_310_with_the_onnx_runner_equals_eval(synthetic_coco, tmp_path, monkeypatch):
    """The 310 chain with ONNX Runtime as INFER_APP against eval.py: the same inputs, detections by the
    tie rule, records with soft-NMS off; the same metrics when every record has its twin."""
    ckpt = _checkpoint(tmp_path / "small.ckpt")
    settings = dict(FIXED, device_target="CPU", load_checkpoint_path=ckpt, **NO_SOFT_NMS)
    first = tmp_path / "first"
    assert eval_script.main(argv(dict(settings, data_dir=synthetic_coco.root, save_result_dir=str(first)))) == 0
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    os.symlink(synthetic_coco.val_images, root / "val2017")
    records = json.loads((first / "results.json").read_text())
    pseudo_ground_truth(synthetic_coco.val_ann, records, root / "annotations" / "instances_val2017.json")
    out = tmp_path / "eval"
    eval_log = PredictionLog().install(monkeypatch, eval_script)
    assert eval_script.main(argv(dict(settings, data_dir=str(root), save_result_dir=str(out)))) == 0
    expected = json.loads((out / "metrics.json").read_text())
    assert expected["AP"] > 0.05

    assert export_script.main(argv(dict(FIXED, device_target="CPU", export_load_ckpt=ckpt, export_format="ONNX",
                                        export_name=str(tmp_path / "centernet")))) == 0
    work = tmp_path / "work"
    work.mkdir()
    (work / "small.yaml").write_text(override_yaml(dict(SMALL, **{"export_config.input_res": FIXED[
        "export_config.input_res"]}, **NO_SOFT_NMS)))
    env = dict(os.environ, PYTHON=sys.executable, CONFIG_PATH="small.yaml",
               INFER_APP="%s %s" % (sys.executable, os.path.join(ROOT, "tools", "infer_onnx.py")))
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "run_infer_310.sh"), str(tmp_path / "centernet.onnx"),
                           str(root), "y"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ONNX Runtime" in (work / "infer.log").read_text()

    reference = build_eval_network(make_config(FIXED), 5, ckpt)
    ties = assert_runs_agree(_chain_log(work), eval_log, reference)
    lonely = assert_records_agree(json.loads((work / "results.json").read_text()),
                                  json.loads((out / "results.json").read_text()), ties)
    metrics = json.loads((work / "metrics.json").read_text())
    if not lonely:  # the same detections ranked alike: the same matches at every IoU threshold
        np.testing.assert_allclose([metrics[n] for n in STAT_NAMES], [expected[n] for n in STAT_NAMES], atol=1e-6)


def test_detect_images_runs_the_onnx_model(synthetic_coco, tmp_path, capsys, monkeypatch):
    from tools import detect_images
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted(os.listdir(synthetic_coco.val_images))[:3]:
        os.symlink(os.path.join(synthetic_coco.val_images, name), folder / name)
    ckpt = _checkpoint(tmp_path / "small.ckpt")
    export = dict(FIXED, device_target="CPU", export_load_ckpt=ckpt, export_format="ONNX")
    assert export_script.main(argv(dict(export, export_name=str(tmp_path / "fixed")))) == 0
    assert export_script.main(argv(dict(export, export_name=str(tmp_path / "dynamic"), export_dynamic_shape=True))) == 0

    def detect(name, **options):
        settings = dict(FIXED, device_target="CPU", image_dir=str(folder), save_result_dir=str(tmp_path / name),
                        eval_ann_file=synthetic_coco.val_ann, **NO_SOFT_NMS, **options)
        log = PredictionLog().install(monkeypatch, folder_module)
        code = detect_images.main(argv(settings))
        monkeypatch.undo()
        return code, (json.loads((tmp_path / name / "results.json").read_text()) if code == 0 else None), log

    reference = build_eval_network(make_config(FIXED), 5, ckpt)
    keep = {"eval_config.keep_res": True}
    for suffix, options in (("", {}), ("_keep", keep)):
        code, want, ms_log = detect("ms" + suffix, load_checkpoint_path=ckpt, **options)
        model = tmp_path / ("dynamic.onnx" if suffix else "fixed.onnx")
        code_onnx, got, onnx_log = detect("onnx" + suffix, onnx_model=str(model), **options)
        assert code == code_onnx == 0
        ties = assert_runs_agree(onnx_log, ms_log, reference)
        assert_records_agree(got, want, ties)
    capsys.readouterr()
    code, _, _ = detect("refused", onnx_model=str(tmp_path / "fixed.onnx"), **keep)
    assert code == 2 and "--export_dynamic_shape=true" in capsys.readouterr().err
    code, _, _ = detect("flip", onnx_model=str(tmp_path / "fixed.onnx"), flip_test=True)
    assert code == 2 and "exported with flip_test=False" in capsys.readouterr().err
