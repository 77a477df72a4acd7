"""Benchmark: this project (MindSpore, graph mode) against the same network in PyTorch (eager).

The PyTorch side is the official CenterNet PoseResNet-DCN transcription of the tests
(testkit/official_centernet_torch.py: DCNv2 semantics written in plain PyTorch ops; its
deformable convolution as one ``grid_sample`` plus one matmul, ``--torch_dcn=grid``, the fast
plain-PyTorch formulation, tested equal to the explicit reference), with
the official ctdet losses (focal loss, L1 on wh and reg, weights 1 / 0.1 / 1) and ctdet decode.
Both sides get the same random image and targets (bench/bench_train.py's generator), 80 classes,
Adam, a training step at batch 2 and a forward pass (decode included) at batch 1. Each
measurement runs in a fresh subprocess; the frameworks alternate (and swap order every round),
so both see the same machine load. Reported: the median over rounds of each run's median.

    python bench/bench_vs_torch.py                    # ResNet-101-DCN and ResNet-18-DCN at 512x512
    python bench/bench_vs_torch.py --quick            # ResNet-18-DCN at 256x256, 1 round
    python bench/bench_vs_torch.py --net_config.dcn_impl=kernel   # overrides go to the MindSpore side

PyTorch is a benchmark/test dependency only (requirements-test.txt).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NUM_CLASSES = 80
TRAIN_BATCH = 2
WARMUP = 2


def mindspore_argv(depth, res):
    """Config overrides of this project's network of ResNet ``depth`` at a res x res input."""
    argv = ["--device_target=CPU", "--dataset_config.num_classes=%d" % NUM_CLASSES,
            "--dataset_config.input_res_train=[%d,%d]" % (res, res),
            "--dataset_config.output_res=[%d,%d]" % (res // 4, res // 4)]
    if depth == 18:
        argv += ["--net_config.block_type=BasicBlock", "--net_config.block_class=[2,2,2,2]"]
    elif depth != 101:
        raise ValueError("--depth must be 18 or 101, got %d" % depth)
    return argv


def run_mindspore(depth, res, steps, overrides):
    from bench.bench_train import measure
    argv = mindspore_argv(depth, res) + list(overrides)
    train = measure(argv, TRAIN_BATCH, steps, WARMUP)
    forward = measure(argv, 1, steps, WARMUP, forward_only=True)
    return {"train_s": train["seconds"], "forward_s": forward["seconds"], "params": train["params"]}


def _torch_losses(outputs, hm, reg_mask, ind, wh, reg):
    """Official ctdet training loss: focal(hm) + 0.1 * L1(wh) + L1(reg), gathered at ``ind``."""
    import torch
    pred = torch.clamp(torch.sigmoid(outputs["hm"]), 1e-4, 1 - 1e-4)
    pos = hm.eq(1).float()
    neg = 1.0 - pos
    pos_loss = (torch.log(pred) * (1 - pred) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - pred) * pred ** 2 * (1 - hm) ** 4 * neg).sum()
    num_pos = pos.sum()
    hm_loss = -neg_loss if num_pos == 0 else -(pos_loss + neg_loss) / num_pos

    def reg_l1(feat, target):
        batch, channels = feat.shape[:2]
        feat = feat.permute(0, 2, 3, 1).reshape(batch, -1, channels)
        picked = torch.gather(feat, 1, ind.long().unsqueeze(2).expand(-1, -1, channels))
        mask = reg_mask.unsqueeze(2).expand_as(picked)
        return torch.abs(picked * mask - target * mask).sum() / (mask.sum() + 1e-4)

    return hm_loss + 0.1 * reg_l1(outputs["wh"], wh) + reg_l1(outputs["reg"], reg)


def run_torch(depth, res, steps, dcn_impl="grid"):
    import torch

    from bench.bench_train import _targets
    from src.model_utils.config import get_config
    from testkit.official_centernet_torch import PoseResNetDCN, ctdet_decode

    torch.manual_seed(0)
    cfg = get_config(mindspore_argv(depth, res))
    net = PoseResNetDCN(depth, NUM_CLASSES, dcn_impl=dcn_impl)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    optimizer = torch.optim.Adam(net.parameters(), 1e-4)

    def timed(step, count):
        times = []
        for i in range(WARMUP + count):
            start = time.perf_counter()
            step()
            if i >= WARMUP:
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    rng = np.random.default_rng(0)  # the same draws as bench_train.measure
    image = torch.from_numpy(rng.random((TRAIN_BATCH, 3, res, res), dtype=np.float32))
    hm, reg_mask, ind, wh, reg = [torch.from_numpy(a) for a in _targets(cfg, TRAIN_BATCH, NUM_CLASSES, rng)]

    def train_step():
        optimizer.zero_grad()
        loss = _torch_losses(net(image), hm, reg_mask, ind, wh, reg)
        loss.backward()
        optimizer.step()
        loss.item()

    net.train()
    train = timed(train_step, steps)
    one = torch.from_numpy(np.random.default_rng(0).random((1, 3, res, res), dtype=np.float32))

    @torch.no_grad()
    def forward():
        out = net(one)
        ctdet_decode(torch.sigmoid(out["hm"]), out["wh"], out["reg"], K=100).numpy()

    net.eval()
    return {"train_s": train, "forward_s": timed(forward, steps), "params": params,
            "threads": torch.get_num_threads()}


def worker(args, overrides):
    if args.worker == "mindspore":
        result = run_mindspore(args.depth, args.res, args.steps, overrides)
    else:
        result = run_torch(args.depth, args.res, args.steps, args.torch_dcn)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f)


