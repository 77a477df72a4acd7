"""bench/bench_eval.py: the post-processing figure is the per-stage, per-image median over runs."""
import os
import types

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import bench_eval
from src.infer import soft_nms


def _fake_clock(images, run_scales):
    """perf_counter for bench_postprocess: per image, the three timed stages last 1, 2 and 3 ms times the
    run's scale, and 10 ms pass untimed before each image (4 clock reads per image)."""
    reads = iter(range(10 ** 6))
    now = [0.0]

    def perf_counter():
        n = next(reads)
        position, run = n % 4, n // (4 * images)
        now[0] += (10.0 if position == 0 else position * run_scales[run]) / 1000
        return now[0]
    return perf_counter


def test_postprocess_figures_are_per_image_medians_of_each_stage(monkeypatch):
    images, scales = 6, [1.0, 5.0, 2.0]          # median scale 2: stages 2, 4 and 6 ms per image
    monkeypatch.setattr(bench_eval, "time", types.SimpleNamespace(perf_counter=_fake_clock(images, scales)))
    out = bench_eval.bench_postprocess(images=images, runs=len(scales))
    assert np.allclose([out["affine_ms"], out["group_softnms_cap_ms"], out["records_json_ms"]], [2.0, 4.0, 6.0])
    assert np.isclose(out["ms_per_image"], 12.0)
    assert (out["images"], out["runs"]) == (images, 3)
    assert out["soft_nms_compiled"] == soft_nms.is_compiled()


def test_synthetic_detections_look_like_decoder_output():
    dets = bench_eval.synthetic_detections(np.random.default_rng(0))
    assert dets.shape == (100, 6) and (np.diff(dets[:, 4]) <= 0).all() and dets[:, 5].max() < 80
