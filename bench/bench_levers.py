"""Benchmark: where the training step's time goes, and what global MindSpore settings change it.

    python bench/bench_levers.py profile [--top 15] [overrides...]
    python bench/bench_levers.py levers [--rounds 2] [--steps 3] [--levers base jit_O0 ...] [overrides...]
    python bench/bench_levers.py ab [--rounds 7] [overrides...]
    python bench/bench_levers.py heads [--rounds 10] [overrides...]

profile   runs the training cell that train.py builds for the configuration (random inputs, loss,
          gradients, Adam; on the CPU fp32 without loss-scale work; ResNet-101-DCN, 512x512,
          batch 2 unless overridden) for 3 steps under MindSpore's CPU profiler and prints the
          operator types by total time (FRAMEWORK/cpu_op_type_info_0.csv) and the slowest single
          operators.
levers    times that training step (median of --steps after 2 warm-up steps) once per lever and
          round, each in a fresh process, levers alternating so all see the same machine load.
          A lever is a context setting or environment variable (see LEVERS); "base" is none.
ab        the levers that can differ between cells of one process (AB_VARIANTS: jit level per cell,
          kernel DCN, no loss scale, no overflow check, no per-step host sync), all compiled first,
          then one step of each in turn for --rounds rounds: medians under the same load.
heads     the three heads' first 3x3 convolutions, forward+backward: separate, or as one
          convolution with concatenated weights (a lever not applied; see docs/PERFORMANCE.md).

Overrides (--key=value) go to the configuration, e.g. --net_config.dcn_impl=kernel or
--net_config.block_type=BasicBlock --net_config.block_class=[2,2,2,2] for ResNet-18.
"""
import argparse
import csv
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from mindspore import ops
from mindspore.common import dtype as mstype

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

BATCH = 2
# name -> (ms.set_context keywords, environment variables, measure keywords)
LEVERS = {
    "base": ({}, {}, {}),
    "jit_O0": ({"jit_config": {"jit_level": "O0"}}, {}, {}),
    "jit_O1": ({"jit_config": {"jit_level": "O1"}}, {}, {}),
    "jit_O2": ({"jit_config": {"jit_level": "O2"}}, {}, {}),
    "graph_kernel": ({"enable_graph_kernel": True}, {}, {}),
    "runtime_threads_1": ({"runtime_num_threads": 1}, {}, {}),
    "runtime_threads_2": ({"runtime_num_threads": 2}, {}, {}),
    "inter_op_1": ({"inter_op_parallel_num": 1}, {}, {}),
    "omp_threads_1": ({}, {"OMP_NUM_THREADS": "1"}, {}),
    "omp_threads_2": ({}, {"OMP_NUM_THREADS": "2"}, {}),
    "dcn_kernel": ({}, {}, {"argv": ["--net_config.dcn_impl=kernel"]}),
    "no_loss_scale": ({}, {}, {"loss_scale": False}),
    "no_host_sync": ({}, {}, {"sync_every_step": False}),
    "no_overflow_check": ({}, {}, {"loss_scale": False, "skip_overflow_check": True}),
}


def _all_finite_skipped(grads):
    """Measurement probe only: stands in for ms.amp.all_finite to time the step without the check."""
    return ops.ones((), mstype.bool_)


def train_cell(argv, loss_scale=True):
    """(training cell, its inputs). ``loss_scale``: True, a dynamic loss scale of 1024 with its
    overflow check; False, scale 1 (the check stays); None, the cell training builds for the
    configuration (src.trainer.build_train_step: on the CPU, fp32 without loss-scale work)."""
    import mindspore as ms
    import numpy as np
    from mindspore import Tensor, nn

    from bench.bench_train import _targets
    from src.centernet_det import CenterNetDet, CenterNetLossCell, CenterNetTrainStep
    from src.model_utils.config import get_config
    from src.trainer import build_train_step

    cfg = get_config(argv)
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.set_seed(0)
    rng = np.random.default_rng(0)
    num_classes = cfg.dataset_config.num_classes
    net = CenterNetDet(cfg.net_config, num_classes)
    opt = nn.Adam(net.trainable_params(), 1e-4)
    if loss_scale is None:
        cell = build_train_step(cfg, net, opt)
    else:
        scale = nn.DynamicLossScaleUpdateCell(1024.0, 2, 1000) if loss_scale else None
        cell = CenterNetTrainStep(CenterNetLossCell(net, cfg.net_config), opt, scale, 1024.0 if loss_scale else 1.0)
    cell.set_train()
    h, w = cfg.dataset_config.input_res_train
    image = rng.random((BATCH, 3, h, w), dtype=np.float32)
    return cell, [Tensor(a) for a in [image] + _targets(cfg, BATCH, num_classes, rng)]


