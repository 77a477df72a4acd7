"""bench/bench_fold_fidelity.py: its pass/fail check and its box matching (no network is run)."""
import numpy as np

from bench import bench_fold_fidelity as bench


def _result(folded_scale=1.0, problems=()):
    """Figures of one depth: the folded errors are the unfolded ones times ``folded_scale``."""
    unfolded = {head: {"median": 1e-5, "p99": 8e-5, "max": 3e-4} for head in bench.HEADS}
    folded = {head: {k: v * folded_scale for k, v in figures.items()} for head, figures in unfolded.items()}
    return {"depth": 101, "problems": list(problems), "table": {"unfolded": unfolded, "folded": folded}}


def test_check_fails_when_the_folded_error_is_larger_by_more_than_the_factor():
    assert bench.check(_result(1.0), 1.3) == []
    assert bench.check(_result(1.29), 1.3) == []
    failures = bench.check(_result(1.31), 1.3)
    assert len(failures) == 2 * len(bench.HEADS)  # median and 99th percentile of every head
    assert "hm median error: folded" in failures[0]
    nan = _result(1.0)
    nan["table"]["folded"]["wh"]["p99"] = float("nan")
    assert bench.check(nan, 1.3) == ["ResNet-101 wh p99 error: folded nan > 1.30 x unfolded 8e-05"]


def test_check_fails_on_degenerate_outputs():
    assert bench.check(_result(1.0, ["a.png: ties among the top-20 peak scores"]), 1.3) == [
        "a.png: ties among the top-20 peak scores"]


def test_degenerate_names_ties_flat_heads_and_dead_offsets():
    rng = np.random.default_rng(0)
    heads = {head: rng.normal(size=(2, 3, 8, 8)) for head in bench.HEADS}
    raw = np.zeros((100, 6))
    raw[:, 4] = np.linspace(1, 0, 100)
    live = [np.full(4, 0.0), np.linspace(-1, 1, 4)]
    assert bench.degenerate("a", heads, raw, [np.linspace(-1, 1, 9)]) == []
    tied = raw.copy()
    tied[5, 4] = tied[6, 4]
    flat = dict(heads, wh=np.ones((2, 2, 8, 8)))
    problems = bench.degenerate("a", flat, tied, live)
    assert problems == ["a: ties among the top-20 peak scores", "a: head wh without spread (std 0)",
                        "a: deformable offsets not live (smallest std 0.000 px)"]


def test_box_distances_take_the_nearest_box_of_the_same_class():
    reference = np.array([[10, 10, 20, 20, 0.9, 3], [0, 0, 5, 5, 0.8, 1], [0, 0, 9, 9, 0.7, 7]], np.float64)
    candidate = np.array([[0, 0, 5.1, 5, 0.8, 1], [10, 10.05, 20, 20, 0.9, 3], [10, 10, 20, 20, 0.5, 1]],
                         np.float64)
    np.testing.assert_allclose(bench.box_distances(reference, candidate, top=2), [0.05, 0.1])
    assert bench.box_distances(reference, candidate)[2] == np.inf  # class 7 missing
