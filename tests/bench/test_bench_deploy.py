"""bench/bench_deploy.py on the small network: exit 0 when every runtime x precision agrees with MindSpore, 1 on a
wrong model (every ONNX runtime, bf16 included, then fails its check)."""
import logging

import numpy as np
import pytest

from bench import bench_deploy
from bench.agreement import AgreementError, compare_rounded_heads, round_input
from src.deploy import runtimes

SMALL = ["--small", "--classes", "5", "--res", "64", "64", "--runs", "1", "--no_torch", "--calibration", "2"]


def test_agreement_passes_on_the_export_and_fails_on_a_wrong_model(caplog, capsys):
    caplog.set_level(logging.INFO, logger=bench_deploy.__name__)
    assert bench_deploy.main(SMALL) == 0
    out = capsys.readouterr().out
    assert "OpenVINO fp32 vs MindSpore fp32: heads differ by" in out and "ONNX Runtime fp32  " in out
    assert "ONNX Runtime int8 vs MindSpore fp32: heads differ by" in out and "OpenVINO int8  " in out
    if runtimes.bf16_supported():
        assert "OpenVINO bf16 vs MindSpore fp32: heads differ by" in out
    assert "model files: fp32" in out and ", int8 " in out

    caplog.clear()
    assert bench_deploy.main(SMALL + ["--corrupt"]) == 1
    failed = caplog.text
    for name in ("ONNX Runtime fp32", "OpenVINO fp32", "ONNX Runtime int8", "OpenVINO int8") + (
            ("OpenVINO bf16", "OpenVINO int8, float layers bf16") if runtimes.bf16_supported() else ()):
        assert "%s: heads differ" % name in failed
    assert "median" not in capsys.readouterr().out  # no timing of a wrong model


def test_input_rounding_and_the_rounded_heads_rule():
    x = np.array([1.0, 1 + 2 ** -9, 1 + 3 * 2 ** -9, -3.14159, 1e-3], np.float32)
    assert round_input(x, "bf16").tolist() == [1.0, 1.0, 1 + 2 ** -7, np.float32(-3.140625),
                                               np.float32(0.00099945068359375)]
    assert np.abs(round_input(x, "int8") - x).max() <= np.abs(x).max() / 127 / 2 + 1e-7
    want = [np.zeros(4, np.float32)]
    floor = [np.full(4, 0.1, np.float32)]
    assert compare_rounded_heads(want, [np.full(4, 0.7, np.float32)], floor, 8)["hm"][0] == pytest.approx(0.7)
    with pytest.raises(AgreementError, match="hm by 0.9"):
        compare_rounded_heads(want, [np.full(4, 0.9, np.float32)], floor, 8)
