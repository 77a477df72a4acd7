"""Correctness checks of the benchmarks that run one network two ways (ONNX Runtime, BatchNorm folded).

- ``live_random_weights``: random weights that keep a deep CenterNet alive, so that two runtimes
  that disagree give visibly different outputs.
- ``degeneracy``: a one-line summary of the detections and the reasons they are too degenerate
  for a comparison to mean anything (ties, saturated scores, empty boxes, no deformation).
- ``compare_heads`` and ``compare_detections``: the agreement of two runtimes' outputs.

A failed check raises ``AgreementError``; the benchmarks exit non-zero on it.

Tolerance (``HEAD_RTOL``): both sides compute in float32 with different kernels and summation
orders (and BatchNorm folded into the convolutions on one side). With these weights the rounding
differences grow through the network, most in the deformable layers (an offset off by a rounding
error samples a rough random feature map elsewhere): measured on an Intel Xeon, ONNX Runtime 1.32
and folded BatchNorm each against MindSpore 2.8 unfolded, at most 3.5e-4 of a head's largest
magnitude for ResNet-101-DCN at 512x512 (two images) and 5e-5 for the small test network.
2e-3 leaves a margin of 5x for other CPUs (AMD EPYC Zen 4 runs other oneDNN and ONNX Runtime
kernels: other roundings of the same size) and other images; a wrong model is off by 1e-1 to 1
of the range. The score and box tolerances follow from it: a score is sigmoid(logit), whose
slope is at most 1/4; a box side is centre + offset -/+ size / 2.
"""
import numpy as np

HEAD_RTOL = 2e-3
# Degeneracy: fewer than half of the K scores distinct, a score spread under 10 score
# tolerances, most scores within 1e-3 of 0 or 1, boxes under one output pixel (median of the
# smaller side), deformable offsets under one pixel (mean absolute value).
MIN_DISTINCT_FRACTION = 0.5
MIN_SPREAD_TOLERANCES = 10
SATURATION = 1e-3
MIN_BOX_SIDE = 1.0
MIN_OFFSET_PX = 1.0


# Reduced precisions against fp32 on random weights (compare_rounded_heads): each head may differ by
# up to ROUNDING_FACTORS[precision] times what rounding the input alone to the precision (round_input)
# changes in the fp32 network. Live random weights amplify small input changes (rounding the input to
# bf16 moves the small network's heads by several % of their range), so bf16 and int8 cannot be held
# to a fixed tolerance there. Measured (heads' difference / input rounding's): bf16 3.0 to 3.5 on the
# small network, 1.7 to 2.1 on ResNet-101-DCN; int8 1.4 to 1.6 on the small network. int8's input
# rounding (a step of max |x| / 127) is coarse, so its factor is smaller. A bound on gross errors only:
# a wrong model (bench_deploy.py --corrupt) fails it on the small network, not on ResNet-101-DCN,
# whose random weights turn a wrong offset layout into changes of the same size as bf16's (there
# the fp32 rows catch it); a precision's accuracy is its AP on a trained model.
ROUNDING_FACTORS = {"bf16": 8.0, "int8": 4.0}
# Reduced precisions against fp32 on a trained model (compare_top, bench/bench_deploy_accuracy.py):
# the share of the reference's top detections found again within a score and box tolerance.
PRECISION_TOLERANCES = {
    "bf16": {"top": 20, "fraction": 0.8, "score": 0.05, "box_px": 1.0},
    "int8": {"top": 20, "fraction": 0.8, "score": 0.05, "box_px": 1.0},
}


def round_input(x, precision):
    """``x`` (float32) rounded as ``precision`` stores it: bf16 keeps the top 16 bits (round to nearest
    even), int8 a symmetric per-tensor scale of max |x| / 127."""
    x = np.ascontiguousarray(x, np.float32)
    if precision == "bf16":
        bits = x.view(np.uint32).astype(np.uint64)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.astype(np.uint32).view(np.float32)
    if precision == "int8":
        scale = float(np.abs(x).max()) / 127 or 1.0
        return (np.round(x / scale) * scale).astype(np.float32)
    raise ValueError("no rounding rule for precision %r" % precision)


