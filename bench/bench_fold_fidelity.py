"""Benchmark: float32 error of the eval network with and without BatchNorm folding, against float64.

The official CenterNet ResNet-DCN (the PyTorch transcription of the tests,
testkit/official_centernet_torch.py, imported as bench/bench_vs_torch.py imports it) gets
random official-format weights with live deformable offsets (``randomize``), and
tools/convert_official_ckpt.py converts them to this project's checkpoint. Each photo is turned
into its keep_res test input (padded to a multiple of 32) and runs together with its mirror (flip
test) through four networks holding the same weights:

- float64: the PyTorch network in float64, the reference;
- torch float32: the same PyTorch network in float32, the official code's own float32 noise;
- unfolded / folded: this project's eval network (src.infer.detector.build_eval_network, graph mode,
  one dynamic-shape graph, float32) with eval_config.fold_bn false / true.

Heads (hm logits, wh, reg): median, 99th percentile and maximum of |network - float64| over every
value of every image, and the spread over the images of the per-image 99th-percentile ratio
folded / unfolded. Detections: every network's heads go through the same decode (the official
flip-test ctdet decode, float64) and the project's post-processing with soft-NMS; each of the
float64 run's top-20 detections of an image is matched to the nearest box of the same class, and
the distance is the largest coordinate difference in image pixels.

The run fails (exit 1) when an output is degenerate (ties among the float64 top-20 peaks, a head
without spread, dead deformable offsets) or when the folded network's median or 99th-percentile
error of a head exceeds the unfolded network's by more than ``--factor``. ``--wrong_fold``
replaces the folding formula by a broken one (the negative control: the check must fail).

    python bench/bench_fold_fidelity.py                       # ResNet-101-DCN on the default photos
    python bench/bench_fold_fidelity.py --depths 18 --images DIR_OR_FILES...
    python bench/bench_fold_fidelity.py --wrong_fold scale16  # must exit 1

Photos: ``--images`` (files or folders); by default the colour and grey photographs bundled
with scikit-image (skimage/data) when it is installed, else 8 images of
tools/make_synthetic_coco.py. PyTorch is a benchmark/test dependency only.
"""
import argparse
import copy
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NUM_CLASSES = 80
TOP = 20
WITHIN_PX = 0.15
HEADS = ("hm", "wh", "reg")
NETWORKS = ("torch_float32", "unfolded", "folded")
SKIMAGE_PHOTOS = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
                  "ihc.png", "motorcycle_left.png", "rocket.jpg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# The folded error may exceed the unfolded one by this factor before the check fails. Folding
# rounds each weight once more (w * scale to float32) and adds the shift as a bias, so the two
# errors are equal in distribution but not value by value: on ResNet-101-DCN and ResNet-18-DCN
# with the 8 scikit-image photos (Intel Xeon, 2026-12-06) the pooled median and 99th-percentile
# ratios were 0.99-1.01 and the per-image 99th-percentile ratios 0.96-1.04; the distributional
# ratio does not hinge on one CPU's rounding. Both negative controls give ratios above 800.
FACTOR = 1.3


def default_images():
    """(source, paths): scikit-image's bundled photos when installed, else None."""
    try:
        import skimage.data
    except ImportError:
        return None
    folder = os.path.dirname(skimage.data.__file__)
    paths = [os.path.join(folder, name) for name in SKIMAGE_PHOTOS]
    return ("scikit-image photos", paths) if all(os.path.isfile(p) for p in paths) else None


def synthetic_images(folder, count=8):
    """Paths of ``count`` validation images of tools/make_synthetic_coco.py written under ``folder``."""
    from tools.make_synthetic_coco import make_dataset
    make_dataset(folder, 0, count, seed=0)
    images = os.path.join(folder, "val2017")
    return [os.path.join(images, name) for name in sorted(os.listdir(images))]


def expand_paths(items):
    """Files as given, folders as their image files (sorted)."""
    paths = []
    for item in items:
        if os.path.isdir(item):
            paths += [os.path.join(item, n) for n in sorted(os.listdir(item)) if n.lower().endswith(IMAGE_SUFFIXES)]
        else:
            paths.append(item)
    if not paths:
        raise SystemExit("no image found in %s" % " ".join(items))
    return paths


