"""Benchmarks of the training operations on CPU: data-parallel scaling and resume overhead.

    python bench/bench_ops.py scaling [--res 128] [--batch 2] [--steps 20]
    python bench/bench_ops.py resume [--full]

scaling   images/s of train.py on 1 worker pinned to core 0, of 2 independent single-worker
          runs at once on cores 0 and 1 (the machine's upper bound: no communication), and of 2
          msrun workers (scripts/run_distributed_train_cpu.sh) pinned to cores 0 and 1, same
          per-worker configuration; throughput is the median steady-state step (steps 1-2
          excluded) from each training CSV, summed over the processes.
resume    seconds from process start to the end of the first step, for a fresh run and for a
          run resuming from its checkpoint (train.py logs both); --full uses ResNet-101 with
          DCN (its 600 MB training checkpoint) instead of the tiny network.

Data: a synthetic COCO set (tools/make_synthetic_coco.py) converted to MindRecord in a
temporary folder (--data reuses a MindRecord folder). Timings are noisy on a shared machine:
look at `uptime` first.
"""
import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable


def tiny(res, batch):
    return ["--device_target=CPU", "--net_config.block_type=BasicBlock", "--net_config.block_class=[1,1,1,1]",
            "--dataset_config.input_res_train=[%d,%d]" % (res, res), "--dataset_config.num_classes=5",
            "--train_config.batch_size=%d" % batch, "--num_parallel_workers=1"]


def full(res, batch):
    return ["--device_target=CPU", "--dataset_config.input_res_train=[%d,%d]" % (res, res),
            "--dataset_config.num_classes=5", "--train_config.batch_size=%d" % batch, "--num_parallel_workers=1"]


def make_data(folder, num_images):
    coco = os.path.join(folder, "coco")
    subprocess.run([PYTHON, os.path.join(ROOT, "tools", "make_synthetic_coco.py"), "--out", coco, "--num_train",
                    str(num_images), "--num_val", "1", "--min_side", "256", "--max_side", "512"],
                   check=True, capture_output=True)
    out = os.path.join(folder, "mindrecord")
    subprocess.run([PYTHON, os.path.join(ROOT, "src", "dataset.py"), "--coco_data_dir=%s" % coco,
                    "--mindrecord_dir=%s" % out, "--mindrecord_shards=2"], check=True, capture_output=True)
    return out


def environment(bin_dir=None):
    env = dict(os.environ)
    env["PATH"] = (bin_dir + os.pathsep if bin_dir else "") + os.path.dirname(PYTHON) + os.pathsep + env["PATH"]
    return env


def pinning_python(folder):
    """A 'python' first on PATH that pins each msrun worker to core RANK_ID (msrun starts 'python')."""
    bin_dir = os.path.join(folder, "pinbin")
    os.makedirs(bin_dir, exist_ok=True)
    path = os.path.join(bin_dir, "python")
    with open(path, "w", encoding="utf-8") as f:
        f.write("#!/bin/bash\nexec taskset -c \"${RANK_ID:-0}\" %s \"$@\"\n" % PYTHON)
    os.chmod(path, 0o755)
    return bin_dir


