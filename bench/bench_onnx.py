"""Benchmark of the ONNX path: ONNX Runtime CPU vs MindSpore graph mode (vs PyTorch eager), one forward pass.

    python bench/bench_onnx.py [--runs 7] [--res 512 512] [--classes 80] [--small] [--no_torch] \
        [--json out.json]

The default network is ResNet-101-DCN (default_config.yaml) with random weights (BatchNorm
statistics calibrated, offset convs included), 80 classes, batch 1 at --res; every runtime computes the heads and the in-graph
decode ((1, K, 6) detections): the MindSpore eval network (graph mode, compiled before
timing), its ONNX export (src/onnx_export.py, fixed shape) in ONNX Runtime's CPU provider with
default threading, and, unless --no_torch, the PyTorch reference network of the tests
(tests/tools/official_centernet_torch.py: official layout, the deformable convolution in plain
PyTorch ops, eager, decode included). The runtimes are timed in interleaved rounds (one call
each per round) and the medians reported, so load from other jobs on a shared machine hits
them alike; the load average is reported too. Also: the ONNX file size, the export time and
the largest difference of the ONNX detections from MindSpore's on one image.
--small runs the test-size network (BasicBlock [1, 1, 1, 1]) for a quick check.
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import mindspore as ms  # noqa: E402  (before onnx: the other import order breaks mindspore's protobuf modules)
from mindspore import Tensor  # noqa: E402

from src.infer.detector import build_eval_network
from src.model_utils.config import get_config
from src.deploy.onnx_export import export_onnx


def _sane_random_weights(net, seed, steps=12):
    """Random weights in the regime of a trained network.

    The initialisation's BatchNorm statistics (mean 0, variance 1) let ResNet-101's
    activations grow to ~1e5, which sends every deformable offset off the map (all-zero
    heads, every detection a tie). A few forward passes in training mode on random
    128x128 images calibrate the moving statistics; then the offset convs get random
    weights (offsets of about 2 pixels; a fresh DCN samples the regular grid).
    """
    rng = np.random.default_rng(seed)
    body = net.network
    body.set_train(True)
    batch = Tensor(rng.normal(0, 1, (2, 3, 128, 128)).astype(np.float32))
    for _ in range(steps):
        body(batch)
    body.set_train(False)
    for p in net.get_parameters():
        if "conv_offset_mask.weight" in p.name:
            p.set_data(Tensor(rng.normal(0, 0.03, p.shape).astype(np.float32)))


def _agreement(ms_dets, onnx_dets, tol=1e-2):
    """How many of MindSpore's positive detections ONNX Runtime also gives (same class, box within tol).

    Rows are compared as sets: near-equal scores may come out in another order.
    """
    want = ms_dets[ms_dets[:, 4] > 0]
    got = onnx_dets[onnx_dets[:, 4] > 0]
    matched, box_diff, score_diff = 0, 0.0, 0.0
    for row in want:
        same = got[(got[:, 5] == row[5]) & (np.abs(got[:, :4] - row[:4]).max(axis=1) <= tol)]
        if len(same):
            matched += 1
            box_diff = max(box_diff, float(np.abs(same[0, :4] - row[:4]).max()))
            score_diff = max(score_diff, float(abs(same[0, 4] - row[4])))
    return {"detections": int(len(want)), "onnx_detections": int(len(got)), "matched": matched,
            "max_box_diff": box_diff, "max_score_diff": score_diff}


def _torch_forward(cfg, classes, seed):
    """A callable running the PyTorch reference network + decode on a numpy input, or None without torch."""
    try:
        import torch
        from testkit import official_centernet_torch as ref
    except ImportError:
        return None
    depth = {("Bottleneck", (3, 4, 23, 3)): 101, ("BasicBlock", (1, 1, 1, 1)): None}
    key = (cfg.net_config.block_type, tuple(cfg.net_config.block_class))
    if depth.get(key) is None:
        return None
    model = ref.PoseResNetDCN(depth[key], classes, head_conv=cfg.net_config.head_conv)
    ref.randomize(model, seed)
    model.eval()

    def forward(x):
        with torch.no_grad():
            out = model(torch.from_numpy(x))
            return ref.ctdet_decode(torch.sigmoid(out["hm"]), out["wh"], out["reg"], K=cfg.eval_config.K).numpy()
    return forward


def run(args):
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    overrides = ["--dataset_config.num_classes=%d" % args.classes]
    if args.small:
        overrides += ["--net_config.block_type=BasicBlock", "--net_config.block_class=[1, 1, 1, 1]"]
    cfg = get_config(overrides)
    ms.set_seed(args.seed)
    net = build_eval_network(cfg, args.classes)
    _sane_random_weights(net, args.seed)
    import onnxruntime
    x = np.random.default_rng(args.seed).normal(0, 1, (1, 3) + tuple(args.res)).astype(np.float32)

    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as work:
        path = os.path.join(work, "centernet.onnx")
        start = time.perf_counter()
        export_onnx(net, path, args.res)
        export_s = time.perf_counter() - start
        size_mb = os.path.getsize(path) / 2 ** 20
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    runtimes = {"MindSpore graph mode": lambda inp: net(Tensor(inp)).asnumpy(),
                "ONNX Runtime CPU": lambda inp: session.run(None, {"image": inp})[0]}
    torch_forward = None if args.no_torch else _torch_forward(cfg, args.classes, args.seed)
    if torch_forward is not None:
        runtimes["PyTorch eager (reference network)"] = torch_forward
    outputs = {name: fn(x) for name, fn in runtimes.items()}  # warm-up (MindSpore compiles here)
    agreement = _agreement(outputs["MindSpore graph mode"][0], outputs["ONNX Runtime CPU"][0])

    times = {name: [] for name in runtimes}
    load_before = os.getloadavg()
    for _ in range(args.runs):
        for name, fn in runtimes.items():
            start = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - start)
    base = times["MindSpore graph mode"]
    ratios = {name: round(statistics.median(a / b for a, b in zip(t, base)), 2) for name, t in times.items()}
    result = {
        "per_round_ratio_to_mindspore_median": ratios,
        "network": "%s %s, %d classes" % (cfg.net_config.block_type, list(cfg.net_config.block_class), args.classes),
        "input": [1, 3] + list(args.res), "runs": args.runs, "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()), "onnx_file_mb": round(size_mb, 1),
        "export_s": round(export_s, 1), "onnx_vs_mindspore": agreement,
        "onnxruntime": onnxruntime.__version__, "mindspore": ms.__version__,
        "forward_s": {name: {"median": round(statistics.median(t), 3), "min": round(min(t), 3),
                             "max": round(max(t), 3)} for name, t in times.items()},
    }
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved rounds (one call per runtime each)")
    parser.add_argument("--res", type=int, nargs=2, default=[512, 512], metavar=("H", "W"))
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="test-size network (BasicBlock [1, 1, 1, 1])")
    parser.add_argument("--no_torch", action="store_true", help="skip the PyTorch reference network")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    result = run(args)
    print("%s, input %s, %d interleaved rounds, load average %s before, %s after"
          % (result["network"], result["input"], result["runs"],
             ", ".join("%.2f" % v for v in result["load_average_before"]),
             ", ".join("%.2f" % v for v in result["load_average_after"])))
    for name, t in result["forward_s"].items():
        print("  %-36s median %.3f s  (min %.3f, max %.3f); per-round time / MindSpore's: median %.2f"
              % (name, t["median"], t["min"], t["max"], result["per_round_ratio_to_mindspore_median"][name]))
    agree = result["onnx_vs_mindspore"]
    print("  ONNX file %.1f MB, export %.1f s; ONNX vs MindSpore: %d of %d detections (score > 0) found with the "
          "same class, box within %.3f, score within %.2g"
          % (result["onnx_file_mb"], result["export_s"], agree["matched"], agree["detections"],
             agree["max_box_diff"], agree["max_score_diff"]))
    if args.json:
        from src.model_utils.file_io import write_json_atomic
        write_json_atomic(args.json, result, indent=1)
    return result


if __name__ == "__main__":
    main()