def wrong_folding(kind):
    """A broken replacement of src.network.bn_fold.folded_weights (negative control)."""
    from src.network import bn_fold
    right = bn_fold.folded_weights

    def folded_weights(conv, bn=None):
        weight, bias = right(conv, bn)
        if bn is None or isinstance(bn, bn_fold.FoldedBatchNorm):
            return weight, bias
        scale, shift = bn_fold.bn_affine(bn)
        shape = [1] * weight.ndim
        shape[bn_fold.out_channel_axis(conv)] = -1
        if kind == "shift":  # the BatchNorm's shift left out of the bias
            return weight, bias - shift
        rounded = scale.astype(np.float16).astype(np.float64)  # scale16: the scale rounded to float16
        return weight / scale.reshape(shape) * rounded.reshape(shape), bias
    return folded_weights


def official_model(ref, depth, seed):
    return ref.randomize(ref.PoseResNetDCN(depth, NUM_CLASSES), seed=seed)


class FlipHeads:
    """This project's eval network (fold_bn on or off): input (1, 3, H, W) -> heads of the image and its mirror."""

    def __init__(self, cfg, checkpoint):
        import mindspore as ms
        from mindspore import nn, ops

        from src.infer.detector import build_eval_network, dynamic_input

        network = build_eval_network(cfg, NUM_CLASSES, checkpoint, flip_test=False).network

        class Heads(nn.Cell):
            def __init__(self):
                super().__init__(auto_prefix=False)
                self.network = network

            def construct(self, image):
                return self.network(ops.concat((image, ops.flip(image, (3,))), 0))

        self.cell = Heads()
        self.cell.set_train(False)
        self.cell.set_inputs(dynamic_input())
        self.tensor = lambda array: ms.Tensor(array, ms.float32)

    def __call__(self, image):
        return {name: out.asnumpy() for name, out in zip(HEADS, self.cell(self.tensor(image)))}


def torch_heads(torch, model, image):
    """Heads of the PyTorch ``model`` (its own dtype) for the image and its mirror."""
    dtype = next(model.parameters()).dtype
    x = torch.from_numpy(image).to(dtype)
    with torch.no_grad():
        out = model(torch.cat((x, torch.flip(x, (3,))), 0))
    return {name: out[name].numpy() for name in HEADS}, [o.to(torch.float64) for o in model.dcn_offsets()]


def detections(torch, ref, heads, meta, soft_nms, max_per_image, K):
    """(n, 6) detections in image pixels [x1, y1, x2, y2, score, class], best first: the official float64
    flip-test decode of ``heads``, then this project's post-processing with soft-NMS."""
    from src.post_process import post_process_image

    hm = torch.sigmoid(torch.from_numpy(heads["hm"]).to(torch.float64))
    wh = torch.from_numpy(heads["wh"]).to(torch.float64)
    reg = torch.from_numpy(heads["reg"][0:1]).to(torch.float64)
    hm = (hm[0:1] + torch.flip(hm[1:2], (3,))) / 2
    wh = (wh[0:1] + torch.flip(wh[1:2], (3,))) / 2
    raw = ref.ctdet_decode(hm, wh, reg, K=K)[0].numpy()
    per_class = post_process_image([(raw, meta, 1.0)], NUM_CLASSES, soft_nms, max_per_image)
    rows = np.concatenate([np.concatenate([np.asarray(b, np.float64).reshape(-1, 5), np.full((len(b), 1), j)], 1)
                           for j, b in enumerate(per_class)])
    return rows[np.argsort(-rows[:, 4], kind="stable")], raw


def box_distances(reference, candidate, top=TOP):
    """For each of ``reference``'s first ``top`` rows: largest coordinate difference (px) to the nearest
    box of the same class in ``candidate`` (inf when it has none)."""
    out = []
    for det in reference[:top]:
        same = candidate[candidate[:, 5] == det[5]]
        out.append(np.abs(same[:, :4] - det[:4]).max(axis=1).min() if len(same) else np.inf)
    return np.array(out)


def degenerate(name, heads, raw, offsets):
    """Reasons why the float64 outputs of one image cannot tell the networks apart (empty when fine)."""
    problems = []
    scores = raw[:TOP, 4]
    if np.unique(scores).size < len(scores):
        problems.append("%s: ties among the top-%d peak scores" % (name, TOP))
    for head in HEADS:
        if not np.isfinite(heads[head]).all() or heads[head].std() < 1e-3:
            problems.append("%s: head %s without spread (std %.2g)" % (name, head, heads[head].std()))
    live = min(float(o.std()) for o in offsets)
    if live < 0.1:
        problems.append("%s: deformable offsets not live (smallest std %.3f px)" % (name, live))
    return problems


