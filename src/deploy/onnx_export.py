"""ONNX export of the CenterNet eval network, written node by node from the MindSpore cells.

MindSpore's own ONNX exporter has no converter for the deformable convolution, so the graph
is built here with the ``onnx`` package (opset 19, whose standard ``DeformConv`` ONNX Runtime
runs on CPU): convolutions with their BatchNorm folded in (``src.network.bn_fold.folded_weights``,
float64 stored as float32; a network already folded by ``src.network.bn_fold.fold_batch_norm`` is
written as it is), ReLU, max-pool, the three DCNv2 layers as ``DeformConv``, the transposed
convolutions, the heads and the decode of ``src/deploy/onnx_decode.py``. Input ``image``
(1, 3, H, W) float32 normalised as eval.py does; output ``detections`` (1, K, 6) as the
MINDIR's. ``onnx`` is an optional dependency: only this path imports it.

The offset layouts differ: this project's offset conv emits MindSpore's layout (x offsets of
the k*k kernel points, then their y offsets, then the mask logits), ONNX's DeformConv takes
(y, x) pairs per kernel point and the mask as its own input. The export permutes the offset
conv's output channels (weights and bias) into [y0, x0, y1, x1, ..., mask...], so the graph
only splits that conv's output; no runtime reordering.
"""
import logging

import numpy as np
from mindspore import nn

from src.network.bn_fold import folded_weights
from src.network.deform_conv import ModulatedDeformConv2d
from src.model_utils.file_io import atomic_path
from src.deploy.onnx_decode import decode, flip_width
from src.resnet101 import BasicBlock, Bottleneck

logger = logging.getLogger(__name__)

OPSET = 19  # the first opset with DeformConv
INPUT_NAME = "image"
OUTPUT_NAME = "detections"


def import_onnx():
    """The ``onnx`` module, or a one-line error saying what to install."""
    try:
        import onnx
    except ImportError as err:
        raise RuntimeError("ONNX export needs the optional package onnx: pip install onnx (the tested version is "
                           "in requirements-test.txt)") from err
    return onnx


def offset_channel_order(points, permute=True):
    """Output-channel order of the offset conv in the export: (y, x) per kernel point, then the mask.

    MindSpore's layout is [x_0..x_{P-1}, y_0..y_{P-1}, m_0..m_{P-1}] (P = k*k points); ONNX's
    DeformConv wants offsets [y_0, x_0, y_1, x_1, ...]. ``permute=False`` keeps MindSpore's
    order (only useful to show that the layout matters).
    """
    if permute:
        offsets = [c for p in range(points) for c in (points + p, p)]
    else:
        offsets = list(range(2 * points))
    return np.array(offsets + list(range(2 * points, 3 * points)), np.int64)


def _pads(padding):
    """MindSpore padding (int, or (top, bottom, left, right)) -> ONNX pads [top, left, bottom, right]."""
    if isinstance(padding, int):
        return [padding] * 4
    top, bottom, left, right = padding
    return [top, left, bottom, right]


