"""What two arithmetics of one network must agree on: two runtimes (MindSpore, ONNX Runtime), two
graphs (dynamic and static shape), folded and unfolded BatchNorm, two CPUs (Intel, AMD).

What is determined, and so what the tests compare:

- **Heads** (heatmap logits, sizes, offsets) before peak selection. Each arithmetic sums ~20
  layers of convolutions in its own order and rounding, so they differ by a few float32 ulps of
  their magnitude: ``HEAD_RTOL`` (1e-4 of the largest value) has two orders of margin over the
  largest difference measured between MindSpore and ONNX Runtime or folded and unfolded
  BatchNorm (1e-6 of the range, on Intel Xeon and AMD EPYC).
- **Detections, except near a tie.** A pixel is a detection when it equals the maximum of its
  3x3 neighbourhood. When a neighbour is within float noise of it, rounding decides which of
  the two is the maximum (or both, when they come out equal), so one arithmetic can hold a
  detection that the other does not. Near the K-th score, rounding likewise decides which
  detections make the list. ``assert_detections_agree`` accepts exactly these differences,
  checked against the score map of the network itself (the tie rule below).
- **Not** the records after soft-NMS. Soft-NMS decays every box by its overlap with each
  higher-scoring box of its class, so a tie that adds or removes one box, or swaps the order of
  two boxes whose scores are within noise, changes its neighbours' scores by factors up to
  exp(-1 / sigma) (0.14 at sigma 0.5): the records of two arithmetics are compared with soft-NMS
  off (``NO_SOFT_NMS``), where each record is one detection. Soft-NMS itself is tested on
  given boxes (tests/infer/test_soft_nms.py).

Tie rule: a detection present in one list and not the other (above the cut-off) must sit on a
pixel whose score differs from its largest neighbour's by at most ``2 * score_atol`` in the
reference score map: a peak in one arithmetic and not in the other has neighbour margins of
opposite signs in the two, both within ``score_atol`` of the reference.
"""
import collections

import numpy as np

HEAD_RTOL = 1e-4
# Detections (output-map units) of one network in two arithmetics: scores are sigmoids of heads
# within HEAD_RTOL (sigmoid' <= 1/4; measured differences <= 3e-7), boxes come from offsets and
# sizes of the same order.
SCORE_ATOL = 1e-5
BOX_ATOL = 1e-3
# Records compared across arithmetics: every record is one detection (see the module docstring).
NO_SOFT_NMS = {"eval_config.SOFT_NMS": False}

Agreement = collections.namedtuple("Agreement", "matched ties")


