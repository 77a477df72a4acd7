"""Benchmark of the ONNX path: ONNX Runtime CPU vs MindSpore graph mode (vs PyTorch eager), one forward pass.

    python bench/bench_onnx.py [--runs 7] [--res 512 512] [--classes 80] [--small] [--no_torch] \
        [--corrupt] [--json out.json]

The default network is ResNet-101-DCN (default_config.yaml), 80 classes, batch 1 at --res, with
random weights kept alive by ``bench.agreement.live_random_weights`` (BatchNorm statistics
calibrated on the benchmark image and one more, deformable offsets of a few pixels, spread
heads). Every runtime computes the heads and the in-graph decode ((1, K, 6) detections): the
MindSpore eval network (graph mode, compiled before timing), its ONNX export
(src/onnx_export.py, fixed shape) in ONNX Runtime's CPU provider with default threading, and,
unless --no_torch, the PyTorch reference network of the tests
(tests/tools/official_centernet_torch.py: official layout, its own random weights, the
deformable convolution in plain PyTorch ops, eager, decode included; timed only). The runtimes
are timed in interleaved rounds (one call each per round) and the medians reported, so load
from other jobs on a shared machine hits them alike; the load average is reported too. Also:
the ONNX file size and export time.

Before timing, ONNX Runtime is checked against MindSpore on the benchmark image (bench/agreement.py):
a degeneracy summary of the detections, the heads before peak selection (within float32 noise)
and the detections (near ties allowed). The script exits 1 when the outputs are degenerate or
the runtimes disagree; --corrupt exports a deliberately wrong model (deformable offsets not
permuted) to see it fail. --small runs the test-size network (BasicBlock [1, 1, 1, 1]).
"""
import argparse
import logging
import os
import statistics
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import mindspore as ms  # noqa: E402  (before onnx: the other import order breaks mindspore's protobuf modules)
from mindspore import Tensor  # noqa: E402

from bench.agreement import (AgreementError, agreement_line, check_degeneracy, compare_detections,
                             compare_heads, live_random_weights, tolerances)
from src.centernet_det import CenterNetDet
from src.decode import CenterNetDetEval
from src.deploy.onnx_export import build_model, export_onnx
from src.model_utils.config import get_config
from src.network.bn_fold import fold_batch_norm

logger = logging.getLogger(__name__)


def live_eval_network(cfg, classes, images, seed):
    """(CenterNetDetEval with ``agreement.live_random_weights`` (BatchNorm folded per eval_config.fold_bn),
    mean absolute offset of each deformable layer)."""
    network = CenterNetDet(cfg.net_config, classes)
    offsets = live_random_weights(network, images, seed)["offset_px"]
    fold_batch_norm(network, cfg.eval_config.fold_bn)
    net = CenterNetDetEval(network, cfg.eval_config.K, cfg.net_config.cat_spec_wh, cfg.net_config.reg_offset)
    net.set_train(False)
    return net, offsets


def check_agreement(net, x, ms_dets, onnx_model, onnx_dets, offsets):
    """ONNX Runtime against MindSpore on image ``x``: degeneracy summary, heads and detections.

    ``onnx_model`` is the ModelProto with the heads as outputs (``build_model(..., with_heads=True)``);
    ``ms_dets`` and ``onnx_dets`` are (K, 6). Returns the figures; AgreementError when the
    outputs are degenerate or the runtimes disagree.
    """
    import onnxruntime
    ms_heads = [h.asnumpy() for h in net.network(Tensor(x))]
    session = onnxruntime.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_heads = session.run(None, {"image": x})[1:]
    tol = tolerances(ms_heads)
    summary = check_degeneracy(ms_dets, tol["score"], offsets)
    logger.info("degeneracy: %s", summary)
    result = {"degeneracy": summary, "tolerances": tol, "head_diff": compare_heads(ms_heads, onnx_heads, tol),
              "detections": len(ms_dets)}
    result.update(compare_detections(ms_dets, onnx_dets, tol["score"], tol["box"]))
    return result


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


