"""Run the project's benchmarks, print one table and write docs/PERFORMANCE.md.

    python bench/run_all.py                        # every benchmark (about 40 minutes on 2 cores)
    python bench/run_all.py --only eval keep_res   # some of them; the others keep their last figures
    python bench/run_all.py --with_quick_start     # also time scripts/run_quick_start.sh (~10 min more)
    python bench/run_all.py --report_only          # rewrite the table from docs/performance.json

Each benchmark runs in a fresh process (the scripts beside this one, or train.py / eval.py
themselves for peak memory), writes its figures as JSON, and the figures are merged into
``docs/performance.json`` (one entry per benchmark, with its date, command and machine load) from
which ``docs/PERFORMANCE.md`` is regenerated. Every figure is a median over several runs or steps
(the count is in the table). CPU timings on a shared machine vary: run it on an idle machine.
A benchmark that exits non-zero (one whose agreement check failed, e.g. bench_bn_fold.py) is
reported as failed, records nothing (its earlier figures stay) and makes run_all exit 1.
"""
import argparse
import collections
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from src.model_utils.file_io import write_json_atomic, write_text_atomic
PYTHON = sys.executable
QUICK_START_CONFIG = "quick_start_config.yaml"
FULL_RES = 512
FULL_BATCH = 2


# ----------------------------------------------------------------------------- process-tree memory
def _children(pid):
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    found = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task), encoding="ascii") as f:
                found.extend(int(p) for p in f.read().split())
    except OSError:
        pass
    return found


def _rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid, encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def child_env():
    """The environment for a benchmark process: this process's ``os.environ``.

    Importing MindSpore sets OMP_NUM_THREADS=1 in the C-level environment (not in ``os.environ``),
    and a child started without an explicit environment inherits it: PyTorch and every OpenMP
    library in the benchmarks then runs on one thread. Passing ``os.environ`` gives each child
    the environment the user started with.
    """
    return dict(os.environ)


def run_sampling_rss(cmd, log_path, interval=0.2, env=None):
    """Run ``cmd``; returns (exit code, seconds, peak summed RSS of its process tree in MB, peak of the
    largest single process in MB). Sampled every ``interval`` s from /proc (Linux)."""
    peak = {"tree": 0.0, "single": 0.0}
    with open(log_path, "w", encoding="utf-8") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env=child_env() if env is None else env)
        done = threading.Event()

        def sample():
            while not done.is_set():
                pids, queue = [], [proc.pid]
                while queue:
                    pid = queue.pop()
                    pids.append(pid)
                    queue.extend(_children(pid))
                sizes = [_rss_mb(p) for p in pids]
                peak["tree"] = max(peak["tree"], sum(sizes))
                peak["single"] = max(peak["single"], max(sizes))
                done.wait(interval)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        code = proc.wait()
        done.set()
        thread.join()
    return code, time.perf_counter() - start, peak["tree"], peak["single"]


# ----------------------------------------------------------------------------- benchmarks
def _script(name, *args):
    return [PYTHON, os.path.join(ROOT, "bench", name)] + list(args)


