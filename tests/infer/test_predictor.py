"""eval.py and tools/detect_images.py on an exported model (src/infer/predictor.py): the runtime choice.

One checkpoint of the small network (randomised: deformable offsets of several pixels) and its
ONNX exports are shared by the session (conftest ``small_onnx``). eval.py with
``infer_runtime=onnxruntime`` / ``openvino`` must reproduce eval.py with the checkpoint: the same
inputs bit for bit (the same pre-processing), detections by the tie rule of tests/agreement.py,
records (soft-NMS off: each record one detection) pairing up except at ties, and the COCO metrics
to 1e-4 AP. Tolerances: tests/agreement.py's (float32 arithmetics of one network); the metrics
tolerance is the issue's for fp32 runtimes (a tie swaps a near-duplicate detection: measured AP
difference 0 with 2 such records).
eval.py runs at the fixed 128x128 input (the dynamic-shape ONNX takes it); tools/detect_images.py runs
keep_res on five photos (three input shapes), ONNX Runtime against OpenVINO (keep_res on ONNX Runtime against the
checkpoint: tests/deploy/test_onnx_export.py).
"""
import json
import os

import mindspore as ms
import numpy as np
import pytest

import eval as eval_script
from agreement import NO_SOFT_NMS, PredictionLog, assert_records_agree, assert_runs_agree
from conftest import make_config
from eval_helpers import FIXED, SMALL, argv, pseudo_ground_truth, pynative, randomise_weights
from src.infer import folder as folder_module
from src.infer.coco_eval import STAT_NAMES
from src.infer.detector import build_eval_network

KEEP_RES = {"eval_config.keep_res": True}
RUNTIMES = ("onnxruntime", "openvino")


def _eval(tmp_path, data, name, monkeypatch=None, **options):
    """eval.py's main on ``data`` (a dict of data options); (exit code, output folder, PredictionLog or None)."""
    out = tmp_path / name
    settings = dict(FIXED, device_target="CPU", save_result_dir=str(out), **NO_SOFT_NMS)
    settings.update(data, **options)
    log = PredictionLog().install(monkeypatch, eval_script) if monkeypatch is not None else None
    code = eval_script.main(argv(settings))
    if monkeypatch is not None:
        monkeypatch.undo()
    return code, out, log


def _read(out, name):
    return json.loads((out / name).read_text())


@pytest.fixture(name="pseudo", scope="module")
def pseudo_fixture(synthetic_coco, small_onnx, tmp_path_factory):
    """Annotation and image options whose ground truth is made of the network's own (altered) detections:
    random weights score AP 0 on the real boxes, these give an AP between 0 and 1 to reproduce."""
    work = tmp_path_factory.mktemp("pseudo")
    code, out, _ = _eval(work, {"data_dir": synthetic_coco.root}, "first", infer_runtime="onnxruntime",
                         infer_model=small_onnx.dynamic)
    assert code == 0
    ann = pseudo_ground_truth(synthetic_coco.val_ann, _read(out, "results.json"), work / "pseudo.json")
    return {"eval_ann_file": ann, "eval_image_dir": synthetic_coco.val_images}


@pytest.fixture(name="checkpoint_run", scope="module")
def checkpoint_run_fixture(pseudo, small_onnx, tmp_path_factory):
    """eval.py with the checkpoint (MindSpore, one static graph at 128x128): (output, log, network)."""
    monkeypatch = pytest.MonkeyPatch()
    code, out, log = _eval(tmp_path_factory.mktemp("checkpoint"), pseudo, "ms", monkeypatch,
                           load_checkpoint_path=small_onnx.checkpoint)
    assert code == 0
    return out, log, build_eval_network(make_config(FIXED), 5, small_onnx.checkpoint)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_eval_on_an_exported_model_reproduces_the_checkpoint(runtime, pseudo, small_onnx, checkpoint_run,
                                                             tmp_path, monkeypatch):
    want_out, want_log, reference = checkpoint_run
    code, out, log = _eval(tmp_path, pseudo, runtime, monkeypatch, infer_runtime=runtime,
                           infer_model=small_onnx.dynamic)
    assert code == 0
    with pynative():
        ties = assert_runs_agree(log, want_log, reference)
    assert_records_agree(_read(out, "results.json"), _read(want_out, "results.json"), ties)
    got, want = _read(out, "metrics.json"), _read(want_out, "metrics.json")
    assert 0.05 < want["AP"] < 0.95
    np.testing.assert_allclose([got[n] for n in STAT_NAMES], [want[n] for n in STAT_NAMES], atol=1e-4)
    assert (got["runtime"], got["model"], got["checkpoint"]) == (runtime, os.path.abspath(small_onnx.dynamic), None)
    assert (want["runtime"], want["model"], want["checkpoint"]) == ("mindspore", None, small_onnx.checkpoint)