def stats(values):
    values = np.asarray(values, np.float64)
    return {"median": float(np.median(values)), "p99": float(np.percentile(values, 99)), "max": float(values.max())}


def measure_depth(torch, ref, depth, paths, work, seed):
    """Figures of one ResNet depth over the images in ``paths``."""
    from src.data.image_file import image_limits, read_image
    from src.image import preprocess_test_image
    from src.model_utils.config import get_config
    from src.model_utils.device_adapter import set_device
    from src.infer.soft_nms import SoftNMS
    from tools import convert_official_ckpt as conv

    model32 = official_model(ref, depth, seed)
    model64 = copy.deepcopy(model32).double()
    params, summary = conv.convert_state_dict(model32.state_dict(), num_classes=NUM_CLASSES)
    checkpoint = conv.write_checkpoint(params, os.path.join(work, "resdcn%d.ckpt" % depth))
    flags = summary.flags(get_config([]).net_config) + ["--device_target=CPU", "--eval_config.keep_res=true"]
    cfgs = {fold: get_config(flags + ["--eval_config.fold_bn=%s" % str(fold).lower()]) for fold in (False, True)}
    cfg = cfgs[True]
    set_device(cfg)
    ours = {"unfolded": FlipHeads(cfgs[False], checkpoint), "folded": FlipHeads(cfgs[True], checkpoint)}
    soft_nms = SoftNMS.from_config(cfg.eval_config)
    errors = {net: {head: [] for head in HEADS} for net in NETWORKS}
    spread = {head: [] for head in HEADS}  # float64 values: the scale the errors compare with
    per_image, problems = [], []
    for path in paths:
        name = os.path.basename(path)
        pixels = read_image(path, image_limits(cfg))
        image, meta = preprocess_test_image(pixels, 1.0, True, None, cfg.dataset_config.mean,
                                            cfg.dataset_config.std)
        start = time.perf_counter()
        reference, offsets = torch_heads(torch, model64, image)
        heads = {"torch_float32": torch_heads(torch, model32, image)[0]}
        heads.update({net: run(image) for net, run in ours.items()})
        seconds = time.perf_counter() - start
        ref_dets, raw = detections(torch, ref, reference, meta, soft_nms, cfg.eval_config.max_per_image,
                                   cfg.eval_config.K)
        problems += degenerate(name, reference, raw, offsets)
        for head in HEADS:
            spread[head].append(reference[head].ravel())
        row = {"image": name, "input": "%dx%d" % (meta["inp_width"], meta["inp_height"]), "seconds": seconds}
        for net in NETWORKS:
            for head in HEADS:
                err = np.abs(heads[net][head].astype(np.float64) - reference[head]).ravel()
                errors[net][head].append(err)
                row["%s_%s_p99" % (net, head)] = float(np.percentile(err, 99))
            dets, _ = detections(torch, ref, heads[net], meta, soft_nms, cfg.eval_config.max_per_image,
                                 cfg.eval_config.K)
            row[net + "_box_px"] = box_distances(ref_dets, dets).tolist()
        per_image.append(row)
        print("  %-24s %9s  hm p99 torch32 %.2e unfolded %.2e folded %.2e  (%.1f s)"
              % (name, row["input"], row["torch_float32_hm_p99"], row["unfolded_hm_p99"], row["folded_hm_p99"],
                 seconds), flush=True)
    table = {}
    for net in NETWORKS:
        boxes = np.concatenate([row[net + "_box_px"] for row in per_image])
        table[net] = {head: stats(np.concatenate(errors[net][head])) for head in HEADS}
        table[net]["boxes"] = {"count": int(boxes.size), "within": float(np.mean(boxes <= WITHIN_PX)),
                               "worst_px": float(boxes.max())}
    ratios = {head: [row["folded_%s_p99" % head] / row["unfolded_%s_p99" % head] for row in per_image]
              for head in HEADS}
    return {"depth": depth, "seed": seed, "table": table,
            "float64_std": {head: float(np.concatenate(spread[head]).std()) for head in HEADS},
            "per_image": per_image, "problems": problems,
            "per_image_p99_ratio": {h: {"min": min(r), "median": float(np.median(r)), "max": max(r),
                                        "folded_lower": int(sum(v < 1 for v in r))} for h, r in ratios.items()},
            "torch_threads": torch.get_num_threads()}


