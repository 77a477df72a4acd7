"""Deployment benchmark: one forward pass + in-graph decode on every runtime and precision available.

    python bench/bench_deploy.py [--runs 7] [--res 512 512] [--classes 80] [--small] [--no_torch] [--no_int8] \
        [--calibration 4] [--corrupt] [--json out.json]

The network is ResNet-101-DCN (default_config.yaml), 80 classes, batch 1 at --res, with the live
random weights of ``bench.agreement.live_random_weights`` (see bench/bench_onnx.py). Runtimes:
MindSpore graph mode (fp32, the reference), the ONNX export (src/deploy/onnx_export.py, fixed
shape) in ONNX Runtime (fp32) and OpenVINO (fp32, and bf16 where the CPU has it natively), the
same ONNX quantized to int8 as export.py --export_quantize=int8 does by default
(src/deploy/quantize.py; calibrated on --calibration inputs: the benchmark image, the image the
weights were calibrated on and random images) in both (OpenVINO: its float layers in fp32, and in
bf16 where the CPU has it), and unless --no_torch the PyTorch reference network of the tests (its
own random weights: timed only). They are timed in interleaved rounds (one call each per round);
medians and per-round ratios to ONNX Runtime fp32 are reported, with the load average and each
model file's size.

Before timing, every runtime x precision is checked against MindSpore fp32 on the benchmark image
(bench/agreement.py): the degeneracy summary, then fp32 by the heads (float32 noise) and the
detections (near ties allowed); bf16 and int8 by the heads, within ROUNDING_FACTORS times the change
that rounding the input alone to that precision makes in the fp32 network (these random weights
amplify any rounding: a bound on gross errors, which a wrong model passes at ResNet-101 size where
only the fp32 rows catch it; the accuracy of a precision is the AP of
bench/bench_deploy_accuracy.py on a trained model). The script exits 1 when
the outputs are degenerate or one runtime disagrees; --corrupt exports a deliberately wrong ONNX
(deformable offsets not permuted) to see it fail. --small runs the test-size network, MindSpore in
PyNative mode (no graph compilation: for the tests, not for timing MindSpore).
"""
import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import mindspore as ms  # noqa: E402  (before onnx: the other import order breaks mindspore's protobuf modules)
from mindspore import Tensor  # noqa: E402

from bench.agreement import (ROUNDING_FACTORS, AgreementError, check_degeneracy, compare_detections,  # noqa: E402
                             compare_heads, compare_rounded_heads, round_input, tolerances)
from bench.bench_onnx import _torch_forward, live_eval_network  # noqa: E402
from src.deploy import runtimes  # noqa: E402
from src.deploy.onnx_export import build_model  # noqa: E402
from src.model_utils.config import get_config  # noqa: E402

logger = logging.getLogger(__name__)

REFERENCE = "ONNX Runtime fp32"  # the per-round ratios' denominator
MINDSPORE = "MindSpore fp32"  # graph mode: the agreement reference
TORCH = "PyTorch fp32 (reference network)"  # eager, its own random weights: timed only


def _write_models(net, work, res, classes, corrupt):
    """{name: path} of the fp32 ONNX (detections only) and the same graph with the heads as outputs;
    with ``corrupt`` both keep the deformable offsets in MindSpore's channel order (a wrong model)."""
    import onnx
    paths = {"fp32": os.path.join(work, "centernet.onnx"), "heads": os.path.join(work, "centernet_heads.onnx")}
    metadata = {"num_classes": classes, "K": net.decode.K, "flip_test": False}
    for name, heads in (("fp32", False), ("heads", True)):
        onnx.save_model(build_model(net, res, permute_offsets=not corrupt, metadata=metadata, with_heads=heads),
                        paths[name])
    return paths


def _quantize(path, out, calibration):
    """``path`` quantized to int8 as export.py --export_quantize=int8 does by default (src/deploy/quantize.py)."""
    from src.deploy.quantize import quantize_onnx
    quantize_onnx(path, out, calibration)
    return out