def compare_rounded_heads(want, got, floor, factor):
    """{head: (difference, tolerance)}: ``got`` against ``want`` within ``factor`` times ``floor``'s
    difference to ``want`` (the same network on the input rounded to the precision); AgreementError
    beyond it."""
    figures, bad = {}, []
    for name, w, g, f in zip(("hm", "wh", "reg"), want, got, floor):
        if w.shape != g.shape:
            raise AgreementError("head %s has shape %s on one side, %s on the other" % (name, w.shape, g.shape))
        diff, tol = float(np.abs(g - w).max()), factor * float(np.abs(f - w).max())
        figures[name] = (diff, tol)
        if not diff <= tol:
            bad.append("%s by %.3g (tolerance %.3g: %g x the change from rounding the input)" % (name, diff, tol,
                                                                                              factor))
    if bad:
        raise AgreementError("heads differ: " + "; ".join(bad))
    return figures


class AgreementError(RuntimeError):
    """Two runtimes disagree, or their outputs are too degenerate for a comparison."""


def live_random_weights(network, images, seed=0, offset_px=2.0, branch_gamma=(0.1, 0.3), heads=None):
    """Random weights of a CenterNetDet (BatchNorm not folded) in the regime of a trained network.

    BatchNorm gamma U(0.5, 1.5), beta N(0, 0.2), the last BatchNorm of each residual branch gamma
    U(``branch_gamma``) (small, as in trained ResNets: with U(0.5, 1.5) there, rounding differences
    at ResNet-101's output were 60x larger); the heads' 3x3 convs He-normal. Then one forward pass
    in PyNative mode over ``images`` (numpy (N, 3, H, W)) sets, just before each layer runs:
    each BatchNorm's moving statistics to its input's mean and variance; each deformable layer's
    offset conv to random weights giving offsets and mask logits of standard deviation
    ``offset_px``; each head's last conv to weights giving outputs of the (std, mean) in
    ``heads`` (default: heatmap logits 1, -4.5, which puts the top scores between about 0.8 and
    1; sizes 4, 16 and offsets 0.2, 0.5 output pixels). Returns {"offset_px": mean absolute
    offset of each deformable layer in that pass}.
    """
    import mindspore as ms
    from mindspore import Tensor, nn

    from src.network.deform_conv import ModulatedDeformConv2d
    from src.resnet101 import BasicBlock, Bottleneck

    heads = heads or {"hm": (1.0, -4.5), "wh": (4.0, 16.0), "reg": (0.2, 0.5)}
    rng = np.random.default_rng(seed)

    def normal(shape, std):
        return Tensor(rng.normal(0, std, shape).astype(np.float32))

    def rms(x):
        return float(np.sqrt(np.mean(np.square(x.asnumpy(), dtype=np.float64)))) or 1.0

    def batch_norm(cell, args):
        x = args[0].asnumpy().astype(np.float64)
        cell.moving_mean.set_data(Tensor(x.mean(axis=(0, 2, 3)).astype(np.float32)))
        cell.moving_variance.set_data(Tensor(x.var(axis=(0, 2, 3)).astype(np.float32)))

    offsets = []

    def deformable(cell, args):
        conv = cell.conv_offset_mask
        fan_in = int(np.prod(conv.weight.shape[1:]))
        conv.weight.set_data(normal(conv.weight.shape, offset_px / (np.sqrt(fan_in) * rms(args[0]))))
        conv.bias.set_data(normal(conv.bias.shape, offset_px / 4))
        offsets.append(float(np.abs(conv(args[0]).asnumpy()[:, :2 * cell.points]).mean()))

    def head(std, mean):
        def hook(cell, args):
            cell.weight.set_data(normal(cell.weight.shape, std / (np.sqrt(cell.weight.shape[1]) * rms(args[0]))))
            cell.bias.set_data(Tensor(np.full(cell.bias.shape, mean, np.float32)))
        return hook

    handles = []
    for _, cell in network.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            cell.gamma.set_data(Tensor(rng.uniform(0.5, 1.5, cell.gamma.shape).astype(np.float32)))
            cell.beta.set_data(normal(cell.beta.shape, 0.2))
            handles.append(cell.register_forward_pre_hook(batch_norm))
        elif isinstance(cell, ModulatedDeformConv2d):
            handles.append(cell.register_forward_pre_hook(deformable))
    for _, cell in network.cells_and_names():
        if isinstance(cell, (Bottleneck, BasicBlock)):
            last = cell.bn3 if isinstance(cell, Bottleneck) else cell.bn2
            last.gamma.set_data(Tensor(rng.uniform(*branch_gamma, last.gamma.shape).astype(np.float32)))
    for name in network.heads:
        layers = getattr(network, name)
        first, last = layers[0], layers[len(layers) - 1]
        if first is not last:
            first.weight.set_data(normal(first.weight.shape, np.sqrt(2.0 / np.prod(first.weight.shape[1:]))))
            first.bias.set_data(Tensor(np.zeros(first.bias.shape, np.float32)))
        handles.append(last.register_forward_pre_hook(head(*heads[name])))
    mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        network.set_train(False)
        network(Tensor(images.astype(np.float32)))
    finally:
        for handle in handles:
            handle.remove()
        ms.set_context(mode=mode)
    return {"offset_px": offsets}