def _run_json(cmd, work, name):
    """Run a bench script with ``--json FILE``; returns its figures. Output goes to a log in ``work``."""
    out = os.path.join(work, name + ".json")
    log = os.path.join(work, name + ".log")
    with open(log, "w", encoding="utf-8") as f:
        code = subprocess.run(cmd + ["--json", out], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                              env=child_env()).returncode
    if code != 0:
        with open(log, encoding="utf-8", errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError("%s failed (exit %d):\n%s" % (" ".join(cmd), code, tail))
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def _quick_start_batch():
    from src.model_utils.config import get_config
    return get_config(["--config_path=%s" % os.path.join(ROOT, QUICK_START_CONFIG)]).train_config.batch_size


def bench_data(args, work):
    cmd = _script("bench_data.py", "--repeats", str(args.repeats), "--convert_sizes", "1000", "2000")
    return {"command": cmd, "figures": _run_json(cmd, work, "data")}


def bench_train_full(args, work):
    cmd = _script("bench_train.py", "--batch_size=%d" % FULL_BATCH, "--steps", str(args.steps))
    return {"command": cmd, "figures": _run_json(cmd, work, "train_full")}


def bench_train_quick(args, work):
    cmd = _script("bench_train.py", "--config_path=%s" % QUICK_START_CONFIG,
                  "--batch_size=%d" % _quick_start_batch(), "--steps", str(args.steps))
    return {"command": cmd, "figures": _run_json(cmd, work, "train_quick")}


def bench_forward(args, work):
    cmd = _script("bench_train.py", "--forward_only", "--steps", str(args.steps))
    return {"command": cmd, "figures": _run_json(cmd, work, "forward")}


def bench_eval(args, work):
    cmd = _script("bench_eval.py", "--runs", str(args.repeats), "--skip_keep_res")
    return {"command": cmd, "figures": _run_json(cmd, work, "eval")}


def bench_keep_res(args, work):
    cmd = _script("bench_keep_res.py", "--rounds", "2")
    return {"command": cmd, "figures": _run_json(cmd, work, "keep_res")}


def bench_rss(args, work):
    """Peak memory of train.py (ResNet-101, 512x512, batch 2, real pipeline) and of eval.py on its checkpoint."""
    from tools.make_synthetic_coco import make_dataset
    from src.dataset import coco_to_mindrecord
    coco = os.path.join(work, "coco")
    paths = make_dataset(coco, 32, 16, seed=3)
    mindrecord = os.path.join(work, "mindrecord")
    coco_to_mindrecord(paths["train"], os.path.join(coco, "train2017"), mindrecord, shards=2)
    common = ["--device_target=CPU", "--dataset_config.num_classes=5"]
    train_cmd = [PYTHON, "train.py"] + common + [
        "--mindrecord_dir=%s" % mindrecord, "--train_config.batch_size=%d" % FULL_BATCH, "--train_steps=4",
        "--num_parallel_workers=2", "--save_checkpoint_path=%s" % os.path.join(work, "train")]
    code, seconds, tree, single = run_sampling_rss(train_cmd, os.path.join(work, "rss_train.log"))
    if code:
        raise RuntimeError("train.py failed (exit %d), see %s" % (code, os.path.join(work, "rss_train.log")))
    ckpt_dir = os.path.join(work, "train", "ckpt_0")
    ckpt = os.path.join(ckpt_dir, sorted(f for f in os.listdir(ckpt_dir) if f.endswith(".ckpt"))[-1])
    eval_cmd = [PYTHON, "eval.py"] + common + [
        "--data_dir=%s" % coco, "--load_checkpoint_path=%s" % ckpt, "--eval_config.keep_res=false",
        "--dataset_config.input_res_test=[%d,%d]" % (FULL_RES, FULL_RES),
        "--save_result_dir=%s" % os.path.join(work, "eval")]
    ecode, eseconds, etree, esingle = run_sampling_rss(eval_cmd, os.path.join(work, "rss_eval.log"))
    if ecode:
        raise RuntimeError("eval.py failed (exit %d), see %s" % (ecode, os.path.join(work, "rss_eval.log")))
    shown = [" ".join(shlex.quote(c.replace(work + os.sep, "")) for c in cmd[1:]) for cmd in (train_cmd, eval_cmd)]
    return {"command": _script("run_all.py", "--only", "rss"),
            "figures": {"train": {"tree_mb": round(tree), "largest_process_mb": round(single),
                                  "seconds": round(seconds, 1), "argv": shown[0]},
                        "eval": {"tree_mb": round(etree), "largest_process_mb": round(esingle),
                                 "seconds": round(eseconds, 1), "argv": shown[1]}}}


def bench_dcn(args, work):
    cmd = _script("bench_dcn.py", "--repeats", "7")
    return {"command": cmd, "figures": _run_json(cmd, work, "dcn")}


def bench_bn_fold(args, work):
    cmd = _script("bench_bn_fold.py", "--rounds", "15")
    return {"command": cmd, "figures": _run_json(cmd, work, "bn_fold")}


def bench_fold_fidelity(args, work):
    cmd = _script("bench_fold_fidelity.py", "--depths", "101", "18")
    return {"command": cmd, "figures": _run_json(cmd, work, "fold_fidelity")}


def bench_vs_torch(args, work):
    cmd = _script("bench_vs_torch.py", "--rounds", "2")
    return {"command": cmd, "figures": _run_json(cmd, work, "vs_torch")}


def bench_scaling(args, work):
    cmd = _script("bench_ops.py", "scaling", "--steps", "20")
    return {"command": cmd, "figures": _run_json(cmd, work, "scaling")}


def bench_resume(args, work):
    cmd = _script("bench_ops.py", "resume", "--full", "--res", str(FULL_RES))
    return {"command": cmd, "figures": _run_json(cmd, work, "resume")}


def bench_quick_start(args, work):
    out = os.path.join(work, "quick_start")
    cmd = ["bash", os.path.join(ROOT, "scripts", "run_quick_start.sh"), out]
    code, seconds, tree, _ = run_sampling_rss(cmd, os.path.join(work, "quick_start.log"))
    if code:
        raise RuntimeError("run_quick_start.sh failed (exit %d), see %s" % (code, os.path.join(work, "quick_start.log")))
    with open(os.path.join(out, "eval", "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    return {"command": ["bash", "scripts/run_quick_start.sh", "OUT_DIR"],
            "figures": {"wall_s": round(seconds, 1), "AP": metrics["AP"], "AP50": metrics["AP50"],
                        "peak_tree_mb": round(tree)}}


BENCHMARKS = {
    "data": bench_data,
    "train_full": bench_train_full,
    "train_quick": bench_train_quick,
    "forward": bench_forward,
    "dcn": bench_dcn,
    "bn_fold": bench_bn_fold,
    "fold_fidelity": bench_fold_fidelity,
    "vs_torch": bench_vs_torch,
    "eval": bench_eval,
    "keep_res": bench_keep_res,
    "rss": bench_rss,
    "scaling": bench_scaling,
    "resume": bench_resume,
    "quick_start": bench_quick_start,
}
DEFAULT = [name for name in BENCHMARKS if name != "quick_start"]


# ----------------------------------------------------------------------------- report
def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="ascii") as f:
            mem_gib = int(f.readline().split()[1]) / 2 ** 20
    except OSError:
        mem_gib = 0.0
    try:
        import mindspore
        ms_version = mindspore.__version__
    except ImportError:
        ms_version = "not installed"
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "memory_gib": round(mem_gib, 1),
            "python": platform.python_version(), "mindspore": ms_version, "os": platform.platform()}


