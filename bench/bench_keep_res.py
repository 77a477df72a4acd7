"""Benchmark: what images of many sizes cost eval.py (keep_res) against images of one size.

    python bench/bench_keep_res.py [--images 100] [--rounds 2] [--forward_repeats 5] [--json out.json]
        [--block_type Bottleneck --block_class [3,4,23,3]] [--runtime openvino [--infer_precision bf16 | --int8]]

1. Data: ``--images`` synthetic images (tools/make_synthetic_coco.py, sides 300-640, so
   keep_res pads them to many distinct input shapes; at least ``--min_shapes``), and the same
   images resized to ONE size whose padded input has about the mix's mean padded pixel count, so
   both sets hold the same number of network input pixels.
2. eval.py's run (``run_eval``, keep_res, defaults otherwise: one dynamic-shape graph for the
   mix, one static graph for the single size) on each set, each run in a fresh process, the two
   sets alternating over ``--rounds``; the headline is the median of the per-round ratios of the
   run times (mix / one size; goal <= 1.3), with the compilation, network and everything-else
   split of each run and the whole process times (imports included).
3. The network alone, in one process: the dynamic-shape graph against a static graph of the
   same shape, for the mix's most common shapes, calls interleaved, medians; and the time to
   compile each kind of graph.

``--runtime onnxruntime|openvino`` measures the same on an exported model (eval.py's
--infer_runtime/--infer_model, ``--infer_precision`` fp32|bf16, ``--int8`` its int8 quantization
calibrated on 8 of the mix's images): the checkpoint is exported once as a
dynamic-shape ONNX, which runs every size without compiling anything per shape; in 3. the
dynamic-shape model is timed against fixed-shape exports of the same shapes, and "compilation" is
the runtime's model load (OpenVINO compiles the model for the CPU when loading it).

Random weights (seeded), the data set's 5 classes, CPU. Prints a table and with --json writes the
figures.
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from src.model_utils.file_io import write_json_atomic

MIN_SIDE, MAX_SIDE = 300, 640
NUM_CLASSES = 5  # tools/make_synthetic_coco.py's categories


def padded(side):
    """keep_res input side of an image side (src.image.input_geometry at scale 1)."""
    return (side | 31) + 1


# ----------------------------------------------------------------------------- data

def make_sets(work, images, seed, min_shapes):
    """(mix root, single-size root, facts): the generated mix and the same images at one size."""
    import cv2
    from tools.make_synthetic_coco import make_dataset
    mix = os.path.join(work, "mix")
    make_dataset(mix, 0, images, seed=seed, min_side=MIN_SIDE, max_side=MAX_SIDE)
    ann = os.path.join(mix, "annotations", "instances_val2017.json")
    with open(ann, encoding="utf-8") as f:
        doc = json.load(f)
    shapes = collections.Counter((padded(i["height"]), padded(i["width"])) for i in doc["images"])
    if len(shapes) < min_shapes:
        raise RuntimeError("the generated mix has %d distinct padded shapes, fewer than %d: use more images or "
                           "another --seed" % (len(shapes), min_shapes))
    mix_pixels = sum(h * w * n for (h, w), n in shapes.items())
    # One image size (sides in the mix's range) whose padded input is closest to the mix's mean.
    mean = mix_pixels / len(doc["images"])
    sides = range(MIN_SIDE, MAX_SIDE + 1, 32)
    height, width = min(((h, w) for h in sides for w in sides),
                        key=lambda hw: (abs(padded(hw[0]) * padded(hw[1]) - mean), hw[0] > hw[1]))
    one = os.path.join(work, "one")
    os.makedirs(os.path.join(one, "val2017"))
    os.makedirs(os.path.join(one, "annotations"))
    sizes = {}
    for entry in doc["images"]:
        src = cv2.imread(os.path.join(mix, "val2017", entry["file_name"]), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(os.path.join(one, "val2017", entry["file_name"]),
                    cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA))
        sizes[entry["id"]] = (width / entry["width"], height / entry["height"])
        entry.update(width=width, height=height)
    for ann_entry in doc["annotations"]:
        sx, sy = sizes[ann_entry["image_id"]]
        x, y, w, h = ann_entry["bbox"]
        ann_entry.update(bbox=[x * sx, y * sy, w * sx, h * sy], area=ann_entry["area"] * sx * sy)
        ann_entry.pop("segmentation", None)  # box evaluation only; a crowd RLE would keep the old size
    write_json_atomic(os.path.join(one, "annotations", "instances_val2017.json"), doc)
    one_shape = (padded(height), padded(width))
    facts = {"images": len(doc["images"]), "mix_shapes": len(shapes),
             "mix_common_shapes": [list(s) for s, _ in shapes.most_common(3)],
             "mix_pixels": mix_pixels, "one_size": [height, width], "one_shape": list(one_shape),
             "one_pixels": one_shape[0] * one_shape[1] * len(doc["images"])}
    return mix, one, facts


def make_checkpoint(path, net_args):
    import mindspore as ms
    from src.centernet_det import CenterNetDet
    from src.model_utils.config import get_config
    cfg = get_config(net_args)
    ms.set_seed(0)
    ms.save_checkpoint(CenterNetDet(cfg.net_config, NUM_CLASSES), path)


# ----------------------------------------------------------------------------- child processes

def child_eval(argv, out):
    """One eval.py run in this process; writes its summary (timings) to ``out``."""
    import contextlib
    import io
    import eval as eval_script
    from src.model_utils.config import get_config
    from src.model_utils.entry import setup_logging
    setup_logging("WARNING")
    cfg = get_config(argv, script="eval.py")
    with contextlib.redirect_stdout(io.StringIO()):
        summary = eval_script.run_eval(cfg)
    keep = ("total_s", "setup_s", "data_s", "compile_s", "forward_s", "graphs_compiled", "input_shapes",
            "dynamic_shape", "coco_eval_s")
    write_json_atomic(out, dict({k: summary[k] for k in keep}, timing=summary["timing"]))


def child_forward(argv, shapes, repeats, out):
    """Dynamic-shape graph vs static graphs of the same shapes: compile times and interleaved forwards."""
    from mindspore import Tensor
    from src.infer.detector import build_eval_network, dynamic_input
    from src.model_utils.config import get_config
    from src.model_utils.device_adapter import set_device
    cfg = get_config(argv, script="eval.py")
    set_device(cfg)
    ckpt = cfg.load_checkpoint_path
    rng = np.random.default_rng(0)
    inputs = [Tensor(rng.normal(size=(1, 3) + tuple(s)).astype(np.float32)) for s in shapes]

    def first_call(net, x):
        start = time.perf_counter()
        net(x).asnumpy()
        return time.perf_counter() - start

    dynamic = build_eval_network(cfg, NUM_CLASSES, ckpt)
    dynamic.set_inputs(dynamic_input())
    result = {"dynamic_compile_s": first_call(dynamic, inputs[0]), "shapes": {}}
    first = [first_call(dynamic, x) for x in inputs]  # a new shape in the compiled dynamic graph
    statics = []
    for x in inputs:
        net = build_eval_network(cfg, NUM_CLASSES, ckpt)
        statics.append((net, first_call(net, x)))
    times = [([], []) for _ in inputs]
    for _ in range(repeats):
        for (net, _), x, (static_t, dynamic_t) in zip(statics, inputs, times):
            for cell, bucket in ((net, static_t), (dynamic, dynamic_t)):
                start = time.perf_counter()
                cell(x).asnumpy()
                bucket.append(time.perf_counter() - start)
    for shape, (_, compile_s), (static_t, dynamic_t), first_s in zip(shapes, statics, times, first):
        ratios = [d / s for s, d in zip(static_t, dynamic_t)]
        result["shapes"]["%dx%d" % tuple(shape)] = {
            "static_compile_s": compile_s, "dynamic_first_s": first_s, "static_s": statistics.median(static_t),
            "dynamic_s": statistics.median(dynamic_t), "ratio": statistics.median(ratios)}
    result["repeats"] = repeats
    result["static_compile_s"] = statistics.median(c for _, c in statics)
    write_json_atomic(out, result)


def child_forward_exported(spec, shapes, repeats, out):
    """The dynamic-shape exported model against fixed-shape exports of the same shapes, as child_forward:
    load times (``*_compile_s``: the runtime's model load) and interleaved forwards."""
    from src.deploy.runtimes import open_model
    options = {"precision": spec["precision"]}
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(1, 3) + tuple(s)).astype(np.float32) for s in shapes]

    def timed(action):
        start = time.perf_counter()
        value = action()
        return value, time.perf_counter() - start

    dynamic, load_s = timed(lambda: open_model(spec["dynamic"], spec["runtime"], **options))
    result = {"dynamic_compile_s": load_s, "shapes": {}}
    first = [timed(lambda x=x: dynamic(x))[1] for x in inputs]
    statics = [timed(lambda path=path: open_model(path, spec["runtime"], **options)) for path in spec["fixed"]]
    times = [([], []) for _ in inputs]
    for _ in range(repeats):
        for (model, _), x, (static_t, dynamic_t) in zip(statics, inputs, times):
            static_t.append(timed(lambda: model(x))[1])
            dynamic_t.append(timed(lambda: dynamic(x))[1])
    for shape, (_, load), (static_t, dynamic_t), first_s in zip(shapes, statics, times, first):
        ratios = [d / s for s, d in zip(static_t, dynamic_t)]
        result["shapes"]["%dx%d" % tuple(shape)] = {
            "static_compile_s": load, "dynamic_first_s": first_s, "static_s": statistics.median(static_t),
            "dynamic_s": statistics.median(dynamic_t), "ratio": statistics.median(ratios)}
    result["repeats"] = repeats
    result["static_compile_s"] = statistics.median(load for _, load in statics)
    write_json_atomic(out, result)