def time_steps(cell, inputs, steps, warmup=2, sync_every_step=True):
    """Median seconds per step; without per-step sync, the mean over the timed steps."""
    for _ in range(warmup):
        cell(*inputs)[0].asnumpy()
    if not sync_every_step:
        start = time.perf_counter()
        outs = [cell(*inputs) for _ in range(steps)]
        outs[-1][0].asnumpy()
        return (time.perf_counter() - start) / steps
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        cell(*inputs)[0].asnumpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def base_argv(overrides):
    return ["--device_target=CPU", "--dataset_config.num_classes=80"] + list(overrides)


def run_lever(name, steps, overrides, out):
    import mindspore as ms
    context, _, options = LEVERS[name]
    if context:
        ms.set_context(**context)
    if options.get("skip_overflow_check"):
        ms.amp.all_finite = _all_finite_skipped
    cell, inputs = train_cell(base_argv(overrides) + options.get("argv", []), options.get("loss_scale", True))
    seconds = time_steps(cell, inputs, steps, sync_every_step=options.get("sync_every_step", True))
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"seconds": seconds}, f)


def levers(args, overrides):
    results = {name: [] for name in args.levers}
    with tempfile.TemporaryDirectory(prefix="bench_levers_") as work:
        for round_index in range(args.rounds):
            order = args.levers if round_index % 2 == 0 else list(reversed(args.levers))
            for name in order:
                out = os.path.join(work, "%s_%d.json" % (name, round_index))
                env = dict(os.environ, **LEVERS[name][1])
                cmd = [sys.executable, os.path.abspath(__file__), "worker", "--lever", name, "--steps",
                       str(args.steps), "--out", out] + overrides
                # cwd: graph-kernel compilation leaves files in the working folder.
                proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
                if proc.returncode:
                    lines = proc.stderr.strip().splitlines() or [""]
                    reason = next((line for line in lines if "Error" in line), lines[-1])
                    print("%-18s round %d failed: %s" % (name, round_index + 1, reason.strip()), flush=True)
                    continue
                with open(out, encoding="utf-8") as f:
                    results[name].append(json.load(f)["seconds"])
                print("%-18s round %d: %.3f s per step" % (name, round_index + 1, results[name][-1]), flush=True)
    base = statistics.median(results["base"]) if results.get("base") else None
    table = {}
    print("\n%-18s %12s %10s" % ("lever", "step (s)", "vs base"))
    for name, values in results.items():
        if not values:
            table[name] = {"failed": True}
            print("%-18s %12s" % (name, "failed"))
            continue
        seconds = statistics.median(values)
        table[name] = {"seconds": seconds, "rounds": len(values), "vs_base": seconds / base if base else None}
        print("%-18s %12.3f %10s" % (name, seconds, "%.2f" % (seconds / base) if base else "-"))
    return table


AB_VARIANTS = ("base", "jit_O0", "jit_O1", "jit_O2", "dcn_kernel", "no_loss_scale", "no_overflow_check",
               "no_host_sync")


def ab(args, overrides):
    """Interleaved in-process A/B of AB_VARIANTS; {variant: {seconds, vs_base}}."""
    import mindspore as ms
    from mindspore import JitConfig

    real_all_finite = ms.amp.all_finite
    cells = {}
    for name in AB_VARIANTS:
        if name == "no_host_sync":
            continue
        options = LEVERS[name][2]
        ms.amp.all_finite = _all_finite_skipped if options.get("skip_overflow_check") else real_all_finite
        cell, inputs = train_cell(base_argv(overrides) + options.get("argv", []), options.get("loss_scale", True))
        if name.startswith("jit_"):
            cell.set_jit_config(JitConfig(jit_level=name[4:]))
        cell(*inputs)[0].asnumpy()  # compiles now, with this variant's all_finite
        cells[name] = (cell, inputs)
        print("compiled %s" % name, flush=True)
    ms.amp.all_finite = real_all_finite
    cells["no_host_sync"] = cells["base"]
    times = {name: [] for name in AB_VARIANTS}
    for _ in range(args.rounds):
        for name in AB_VARIANTS:
            cell, inputs = cells[name]
            times[name].append(time_steps(cell, inputs, 3, warmup=0, sync_every_step=name != "no_host_sync"))
    base = statistics.median(times["base"])
    table = {}
    print("\n%-18s %12s %10s" % ("variant", "step (s)", "vs base"))
    for name in AB_VARIANTS:
        seconds = statistics.median(times[name])
        table[name] = {"seconds": seconds, "vs_base": seconds / base, "rounds": args.rounds}
        print("%-18s %12.3f %10.2f" % (name, seconds, seconds / base), flush=True)
    return table


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def profile(args, overrides):
    from mindspore.profiler import ProfilerActivity, profile as ms_profile, tensorboard_trace_handler

    out = args.profile_dir or tempfile.mkdtemp(prefix="bench_profile_")
    cell, inputs = train_cell(base_argv(overrides), loss_scale=None)  # the cell training runs
    for _ in range(2):  # compile and warm up outside the profile
        cell(*inputs)[0].asnumpy()
    steps = 3
    prof = ms_profile(activities=[ProfilerActivity.CPU], on_trace_ready=tensorboard_trace_handler(out))
    prof.start()
    start = time.perf_counter()
    for _ in range(steps):
        cell(*inputs)[0].asnumpy()
    wall = (time.perf_counter() - start) / steps
    prof.stop()
    found = glob.glob(os.path.join(out, "**", "cpu_op_type_info_0.csv"), recursive=True)
    if not found:
        raise RuntimeError("the profiler wrote no cpu_op_type_info_0.csv below %s" % out)
    rows = _read_csv(found[0])
    time_key = next(k for k in rows[0] if "time" in k.lower() and "total" in k.lower())
    type_key = next(k for k in rows[0] if "type" in k.lower())
    rows.sort(key=lambda r: -float(r[time_key]))
    total = sum(float(r[time_key]) for r in rows)
    print("profile of %d steps in %s; wall %.3f s per step under the profiler" % (steps, out, wall))
    print("%-32s %12s %8s" % ("operator type", "ms per step", "share"))
    top = []
    for row in rows[:args.top]:
        ms_per_step = float(row[time_key]) / steps
        top.append({"op_type": row[type_key], "ms_per_step": ms_per_step, "share": float(row[time_key]) / total})
        print("%-32s %12.1f %7.1f%%" % (row[type_key], ms_per_step, 100 * top[-1]["share"]))
    details = _read_csv(found[0].replace("cpu_op_type_info_0.csv", "cpu_op_detail_info_0.csv"))
    details.sort(key=lambda r: -float(r["op_total_time(ms)"]))
    print("\n%-12s %s" % ("ms per step", "slowest single operators"))
    slowest = []
    for row in details[:args.top]:
        slowest.append({"op": row["full_op_name"], "ms_per_step": float(row["op_total_time(ms)"]) / steps})
        print("%12.1f %s" % (slowest[-1]["ms_per_step"], row["full_op_name"]))
    return {"wall_s_per_step": wall, "op_ms_per_step_total": total / steps, "top": top, "slowest": slowest}