def _conv_pads(cell):
    """ONNX pads of a Conv2d/Conv2dTranspose: 'pad' as given, 'valid' none, 'same' at stride 1."""
    if cell.pad_mode == "pad":
        return _pads(cell.padding)
    if cell.pad_mode == "valid":
        return [0] * 4
    if cell.pad_mode == "same" and tuple(cell.stride) == (1, 1):
        kh, kw = [(k - 1) * d for k, d in zip(cell.kernel_size, cell.dilation)]
        return [kh // 2, kw // 2, kh - kh // 2, kw - kw // 2]
    raise ValueError("ONNX export cannot write pad_mode=%r at stride %s" % (cell.pad_mode, cell.stride))


class GraphBuilder:
    """Collects nodes and initializers under unique names; ``op`` returns the output name(s)."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.FLOAT = onnx.TensorProto.FLOAT
        self.nodes = []
        self.initializers = []
        self.counts = {}

    def name(self, hint):
        self.counts[hint] = self.counts.get(hint, 0) + 1
        return "%s_%d" % (hint, self.counts[hint])

    def const(self, value, hint="const"):
        """An initializer holding ``value`` (lists become int64, numpy values keep their dtype)."""
        array = np.array(value, np.int64) if isinstance(value, (list, int)) else np.asarray(value)
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type, inputs, hint, outputs=1, **attrs):
        names = [self.name(hint) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, names, name=self.name(op_type), **attrs))
        return names[0] if outputs == 1 else names

    def shape_of(self, x, rank=4):
        """[dim_0, ..., dim_{rank-1}] of x at run time, each a (1,) int64 tensor."""
        shape = self.op("Shape", [x], "shape")
        return [self.op("Slice", [shape, self.const([i]), self.const([i + 1])], "dim") for i in range(rank)]


class NetworkWriter:
    """Appends CenterNetDet's layers (eval mode, BatchNorm folded) to a GraphBuilder."""

    def __init__(self, builder, permute_offsets=True):
        self.b = builder
        self.permute_offsets = permute_offsets

    def conv(self, x, cell, bn=None, relu=False, transposed=False):
        """Conv2d / Conv2dTranspose ``cell`` (+ ``bn`` folded in: BatchNorm2d, FoldedBatchNorm or None) (+ ReLU)."""
        weight, bias = folded_weights(cell, bn)
        inputs = [x, self.b.const(weight.astype(np.float32), "w"), self.b.const(bias.astype(np.float32), "b")]
        y = self.b.op("ConvTranspose" if transposed else "Conv", inputs, "conv", kernel_shape=list(cell.kernel_size),
                      strides=list(cell.stride), pads=_conv_pads(cell), dilations=list(cell.dilation),
                      group=cell.group)
        return self.b.op("Relu", [y], "relu") if relu else y

    def deform_conv(self, x, cell, bn):
        """ModulatedDeformConv2d + folded BatchNorm as an offset/mask Conv, Split, Sigmoid and DeformConv."""
        om = cell.conv_offset_mask
        order = offset_channel_order(cell.points, self.permute_offsets)
        om_weight, om_bias = (a[order].astype(np.float32) for a in folded_weights(om))
        offsets_and_mask = self.b.op("Conv", [x, self.b.const(om_weight, "om_w"), self.b.const(om_bias, "om_b")],
                                     "offset_mask", kernel_shape=list(om.kernel_size), strides=list(om.stride),
                                     pads=_conv_pads(om), dilations=list(om.dilation), group=om.group)
        offsets, mask_logits = self.b.op("Split", [offsets_and_mask, self.b.const([2 * cell.points, cell.points])],
                                         "offsets", outputs=2, axis=1)
        mask = self.b.op("Sigmoid", [mask_logits], "mask")
        weight, bias = (a.astype(np.float32) for a in folded_weights(cell, bn))
        return self.b.op("DeformConv", [x, self.b.const(weight, "dcn_w"), offsets, self.b.const(bias, "dcn_b"), mask],
                         "dcn", kernel_shape=list(cell.kernel_size), pads=_pads(cell.padding), strides=[1, 1],
                         dilations=[1, 1], group=1, offset_group=1)

    def block(self, x, blk):
        if isinstance(blk, Bottleneck):
            out = self.conv(x, blk.conv1, blk.bn1, relu=True)
            out = self.conv(out, blk.conv2, blk.bn2, relu=True)
            out = self.conv(out, blk.conv3, blk.bn3)
        elif isinstance(blk, BasicBlock):
            out = self.conv(x, blk.conv1, blk.bn1, relu=True)
            out = self.conv(out, blk.conv2, blk.bn2)
        else:
            raise ValueError("ONNX export: unknown ResNet block %s" % type(blk).__name__)
        identity = x
        if blk.downsample is not None:
            identity = self.conv(x, blk.downsample[0], blk.downsample[1])
        return self.b.op("Relu", [self.b.op("Add", [out, identity], "residual")], "relu")

    def backbone(self, x, resnet):
        x = self.conv(x, resnet.conv1, resnet.bn1, relu=True)
        pool = resnet.maxpool
        pad = pool.padding[-1]
        x = self.b.op("MaxPool", [x], "maxpool", kernel_shape=[pool.kernel_size] * 2, strides=[pool.stride] * 2,
                      pads=[pad] * 4)
        for layer in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4):
            for blk in layer:
                x = self.block(x, blk)
        return x

    def upsampling(self, x, layers):
        """deconv_layers: groups of [DCN, BN, ReLU, Conv2dTranspose, BN, ReLU]."""
        cells = list(layers)
        if len(cells) % 6:
            raise ValueError("ONNX export: deconv_layers holds %d cells, expected groups of 6" % len(cells))
        for i in range(0, len(cells), 6):
            dcn, bn1, _, up, bn2, _ = cells[i:i + 6]
            if not isinstance(dcn, ModulatedDeformConv2d) or not isinstance(up, nn.Conv2dTranspose):
                raise ValueError("ONNX export: unexpected deconv_layers group %d" % (i // 6))
            x = self.b.op("Relu", [self.deform_conv(x, dcn, bn1)], "relu")
            x = self.conv(x, up, bn2, relu=True, transposed=True)
        return x

    def head(self, x, cells):
        cells = list(cells)
        if len(cells) == 3:  # conv3x3, ReLU, conv1x1
            x = self.conv(x, cells[0], relu=True)
        return self.conv(x, cells[-1])

    def network(self, x, net):
        """CenterNetDet -> (hm logits, wh, reg or None)."""
        x = self.upsampling(self.backbone(x, net.backbone), net.deconv_layers)
        reg = self.head(x, net.reg) if net.reg_offset else None
        return self.head(x, net.hm), self.head(x, net.wh), reg


def build_model(eval_net, input_res, dynamic_shape=False, permute_offsets=True, metadata=None, with_heads=False):
    """onnx.ModelProto of a CenterNetDetEval (``src.infer.detector.build_eval_network``).

    input_res (h, w): the fixed input size (unused with ``dynamic_shape``, whose input is
    (1, 3, height, width)). ``metadata`` (str -> str) is stored in the model. ``with_heads``
    adds the raw heads as outputs ``hm``, ``wh`` (and ``reg``) after ``detections``, for
    comparing them with the MindSpore network's.
    """
    onnx = import_onnx()
    builder = GraphBuilder(onnx)
    writer = NetworkWriter(builder, permute_offsets)
    image = INPUT_NAME
    if eval_net.flip_test:
        image = builder.op("Concat", [image, flip_width(builder, image)], "image_and_mirror", axis=0)
    hm, wh, reg = writer.network(image, eval_net.network)
    dec = eval_net.decode
    detections = decode(builder, hm, wh, reg, dec.K, dec.cat_spec_wh, eval_net.flip_test)
    builder.nodes.append(onnx.helper.make_node("Identity", [detections], [OUTPUT_NAME], name="output"))
    heads = {"hm": hm, "wh": wh, "reg": reg} if with_heads else {}
    for name, value in heads.items():
        if value is not None:
            builder.nodes.append(onnx.helper.make_node("Identity", [value], [name], name="output_" + name))

    height, width = ("height", "width") if dynamic_shape else tuple(int(r) for r in input_res)
    rows = "num_detections" if dynamic_shape else min(int(dec.K), (height // 4) * (width // 4))
    graph = onnx.helper.make_graph(
        builder.nodes, "centernet", [onnx.helper.make_tensor_value_info(INPUT_NAME, builder.FLOAT,
                                                                        [1, 3, height, width])],
        [onnx.helper.make_tensor_value_info(OUTPUT_NAME, builder.FLOAT, [1, rows, 6])]
        + [onnx.helper.make_tensor_value_info(n, builder.FLOAT, [None] * 4) for n, v in heads.items() if v is not None],
        initializer=builder.initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="centernet-mindspore")
    onnx.helper.set_model_props(model, {k: str(v) for k, v in (metadata or {}).items()})
    return model


def export_onnx(eval_net, path, input_res, dynamic_shape=False, metadata=None):
    """Build, check (onnx.checker with shape inference) and write the model atomically to ``path``."""
    onnx = import_onnx()
    model = build_model(eval_net, input_res, dynamic_shape, metadata=metadata)
    onnx.checker.check_model(model, full_check=True)
    with atomic_path(path, durable=True, nbytes=model.ByteSize(), what="model", setting="--export_name") as tmp:
        onnx.save_model(model, tmp)
    logger.info("ONNX graph: %d nodes (%d DeformConv), opset %d", len(model.graph.node),
                sum(n.op_type == "DeformConv" for n in model.graph.node), OPSET)
    return path