def build_runtimes(paths):
    """{row name: (runtime, model file kind (fp32 | int8), inference precision, runner)}, and {row name: why it
    is missing}. OpenVINO runs the int8 model's float layers in fp32, and in bf16 where the CPU has it."""
    specs = [("ONNX Runtime fp32", "onnxruntime", "fp32", "fp32"), ("OpenVINO fp32", "openvino", "fp32", "fp32"),
             ("OpenVINO bf16", "openvino", "fp32", "bf16")]
    if "int8" in paths:
        specs += [("ONNX Runtime int8", "onnxruntime", "int8", "fp32"), ("OpenVINO int8", "openvino", "int8", "fp32"),
                  ("OpenVINO int8, float layers bf16", "openvino", "int8", "bf16")]
    rows, missing = {}, {}
    bf16 = runtimes.bf16_supported()
    for name, runtime, kind, precision in specs:
        if precision == "bf16" and not bf16:
            missing[name] = "this CPU has no native bf16 (OpenVINO reports %s)" % "/".join(
                runtimes.openvino_cpu_capabilities())
            continue
        rows[name] = (runtime, kind, precision, runtimes.open_model(paths[kind], runtime, precision=precision))
    return rows, missing


def check_agreement(net, x, ms_dets, rows, paths, offsets):
    """Every runtime x precision against MindSpore fp32 on ``x``: {row name: figures}.

    fp32: heads within float32 noise and detections by the tie rule. bf16 and int8: heads within
    ROUNDING_FACTORS[precision] times the change that rounding ``x`` alone to the precision makes in the fp32
    network (``compare_rounded_heads``): live random weights amplify any rounding, so this only
    catches gross errors; a reduced precision's real cost is the AP of bench_deploy_accuracy.py.
    AgreementError naming every runtime that disagrees, or when MindSpore's detections are degenerate.
    """
    ms_heads = [h.asnumpy() for h in net.network(Tensor(x))]
    tol = tolerances(ms_heads)
    summary = check_degeneracy(ms_dets, tol["score"], offsets)
    logger.info("degeneracy: %s", summary)
    results, failures = {"degeneracy": summary, "tolerances": tol}, []
    for name, (runtime, kind, precision, runner) in rows.items():
        try:
            if kind == precision == "fp32":
                heads = runtimes.open_model(paths["heads"], runtime, precision="fp32")(x)[1:]
                figures = {"head_diff": compare_heads(ms_heads, heads, tol)}
                figures.update(compare_detections(ms_dets, runner(x)[0][0], tol["score"], tol["box"]))
            else:
                rule = kind if kind == "int8" else precision  # the coarser rounding of the two
                model = paths["int8_heads"] if kind == "int8" else paths["heads"]
                heads = runtimes.open_model(model, runtime, precision=precision)(x)[1:]
                floor = [h.asnumpy() for h in net.network(Tensor(round_input(x, rule)))]
                figures = {"rounded_heads": compare_rounded_heads(ms_heads, heads, floor, ROUNDING_FACTORS[rule]),
                           "factor": ROUNDING_FACTORS[rule]}
        except AgreementError as exc:
            failures.append("%s: %s" % (name, exc))
            continue
        logger.info("%s vs MindSpore fp32: %s", name, figures)
        results[name] = figures
    if failures:
        raise AgreementError(" | ".join(failures))
    return results


def _inputs(args):
    """(benchmark image, the other image the weights are calibrated on, int8 calibration inputs)."""
    def normal(seed):
        return np.random.default_rng(seed).normal(0, 1, (1, 3) + tuple(args.res)).astype(np.float32)
    x, other = normal(args.seed), normal(args.seed + 1)
    calibration = [x, other] + [normal(args.seed + 2 + i) for i in range(max(0, args.calibration - 2))]
    return x, other, calibration[:args.calibration]