def _cmd_text(entry):
    parts = list(entry["command"])
    if parts[0] == PYTHON or os.path.basename(parts[0]) == "python":
        parts[0] = "python"
    return " ".join(_repo_relative(p) for p in parts)


def _repo_relative(path):
    """An absolute path of a file of this repository (recorded in any checkout of it) as repo-relative."""
    if not os.path.isabs(path):
        return path
    pieces = path.strip(os.sep).split(os.sep)
    for start in range(len(pieces) - 1, -1, -1):
        tail = os.path.join(*pieces[start:])
        if not os.path.exists(os.path.join(ROOT, tail)):
            continue
        if start == 0 or not os.path.exists(os.path.join(ROOT, *pieces[start - 1:])):
            return tail
    return path


class _RowList(list):
    """Collects rows; ``append((figure, value, how, command), bench, headline)`` names the benchmark."""

    def __init__(self, results):
        super().__init__()
        self.results = results

    def add(self, bench, figure, value, how, command, headline=False):
        super().append(Row(bench, figure, value, how, command, headline))


Row = collections.namedtuple("Row", "bench figure value how command headline")
README_BEGIN = "<!-- figures: generated by bench/run_all.py from docs/performance.json; do not edit -->"
README_END = "<!-- end of generated figures -->"


def rows(results):
    """Row(bench, figure, value, how measured, command, headline) for every figure in ``results``;
    headline rows are the ones README quotes."""
    out = _RowList(results)

    def get(name):
        return results.get(name, {}).get("figures")

    data = get("data")
    if data:
        cmd = _cmd_text(results["data"])
        out.add("data", "training pipeline, 640x480 JPEG -> 512x512, all augmentations, 80 classes",
                    "%.0f images/s per core" % data["pipeline_1w_per_worker"],
                    "MindSpore pipeline, 1 worker process, median of %s runs" % results["data"]["repeats"], cmd, headline=True)
        out.add("data", "same, 2 worker processes", "%.0f images/s in total" % (2 * data["pipeline_2w_per_worker"]),
                    "median of %s runs" % results["data"]["repeats"], cmd, headline=True)
        out.add("data", "ceiling: same pipeline with a no-op transform, 1 worker",
                    "%.0f images/s" % data["pipeline_noop_1w"], "moving 8.4 MB samples only", cmd)
        out.add("data", "training pipeline at 256x256, 5 classes, 2 workers",
                    "%.0f images/s in total" % (2 * data["pipeline_small_2w_per_worker"]), "", cmd)
        for key in sorted(k for k in data if k.startswith("convert_")):
            conv = data[key]
            out.add("data", "COCO -> MindRecord conversion, %d images" % conv["images"],
                        "%.0f images/s, peak RSS %.0f MB (+%.0f MB while writing)" % (
                            conv["images_per_s"], conv["rss_main_mb"], conv["write_growth_mb"]),
                        "all cores, median of %s runs" % results["data"]["repeats"], cmd)
    for name, label in (("train_full", "training step, ResNet-101-DCN"),
                        ("train_quick", "training step, quick-start configuration")):
        fig = get(name)
        if fig:
            out.add(name, label + " (%s, batch %d, %.1f M parameters)" % (fig["input"], fig["batch"], fig["params"] / 1e6),
                        "%.2f s (%.1f images/s)" % (fig["seconds"], fig["batch"] / fig["seconds"]),
                        "compute only, batch %d, median of %d steps" % (fig["batch"], fig["runs"]),
                        _cmd_text(results[name]), headline=True)
    fig = get("forward")
    if fig:
        out.add("forward", "inference forward + decode, ResNet-101-DCN, %s, batch 1" % fig["input"],
                    "%.2f s" % fig["seconds"], "median of %d runs" % fig["runs"], _cmd_text(results["forward"]), headline=True)
    fig = get("bn_fold")
    if fig:
        out.add("bn_fold", "inference forward + decode, ResNet-101-DCN, %s, batch 1: BatchNorm folded / unfolded "
                    "(eval_config.fold_bn)" % fig["input"],
                    "%.2f s / %.2f s (per-round ratio %.2f)" % (fig["folded_s"], fig["unfolded_s"], fig["ratio"]),
                    "interleaved in one process, median of %d rounds" % fig["rounds"], _cmd_text(results["bn_fold"]), headline=True)
    fig = get("fold_fidelity")
    if fig:
        for result in fig["results"]:
            table = result["table"]
            nets = ("torch_float32", "unfolded", "folded")
            out.add("fold_fidelity", "float32 error against float64, ResNet-%d-DCN, %d images (%s), flip test: PyTorch / "
                        "fold_bn=false / fold_bn=true" % (result["depth"], len(result["per_image"]), fig["images"]),
                        "hm logits 99th percentile %s; top-20 boxes within 0.15 px %s" % (
                            " / ".join("%.2e" % table[n]["hm"]["p99"] for n in nets),
                            " / ".join("%.1f %%" % (100 * table[n]["boxes"]["within"]) for n in nets)),
                        "every head value of every image; random official-format weights",
                        _cmd_text(results["fold_fidelity"]), headline=True)
    fig = get("dcn")
    if fig:
        for name, layer in fig["layers"].items():
            fwd, both = layer["forward, batch 1"], layer["forward+backward, batch 2"]
            out.add("dcn", "deformable conv %s, %d->%d channels at %dx%d: gather / kernel implementation" % (
                name, layer["in_channels"], layer["out_channels"], layer["side"], layer["side"]),
                "forward (batch 1) %.0f / %.0f ms; forward+backward (batch 2) %.0f / %.0f ms" % (
                    1e3 * fwd["gather"], 1e3 * fwd["kernel"], 1e3 * both["gather"], 1e3 * both["kernel"]),
                "offset conv included, interleaved, median of %d" % fig["repeats"], _cmd_text(results["dcn"]))
    fig = get("vs_torch")
    if fig:
        res = fig["res"]
        for depth, net in fig["networks"].items():
            for key, label in (("train_s", "training step, batch %d (Adam)" % fig["train_batch"]),
                               ("forward_s", "forward + decode, batch 1")):
                f = net[key]
                out.add("vs_torch", "ResNet-%s-DCN %dx%d %s: this project vs PyTorch 2.13 eager" % (depth, res, res, label),
                            "%.2f s vs %.2f s (ratio %.2f)" % (f["mindspore"], f["torch"], f["ratio"]),
                            "alternating processes, median of %d rounds" % f["rounds"],
                            _cmd_text(results["vs_torch"]), headline=True)
    fig = get("eval")
    if fig:
        post = fig["postprocess"]
        out.add("eval", "post-processing per image (K=100, 80 classes, soft-NMS)", "%.2f ms" % post["ms_per_image"],
                    "one core, %d images, median of %d runs" % (post["images"], post["runs"]),
                    _cmd_text(results["eval"]), headline=True)
        if fig.get("eval_overhead"):
            over = fig["eval_overhead"]
            out.add("eval", "evaluation overhead: eval.py run (set-up excluded) / pure forward", "%.2f" % over["ratio"],
                        "%s, %d images, median of %d repetitions" % (over["config"], over["images"], over["runs"]),
                        _cmd_text(results["eval"]), headline=True)
    fig = get("keep_res")
    if fig:
        cmd = _cmd_text(results["keep_res"])
        mix, one, fwd = fig["mix"], fig["one"], fig["forward"]
        what = "%d images, %s" % (fig["images"], fig["config"])
        out.add("keep_res", "keep_res eval.py run: %d padded shapes (one dynamic-shape graph) / one size of the same "
                    "pixel count (one static graph)" % fig["mix_shapes"],
                    "%.2f (%.1f s / %.1f s; whole processes %.2f)" % (fig["ratio"], mix["total_s"], one["total_s"],
                                                                      fig["process_ratio"]),
                    "%s, alternating processes, median of %d rounds" % (what, fig["rounds"]), cmd, headline=True)
        out.add("keep_res", "graph compilation: dynamic-shape graph / one static graph",
                    "%.1f s / %.1f s" % (fwd["dynamic_compile_s"], fwd["static_compile_s"]), what, cmd)
        for shape, f in fwd["shapes"].items():
            out.add("keep_res", "forward + decode at %s: dynamic-shape graph / static graph" % shape,
                        "%.3f s / %.3f s (ratio %.2f)" % (f["dynamic_s"], f["static_s"], f["ratio"]),
                        "interleaved, median of %d" % fwd["repeats"], cmd)
        out.add("keep_res", "share of the keep_res eval.py run outside the network, compilation included",
                    "%.0f %% (compilation %.0f %%, the rest %.0f %%); one size: %.0f %%" % (
                        100 * mix["outside_network_share"], 100 * mix["compile_share"], 100 * mix["other_share"],
                        100 * one["outside_network_share"]), what, cmd)
    fig = get("rss")
    if fig:
        for part in ("train", "eval"):
            p = fig[part]
            out.add("rss", "peak memory of %s.py, ResNet-101-DCN, 512x512" % part,
                        "%d MB (process tree), %d MB (largest process)" % (p["tree_mb"], p["largest_process_mb"]),
                        "sampled every 0.2 s", "python " + p["argv"], headline=True)
    fig = get("scaling")
    if fig:
        out.add("scaling", "data-parallel scaling on CPU, 1 -> 2 workers (tiny network)",
                    "%.1f -> %.1f images/s (x%.2f; independent runs x%.2f)" % (
                        fig["1 worker"]["images_per_s"], fig["2 workers"]["images_per_s"], fig["speed-up"],
                        fig["speed-up of independent runs"]),
                    "median steady step of each run", _cmd_text(results["scaling"]), headline=True)
    fig = get("resume")
    if fig:
        out.add("resume", "resume overhead, ResNet-101-DCN (checkpoint %.0f MB)" % fig["checkpoint_MB"],
                    "%.1f s to the first resumed step (fresh run %.1f s); state loading %.1f s" % (
                        fig["resumed"]["s_from_start"], fig["fresh"]["s_from_start"],
                        fig["resumed"].get("s_loading_state", float("nan"))),
                    "process start to end of first step", _cmd_text(results["resume"]), headline=True)
    fig = get("quick_start")
    if fig:
        out.add("quick_start", "quick start, whole run (data, conversion, training, evaluation, export)",
                    "%.0f s; AP %.3f, AP50 %.3f" % (fig["wall_s"], fig["AP"], fig["AP50"]), "",
                    _cmd_text(results["quick_start"]), headline=True)
    return out