def steady_ips(csv_path, batch):
    """(images/s of the median steady-state step, number of steps measured)."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = [float(r["images_per_sec"]) for r in csv.DictReader(f)][2:]
    rows = [r for r in rows if r == r]  # drop nan
    return statistics.median(rows), len(rows)


def bench_scaling(args, data, work):
    results = {}
    common = tiny(args.res, args.batch) + ["--mindrecord_dir=%s" % data, "--train_steps=%d" % args.steps,
                                           "--save_checkpoint_steps=100000", "--enable_save_ckpt=false"]
    one = os.path.join(work, "one")
    start = time.time()
    subprocess.run(["taskset", "-c", "0", PYTHON, os.path.join(ROOT, "train.py")] + common +
                   ["--save_checkpoint_path=%s" % one], check=True, capture_output=True, env=environment())
    ips, n = steady_ips(os.path.join(one, "ckpt_0", "training_log.csv"), args.batch)
    results["1 worker"] = {"images_per_s": round(ips, 2), "steps": n, "wall_s": round(time.time() - start, 1)}

    # Upper bound: two independent single-worker runs at once, on cores 0 and 1 (no communication).
    start = time.time()
    procs = [subprocess.Popen(["taskset", "-c", str(core), PYTHON, os.path.join(ROOT, "train.py")] + common +
                              ["--save_checkpoint_path=%s" % os.path.join(work, "solo%d" % core)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment())
             for core in (0, 1)]
    if any(p.wait() for p in procs):
        raise RuntimeError("an independent run failed")
    solo = [steady_ips(os.path.join(work, "solo%d" % core, "ckpt_0", "training_log.csv"), args.batch)[0]
            for core in (0, 1)]
    results["2 independent workers"] = {"images_per_s": round(sum(solo), 2), "wall_s": round(time.time() - start, 1)}

    two = os.path.join(work, "two")
    start = time.time()
    env = environment(pinning_python(work))
    env.update(OUTPUT_DIR=two, MASTER_PORT=str(args.port), FOREGROUND="1")
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "run_distributed_train_cpu.sh"), data, "2"] + common,
                   check=True, capture_output=True, env=env)
    per_rank = [steady_ips(os.path.join(two, "LOG%d" % r, "ckpt_%d" % r, "training_log_rank%d.csv" % r),
                           args.batch) for r in (0, 1)]
    ips2 = sum(p[0] for p in per_rank)
    results["2 workers"] = {"images_per_s": round(ips2, 2), "steps": per_rank[0][1],
                            "wall_s": round(time.time() - start, 1)}
    results["speed-up"] = round(ips2 / ips, 2)
    results["speed-up of independent runs"] = round(sum(solo) / ips, 2)
    return results


def first_step_seconds(log_text):
    match = re.search(r"first step \((\d+)\) done ([\d.]+) s after the process started \(([\d.]+) s in the step",
                      log_text)
    return int(match.group(1)), float(match.group(2)), float(match.group(3))


def bench_resume(args, data, work):
    argv = (full(args.res, 1) if args.full else tiny(args.res, args.batch)) + [
        "--mindrecord_dir=%s" % data, "--train_steps=4", "--save_checkpoint_path=%s" % os.path.join(work, "resume")]
    results = {}
    for name, extra in (("fresh", ["--stop_at_step=1"]), ("resumed", ["--resume=true", "--stop_at_step=2"])):
        done = subprocess.run([PYTHON, os.path.join(ROOT, "train.py")] + argv + extra, capture_output=True, text=True,
                              env=environment())
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        step, since_start, in_step = first_step_seconds(done.stderr)
        results[name] = {"first_step": step, "s_from_start": since_start, "s_in_first_step": in_step}
        loaded = re.search(r"state loaded in ([\d.]+) s", done.stderr)
        if loaded:
            results[name]["s_loading_state"] = float(loaded.group(1))
    ckpt = [f for f in os.listdir(os.path.join(work, "resume", "ckpt_0")) if f.endswith(".ckpt")]
    size = os.path.getsize(os.path.join(work, "resume", "ckpt_0", ckpt[-1]))
    results["checkpoint_MB"] = round(size / 2 ** 20, 1)
    results["resume_overhead_s"] = round(results["resumed"]["s_from_start"] - results["fresh"]["s_from_start"], 1)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["scaling", "resume"])
    parser.add_argument("--res", type=int, default=128, help="input resolution (multiple of 32)")
    parser.add_argument("--batch", type=int, default=2, help="batch size per worker")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--full", action="store_true", help="resume: ResNet-101 with DCN, batch 1")
    parser.add_argument("--data", default="", help="a MindRecord folder (default: generate 64 synthetic images)")
    parser.add_argument("--port", type=int, default=8177)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="bench_ops_")
    try:
        data = args.data or make_data(work, 64)
        load = os.getloadavg()
        result = {"scaling": bench_scaling, "resume": bench_resume}[args.what](args, data, work)
        result["load_average_before"] = [round(v, 2) for v in load]
        result["settings"] = {"res": args.res, "batch_per_worker": args.batch, "steps": args.steps,
                              "full": args.full}
        print(json.dumps(result, indent=2))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(result, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
