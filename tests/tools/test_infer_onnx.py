"""tools/infer_onnx.py (the infer chain's INFER_APP for an ONNX model) on OpenVINO beside ONNX Runtime.

The chain's files through ONNX Runtime are tested end to end in tests/deploy/test_onnx_export.py
(run_infer_310.sh against eval.py); here the same .bin inputs run on both runtimes and their
(1, K, 6) outputs agree by the tie rule of tests/agreement.py (two float32 arithmetics of one
network), checked on the MindSpore network's score maps.
"""
import os

import numpy as np

from agreement import assert_detections_agree, score_maps
from conftest import make_config
from eval_helpers import FIXED, RES, pynative
from src.infer.detector import build_eval_network
from tools import infer_onnx


def test_openvino_runs_the_chain_inputs_as_onnx_runtime(small_onnx, tmp_path, capsys):
    inputs = tmp_path / "images"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    images = {}
    for image_id in (3, 11):
        images[image_id] = rng.normal(0, 1, (1, 3) + tuple(RES)).astype(np.float32)
        images[image_id].tofile(inputs / ("%d.bin" % image_id))
    outputs = {}
    for runtime in ("onnxruntime", "openvino"):
        out = tmp_path / runtime
        assert infer_onnx.main(["--onnx_path", small_onnx.fixed, "--input_path", str(inputs), "--output_path",
                                str(out), "--runtime", runtime]) == 0
        assert sorted(os.listdir(out)) == ["11_0.bin", "3_0.bin"]
        outputs[runtime] = {i: np.fromfile(out / ("%d_0.bin" % i), np.float32).reshape(-1, 6) for i in images}
    log = capsys.readouterr().err
    assert "2 inputs inferred by ONNX Runtime (fp32)" in log and "2 inputs inferred by OpenVINO (fp32)" in log
    reference = build_eval_network(make_config(FIXED), 5, small_onnx.checkpoint)
    with pynative():
        for image_id, x in images.items():
            assert_detections_agree(outputs["openvino"][image_id], outputs["onnxruntime"][image_id],
                                    lambda: score_maps(reference, x))