def test_eval_with_another_model_is_caught(pseudo, small_onnx, checkpoint_run, tmp_path):
    """Control: an export of other weights (another seed) departs from the checkpoint's records and
    metrics, so the comparison above can fail."""
    from src.deploy.onnx_export import export_onnx
    cfg = make_config(FIXED)
    ms.set_seed(2)
    other = build_eval_network(cfg, 5)
    randomise_weights(other, seed=2)
    export_onnx(other, str(tmp_path / "other.onnx"), cfg.export_config.input_res, dynamic_shape=True,
                metadata={"num_classes": 5, "K": cfg.eval_config.K, "flip_test": False})
    want_out = checkpoint_run[0]
    code, out, _ = _eval(tmp_path, pseudo, "other", infer_runtime="onnxruntime",
                         infer_model=str(tmp_path / "other.onnx"))
    assert code == 0
    with pytest.raises(AssertionError, match="records without a twin"):
        assert_records_agree(_read(out, "results.json"), _read(want_out, "results.json"), {})
    assert abs(_read(out, "metrics.json")["AP"] - _read(want_out, "metrics.json")["AP"]) > 1e-4


def test_detect_images_runs_the_chosen_runtime(synthetic_coco, small_onnx, checkpoint_run, tmp_path, monkeypatch,
                                              capsys):
    """tools/detect_images.py on photos of several sizes (keep_res) with --infer_runtime=openvino, and with
    --onnx_model (the ONNX Runtime shorthand): the same inputs, detections agreeing by the tie rule."""
    from tools import detect_images
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted(os.listdir(synthetic_coco.val_images))[:5]:
        os.symlink(os.path.join(synthetic_coco.val_images, name), folder / name)

    def detect(name, **options):
        settings = dict(SMALL, device_target="CPU", image_dir=str(folder), save_result_dir=str(tmp_path / name),
                        eval_ann_file=synthetic_coco.val_ann, **NO_SOFT_NMS, **KEEP_RES, **options)
        log = PredictionLog().install(monkeypatch, folder_module)
        assert detect_images.main(argv(settings)) == 0
        monkeypatch.undo()
        return _read(tmp_path / name, "results.json"), log, capsys.readouterr().err

    want, want_log, ort_err = detect("ort", onnx_model=small_onnx.dynamic)
    got, log, ov_err = detect("ov", infer_runtime="openvino", infer_model=small_onnx.dynamic)
    assert "ONNX Runtime (fp32): " in ort_err and "OpenVINO (fp32): " in ov_err
    assert len({call[1].shape for call in log.calls}) >= 3  # keep_res: several input sizes
    with pynative():
        ties = assert_runs_agree(log, want_log, checkpoint_run[2])  # the checkpoint's network
    assert_records_agree(got, want, ties)


def _refused(tmp_path, synthetic_coco, capsys, **options):
    """eval.py exits 2 before writing any result (at most the run's lock); returns its one error line."""
    code, out, _ = _eval(tmp_path, {"data_dir": synthetic_coco.root}, "refused", **options)
    assert code == 2
    assert not out.exists() or os.listdir(out) in ([], [".lock"])
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1
    return errors[0]


