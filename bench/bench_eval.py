"""Benchmark of evaluation costs: post-processing per image, eval.py overhead over the forward pass, keep_res.

    python bench/bench_eval.py [--runs 5] [--images 32] [--json out.json] [--skip_keep_res]

1. Post-processing, ms per image, on one core: K=100 decoded detections of 80 classes
   (clustered around a few objects, like CenterNet peaks), through to_image_coords
   (affine), per-class grouping + gaussian soft-NMS + the 100-detection cap, COCO records
   and their JSON text. Goal: <= 5 ms.
2. Evaluation overhead: eval.py's run (data loading and checks, image decoding and
   pre-processing, network, post-processing, results.json, COCOeval, metrics.json) minus
   its set-up (network construction, checkpoint loading, graph compilation) divided by the
   pure forward time of the same pre-processed images on the same compiled network.
   Fixed resolution, CPU, small configuration (ResNet-18-DCN, 80 classes, 512x512, random
   weights) on generated images with COCO-like sizes. Goal: <= 1.15.
3. keep_res cost: the same evaluation with keep_res (one graph compiled per padded input
   shape), against the fixed-resolution run.

--runs repetitions, each an eval.py run followed at once by the pure forward pass; the
headline ratio is the median of the per-repetition ratios. The machine is shared and other
jobs come and go, so the ratio of the fastest runs (as timeit would take), the ratio of
process CPU times and the in-loop breakdown (network calls vs loop wall time, which share
one time window) are reported too. Before each timed piece the script waits (up to
--idle_timeout s) until the CPUs are idle. Prints a table and returns (and with --json
writes) a dict.
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from src.data.coco import COCO_CATEGORY_IDS
from src.image import input_geometry
from src.model_utils.config import get_config
from src.post_process import coco_records, group_by_class, merge_outputs, to_image_coords
from src.infer.soft_nms import SoftNMS

# (width, height, weight): a COCO-val-like mix of image sizes; weight of the random sizes last.
COCO_LIKE_SIZES = ((640, 480, 0.40), (480, 640, 0.10), (640, 427, 0.20), (427, 640, 0.05), (640, 360, 0.05),
                   (640, 640, 0.05))
RANDOM_SIZE_WEIGHT = 0.15


def _cpu_busy(interval=1.0):
    """Fraction of the machine's CPU time spent busy over ``interval`` seconds (from /proc/stat)."""
    def sample():
        with open("/proc/stat", encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]
    total0, idle0 = sample()
    time.sleep(interval)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_idle(timeout, threshold=0.15):
    """Wait until other processes leave the CPUs (busy < threshold); returns the seconds waited."""
    if timeout <= 0 or not os.path.exists("/proc/stat"):
        return 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if _cpu_busy() < threshold:
            break
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- 1. post-processing

def synthetic_detections(rng, num_classes=80, k=100, out_size=128):
    """(K, 6) decoded detections on a 128x128 map: peaks near a few objects, then background peaks."""
    num_obj = int(rng.integers(1, 12))
    centres = rng.uniform(8, out_size - 8, (num_obj, 2))
    sizes = rng.uniform(4, 60, (num_obj, 2))
    classes = np.minimum(rng.zipf(1.6, num_obj) - 1, num_classes - 1)
    owner = rng.integers(0, num_obj, k)
    near = rng.random(k) < 0.5
    ct = np.where(near[:, None], centres[owner] + rng.normal(0, 2, (k, 2)), rng.uniform(0, out_size, (k, 2)))
    wh = np.where(near[:, None], sizes[owner] * rng.uniform(0.8, 1.2, (k, 2)), rng.uniform(2, 40, (k, 2)))
    cls = np.where(near & (rng.random(k) < 0.8), classes[owner], rng.integers(0, num_classes, k))
    scores = np.sort(np.where(near, rng.uniform(0.05, 0.9, k), rng.uniform(0.001, 0.1, k)))[::-1]
    return np.concatenate([ct - wh / 2, ct + wh / 2, scores[:, None], cls[:, None]], 1).astype(np.float32)


