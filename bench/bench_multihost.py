"""Benchmark: training images/s of a 2-worker CPU job on one host against the same job as 2 hosts.

Both run through scripts/run_distributed_train_cpu.sh on this machine: the one-host job with
WORKER_NUM=2; the two-host job as two launchers (LOCAL_WORKER_NUM=1, NODE_RANK 0 and 1), each on
its own host made by tools/netns.py (two network namespaces joined by a veth pair: needs root and
iproute2), so the two ranks communicate over the veth pair. The small network of the tests
trains on a generated dataset; the repetitions alternate the two layouts (A/B/A/B...) so that a
changing machine load hits both alike. Figure: the job's images/s (sum over ranks of the per-rank
median of the training CSV's images_per_sec, the first timed step left out), median over repetitions.

    python bench/bench_multihost.py                 # 3 repetitions of each layout
    python bench/bench_multihost.py --repeats=5 --steps=30
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from testkit.ops_support import (DISTRIBUTED_CPU_SCRIPT, TINY, env, finish_all, free_port,
                                 read_csv, start_two_hosts)
from tools import netns


def _job_images_per_s(rank_dirs):
    """Sum over the ranks of the median per-rank images/s (rows after the first timed one)."""
    total = 0.0
    for rank, folder in rank_dirs:
        rows = read_csv(os.path.join(folder, "ckpt_%d" % rank, "training_log_rank%d.csv" % rank))
        timed = [float(r["images_per_sec"]) for r in rows if r["images_per_sec"] != "nan"][1:]
        if not timed:
            raise RuntimeError("no timed steps in the CSV of rank %d (%s)" % (rank, folder))
        total += statistics.median(timed)
    return total


def _one_host(folder, data, args):
    out = os.path.join(folder, "one_host")
    result = subprocess.run(["bash", DISTRIBUTED_CPU_SCRIPT, data, "2"] + args, cwd=folder, capture_output=True,
                            text=True, env=env({"OUTPUT_DIR": out, "MASTER_PORT": str(free_port())}), timeout=1800)
    if result.returncode != 0:
        raise RuntimeError("one-host job failed:\n" + result.stderr[-3000:])
    return _job_images_per_s([(r, os.path.join(out, "LOG%d" % r)) for r in (0, 1)])


def _two_hosts(folder, data, args):
    with netns.TwoHosts() as hosts:
        results = finish_all(start_two_hosts(hosts, folder, data, args), 1800)
    for node, (status, output, _) in enumerate(results):
        if status != 0:
            raise RuntimeError("two-host job failed on host %d:\n%s" % (node, output[-3000:]))
    return _job_images_per_s([(r, os.path.join(folder, "host%d" % r, "LOG%d" % r)) for r in (0, 1)])


def _dataset(folder, images):
    from src.dataset import coco_to_mindrecord
    from tools.make_synthetic_coco import make_dataset
    paths = make_dataset(os.path.join(folder, "coco"), images, 1, seed=0, min_side=96, max_side=192, min_obj=16,
                         max_obj=64, max_objects=4)
    out = os.path.join(folder, "mindrecord")
    coco_to_mindrecord(paths["train"], os.path.join(folder, "coco", "train2017"), out, shards=2, workers=1)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each layout (alternating)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    reason = netns.unavailable()
    if reason:
        print("error: the two-host layout runs on two network namespaces: %s" % reason, file=sys.stderr)
        return 2
    figures = {"one_host": [], "two_hosts": []}
    with tempfile.TemporaryDirectory(prefix="bench_multihost_") as folder:
        data = _dataset(folder, images=2 * 2 * args.steps)
        train_args = TINY + ["--train_steps=%d" % args.steps, "--save_checkpoint_steps=100000"]
        for i in range(args.repeats):
            for name, run in (("one_host", _one_host), ("two_hosts", _two_hosts)):
                run_dir = os.path.join(folder, "%s_%d" % (name, i))
                os.makedirs(run_dir)
                figures[name].append(run(run_dir, data, train_args))
                print("%-9s run %d: %.2f images/s" % (name, i + 1, figures[name][-1]), flush=True)
    summary = {name: {"median_images_per_s": round(statistics.median(v), 2), "runs": [round(x, 2) for x in v]}
               for name, v in figures.items()}
    summary.update(steps=args.steps, repeats=args.repeats, load_average=os.getloadavg()[0],
                   network="tests/ops_support.TINY (BasicBlock [1,1,1,1], 128x128, batch 2 per rank)",
                   two_host_layout="two network namespaces joined by a veth pair (tools/netns.py)")
    print(json.dumps(summary, indent=1))
    if args.json:
        from src.model_utils.file_io import write_json_atomic
        write_json_atomic(args.json, summary, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