def _write_onnx(net, path, res, corrupt):
    """The benchmark's ONNX file: ``export_onnx``, or with ``corrupt`` the same graph with the deformable
    offsets left in MindSpore's channel order (a layout mistake the agreement check must catch)."""
    if not corrupt:
        export_onnx(net, path, res)
        return
    import onnx
    onnx.save_model(build_model(net, res, permute_offsets=False), path)


def run(args):
    """The figures of one benchmark run; AgreementError (before any timing) when ONNX Runtime disagrees."""
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    overrides = ["--dataset_config.num_classes=%d" % args.classes]
    if args.small:
        overrides += ["--net_config.block_type=BasicBlock", "--net_config.block_class=[1, 1, 1, 1]"]
    cfg = get_config(overrides)
    ms.set_seed(args.seed)
    x = np.random.default_rng(args.seed).normal(0, 1, (1, 3) + tuple(args.res)).astype(np.float32)
    other = np.random.default_rng(args.seed + 1).normal(0, 1, x.shape).astype(np.float32)
    net, offsets = live_eval_network(cfg, args.classes, np.concatenate([x, other]), args.seed)
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as work:
        path = os.path.join(work, "centernet.onnx")
        start = time.perf_counter()
        _write_onnx(net, path, args.res, args.corrupt)
        export_s = time.perf_counter() - start
        size_mb = os.path.getsize(path) / 2 ** 20
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    runtimes = {"MindSpore graph mode": lambda inp: net(Tensor(inp)).asnumpy(),
                "ONNX Runtime CPU": lambda inp: session.run(None, {"image": inp})[0]}
    torch_forward = None if args.no_torch else _torch_forward(cfg, args.classes, args.seed)
    if torch_forward is not None:
        runtimes["PyTorch eager (reference network)"] = torch_forward
    outputs = {name: fn(x) for name, fn in runtimes.items()}  # warm-up (MindSpore compiles here)
    heads_model = build_model(net, args.res, permute_offsets=not args.corrupt, with_heads=True)
    agreement = check_agreement(net, x, outputs["MindSpore graph mode"][0], heads_model,
                                outputs["ONNX Runtime CPU"][0], offsets)
    del heads_model

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
    """Run the benchmark and print its figures; 0, or 1 when ONNX Runtime and MindSpore disagree."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved rounds (one call per runtime each)")
    parser.add_argument("--res", type=int, nargs=2, default=[512, 512], metavar=("H", "W"))
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="test-size network (BasicBlock [1, 1, 1, 1])")
    parser.add_argument("--no_torch", action="store_true", help="skip the PyTorch reference network")
    parser.add_argument("--corrupt", action="store_true",
                        help="export a wrong model (deformable offsets not permuted): the agreement check must fail")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except AgreementError as exc:
        logger.error("ONNX vs MindSpore: FAILED: %s", exc)
        return 1
    print("%s, input %s, %d interleaved rounds, load average %s before, %s after"
          % (result["network"], result["input"], result["runs"],
             ", ".join("%.2f" % v for v in result["load_average_before"]),
             ", ".join("%.2f" % v for v in result["load_average_after"])))
    for name, t in result["forward_s"].items():
        print("  %-36s median %.3f s  (min %.3f, max %.3f); per-round time / MindSpore's: median %.2f"
              % (name, t["median"], t["min"], t["max"], result["per_round_ratio_to_mindspore_median"][name]))
    agree = result["onnx_vs_mindspore"]
    print("  ONNX file %.1f MB, export %.1f s" % (result["onnx_file_mb"], result["export_s"]))
    print("  ONNX vs MindSpore: " + agreement_line(agree))
    if args.json:
        from src.model_utils.file_io import write_json_atomic
        write_json_atomic(args.json, result, indent=1)
    return 0


if __name__ == "__main__":
    from src.model_utils.entry import setup_logging
    setup_logging("INFO")
    sys.exit(main())
