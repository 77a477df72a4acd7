"""bench/bench_deploy_accuracy.py on the small network and the synthetic COCO set: every runtime x precision
evaluated through eval.py's loop, fp32 runtimes equal to MindSpore's AP."""
import json

import mindspore as ms

from bench import bench_deploy_accuracy
from conftest import override_args
from eval_helpers import FIXED, small_checkpoint
from src.deploy import runtimes


def _restoring_mode(run):
    """``run`` that leaves MindSpore's execution mode as it found it (it is process-wide)."""
    def wrapped(*args):
        mode = ms.get_context("mode")
        try:
            return run(*args)
        finally:
            ms.set_context(mode=mode)
    return wrapped


def test_every_runtime_and_precision_gets_its_ap(synthetic_coco, synthetic_mindrecord, tmp_path, capsys,
                                                 monkeypatch):
    # MindSpore uncompiled (PyNative): the reference's graph compilation would be most of the test's time.
    monkeypatch.setattr(bench_deploy_accuracy, "set_device", lambda cfg: ms.set_context(mode=ms.PYNATIVE_MODE))
    monkeypatch.setattr(bench_deploy_accuracy, "run", _restoring_mode(bench_deploy_accuracy.run))
    ckpt = small_checkpoint(tmp_path / "small.ckpt")
    argv = override_args(dict(FIXED, device_target="CPU", data_dir=synthetic_coco.root, load_checkpoint_path=ckpt,
                              mindrecord_dir=synthetic_mindrecord.mindrecord_dir, eval_max_images=4,
                              quant_calibration_images=2))
    assert bench_deploy_accuracy.main(argv + ["--json", str(tmp_path / "acc.json"), "--work", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "acc.json").read_text())["rows"]
    expected = {"MindSpore fp32", "ONNX Runtime fp32", "OpenVINO fp32", "ONNX Runtime int8", "OpenVINO int8"}
    bf16 = {"OpenVINO bf16", "OpenVINO int8, float layers bf16"}
    assert set(rows) == expected | (bf16 if runtimes.bf16_supported() else set())
    for name in ("ONNX Runtime fp32", "OpenVINO fp32"):
        assert abs(rows[name]["AP"] - rows["MindSpore fp32"]["AP"]) <= bench_deploy_accuracy.FP32_AP_TOL
    assert "ONNX Runtime int8                AP" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc.json", "small.ckpt"]  # model files removed


def test_a_missing_checkpoint_is_one_line(synthetic_coco, capsys):
    """Bad input: bench_deploy_accuracy.py without --load_checkpoint_path | exit 2, one line naming the two
    required keys."""
    assert bench_deploy_accuracy.main(["--data_dir=%s" % synthetic_coco.root]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("--load_checkpoint_path and --data_dir are required: the trained model and its COCO root")