def bench_postprocess(images=200, runs=5, seed=0):
    rng = np.random.default_rng(seed)
    geo = input_geometry(480, 640, 1.0, False, [512, 512])
    meta = {k: geo[k] for k in ("c", "s", "out_height", "out_width")}
    batches = [synthetic_detections(rng) for _ in range(images)]
    ev = get_config([]).eval_config  # the defaults: soft-NMS on, max_per_image 100
    nms = SoftNMS.from_config(ev)
    try:
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(affinity)})  # one core, as the goal states
    except (AttributeError, OSError):
        affinity = None
    per_run = []
    try:
        for _ in range(runs):
            stages = np.zeros(3)
            for image_id, dets in enumerate(batches):
                t0 = time.perf_counter()
                mapped = to_image_coords(dets[dets[:, 4] > 0], meta, 1.0)
                t1 = time.perf_counter()
                per_class = merge_outputs([group_by_class(mapped, 80)], 80, nms, ev.max_per_image)
                t2 = time.perf_counter()
                json.dumps(coco_records(image_id, per_class, COCO_CATEGORY_IDS), separators=(",", ":"))
                t3 = time.perf_counter()
                stages += (t1 - t0, t2 - t1, t3 - t2)
            per_run.append(stages * 1000 / images)
    finally:
        if affinity:
            os.sched_setaffinity(0, affinity)
    med = np.median(np.array(per_run), axis=0)
    return {"ms_per_image": float(med.sum()), "affine_ms": float(med[0]), "group_softnms_cap_ms": float(med[1]),
            "records_json_ms": float(med[2]), "images": images, "runs": runs,
            "soft_nms_compiled": __import__("src.infer.soft_nms", fromlist=["is_compiled"]).is_compiled()}


# ----------------------------------------------------------------------------- 2./3. eval overhead