def tolerances(heads):
    """Absolute tolerances {"hm", "wh"[, "reg"], "score", "box"} from the reference heads (hm logits, wh[, reg])."""
    tol = {name: HEAD_RTOL * float(np.abs(h).max()) for name, h in zip(("hm", "wh", "reg"), heads)}
    tol["score"] = tol["hm"] / 4
    tol["box"] = tol["wh"] / 2 + tol.get("reg", 0.0)
    return tol


def compare_heads(want, got, tol):
    """{head: largest absolute difference}; AgreementError when one exceeds its tolerance."""
    diffs = {}
    for name, a, b in zip(("hm", "wh", "reg"), want, got):
        if a.shape != b.shape:
            raise AgreementError("head %s has shape %s on one side, %s on the other" % (name, a.shape, b.shape))
        diffs[name] = float(np.abs(a - b).max())
    bad = ["%s by %.3g (tolerance %.3g, %g of its largest magnitude)" % (name, d, tol[name], HEAD_RTOL)
           for name, d in diffs.items() if not d <= tol[name]]
    if bad:
        raise AgreementError("heads differ: " + "; ".join(bad))
    return diffs


def compare_detections(want, got, score_tol, box_tol, neighbour_px=2.0):
    """Match two (K, 6) lists [x1, y1, x2, y2, score, class] (output-map pixels); AgreementError on a mismatch.

    A detection matches one of the other list with the same class, score within ``score_tol``
    and box within ``box_tol``. Top-K lists from heads equal up to rounding may still differ, so
    a detection without a match passes when it is a near tie: a same-class detection of the
    other list has a score within ``score_tol`` and a box centre within ``neighbour_px``
    (neighbouring peak pixels, each plus its sub-pixel offset), or it scores below the lower
    list end (the higher of the two K-th scores) plus ``score_tol``. Returns
    {"matched", "near_ties", "below_cutoff", "max_box_diff", "max_score_diff"} (near ties and
    below-cutoff counted on both sides).
    """
    cutoff = max(want[-1, 4], got[-1, 4]) + score_tol
    counts = {"matched": 0, "near_ties": 0, "below_cutoff": 0, "max_box_diff": 0.0, "max_score_diff": 0.0}
    unmatched = []
    for first, second, side in ((want, got, "reference"), (got, want, "candidate")):
        for det in first:
            same = second[second[:, 5] == det[5]]
            box = np.abs(same[:, :4] - det[:4]).max(axis=1, initial=0.0)
            score = np.abs(same[:, 4] - det[4])
            hit = (box <= box_tol) & (score <= score_tol)
            if hit.any():
                if side == "reference":
                    counts["matched"] += 1
                    counts["max_box_diff"] = max(counts["max_box_diff"], float(box[hit].min()))
                    counts["max_score_diff"] = max(counts["max_score_diff"], float(score[hit].min()))
                continue
            shift = np.abs((same[:, 0:2] + same[:, 2:4]) / 2 - (det[0:2] + det[2:4]) / 2).max(axis=1, initial=0.0)
            if ((score <= score_tol) & (shift <= neighbour_px)).any():
                counts["near_ties"] += 1
            elif det[4] <= cutoff:
                counts["below_cutoff"] += 1
            else:
                unmatched.append("%s class %d score %.5f box [%s]" % (
                    side, int(det[5]), det[4], ", ".join("%.2f" % v for v in det[:4])))
    if unmatched:
        raise AgreementError("%d detections above the top-K cutoff %.5f have no match (same class, score within "
                             "%.2g, box within %.2g px) and no near tie, e.g. %s"
                             % (len(unmatched), cutoff, score_tol, box_tol, "; ".join(unmatched[:3])))
    return counts