def where(results, bench):
    """'CPU model, date' of a benchmark's entry ('CPU not recorded' for an entry without its machine)."""
    entry = results[bench]
    cpu = entry.get("machine", {}).get("cpu", "CPU not recorded")
    return "%s, %s" % (cpu, entry["date"][:10])


def machines(results):
    """The distinct machines of the record, each with the benchmarks measured on it."""
    seen = collections.OrderedDict()
    for name in BENCHMARKS:
        if name in results:
            info = results[name].get("machine")
            key = json.dumps(info, sort_keys=True) if info else None
            seen.setdefault(key, (info, []))[1].append(name)
    return list(seen.values())


def write_markdown(path, results):
    lines = [
        "# Performance record",
        "",
        "Generated by `python bench/run_all.py` from `docs/performance.json`; do not edit by hand.",
        "Every figure comes from a script in `bench/` (or the quick-start script) that anyone can rerun.",
        "Each figure names the CPU it ran on: timings, and the quick start's AP (float rounding differs",
        "between CPU kinds), hold for that machine only.",
        "",
        "## Machines",
        "",
        "| CPU | cores | memory | OS | Python / MindSpore | benchmarks |",
        "|---|---|---|---|---|---|",
    ]
    for info, names in machines(results):
        if info:
            lines.append("| %s | %d | %.1f GiB | %s | %s / %s | %s |" % (
                info["cpu"], info["cores"], info["memory_gib"], info["os"], info["python"], info["mindspore"],
                ", ".join(names)))
        else:
            lines.append("| not recorded | | | | | %s |" % ", ".join(names))
    lines += ["", "No accelerator: every figure is device_target=CPU.", "", "## Figures", "",
              "| figure | measured | how | CPU, date (UTC) | command |", "|---|---|---|---|---|"]
    for row in rows(results):
        lines.append("| %s | %s | %s | %s | `%s` |" % (row.figure, row.value, row.how, where(results, row.bench),
                                                     row.command))
    lines += ["", "## When each benchmark ran", "", "| benchmark | date (UTC) | load average before |",
              "|---|---|---|"]
    for name in BENCHMARKS:
        if name in results:
            lines.append("| %s | %s | %s |" % (name, results[name]["date"],
                                              ", ".join("%.2f" % v for v in results[name]["load_average"])))
    lines += ["", "How to read these figures, where the time goes and what was tried to lower it: "
              "[performance_notes.md](performance_notes.md)."]
    write_text_atomic(path, "\n".join(lines) + "\n")