def make_coco_like_dataset(root, count, seed=0):
    """``count`` JPEGs with COCO-like sizes and 1-6 boxes of the 80 COCO categories; returns the json path."""
    import cv2
    rng = np.random.default_rng(seed)
    image_dir = os.path.join(root, "val2017")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    weights = np.array([w for _, _, w in COCO_LIKE_SIZES] + [RANDOM_SIZE_WEIGHT])
    images, anns = [], []
    for i in range(count):
        pick = rng.choice(len(weights), p=weights / weights.sum())
        if pick < len(COCO_LIKE_SIZES):
            width, height = COCO_LIKE_SIZES[pick][:2]
        else:
            width, height = int(rng.integers(200, 641)), int(rng.integers(200, 641))
        small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        for _ in range(int(rng.integers(1, 7))):
            w, h = rng.uniform(20, width / 2), rng.uniform(20, height / 2)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            colour = [int(v) for v in rng.integers(0, 256, 3)]
            cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), colour, -1)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(rng.choice(COCO_CATEGORY_IDS)),
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        name = "%012d.jpg" % (i + 1)
        cv2.imwrite(os.path.join(image_dir, name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
    categories = [{"id": c, "name": "class_%d" % c} for c in COCO_CATEGORY_IDS]
    path = os.path.join(root, "annotations", "instances_val2017.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"images": images, "annotations": anns, "categories": categories}, f)
    return path


def _argv(root, ckpt, out, block_class, res, keep_res):
    return ["--device_target=CPU", "--data_dir=" + root, "--load_checkpoint_path=" + ckpt,
            "--save_result_dir=" + out, "--net_config.block_type=BasicBlock",
            "--net_config.block_class=%s" % json.dumps(block_class),
            "--dataset_config.input_res_test=[%d,%d]" % (res, res),
            "--eval_config.keep_res=%s" % ("true" if keep_res else "false"), "--log_level=WARNING"]


def _config(root, ckpt, out, block_class, res, keep_res):
    return get_config(_argv(root, ckpt, out, block_class, res, keep_res))


def pure_forward_seconds(cfg, ckpt, data_root, idle_timeout=0):
    """(wall, process CPU) seconds of the forward passes (compiled network, inputs prepared beforehand)."""
    from mindspore import Tensor
    from src.data.coco import CocoData
    from src.data.image_file import image_limits, read_image
    from src.infer.detect import EvalSettings
    from src.infer.detector import build_eval_network
    from src.model_utils.device_adapter import set_device
    settings = EvalSettings(cfg)
    data = CocoData(os.path.join(data_root, "annotations", "instances_val2017.json"),
                    os.path.join(data_root, "val2017"))
    inputs = [settings.prepare(read_image(data.image_path(e), image_limits(cfg)))[0][0] for e in data.images]
    set_device(cfg, "CPU")
    net = build_eval_network(cfg, 80, ckpt)
    net(Tensor(inputs[0])).asnumpy()  # compile
    wait_for_idle(idle_timeout)
    total = cpu = 0.0
    for inp in inputs:
        start, start_cpu = time.perf_counter(), time.process_time()
        net(Tensor(inp)).asnumpy()
        total += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
    return total, cpu


def bench_eval_overhead(workdir, images=32, runs=3, block_class=(2, 2, 2, 2), res=512, keep_res_runs=1,
                        idle_timeout=300):
    import mindspore as ms
    import eval as eval_script
    from src.centernet_det import CenterNetDet
    from src.model_utils.entry import setup_logging
    setup_logging("WARNING")
    root = os.path.join(workdir, "coco_like")
    make_coco_like_dataset(root, images)
    ckpt = os.path.join(workdir, "bench.ckpt")
    cfg = _config(root, ckpt, os.path.join(workdir, "out"), list(block_class), res, False)
    ms.set_seed(0)
    ms.save_checkpoint(CenterNetDet(cfg.net_config, 80), ckpt)

    def one_eval(config):
        wait_for_idle(idle_timeout)
        start_cpu = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            summary = eval_script.run_eval(config)
        summary["cpu_s"] = time.process_time() - start_cpu
        return summary

    loops, forwards, ratios, cpu_ratios, inner, details = [], [], [], [], [], []
    for _ in range(runs):
        summary = one_eval(cfg)
        loop_s = summary["total_s"] - summary["setup_s"]
        forward_s, forward_cpu = pure_forward_seconds(cfg, ckpt, root, idle_timeout)
        loops.append(loop_s)
        forwards.append(forward_s)
        ratios.append(loop_s / forward_s)
        cpu_ratios.append((summary["cpu_s"] - summary["setup_cpu_s"]) / forward_cpu)
        inner.append(summary["forward_s"])
        details.append({"data_s": summary["data_s"], "loop_wall_s": summary["timing"]["wall_s"],
                        "network_in_loop_s": summary["forward_s"], "coco_eval_s": summary["coco_eval_s"]})
    result = {"images": images, "config": "BasicBlock %s, %dx%d, 80 classes" % (list(block_class), res, res),
              "eval_s": statistics.median(loops), "forward_s": statistics.median(forwards),
              "ratio": statistics.median(ratios), "ratios": ratios, "eval_runs_s": loops, "forward_runs_s": forwards,
              "fastest_ratio": min(loops) / min(forwards),
              "cpu_ratio": statistics.median(cpu_ratios), "cpu_ratios": cpu_ratios,
              "forward_inside_eval_s": statistics.median(inner), "runs": runs, "details": details}
    # The whole `python eval.py ...` process once: imports, network construction, compilation included.
    import subprocess
    wait_for_idle(idle_timeout)
    start = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(ROOT, "eval.py")] + _argv(root, ckpt, os.path.join(workdir, "cli"),
                                                                         list(block_class), res, False),
                   check=True, capture_output=True, cwd=ROOT)
    result["process_s"] = time.perf_counter() - start
    result["process_ratio"] = result["process_s"] / result["forward_s"]
    if keep_res_runs:
        kcfg = _config(root, ckpt, os.path.join(workdir, "out_keep"), list(block_class), res, True)
        keeps = [one_eval(kcfg) for _ in range(keep_res_runs)]
        result["keep_res"] = {
            "total_s": statistics.median(k["total_s"] for k in keeps),
            "compile_s": statistics.median(k["compile_s"] for k in keeps),
            "network_s": statistics.median(k["forward_s"] for k in keeps),
            "graphs_compiled": keeps[0]["graphs_compiled"], "input_shapes": keeps[0]["input_shapes"],
            "fixed_total_s": statistics.median(loops)}
    return result


def print_table(post, overhead):
    print("\n%-58s %10s" % ("figure", "value"))
    print("-" * 70)
    print("%-58s %10.3f" % ("post-processing ms/image (K=100, 80 classes, soft-NMS, 1 core)", post["ms_per_image"]))
    print("%-58s %10.3f" % ("  affine back-mapping ms", post["affine_ms"]))
    print("%-58s %10.3f" % ("  grouping + soft-NMS + cap ms", post["group_softnms_cap_ms"]))
    print("%-58s %10.3f" % ("  COCO records + json ms", post["records_json_ms"]))
    if overhead:
        print("%-58s %10s" % ("eval overhead: " + overhead["config"], "%d images" % overhead["images"]))
        print("%-58s %10.2f" % ("  eval.py run minus set-up, s (median)", overhead["eval_s"]))
        print("%-58s %10.2f" % ("  pure forward of the same images, s (median)", overhead["forward_s"]))
        print("%-58s %10.3f" % ("  ratio, median of the repetitions (goal <= 1.15)", overhead["ratio"]))
        print("%-58s %10.3f" % ("  fastest eval.py run / fastest forward", overhead["fastest_ratio"]))
        print("  ratios of the repetitions: %s" % " ".join("%.3f" % r for r in overhead["ratios"]))
        print("%-58s %10.3f" % ("  ratio of process CPU times (less sensitive to load)", overhead["cpu_ratio"]))
        print("%-58s %10.2f" % ("  whole `python eval.py` process, s (imports, compile...)", overhead["process_s"]))
        print("%-58s %10.3f" % ("  whole process / pure forward", overhead["process_ratio"]))
        d = overhead["details"][int(np.argsort(overhead["eval_runs_s"])[len(overhead["details"]) // 2])]
        print("%-58s %10.2f" % ("    data loading and checks, s", d["data_s"]))
        print("%-58s %10.2f" % ("    detection loop wall, s", d["loop_wall_s"]))
        print("%-58s %10.2f" % ("    network calls inside the loop, s", d["network_in_loop_s"]))
        print("%-58s %10.2f" % ("    COCOeval + metrics.json, s", d["coco_eval_s"]))
        keep = overhead.get("keep_res")
        if keep:
            print("%-58s %10.2f" % ("  keep_res: eval.py run, s (set-up excluded, compiles included)",
                                    keep["total_s"]))
            print("%-58s %10s" % ("  keep_res: graphs compiled / input shapes",
                                  "%d / %d" % (keep["graphs_compiled"], keep["input_shapes"])))
            print("%-58s %10.2f" % ("  keep_res: compile s (first call per shape)", keep["compile_s"]))
            print("%-58s %10.2f" % ("  keep_res: network s (excluding first calls)", keep["network_s"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--res", type=int, default=512)
    parser.add_argument("--block_class", default="[2,2,2,2]")
    parser.add_argument("--skip_overhead", action="store_true")
    parser.add_argument("--skip_keep_res", action="store_true")
    parser.add_argument("--idle_timeout", type=float, default=300,
                        help="seconds to wait for idle CPUs before each timed piece (0: do not wait)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    post = bench_postprocess(runs=max(args.runs, 5))
    overhead = None
    if not args.skip_overhead:
        with tempfile.TemporaryDirectory() as workdir:
            overhead = bench_eval_overhead(workdir, args.images, args.runs, json.loads(args.block_class), args.res,
                                           0 if args.skip_keep_res else 1, args.idle_timeout)
    print_table(post, overhead)
    result = {"postprocess": post, "eval_overhead": overhead, "load_average": os.getloadavg()}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
