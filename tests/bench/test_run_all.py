"""bench/run_all.py: the process-tree memory sampler, the table and docs/PERFORMANCE.md from recorded figures."""
import json
import os
import sys

from bench import report, run_all
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
    report.write_markdown(path, RECORDED)
    text = open(path, encoding="utf-8").read()
    assert "## Machines" in text and "| not recorded |" in text
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
    readme = _readme(tmp_path)
    code = run_all.main(["--only", "eval", "--results", str(results), "--markdown", str(tmp_path / "P.md"),
                         "--readme", str(readme)])
    assert code == 0 and calls == [True]
    merged = json.loads(results.read_text())
    assert merged["eval"]["figures"]["postprocess"]["ms_per_image"] == 0.5
    assert merged["eval"]["machine"] == run_all.machine()  # each benchmark records the machine it ran on
    assert merged["train_full"] == RECORDED["train_full"]
    text = (tmp_path / "P.md").read_text()
    cpu = run_all.machine()["cpu"]
    assert "| 0.50 ms | one core, 10 images, median of 1 runs | %s, " % cpu in text
    assert "| 4.00 s (0.5 images/s) | compute only, batch 2, median of 5 steps | CPU not recorded, 2026-11-23 |" \
        in text
    lines = readme.read_text().splitlines()
    assert lines[0] == "# intro" and lines[-1] == "after"  # the text around the block is kept
    assert any(line.startswith("| post-processing per image (K=100, 80 classes, soft-NMS) | 0.50 ms | %s, " % cpu)
               for line in lines)


def _readme(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# intro\n%s\nold table\n%s\nmiddle\n%s\nold\n%s\nafter\n" % (
        report.README_BEGIN, report.README_END, report.DEPLOY_BEGIN, report.DEPLOY_END))
    return path


def test_readme_figures_are_the_recorded_ones():
    """README's table is the record's: regenerate it with python bench/run_all.py --report_only."""
    with open(os.path.join(ROOT, "docs", "performance.json"), encoding="utf-8") as f:
        results = json.load(f)
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    block = report.readme_block(results)
    assert block in readme
    assert readme.count(report.README_BEGIN) == 1 and "| figure | measured | CPU, date (UTC) |" in block
    assert report.deploy_block(results) in readme and readme.count(report.DEPLOY_BEGIN) == 1


def test_runtime_x_precision_table(tmp_path):
    """README's runtime x precision table joins bench_deploy's times and file sizes with bench_deploy_accuracy's AP."""
    def timed(median, ratio):
        return {"median": median, "min": median, "max": median}, ratio
    forward = {"MindSpore fp32": timed(0.667, 1.52), "ONNX Runtime fp32": timed(0.438, 1.0),
               "OpenVINO bf16": timed(0.222, 0.51), "ONNX Runtime int8": timed(0.198, 0.45)}
    recorded = {
        "deploy": {"command": [sys.executable, os.path.join(ROOT, "bench", "bench_deploy.py"), "--runs", "7"],
                   "figures": {"network": "Bottleneck [3, 4, 23, 3], 80 classes", "input": [1, 3, 512, 512],
                               "runs": 7, "reference": "ONNX Runtime fp32", "file_mb": {"fp32": 189.3, "int8": 48.0},
                               "forward_s": {k: v[0] for k, v in forward.items()},
                               "per_round_ratio_to_reference_median": {k: v[1] for k, v in forward.items()}},
                   "date": "2026-12-06 10:00", "load_average": [0.1, 0.1, 0.1], "repeats": 3},
        "deploy_accuracy": {"command": ["python", "bench/bench_deploy_accuracy.py"], "figures": {
            "images": 100, "rows": {"MindSpore fp32": {"AP": 0.3104, "AP50": 0.718, "AP_diff": 0.0},
                                    "OpenVINO bf16": {"AP": 0.3091, "AP50": 0.716, "AP_diff": -0.0013},
                                    "OpenVINO fp32": {"AP": 0.3104, "AP50": 0.718, "AP_diff": 0.0}}},
            "date": "2026-12-06 11:00", "load_average": [0.1, 0.1, 0.1], "repeats": 3},
    }
    lines = report.deploy_block(recorded).splitlines()
    assert lines[2] == ("| runtime, precision | forward + decode (Bottleneck [3, 4, 23, 3], 512x512) | / ONNX Runtime "
                        "fp32 | model file | quick-start AP (- MindSpore fp32) |")
    assert lines[4:9] == ["| MindSpore fp32 | 0.667 s | 1.52 |  | 0.3104 (+0.0000) |",
                          "| ONNX Runtime fp32 | 0.438 s | 1.00 | 189.3 MB |  |",
                          "| OpenVINO fp32 |  |  | 189.3 MB | 0.3104 (+0.0000) |",
                          "| OpenVINO bf16 | 0.222 s | 0.51 | 189.3 MB | 0.3091 (-0.0013) |",
                          "| ONNX Runtime int8 | 0.198 s | 0.45 | 48.0 MB |  |"]
    assert "Times and file sizes: CPU not recorded, 2026-12-06, `python bench/bench_deploy.py --runs 7`." in lines
    readme = _readme(tmp_path)
    report.write_readme(str(readme), recorded)
    text = readme.read_text()
    assert "| OpenVINO bf16 | 0.222 s |" in text and "old\n" not in text and text.endswith("after\n")
    values = {r.figure.rsplit(": ", 1)[-1]: r.value for r in report.rows(recorded) if r.bench == "deploy"}
    assert values["ONNX Runtime int8"] == "0.198 s (per-round ratio to ONNX Runtime fp32 0.45)"
    assert values["OpenVINO bf16"] == "0.222 s (per-round ratio to ONNX Runtime fp32 0.51)"