def compare(args, overrides):
    """Alternate fresh worker processes; returns {depth: {framework: {figure: [per-round medians]}}}."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_vs_torch_") as work:
        for depth in args.depths:
            runs = results.setdefault(depth, {"mindspore": {}, "torch": {}})
            for round_index in range(args.rounds):
                order = ("mindspore", "torch") if round_index % 2 == 0 else ("torch", "mindspore")
                for framework in order:
                    out = os.path.join(work, "%s_%d_%d.json" % (framework, depth, round_index))
                    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--depth", str(depth),
                           "--res", str(args.res), "--steps", str(args.steps), "--out", out]
                    cmd += overrides if framework == "mindspore" else ["--torch_dcn", args.torch_dcn]
                    start = time.perf_counter()
                    # os.environ, not the inherited C environment: a parent that imported MindSpore
                    # would pass on its OMP_NUM_THREADS=1 (see bench/run_all.child_env)
                    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
                    if proc.returncode:
                        raise RuntimeError("%s worker failed (exit %d):\n%s" % (
                            framework, proc.returncode, proc.stderr[-3000:]))
                    with open(out, encoding="utf-8") as f:
                        figures = json.load(f)
                    for key, value in figures.items():
                        runs[framework].setdefault(key, []).append(value)
                    print("ResNet-%d round %d %-9s training step %.3f s, forward %.3f s (process %.0f s%s)" % (
                        depth, round_index + 1, framework, figures["train_s"], figures["forward_s"],
                        time.perf_counter() - start,
                        ", %d threads" % figures["threads"] if "threads" in figures else ""), flush=True)
    return results


def summary(results, res):
    """{depth: {figure: {mindspore, torch, ratio}}} from the per-round medians."""
    table = {}
    for depth, runs in results.items():
        table[depth] = {}
        for key in ("train_s", "forward_s"):
            ms_s = statistics.median(runs["mindspore"][key])
            torch_s = statistics.median(runs["torch"][key])
            table[depth][key] = {"mindspore": ms_s, "torch": torch_s, "ratio": ms_s / torch_s,
                                 "rounds": len(runs["mindspore"][key])}
        table[depth]["params"] = {"mindspore": runs["mindspore"]["params"][0], "torch": runs["torch"]["params"][0]}
    print("\n%-16s %-34s %12s %12s %18s" % ("network", "figure", "MindSpore", "PyTorch", "MindSpore/PyTorch"))
    for depth, figs in table.items():
        for key, label in (("train_s", "training step, batch %d, %dx%d" % (TRAIN_BATCH, res, res)),
                           ("forward_s", "forward + decode, batch 1, %dx%d" % (res, res))):
            fig = figs[key]
            print("%-16s %-34s %10.3f s %10.3f s %18.2f" % ("ResNet-%d-DCN" % depth, label, fig["mindspore"],
                                                           fig["torch"], fig["ratio"]))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[101, 18], choices=[18, 101])
    parser.add_argument("--res", type=int, default=512, help="square input side (multiple of 32)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating process pairs per network")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process (after 2 warm-up steps)")
    parser.add_argument("--quick", action="store_true", help="ResNet-18 at 256x256, 1 round")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--torch_dcn", choices=["grid", "reference"], default="grid",
                        help="PyTorch deformable convolution: one grid_sample (fast) or the tests' explicit gathering")
    parser.add_argument("--worker", choices=["mindspore", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--depth", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args(argv)
    if args.worker:
        return worker(args, overrides)
    if args.quick:
        args.depths, args.res, args.rounds = [18], 256, 1
    from src.model_utils.config import ConfigError, check_input_res
    try:
        check_input_res([args.res, args.res], "--res")
    except ConfigError as err:
        parser.error(str(err))
    print("load average before: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    table = summary(compare(args, overrides), args.res)
    if args.json:
        from src.model_utils.file_io import write_json_atomic
        write_json_atomic(args.json, {"res": args.res, "train_batch": TRAIN_BATCH, "overrides": overrides,
                                      "networks": {str(d): v for d, v in table.items()}}, indent=2)
    return table


if __name__ == "__main__":
    main()