def export_models(work, ckpt, net_args, shapes, int8_calibration=None):
    """The checkpoint as a dynamic-shape ONNX and as fixed-shape ONNX files of ``shapes`` (export.py):
    (dynamic path, [fixed paths]); with ``int8_calibration`` (a folder of images) their int8 versions
    (export.py --export_quantize=int8, calibrated on 8 of those images)."""
    import export as export_script
    from src.deploy.quantize import int8_path
    common = net_args + ["--device_target=CPU", "--export_load_ckpt=" + ckpt, "--export_format=ONNX",
                         "--dataset_config.num_classes=%d" % NUM_CLASSES]
    if int8_calibration:
        common += ["--export_quantize=int8", "--quant_calibration_dir=" + int8_calibration,
                   "--quant_calibration_images=8"]
    paths = []
    for name, extra in [("dynamic", ["--export_dynamic_shape=true"])] + [
            ("fixed_%dx%d" % tuple(s), ["--export_config.input_res=[%d,%d]" % tuple(s)]) for s in shapes]:
        stem = os.path.join(work, name)
        if export_script.main(common + extra + ["--export_name=" + stem]):
            raise RuntimeError("export.py failed for %s" % name)
        paths.append(int8_path(stem + ".onnx") if int8_calibration else stem + ".onnx")
    return paths[0], paths[1:]