def test_a_failed_agreement_check_is_a_failure_not_a_figure(tmp_path, monkeypatch, capsys):
    """A benchmark exiting 1 on its agreement check fails run_all, which keeps the recorded figures."""
    results = tmp_path / "performance.json"
    results.write_text(json.dumps(RECORDED))
    failing = "import sys; print('folded vs unfolded: FAILED: heads differ: hm by 3.9'); sys.exit(1)"

    def fake_bn_fold(args, work):
        cmd = [sys.executable, "-c", failing]
        return {"command": cmd, "figures": run_all._run_json(cmd, work, "bn_fold")}

    monkeypatch.setitem(run_all.BENCHMARKS, "bn_fold", fake_bn_fold)
    code = run_all.main(["--only", "bn_fold", "--results", str(results), "--markdown", str(tmp_path / "P.md"),
                         "--readme", str(_readme(tmp_path))])
    assert code == 1
    err = capsys.readouterr().err
    assert "bn_fold failed" in err and "(exit 1)" in err and "FAILED: heads differ" in err
    assert "bn_fold" not in json.loads(results.read_text())
    assert "(eval_config.fold_bn) |" not in (tmp_path / "P.md").read_text()  # no table row


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
    report.write_markdown(path, recorded)
    text = open(path, encoding="utf-8").read()
    assert "deformable conv r101 dcn1, 2048->256 channels at 16x16" in text
    assert "forward (batch 1) 53 / 120 ms; forward+backward (batch 2) 274 / 1196 ms" in text
    assert "ResNet-101-DCN 512x512 training step, batch 2 (Adam): this project vs PyTorch" in text
    assert "5.00 s vs 4.00 s (ratio 1.25)" in text and "0.60 s vs 0.64 s (ratio 0.94)" in text
    assert "`python bench/bench_vs_torch.py`" in text


def test_fold_fidelity_rows(tmp_path):
    def net(p99, within):
        return {"hm": {"median": 1e-5, "p99": p99, "max": 1e-3}, "boxes": {"count": 160, "within": within,
                                                                          "worst_px": 0.01}}
    recorded = {"fold_fidelity": {
        "command": [sys.executable, os.path.join(ROOT, "bench", "bench_fold_fidelity.py"), "--depths", "101"],
        "figures": {"images": "scikit-image photos", "results": [{
            "depth": 101, "per_image": [{}] * 8,
            "table": {"torch_float32": net(1.29e-4, 1.0), "unfolded": net(1.18e-4, 0.99),
                      "folded": net(1.17e-4, 1.0)}}]},
        "date": "2026-12-06 10:00", "load_average": [1.0, 1.0, 1.0], "repeats": 3}}
    path = str(tmp_path / "PERFORMANCE.md")
    report.write_markdown(path, recorded)
    text = open(path, encoding="utf-8").read()
    assert "float32 error against float64, ResNet-101-DCN, 8 images (scikit-image photos)" in text
    assert "hm logits 99th percentile 1.29e-04 / 1.18e-04 / 1.17e-04; top-20 boxes within 0.15 px " \
           "100.0 % / 99.0 % / 100.0 %" in text
    assert "`python bench/bench_fold_fidelity.py --depths 101`" in text
