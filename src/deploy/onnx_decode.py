"""The in-graph decode of ``src/decode.py`` written as ONNX nodes (part of the ONNX export).

Same steps and output as ``CenterNetDetEval``'s decode: sigmoid, 3x3 max-pool peaks, top-K
per class then top-K overall, offsets and sizes gathered at the peaks, boxes
(x1, y1, x2, y2, score, class) in output-map coordinates, (1, K, 6) float32. Every size is
read from the tensors at run time (Shape), so the same nodes serve fixed and dynamic input
shapes; K becomes min(K, H*W) on a map of fewer pixels, as in the MindSpore decode.
"""
import numpy as np


def flip_width(builder, x):
    """x reversed along its last axis (a Slice with step -1: ONNX has no flip operator)."""
    return builder.op("Slice", [x, builder.const([-1]), builder.const([np.iinfo(np.int64).min]),
                                builder.const([3]), builder.const([-1])], "flip")


def merge_flip(builder, heat, wh, reg):
    """Flip averaging of a batch of 2 (image, mirror): heat and wh averaged, reg from the image."""
    def halves(x):
        first = builder.op("Slice", [x, builder.const([0]), builder.const([1]), builder.const([0])], "first")
        second = builder.op("Slice", [x, builder.const([1]), builder.const([2]), builder.const([0])], "second")
        return first, flip_width(builder, second)

    def average(x):
        first, mirrored = halves(x)
        return builder.op("Div", [builder.op("Add", [first, mirrored], "sum"), builder.const(np.float32(2))], "mean")

    if reg is not None:
        reg = builder.op("Slice", [reg, builder.const([0]), builder.const([1]), builder.const([0])], "reg_first")
    return average(heat), average(wh), reg


def _gather_at(builder, feat, pos):
    """feat (1, C, H, W), pos (1, k) int64 flat positions -> (1, C, k): the feature vectors at pos."""
    channels = builder.shape_of(feat)
    flat = builder.op("Reshape", [feat, builder.const([0, 0, -1])], "flat")
    index = builder.op("Unsqueeze", [pos, builder.const([1])], "index")
    index = builder.op("Expand", [index, builder.op("Concat", [builder.const([1]), channels[1], builder.const([1])],
                                                    "expand_shape", axis=0)], "index")
    return builder.op("GatherElements", [flat, index], "gathered", axis=2)


def _channel(builder, x, c):
    """x (1, C, k) -> (1, k): channel c."""
    return builder.op("Gather", [x, builder.const(np.int64(c))], "channel", axis=1)


def decode(builder, heat_logits, wh, reg, K, cat_spec_wh, flip_test):
    """Append the decode to ``builder``; returns the name of the (1, k, 6) detections.

    heat_logits (B, C, H, W) are the heatmap head's logits (B = 2 with flip_test: image and
    mirror), wh (B, 2 or 2C, H, W), reg (B, 2, H, W) or None.
    """
    heat = builder.op("Sigmoid", [heat_logits], "heat")
    if flip_test:
        heat, wh, reg = merge_flip(builder, heat, wh, reg)
    hmax = builder.op("MaxPool", [heat], "hmax", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    keep = builder.op("Cast", [builder.op("Equal", [hmax, heat], "is_peak")], "keep", to=builder.FLOAT)
    heat = builder.op("Mul", [heat, keep], "peaks")

    dims = builder.shape_of(heat)
    width = dims[3]
    k = builder.op("Min", [builder.const([int(K)]), builder.op("Mul", [dims[2], width], "pixels")], "k")
    per_class = builder.op("Reshape", [heat, builder.const([0, 0, -1])], "per_class")
    class_scores, class_pos = builder.op("TopK", [per_class, k], "class_topk", outputs=2, axis=-1)
    all_scores = builder.op("Reshape", [class_scores, builder.const([0, -1])], "all_scores")
    scores, order = builder.op("TopK", [all_scores, k], "topk", outputs=2, axis=-1)
    cls = builder.op("Div", [order, k], "cls")
    pos = builder.op("GatherElements", [builder.op("Reshape", [class_pos, builder.const([0, -1])], "all_pos"),
                                        order], "pos", axis=1)
    ys = builder.op("Div", [pos, width], "ys_int")
    xs = builder.op("Sub", [pos, builder.op("Mul", [ys, width], "row_start")], "xs_int")
    xs = builder.op("Cast", [xs], "xs", to=builder.FLOAT)
    ys = builder.op("Cast", [ys], "ys", to=builder.FLOAT)
    if reg is not None:
        offsets = _gather_at(builder, reg, pos)
        xs = builder.op("Add", [xs, _channel(builder, offsets, 0)], "cx")
        ys = builder.op("Add", [ys, _channel(builder, offsets, 1)], "cy")
    else:
        xs = builder.op("Add", [xs, builder.const(np.float32(0.5))], "cx")
        ys = builder.op("Add", [ys, builder.const(np.float32(0.5))], "cy")

    sizes = _gather_at(builder, wh, pos)
    if cat_spec_wh:
        # (1, 2C, k) -> (1, C, 2, k); the 2 sizes of each detection's class
        pairs = builder.op("Reshape", [sizes, builder.op("Concat", [builder.const([0, -1, 2]), k], "pair_shape",
                                                         axis=0)], "pairs")
        index = builder.op("Unsqueeze", [cls, builder.const([1, 2])], "cls_index")
        index = builder.op("Expand", [index, builder.const([1, 1, 2, 1])], "cls_index")
        sizes = builder.op("GatherElements", [pairs, index], "class_sizes", axis=1)
        sizes = builder.op("Reshape", [sizes, builder.const([0, 2, -1])], "sizes")
    two = builder.const(np.float32(2))
    half_w = builder.op("Div", [_channel(builder, sizes, 0), two], "half_w")
    half_h = builder.op("Div", [_channel(builder, sizes, 1), two], "half_h")
    columns = [builder.op("Sub", [xs, half_w], "x1"), builder.op("Sub", [ys, half_h], "y1"),
               builder.op("Add", [xs, half_w], "x2"), builder.op("Add", [ys, half_h], "y2"), scores,
               builder.op("Cast", [cls], "cls_float", to=builder.FLOAT)]
    columns = [builder.op("Unsqueeze", [c, builder.const([2])], "column") for c in columns]
    return builder.op("Concat", columns, "detections", axis=2)