def heads(args, overrides):
    """The heads' first 3x3 convolutions (head_conv channels at the output resolution, batch 2), forward
    and backward: three separate convolutions against one with the weights concatenated and the output
    split (the same arithmetic), compiled in one process and timed in turn; {variant: seconds}."""
    import mindspore as ms
    import numpy as np
    from mindspore import Tensor, nn, ops

    from src.model_utils.config import get_config

    cfg = get_config(base_argv(overrides))
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    channels = cfg.net_config.head_conv
    out_h, out_w = cfg.dataset_config.output_res

    class Separate(nn.Cell):
        def __init__(self):
            super().__init__()
            self.convs = nn.CellList([nn.Conv2d(channels, channels, 3, pad_mode="pad", padding=1, has_bias=True)
                                      for _ in range(3)])

        def construct(self, x):
            return (ops.relu(self.convs[0](x)).sum() + ops.relu(self.convs[1](x)).sum()
                    + ops.relu(self.convs[2](x)).sum())

    class Fused(Separate):
        def construct(self, x):
            weight = ops.concat((self.convs[0].weight, self.convs[1].weight, self.convs[2].weight), 0)
            bias = ops.concat((self.convs[0].bias, self.convs[1].bias, self.convs[2].bias), 0)
            y = ops.relu(ops.bias_add(ops.conv2d(x, weight, pad_mode="pad", padding=1), bias))
            first, second, third = ops.split(y, channels, 1)
            return first.sum() + second.sum() + third.sum()

    x = Tensor(np.random.default_rng(0).random((BATCH, channels, out_h, out_w), dtype=np.float32))
    steps = {}
    for name, cls in (("separate", Separate), ("fused", Fused)):
        net = cls()
        steps[name] = ms.jit(ms.value_and_grad(net, grad_position=0, weights=net.trainable_params()))
        steps[name](x)[0].asnumpy()
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step(x)[0].asnumpy()
            times[name].append(time.perf_counter() - start)
    result = {name: statistics.median(values) for name, values in times.items()}
    print("three %d-channel 3x3 head convolutions at %dx%d, batch %d, forward+backward, median of %d rounds:"
          % (channels, out_h, out_w, BATCH, args.rounds))
    for name, seconds in result.items():
        print("  %-9s %.3f s" % (name, seconds))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["profile", "levers", "ab", "heads", "worker"])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--profile_dir", help="profiler output folder (default: a new temporary folder)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--lever", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the figures to this file")
    args, overrides = parser.parse_known_args(argv)
    if args.mode == "worker":
        return run_lever(args.lever, args.steps, overrides, args.out)
    print("load average before: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    result = {"profile": profile, "levers": levers, "ab": ab, "heads": heads}[args.mode](args, overrides)
    if args.json:
        from src.file_io import write_json_atomic
        write_json_atomic(args.json, {"mode": args.mode, "overrides": overrides, "result": result}, indent=2)
    return result


if __name__ == "__main__":
    main()
