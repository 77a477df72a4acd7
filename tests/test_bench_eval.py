"""bench/bench_eval.py stays runnable: the post-processing figure on a few images."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import bench_eval  # noqa: E402


def test_postprocess_benchmark_returns_its_figures():
    out = bench_eval.bench_postprocess(images=10, runs=1)
    assert out["ms_per_image"] > 0 and out["images"] == 10
    assert abs(out["ms_per_image"] - out["affine_ms"] - out["group_softnms_cap_ms"] - out["records_json_ms"]) < 1e-9


def test_synthetic_detections_look_like_decoder_output():
    import numpy as np
    dets = bench_eval.synthetic_detections(np.random.default_rng(0))
    assert dets.shape == (100, 6) and (np.diff(dets[:, 4]) <= 0).all() and dets[:, 5].max() < 80