def check(result, factor):
    """Failures of one depth's figures: degenerate outputs, or folded error > factor x unfolded."""
    failures = list(result["problems"])
    table = result["table"]
    for head in HEADS:
        for stat in ("median", "p99"):
            folded, unfolded = table["folded"][head][stat], table["unfolded"][head][stat]
            if not folded <= factor * unfolded:
                failures.append("ResNet-%d %s %s error: folded %.3g > %.2f x unfolded %.3g"
                                % (result["depth"], head, stat, folded, factor, unfolded))
    return failures


def print_table(result):
    labels = {"torch_float32": "PyTorch float32", "unfolded": "ours fold_bn=false", "folded": "ours fold_bn=true"}
    print("\nResNet-%d-DCN, |error| against float64 (median / 99th percentile / max), %d images:"
          % (result["depth"], len(result["per_image"])))
    std = result["float64_std"]
    print("%-20s %-30s %-30s %-30s %s" % ("network", "hm logits (std %.2g)" % std["hm"], "wh (std %.2g)" % std["wh"],
                                          "reg (std %.2g)" % std["reg"],
                                          "top-%d boxes within %.2f px (worst)" % (TOP, WITHIN_PX)))
    for net in NETWORKS:
        row = result["table"][net]
        cells = ["%.2e / %.2e / %.2e" % (row[h]["median"], row[h]["p99"], row[h]["max"]) for h in HEADS]
        boxes = row["boxes"]
        print("%-20s %-30s %-30s %-30s %.1f %% of %d (%.2g px)"
              % (labels[net], cells[0], cells[1], cells[2], 100 * boxes["within"], boxes["count"], boxes["worst_px"]))
    print("per-image 99th-percentile ratio folded / unfolded: " + "; ".join(
        "%s %.2f-%.2f (median %.2f, folded lower on %d of %d)"
        % (h, r["min"], r["max"], r["median"], r["folded_lower"], len(result["per_image"]))
        for h, r in result["per_image_p99_ratio"].items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", nargs="+", help="image files or folders (default: scikit-image's photos, "
                                                    "else synthetic images)")
    parser.add_argument("--depths", type=int, nargs="+", default=[101], choices=[18, 101])
    parser.add_argument("--seed", type=int, help="seed of the random official weights (default: the depth)")
    parser.add_argument("--factor", type=float, default=FACTOR,
                        help="largest folded / unfolded error ratio (median, 99th percentile) that passes")
    parser.add_argument("--wrong_fold", choices=["shift", "scale16"],
                        help="negative control (the check must fail): fold without the BatchNorm shift, or "
                             "with the scale rounded to float16")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    import torch  # before MindSpore, whose import sets OMP_NUM_THREADS=1 in the C environment

    from testkit import official_centernet_torch as ref
    if args.wrong_fold:
        from src.network import bn_fold
        bn_fold.folded_weights = wrong_folding(args.wrong_fold)
    with tempfile.TemporaryDirectory(prefix="bench_fold_fidelity_") as work:
        found = None if args.images else default_images()
        if args.images:
            source, paths = "given images", expand_paths(args.images)
        elif found:
            source, paths = found
        else:
            source = "synthetic images (tools/make_synthetic_coco.py)"
            paths = synthetic_images(os.path.join(work, "coco"))
        print("images: %s: %s" % (source, ", ".join(os.path.basename(p) for p in paths)), flush=True)
        results = []
        for depth in args.depths:
            print("ResNet-%d-DCN:" % depth, flush=True)
            results.append(measure_depth(torch, ref, depth, paths, work, depth if args.seed is None else args.seed))
    failures = []
    for result in results:
        print_table(result)
        failures += check(result, args.factor)
    load = os.getloadavg()
    print("\nload average after: %.2f %.2f %.2f; PyTorch threads %d" % (load + (results[0]["torch_threads"],)))
    if args.json:
        from src.model_utils.file_io import write_json_atomic
        write_json_atomic(args.json, {"images": source, "paths": [os.path.basename(p) for p in paths],
                                      "factor": args.factor, "wrong_fold": args.wrong_fold, "results": results,
                                      "failures": failures}, indent=2)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("passed: folded error within %.2f x the unfolded one, outputs not degenerate" % args.factor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
