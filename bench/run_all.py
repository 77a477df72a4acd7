"""Run the project's benchmarks, print one table and write docs/PERFORMANCE.md.

    python bench/run_all.py                        # every benchmark (about 40 minutes on 2 cores)
    python bench/run_all.py --only eval keep_res   # some of them; the others keep their last figures
    python bench/run_all.py --with_quick_start     # also time scripts/run_quick_start.sh and measure its model's
                                                   # AP on every runtime x precision (~25 min more)
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

from bench.report import print_table, write_markdown, write_readme
from src.model_utils.file_io import write_json_atomic
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


def bench_keep_res_openvino(args, work):
    """keep_res on the fastest CPU runtime of the deploy benchmark: OpenVINO on the int8 quantization of the
    dynamic-shape ONNX."""
    cmd = _script("bench_keep_res.py", "--rounds", "2", "--runtime", "openvino", "--int8")
    return {"command": cmd, "figures": _run_json(cmd, work, "keep_res_openvino")}


def bench_keep_res_onnxruntime(args, work):
    """keep_res on ONNX Runtime int8: slower per image than OpenVINO at one size, but its dynamic shapes cost
    nothing, so many sizes may be faster there."""
    cmd = _script("bench_keep_res.py", "--rounds", "2", "--runtime", "onnxruntime", "--int8")
    return {"command": cmd, "figures": _run_json(cmd, work, "keep_res_onnxruntime")}


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


def bench_deploy(args, work):
    cmd = _script("bench_deploy.py", "--runs", "7")
    return {"command": cmd, "figures": _run_json(cmd, work, "deploy")}


def bench_deploy_accuracy(args, work):
    """The quick start (scripts/run_quick_start.sh), then bench_deploy_accuracy.py on its model and data."""
    out = os.path.join(work, "quick_start")
    log = os.path.join(work, "quick_start.log")
    code, _, _, _ = run_sampling_rss(["bash", os.path.join(ROOT, "scripts", "run_quick_start.sh"), out], log)
    if code:
        raise RuntimeError("run_quick_start.sh failed (exit %d), see %s" % (code, log))
    ckpt_dir = os.path.join(out, "train", "ckpt_0")
    ckpt = os.path.join(ckpt_dir, sorted(f for f in os.listdir(ckpt_dir) if f.endswith(".ckpt"))[-1])
    cmd = _script("bench_deploy_accuracy.py", "--config_path=%s" % QUICK_START_CONFIG,
                  "--data_dir=%s" % os.path.join(out, "data", "coco"), "--load_checkpoint_path=%s" % ckpt,
                  "--mindrecord_dir=%s" % os.path.join(out, "data", "mindrecord"))
    figures = _run_json(cmd, work, "deploy_accuracy")
    return {"command": [c.replace(out, "QUICK_START_DIR") for c in cmd], "figures": figures}


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
    "keep_res_openvino": bench_keep_res_openvino,
    "keep_res_onnxruntime": bench_keep_res_onnxruntime,
    "rss": bench_rss,
    "scaling": bench_scaling,
    "resume": bench_resume,
    "deploy": bench_deploy,
    "quick_start": bench_quick_start,
    "deploy_accuracy": bench_deploy_accuracy,
}
WITH_QUICK_START = ["quick_start", "deploy_accuracy"]  # each runs scripts/run_quick_start.sh (~10 min)
DEFAULT = [name for name in BENCHMARKS if name not in WITH_QUICK_START]


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run these benchmarks only")
    parser.add_argument("--with_quick_start", action="store_true",
                        help="also time scripts/run_quick_start.sh and measure its model's AP on every runtime x "
                             "precision")
    parser.add_argument("--report_only", action="store_true", help="run nothing: rewrite the table from the results")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure where a script repeats")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per training/forward figure")
    parser.add_argument("--results", default=os.path.join(ROOT, "docs", "performance.json"))
    parser.add_argument("--markdown", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    parser.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    args = parser.parse_args(argv)
    names = [] if args.report_only else args.only or DEFAULT + (WITH_QUICK_START if args.with_quick_start else [])
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
    write_markdown(args.markdown, results, list(BENCHMARKS))
    write_readme(args.readme, results)
    print("\nwritten: %s, %s, README's figures in %s" % (args.markdown, args.results, args.readme))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