def compare_top(want, got, top, fraction, score, box_px):
    """Share of ``want``'s ``top`` best detections found in ``got`` (same class, score within ``score``, box
    within ``box_px``); AgreementError when under ``fraction``. For a precision that rounds more than
    float32 (``PRECISION_TOLERANCES``), where near ties reorder and the tie rule no longer applies.

    Returns {"found", "top", "fraction", "score", "box_px", "max_score_diff", "max_box_diff"}
    (the largest differences over the detections found).
    """
    found, score_diffs, box_diffs = 0, [0.0], [0.0]
    for det in want[:top]:
        same = got[got[:, 5] == det[5]]
        box = np.abs(same[:, :4] - det[:4]).max(axis=1, initial=0.0)
        diff = np.abs(same[:, 4] - det[4])
        hit = (box <= box_px) & (diff <= score)
        if hit.any():
            found += 1
            best = int(np.argmin(np.where(hit, box, np.inf)))
            score_diffs.append(float(diff[best]))
            box_diffs.append(float(box[best]))
    figures = {"found": found, "top": min(top, len(want)), "fraction": fraction, "score": score, "box_px": box_px,
               "max_score_diff": max(score_diffs), "max_box_diff": max(box_diffs)}
    if found < fraction * figures["top"]:
        raise AgreementError("only %d of the reference's top %d detections found (same class, score within %g, box "
                             "within %g px), %d%% required" % (found, figures["top"], score, box_px, 100 * fraction))
    return figures


def degeneracy(dets, score_tol, offsets_px=()):
    """(one-line summary, [reasons the detections are degenerate]) of a (K, 6) list in output-map pixels."""
    scores = dets[:, 4]
    distinct = len(np.unique(scores))
    spread = float(scores.max() - scores.min())
    inside = float(((scores > SATURATION) & (scores < 1 - SATURATION)).mean())
    smaller = np.minimum(dets[:, 2] - dets[:, 0], dets[:, 3] - dets[:, 1])
    summary = ("%d of %d scores distinct, scores %.4f to %.4f (%.0f%% inside (%g, 1 - %g)), smaller box side "
               "median %.1f px" % (distinct, len(scores), scores.min(), scores.max(), 100 * inside, SATURATION,
                                  SATURATION, np.median(smaller)))
    if len(offsets_px):
        summary += ", deformable offsets %s px (mean |offset| per layer)" % ", ".join("%.1f" % o for o in offsets_px)
    reasons = []
    if distinct < MIN_DISTINCT_FRACTION * len(scores):
        reasons.append("only %d distinct scores (ties)" % distinct)
    if spread < MIN_SPREAD_TOLERANCES * score_tol:
        reasons.append("scores spread over %.3g, under %d score tolerances" % (spread, MIN_SPREAD_TOLERANCES))
    if inside < 0.5:
        reasons.append("scores saturated at 0 or 1")
    if not np.median(smaller) >= MIN_BOX_SIDE:
        reasons.append("boxes under %g px" % MIN_BOX_SIDE)
    if len(offsets_px) and min(offsets_px) < MIN_OFFSET_PX:
        reasons.append("deformable offsets under %g px" % MIN_OFFSET_PX)
    return summary, reasons


def check_degeneracy(dets, score_tol, offsets_px=()):
    """The summary line of ``degeneracy``; AgreementError when the detections are degenerate."""
    summary, reasons = degeneracy(dets, score_tol, offsets_px)
    if reasons:
        raise AgreementError("degenerate outputs, nothing to compare (%s): %s" % ("; ".join(reasons), summary))
    return summary


def agreement_line(figures):
    """One line of the figures of a passed check (heads' differences and ``compare_detections`` counts)."""
    heads = figures["head_diff"]
    return ("heads differ by %s (tolerances %s: %g of each head's largest magnitude); %d of %d detections matched "
            "(box within %.2g px, score within %.2g), %d near ties, %d below the top-K cutoff"
            % (" / ".join("%s %.2g" % kv for kv in heads.items()),
               " / ".join("%.2g" % figures["tolerances"][name] for name in heads), HEAD_RTOL, figures["matched"],
               figures["detections"], figures["max_box_diff"], figures["max_score_diff"], figures["near_ties"],
               figures["below_cutoff"]))
