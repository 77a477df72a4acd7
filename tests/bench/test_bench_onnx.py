"""bench/bench_onnx.py on the small network: exit 0 when ONNX Runtime agrees with MindSpore, 1 on a wrong model."""
import logging

from bench import bench_onnx

SMALL = ["--small", "--classes", "5", "--res", "128", "96", "--runs", "1", "--no_torch"]


def test_agreement_passes_on_the_export_and_fails_on_a_wrong_model(caplog, capsys):
    caplog.set_level(logging.INFO, logger=bench_onnx.__name__)
    assert bench_onnx.main(SMALL) == 0
    out = capsys.readouterr().out
    assert "ONNX vs MindSpore: heads differ by" in out and "100 of 100 detections matched" in out
    assert "100 of 100 scores distinct" in caplog.text  # the degeneracy summary

    caplog.clear()
    assert bench_onnx.main(SMALL + ["--corrupt"]) == 1
    assert "ONNX vs MindSpore: FAILED: heads differ: hm by" in caplog.text
    assert "median" not in capsys.readouterr().out  # no timing of a wrong model
