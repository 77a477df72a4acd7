"""bench/run_all.py: the process-tree memory sampler, the table and docs/PERFORMANCE.md from recorded figures."""
import json
import os
import sys

from bench import run_all
from conftest import ROOT

# A child that holds ~150 MB and starts a grandchild holding ~100 MB at the same time.
ALLOCATE = """
import subprocess, sys, time
block = bytearray(150 * 2 ** 20)
if len(sys.argv) == 1:
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(100 * 2 ** 20); time.sleep(1.5)"])
    time.sleep(1.5)
    child.wait()
"""


def test_peak_memory_of_a_process_tree_is_summed(tmp_path):
    code, seconds, tree, single = run_all.run_sampling_rss([sys.executable, "-c", ALLOCATE], str(tmp_path / "log"),
                                                           interval=0.05)
    assert code == 0 and seconds > 1.0
    assert 140 < single < 200  # the largest process: the 150 MB one
    assert tree > 230  # both processes were alive together


def test_failing_command_reports_its_exit_code(tmp_path):
    code, _, _, _ = run_all.run_sampling_rss([sys.executable, "-c", "raise SystemExit(3)"], str(tmp_path / "log"))
    assert code == 3


RECORDED = {
    "train_full": {"command": [sys.executable, os.path.join(ROOT, "bench", "bench_train.py"), "--batch_size=2"],
                   "figures": {"params": 49.6e6, "seconds": 4.0, "runs": 5, "input": "512x512", "batch": 2,
                               "peak_rss_mb": 3000.0},
                   "date": "2026-11-23 10:00", "load_average": [0.1, 0.2, 0.3], "repeats": 3},
    "eval": {"command": [sys.executable, os.path.join(ROOT, "bench", "bench_eval.py")],
             "figures": {"postprocess": {"ms_per_image": 1.234, "images": 200, "runs": 5},
                         "eval_overhead": {"ratio": 1.06, "config": "BasicBlock [2, 2, 2, 2], 512x512, 80 classes",
                                           "images": 32, "runs": 3}},
             "date": "2026-11-23 11:00", "load_average": [0.1, 0.2, 0.3], "repeats": 3},
    "quick_start": {"command": ["bash", "scripts/run_quick_start.sh", "OUT_DIR"],
                    "figures": {"wall_s": 800.0, "AP": 0.61, "AP50": 0.9, "peak_tree_mb": 2000},
                    "date": "2026-11-23 12:00", "load_average": [0.1, 0.2, 0.3], "repeats": 3},
}


def test_markdown_lists_each_recorded_figure_with_its_command(tmp_path):
    path = str(tmp_path / "PERFORMANCE.md")
    run_all.write_markdown(path, RECORDED)
    text = open(path, encoding="utf-8").read()
    assert "| cores available |" in text and "MindSpore" in text
    assert "4.00 s (0.5 images/s)" in text and "`python bench/bench_train.py --batch_size=2`" in text
    assert "1.23 ms" in text and "| 1.06 |" in text
    assert "800 s; AP 0.610, AP50 0.900" in text
    assert "| train_full | 2026-11-23 10:00 |" in text
    assert ROOT not in text  # commands are shown relative to the repository
    assert not os.path.exists(path + ".tmp")


def test_only_the_named_benchmarks_run_and_the_others_keep_their_figures(tmp_path, monkeypatch):
    results = tmp_path / "performance.json"
    results.write_text(json.dumps(RECORDED))
    calls = []

    def fake_eval(args, work):  # stands in for the minutes-long benchmark; the merge logic is under test
        calls.append(os.path.isdir(work))
        return {"command": ["python", "bench/bench_eval.py"],
                "figures": {"postprocess": {"ms_per_image": 0.5, "images": 10, "runs": 1}, "eval_overhead": None}}

    monkeypatch.setitem(run_all.BENCHMARKS, "eval", fake_eval)
    code = run_all.main(["--only", "eval", "--results", str(results), "--markdown", str(tmp_path / "P.md")])
    assert code == 0 and calls == [True]
    merged = json.loads(results.read_text())
    assert merged["eval"]["figures"]["postprocess"]["ms_per_image"] == 0.5
    assert merged["train_full"] == RECORDED["train_full"]
    text = (tmp_path / "P.md").read_text()
    assert "0.50 ms" in text and "4.00 s" in text


def test_dcn_and_torch_comparison_rows(tmp_path):
    layer = {"in_channels": 2048, "out_channels": 256, "side": 16,
             "forward, batch 1": {"kernel": 0.120, "gather": 0.053},
             "forward+backward, batch 2": {"kernel": 1.196, "gather": 0.274}}
    recorded = {
        "dcn": {"command": [sys.executable, os.path.join(ROOT, "bench", "bench_dcn.py"), "--repeats", "7"],
                "figures": {"repeats": 7, "layers": {"r101 dcn1": layer}},
                "date": "2026-12-03 10:00", "load_average": [1.0, 1.0, 1.0], "repeats": 3},
        "vs_torch": {"command": [sys.executable, os.path.join(ROOT, "bench", "bench_vs_torch.py")],
                     "figures": {"res": 512, "train_batch": 2, "overrides": [], "networks": {"101": {
                         "train_s": {"mindspore": 5.0, "torch": 4.0, "ratio": 1.25, "rounds": 2},
                         "forward_s": {"mindspore": 0.6, "torch": 0.64, "ratio": 0.9375, "rounds": 2},
                         "params": {"mindspore": 49673189, "torch": 49673189}}}},
                     "date": "2026-12-03 10:10", "load_average": [1.0, 1.0, 1.0], "repeats": 3},
    }
    path = str(tmp_path / "PERFORMANCE.md")
    run_all.write_markdown(path, recorded)
    text = open(path, encoding="utf-8").read()
    assert "deformable conv r101 dcn1, 2048->256 channels at 16x16" in text
    assert "forward (batch 1) 53 / 120 ms; forward+backward (batch 2) 274 / 1196 ms" in text
    assert "ResNet-101-DCN 512x512 training step, batch 2 (Adam): this project vs PyTorch" in text
    assert "5.00 s vs 4.00 s (ratio 1.25)" in text and "0.60 s vs 0.64 s (ratio 0.94)" in text
    assert "`python bench/bench_vs_torch.py`" in text