def _run_child(args, work, name):
    """Run this script with ``args`` in a fresh process; returns (its JSON output, process seconds)."""
    out = os.path.join(work, name + ".json")
    log = os.path.join(work, name + ".log")
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        code = subprocess.run([sys.executable, os.path.abspath(__file__)] + args + ["--child_out", out],
                              stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    seconds = time.perf_counter() - start
    if code:
        with open(log, encoding="utf-8", errors="replace") as f:
            raise RuntimeError("%s failed (exit %d):\n%s" % (name, code, f.read()[-3000:]))
    with open(out, encoding="utf-8") as f:
        return json.load(f), seconds


# ----------------------------------------------------------------------------- benchmark

def split_of(run):
    """Shares of a run's time: network (steady forwards), compilation, everything else."""
    total = run["total_s"]
    rest = total - run["forward_s"] - run["compile_s"]
    return {"network_share": run["forward_s"] / total, "compile_share": run["compile_s"] / total,
            "other_share": rest / total, "outside_network_share": (total - run["forward_s"]) / total}


def bench(work, images, rounds, forward_repeats, net_args, seed, min_shapes, runtime="mindspore", precision="fp32",
          int8=False):
    mix, one, facts = make_sets(work, images, seed, min_shapes)
    ckpt = os.path.join(work, "random.ckpt")
    make_checkpoint(ckpt, net_args)
    shapes = facts["mix_common_shapes"]
    if runtime == "mindspore":
        model_args = ["--load_checkpoint_path=" + ckpt]
    else:
        dynamic, fixed = export_models(work, ckpt, net_args, shapes,
                                       os.path.join(mix, "val2017") if int8 else None)
        model_args = ["--infer_runtime=" + runtime, "--infer_model=" + dynamic, "--infer_precision=" + precision]
    common = net_args + ["--device_target=CPU", "--dataset_config.num_classes=%d" % NUM_CLASSES,
                         "--eval_config.keep_res=true"] + model_args
    runs = {"mix": [], "one": []}
    for r in range(rounds):
        order = ("mix", "one") if r % 2 == 0 else ("one", "mix")
        for name in order:
            root = mix if name == "mix" else one
            argv = common + ["--data_dir=" + root, "--save_result_dir=" + os.path.join(work, "out_%s_%d" % (name, r))]
            summary, seconds = _run_child(["--child_eval", json.dumps(argv)], work, "%s_%d" % (name, r))
            summary["process_s"] = seconds
            runs[name].append(summary)
            print("round %d %-3s: eval run %.1f s (compile %.1f s, network %.1f s, %d graph(s), %d shapes), "
                  "process %.1f s" % (r + 1, name, summary["total_s"], summary["compile_s"], summary["forward_s"],
                                      summary["graphs_compiled"], summary["input_shapes"], seconds), flush=True)
    if runtime == "mindspore":
        forward, _ = _run_child(["--child_forward", json.dumps(common), "--shapes", json.dumps(shapes),
                                 "--forward_repeats", str(forward_repeats)], work, "forward")
    else:
        spec = {"runtime": runtime, "precision": precision, "dynamic": dynamic, "fixed": fixed}
        forward, _ = _run_child(["--child_forward_exported", json.dumps(spec), "--shapes", json.dumps(shapes),
                                 "--forward_repeats", str(forward_repeats)], work, "forward")
    ratios = [m["total_s"] / o["total_s"] for m, o in zip(runs["mix"], runs["one"])]
    process_ratios = [m["process_s"] / o["process_s"] for m, o in zip(runs["mix"], runs["one"])]

    def med(name, key):
        return statistics.median(run[key] for run in runs[name])

    def summary_of(name):
        keys = ("total_s", "process_s", "compile_s", "forward_s", "setup_s", "coco_eval_s")
        out = {k: med(name, k) for k in keys}
        out["graphs_compiled"] = runs[name][0]["graphs_compiled"]
        out["input_shapes"] = runs[name][0]["input_shapes"]
        out["forward_per_image_s"] = out["forward_s"] / facts["images"]
        for key in ("wall_s", "predict_s", "input_wait_s", "post_wait_s", "post_s"):
            out["loop_" + key] = statistics.median(run["timing"][key] for run in runs[name])
        out.update(split_of(min(runs[name], key=lambda run: abs(run["total_s"] - out["total_s"]))))
        return out
    return dict(facts, rounds=rounds, ratio=statistics.median(ratios), ratios=ratios,
                process_ratio=statistics.median(process_ratios), mix=summary_of("mix"), one=summary_of("one"),
                forward=forward, config=" ".join(a for a in net_args) or "ResNet-101-DCN (default_config.yaml)",
                runtime=runtime, precision="int8" if int8 else precision)


def print_table(result):
    mix, one = result["mix"], result["one"]
    runtime = result.get("runtime", "mindspore")
    exported = runtime != "mindspore"
    print("\nkeep_res: %d images, %s, %s (%s)" % (result["images"], result["config"], runtime,
                                                 result.get("precision", "fp32")))
    print("  mix: %d distinct padded shapes, %.1f Mpixel of input; one size: %dx%d padded to %dx%d, %.1f Mpixel"
          % (result["mix_shapes"], result["mix_pixels"] / 1e6, result["one_size"][0], result["one_size"][1],
             result["one_shape"][0], result["one_shape"][1], result["one_pixels"] / 1e6))
    print("%-62s %10s %10s" % ("eval.py (median of %d rounds)" % result["rounds"], "mix", "one size"))
    for label, key, fmt in (("eval run, s (run_eval: data, build, compile, loop, COCOeval)", "total_s", "%.1f"),
                            ("whole process, s (imports included)", "process_s", "%.1f"),
                            ("graphs compiled", "graphs_compiled", "%d"),
                            ("compilation, s", "compile_s", "%.1f"),
                            ("network, s (steady forward calls)", "forward_s", "%.1f"),
                            ("network per image, s", "forward_per_image_s", "%.3f"),
                            ("share of the run outside the network (compile included)", "outside_network_share",
                             "%.3f"),
                            ("  of which compilation", "compile_share", "%.3f"),
                            ("  of which everything else", "other_share", "%.3f"),
                            ("loop: waiting for inputs, s", "loop_input_wait_s", "%.2f"),
                            ("loop: waiting for the post-processor, s", "loop_post_wait_s", "%.2f"),
                            ("post-processor busy (beside the network), s", "loop_post_s", "%.2f")):
        print("%-62s %10s %10s" % (label, fmt % mix[key], fmt % one[key]))
    print("%-62s %10.3f" % ("ratio mix / one size, eval run (goal <= %s)" % ("1.1" if exported else "1.3"),
                            result["ratio"]))
    print("  per round: %s" % " ".join("%.3f" % r for r in result["ratios"]))
    print("%-62s %10.3f" % ("ratio mix / one size, whole process", result["process_ratio"]))
    fwd = result["forward"]
    kind = "model" if exported else "graph"
    print("network alone (%d interleaved calls each): dynamic-shape %s %s in %.1f s, a %s one in %.1f s (median)"
          % (fwd["repeats"], kind, "loaded" if exported else "compiled", fwd["dynamic_compile_s"],
             "fixed-shape" if exported else "static", fwd["static_compile_s"]))
    for shape, f in fwd["shapes"].items():
        print("  %-10s %s %.3f s, dynamic %.3f s, ratio %.3f (dynamic %s's first call at this shape %.2f s)"
              % (shape, "fixed" if exported else "static", f["static_s"], f["dynamic_s"], f["ratio"], kind,
                 f["dynamic_first_s"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--min_shapes", type=int, default=30, help="fewest distinct padded shapes in the mix")
    parser.add_argument("--rounds", type=int, default=2, help="eval.py runs of each set, alternating")
    parser.add_argument("--forward_repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block_type", default=None, help="trunk override, e.g. BasicBlock (default: ResNet-101)")
    parser.add_argument("--block_class", default=None, help="blocks per stage, e.g. [2,2,2,2]")
    parser.add_argument("--runtime", default="mindspore", choices=["mindspore", "onnxruntime", "openvino"],
                        help="mindspore: the checkpoint; onnxruntime/openvino: its dynamic-shape ONNX export")
    parser.add_argument("--infer_precision", default="fp32", choices=["fp32", "bf16"],
                        help="the exported model's arithmetic (bf16: openvino, on a CPU with native bf16)")
    parser.add_argument("--int8", action="store_true",
                        help="with an exported model: its int8 quantization (export.py --export_quantize=int8)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child_eval", help=argparse.SUPPRESS)
    parser.add_argument("--child_forward", help=argparse.SUPPRESS)
    parser.add_argument("--child_forward_exported", help=argparse.SUPPRESS)
    parser.add_argument("--shapes", help=argparse.SUPPRESS)
    parser.add_argument("--child_out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.int8 and (args.runtime == "mindspore" or args.infer_precision != "fp32"):
        parser.error("--int8 quantizes the exported model: use it with --runtime onnxruntime|openvino, fp32")
    if args.child_eval:
        return child_eval(json.loads(args.child_eval), args.child_out)
    if args.child_forward_exported:
        return child_forward_exported(json.loads(args.child_forward_exported), json.loads(args.shapes),
                                      args.forward_repeats, args.child_out)
    if args.child_forward:
        return child_forward(json.loads(args.child_forward), json.loads(args.shapes), args.forward_repeats,
                             args.child_out)
    net_args = []
    if args.block_type:
        net_args.append("--net_config.block_type=" + args.block_type)
    if args.block_class:
        net_args.append("--net_config.block_class=" + args.block_class)
    print("load average before: %s (the machine may be shared: compare the ratios, not absolute times)"
          % ", ".join("%.2f" % v for v in os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_keep_res_") as work:
        result = bench(work, args.images, args.rounds, args.forward_repeats, net_args, args.seed, args.min_shapes,
                       args.runtime, args.infer_precision, args.int8)
    result["load_average"] = list(os.getloadavg())
    print_table(result)
    if args.json:
        write_json_atomic(args.json, result, indent=2)
    return result


if __name__ == "__main__":
    main()