def readme_block(results):
    """README's table of headline figures (between README_BEGIN and README_END), from the record."""
    lines = [README_BEGIN, "", "| figure | measured | CPU, date (UTC) |", "|---|---|---|"]
    for row in rows(results):
        if row.headline:
            lines.append("| %s | %s | %s |" % (row.figure, row.value, where(results, row.bench)))
    return "\n".join(lines + ["", README_END])


def write_readme(path, results):
    """Replace README's generated block with the record's headline figures."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise RuntimeError("%s has no block between %r and %r" % (path, README_BEGIN, README_END))
    write_text_atomic(path, text[:begin] + readme_block(results) + text[end + len(README_END):])


def print_table(results):
    table = rows(results)
    width = max((len(r.figure) for r in table), default=10)
    print("\n%-*s  %s" % (width, "figure", "measured"))
    for row in table:
        print("%-*s  %s" % (width, row.figure, row.value))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run these benchmarks only")
    parser.add_argument("--with_quick_start", action="store_true", help="also time scripts/run_quick_start.sh")
    parser.add_argument("--report_only", action="store_true", help="run nothing: rewrite the table from the results")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure where a script repeats")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per training/forward figure")
    parser.add_argument("--results", default=os.path.join(ROOT, "docs", "performance.json"))
    parser.add_argument("--markdown", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    parser.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    args = parser.parse_args(argv)
    names = [] if args.report_only else args.only or DEFAULT + (["quick_start"] if args.with_quick_start else [])
    results = {}
    if os.path.exists(args.results):
        with open(args.results, encoding="utf-8") as f:
            results = json.load(f)
    results.pop("_machine", None)  # the machine is recorded per benchmark
    here = machine()
    failed = []
    for name in names:
        print("running %s ..." % name, flush=True)
        load = os.getloadavg()
        start = time.time()
        with tempfile.TemporaryDirectory(prefix="bench_%s_" % name) as work:
            try:
                entry = BENCHMARKS[name](args, work)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print("  %s failed: %s" % (name, exc), file=sys.stderr)
                failed.append(name)
                continue
        entry.update(machine=here, date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
                     load_average=[round(v, 2) for v in load], repeats=args.repeats,
                     wall_s=round(time.time() - start, 1))
        results[name] = entry
        print("  done in %.0f s" % (time.time() - start), flush=True)
        write_json_atomic(args.results, results, indent=2)
    print_table(results)
    write_markdown(args.markdown, results)
    write_readme(args.readme, results)
    print("\nwritten: %s, %s, README's figures in %s" % (args.markdown, args.results, args.readme))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