def assert_heads_close(got, want, rtol=HEAD_RTOL):
    """Heads (sequences of arrays) equal to ``rtol`` of each head's largest magnitude."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=0, atol=rtol * np.abs(w).max())


def score_maps(eval_net, image):
    """The maps the decode of ``eval_net`` (a CenterNetDetEval) reads for ``image`` (1, 3, H, W):
    heat (C, H/4, W/4) after the sigmoid and the flip average, reg (2, H/4, W/4) or None."""
    from mindspore import Tensor
    x = np.asarray(image, np.float32)
    if eval_net.flip_test:
        x = np.concatenate([x, x[..., ::-1]], axis=0)
    heads = [h.asnumpy().astype(np.float64) for h in eval_net.network(Tensor(np.ascontiguousarray(x)))]
    heat = 1 / (1 + np.exp(-heads[0]))
    if eval_net.flip_test:
        heat = (heat[0:1] + heat[1:2, ..., ::-1]) / 2
    reg = heads[2][0] if eval_net.reg_offset else None
    return heat[0], reg


def neighbour_margin(heat, cls, y, x):
    """heat[cls, y, x] minus the largest of its (up to 8) neighbours."""
    _, height, width = heat.shape
    window = heat[cls, max(0, y - 1):y + 2, max(0, x - 1):x + 2].copy()
    window[y - max(0, y - 1), x - max(0, x - 1)] = -np.inf
    return heat[cls, y, x] - window.max()


def _peak_pixel(det, heat, reg, score_atol, box_atol):
    """(y, x) of the reference pixel that ``det`` was decoded from, or None."""
    cls = int(det[5])
    centre = np.array([(det[0] + det[2]) / 2, (det[1] + det[3]) / 2])
    ys, xs = np.nonzero(np.abs(heat[cls] - det[4]) <= score_atol)
    if reg is None:
        shift = np.full((2, len(ys)), 0.5)
    else:
        shift = reg[:, ys, xs]
    dist = np.abs(np.stack([xs + shift[0], ys + shift[1]]) - centre[:, None]).max(axis=0)
    if not len(dist) or dist.min() > box_atol:
        return None
    best = int(dist.argmin())
    return int(ys[best]), int(xs[best])


def assert_detections_agree(got, want, maps, score_atol=SCORE_ATOL, box_atol=BOX_ATOL, min_matched=10):
    """Two (K, 6) lists [x1, y1, x2, y2, score, class] in output-map units, highest score first.

    Rows scoring 0 are padding. Below ``max(last score of each list) + score_atol`` rounding
    decides membership, so only rows above that cut-off are compared. Every compared row of
    either list has a twin in the other (same class, box within ``box_atol``, score within
    ``score_atol``) or is a tie by the rule of the module docstring, checked on the reference
    (heat, reg) that ``maps()`` returns (``score_maps`` of the network; called only when a row
    has no twin). Returns Agreement(matched, ties).
    """
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.ndim == want.ndim == 2 and got.shape[1] == want.shape[1] == 6
    full = len(got) == len(want) and (got[:, 4] > 0).all() and (want[:, 4] > 0).all()
    cutoff = max(got[-1, 4], want[-1, 4]) + score_atol if full else 0.0
    matched, ties, reference = 0, [], None
    for first, second, side in ((got, want, "got"), (want, got, "want")):
        for det in first[first[:, 4] > cutoff]:
            twins = second[(second[:, 5] == det[5]) & (np.abs(second[:, 4] - det[4]) <= score_atol)]
            if len(twins) and (np.abs(twins[:, :4] - det[:4]).max(axis=1) <= box_atol).any():
                matched += side == "got"
                continue
            if reference is None:
                reference = maps()
            heat, reg = reference
            pixel = _peak_pixel(det, heat, reg, score_atol, box_atol)
            assert pixel is not None, "%s detection %s is no pixel of the reference score map" % (side, det)
            margin = neighbour_margin(heat, int(det[5]), *pixel)
            assert abs(margin) <= 2 * score_atol, (
                "%s detection %s (pixel %s) is missing from the other list, and is no tie: it exceeds its "
                "neighbours by %.3g in the reference map" % (side, det, pixel, margin))
            ties.append((side, int(det[5])) + pixel)
    assert matched >= min_matched, "only %d detections compared above the cut-off %.6f" % (matched, cutoff)
    return Agreement(matched, ties)


class PredictionLog:
    """Records every (image id, input, detections) of an entry script's ``detect_images`` run.

    ``install(monkeypatch, module)`` wraps ``module.detect_images`` (eval.py, or src/infer/folder.py
    behind tools/detect_images.py) so that each ``predict(input, meta)`` call is kept; the inputs
    show the two runs pre-processed alike, the detections are compared with the tie rule.
    """

    def __init__(self):
        self.calls = []

    def install(self, monkeypatch, module):
        real = module.detect_images

        def recording(entries, path_of, predict, *args, **kwargs):
            def logged(inp, meta):
                dets = predict(inp, meta)
                self.calls.append((meta["image_id"], np.array(inp), np.array(dets)))
                return dets
            return real(entries, path_of, logged, *args, **kwargs)
        monkeypatch.setattr(module, "detect_images", recording)
        return self


def assert_runs_agree(first, second, eval_net, min_matched=10):
    """Two PredictionLogs of the same images: the same inputs bit for bit (the same pre-processing),
    detections agreeing by the tie rule on ``eval_net``'s score maps. Returns {image id: ties}."""
    key = lambda call: (call[0], call[1].shape)  # noqa: E731  (one call per image and scale)
    a, b = sorted(first.calls, key=key), sorted(second.calls, key=key)
    assert len(a) == len(b) > 0 and [key(c) for c in a] == [key(c) for c in b]
    ties = collections.Counter()
    matched = 0
    for (image_id, inp, dets), (_, inp2, dets2) in zip(a, b):
        np.testing.assert_array_equal(inp, inp2)
        result = assert_detections_agree(dets, dets2, lambda: score_maps(eval_net, inp), min_matched=0)
        matched += result.matched
        ties[image_id] += len(result.ties)
    assert matched >= min_matched
    return ties


def assert_records_agree(got, want, ties, score_atol=SCORE_ATOL + 1e-5, coord_atol=0.02 + 0.01):
    """COCO records of two arithmetics with soft-NMS off (each record one detection).

    Each record has a twin in the other list (same image and class; box within ``coord_atol``
    image pixels: BOX_ATOL scaled by the down ratio 4 and an image-to-input scale of up to 5,
    plus one unit of the records' 2-decimal rounding; score within ``score_atol``: SCORE_ATOL
    plus one unit of the 5-decimal rounding), except in an image whose detections held ties (``ties``:
    {image id: count}, from assert_runs_agree): as many lonely records as ties there, plus one on
    each side for the image's max_per_image cut-off. Returns the number of lonely records.
    """
    groups = collections.defaultdict(lambda: ([], []))
    for side, records in enumerate((got, want)):
        for r in records:
            groups[r["image_id"], r["category_id"]][side].append(list(r["bbox"]) + [r["score"]])
    assert len(got) > 10 and len(want) > 10
    lonely = collections.Counter()
    for (image_id, _), pair in groups.items():
        a, b = (np.array(rows, np.float64).reshape(-1, 5) for rows in pair)
        for first, second in ((a, b), (b, a)):
            for row in first:
                close = (np.abs(second[:, :4] - row[:4]).max(axis=1, initial=0) <= coord_atol) & \
                        (np.abs(second[:, 4] - row[4]) <= score_atol)
                lonely[image_id] += not close.any()
    for image_id, count in lonely.items():
        assert count <= ties.get(image_id, 0) + 2, \
            "image %s: %d records without a twin, %d ties" % (image_id, count, ties.get(image_id, 0))
    return sum(lonely.values())