def run(args):
    """The figures of one benchmark run; AgreementError (before any timing) when a runtime disagrees."""
    ms.set_context(mode=ms.PYNATIVE_MODE if args.small else ms.GRAPH_MODE)  # --small: no graph compilation
    ms.set_device("CPU")
    overrides = ["--dataset_config.num_classes=%d" % args.classes]
    if args.small:
        overrides += ["--net_config.block_type=BasicBlock", "--net_config.block_class=[1, 1, 1, 1]"]
    cfg = get_config(overrides)
    ms.set_seed(args.seed)
    x, other, calibration = _inputs(args)
    net, offsets = live_eval_network(cfg, args.classes, np.concatenate([x, other]), args.seed)

    with tempfile.TemporaryDirectory(prefix="bench_deploy_") as work:
        paths = _write_models(net, work, args.res, args.classes, args.corrupt)
        if not args.no_int8:
            start = time.perf_counter()
            paths["int8"] = _quantize(paths["fp32"], os.path.join(work, "centernet_int8.onnx"), calibration)
            logger.info("int8 quantization: %.1f s", time.perf_counter() - start)
            paths["int8_heads"] = _quantize(paths["heads"], os.path.join(work, "heads_int8.onnx"), calibration)
        sizes = {k: round(os.path.getsize(p) / 2 ** 20, 1) for k, p in paths.items() if k in ("fp32", "int8")}
        rows, missing = build_runtimes(paths)
        outputs = {MINDSPORE: net(Tensor(x)).asnumpy()}  # compiles the graph
        agreement = check_agreement(net, x, outputs[MINDSPORE][0], rows, paths, offsets)

    calls = {MINDSPORE: lambda inp: net(Tensor(inp)).asnumpy()}
    calls.update({name: row[-1] for name, row in rows.items()})
    torch_forward = None if args.no_torch else _torch_forward(cfg, args.classes, args.seed)
    if torch_forward is not None:
        calls[TORCH] = torch_forward
    for fn in calls.values():  # warm-up
        fn(x)
    times = {name: [] for name in calls}
    load_before = os.getloadavg()
    for _ in range(args.runs):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - start)
    base = times[REFERENCE]
    import onnxruntime
    openvino = runtimes.import_openvino()
    return {
        "network": "%s %s, %d classes" % (cfg.net_config.block_type, list(cfg.net_config.block_class), args.classes),
        "input": [1, 3] + list(args.res), "runs": args.runs, "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()), "file_mb": sizes, "missing": missing,
        "forward_s": {name: {"median": round(statistics.median(t), 3), "min": round(min(t), 3),
                             "max": round(max(t), 3)} for name, t in times.items()},
        "per_round_ratio_to_reference_median": {name: round(statistics.median(a / b for a, b in zip(t, base)), 2)
                                                for name, t in times.items()},
        "reference": REFERENCE, "agreement": agreement, "cpu_capabilities": runtimes.openvino_cpu_capabilities(),
        "versions": {"mindspore": ms.__version__, "onnxruntime": onnxruntime.__version__,
                     "openvino": openvino.__version__.split("-")[0]},
    }


def agreement_text(figures):
    """One line of a runtime's passed agreement check."""
    if "head_diff" in figures:
        return ("heads differ by %s; %d matched, %d near ties, %d below the top-K cutoff"
                % (" / ".join("%s %.2g" % kv for kv in figures["head_diff"].items()), figures["matched"],
                   figures["near_ties"], figures["below_cutoff"]))
    return ("heads differ by %s (tolerances %s: %g x the change from rounding the input to this precision)"
            % (" / ".join("%s %.2g" % (k, v[0]) for k, v in figures["rounded_heads"].items()),
               " / ".join("%.2g" % v[1] for v in figures["rounded_heads"].values()), figures["factor"]))


def main(argv=None):
    """Run the benchmark and print its figures; 0, or 1 when a runtime disagrees with MindSpore."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved rounds (one call per runtime each)")
    parser.add_argument("--res", type=int, nargs=2, default=[512, 512], metavar=("H", "W"))
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration", type=int, default=4, help="int8 calibration inputs")
    parser.add_argument("--small", action="store_true",
                        help="test-size network (BasicBlock [1, 1, 1, 1]), MindSpore in PyNative mode")
    parser.add_argument("--no_torch", action="store_true", help="skip the PyTorch reference network")
    parser.add_argument("--no_int8", action="store_true", help="skip the int8 rows")
    parser.add_argument("--corrupt", action="store_true",
                        help="export a wrong model (deformable offsets not permuted): the agreement check must fail")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except AgreementError as exc:
        logger.error("runtimes vs MindSpore fp32: FAILED: %s", exc)
        return 1
    print("%s, input %s, %d interleaved rounds, load average %s before, %s after"
          % (result["network"], result["input"], result["runs"],
             ", ".join("%.2f" % v for v in result["load_average_before"]),
             ", ".join("%.2f" % v for v in result["load_average_after"])))
    for name, t in result["forward_s"].items():
        print("  %-52s median %.3f s  (min %.3f, max %.3f); per-round time / %s's: median %.2f"
              % (name, t["median"], t["min"], t["max"], REFERENCE, result["per_round_ratio_to_reference_median"][name]))
    print("  model files: %s" % ", ".join("%s %.1f MB" % kv for kv in result["file_mb"].items()))
    for name, why in result["missing"].items():
        print("  %s: not run, %s" % (name, why))
    print("  degeneracy check: " + result["agreement"]["degeneracy"])
    for name, figures in result["agreement"].items():
        if isinstance(figures, dict) and name != "tolerances":
            print("  %s vs MindSpore fp32: %s" % (name, agreement_text(figures)))
    if args.json:
        from src.model_utils.file_io import write_json_atomic
        write_json_atomic(args.json, result, indent=1)
    return 0


if __name__ == "__main__":
    from src.model_utils.entry import setup_logging
    setup_logging("INFO")
    sys.exit(main())