def test_fixed_shape_model_with_keep_res(synthetic_coco, small_onnx, tmp_path, capsys):
    """Bad input: eval.py with a fixed-shape exported model (--infer_model) and keep_res=true | exit 2 before any image: "<model> takes one input shape (1, 3, 128, 128): eval_config.keep_res=true feeds every image at its own size: export with --export_dynamic_shape=true, or set --eval_config.keep_res=false"""""
    error = _refused(tmp_path, synthetic_coco, capsys, infer_runtime="onnxruntime", infer_model=small_onnx.fixed,
                     **KEEP_RES)
    assert "keep_res=true" in error and "export with --export_dynamic_shape=true" in error


def test_fixed_shape_model_with_multi_scales(synthetic_coco, small_onnx, tmp_path, capsys):
    """Bad input: a fixed-shape exported model with two eval_config.multi_scales | exit 2: "<model> takes one input shape ...: eval_config.multi_scales=[0.75, 1.0] gives one shape per scale: export with --export_dynamic_shape=true"""""
    error = _refused(tmp_path, synthetic_coco, capsys, infer_runtime="onnxruntime", infer_model=small_onnx.fixed,
                     **{"eval_config.keep_res": False, "eval_config.multi_scales": [0.75, 1.0]})
    assert "multi_scales=[0.75, 1.0]" in error and "--export_dynamic_shape=true" in error


def test_fixed_shape_model_with_another_input_res(synthetic_coco, small_onnx, tmp_path, capsys):
    """Bad input: an exported model fixed at 128x128 with input_res_test=[160, 160] | exit 2: "<model> takes input shape (1, 3, 128, 128) but dataset_config.input_res_test=[160, 160] gives (1, 3, 160, 160): set --dataset_config.input_res_test=[128,128] or export with --export_dynamic_shape=true"""""
    error = _refused(tmp_path, synthetic_coco, capsys, infer_runtime="openvino", infer_model=small_onnx.fixed,
                     **{"eval_config.keep_res": False, "dataset_config.input_res_test": [160, 160]})
    assert "--dataset_config.input_res_test=[128,128]" in error


@pytest.mark.parametrize("options, fragment", [
    ({"infer_runtime": "openvino"}, "--infer_runtime=openvino runs an exported model: set --infer_model="),
    ({"infer_runtime": "onnxruntime", "infer_model": "DYNAMIC", "load_checkpoint_path": "CKPT"},
     "a run uses one model, clear the other"),
    ({"infer_model": "DYNAMIC"}, "--infer_runtime=mindspore reads .mindir files; set --infer_runtime=onnxruntime "
                                 "or openvino"),
    ({"infer_runtime": "onnxruntime", "infer_model": "CKPT"}, "--infer_runtime=onnxruntime reads .onnx files"),
    ({"infer_runtime": "onnxruntime", "infer_model": "nowhere.onnx"}, "--infer_model=nowhere.onnx: no such file"),
    ({"infer_runtime": "onnxruntime", "infer_model": "DYNAMIC", "infer_precision": "bf16"},
     "--infer_precision=bf16 runs on OpenVINO only"),
    ({"onnx_model": "DYNAMIC", "infer_model": "DYNAMIC"}, "is the shorthand of --infer_runtime=onnxruntime"),
    ({"infer_runtime": "openvino", "infer_model": "DYNAMIC", "flip_test": True}, "exported with flip_test=False"),
])
def test_model_choice_errors(options, fragment, synthetic_coco, small_onnx, tmp_path, capsys):
    """Bad input: --infer_runtime=onnxruntime/openvino without --infer_model, --infer_model with --load_checkpoint_path, a file the runtime does not read (.onnx on mindspore, a .ckpt), a missing file, --infer_precision=bf16 off OpenVINO, --onnx_model with --infer_model, a model exported without the configured flip_test | exit 2 before any image, one line naming the keys and what to set"""
    names = {"DYNAMIC": small_onnx.dynamic, "CKPT": small_onnx.checkpoint}
    error = _refused(tmp_path, synthetic_coco, capsys, **{k: names.get(v, v) for k, v in options.items()})
    assert fragment in error
