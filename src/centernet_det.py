"""CenterNet-ResNet-DCN networks: the detector, its loss wrapper and the training step.

CenterNetDet: ResNet trunk -> 3 x [3x3 DCNv2 conv, BN, ReLU, 4x4 stride-2 up-conv, BN, ReLU]
(256, 128, 64 channels) -> heads ``hm`` (num_classes), ``wh`` (2 or 2*num_classes) and ``reg`` (2).
A 512x512 input gives 128x128 heads. Names follow the official PoseResNet-DCN
(``deconv_layers.N``, ``hm.0``, ``hm.2``...) under a ``backbone.`` prefix for the trunk.
"""
import collections
import math

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common import dtype as mstype
from mindspore.common.initializer import Normal
from mindspore.context import ParallelMode
from mindspore.communication.management import get_group_size

from src.network.deform_conv import ModulatedDeformConv2d
from src.network.losses import CenterNetLoss
from src.resnet101 import BN_MOMENTUM, ResNet

DECONV_CHANNELS = (256, 128, 64)
# wh target column and its mask column (None: no mask) for each box-size layout of net_config.
_WH_TARGETS = {"wh": ("wh", None), "dense_wh": ("dense_wh", "dense_wh_mask"),
               "cat_spec_wh": ("cat_spec_wh", "cat_spec_mask")}
HM_BIAS = -2.19  # sigmoid(-2.19) ~= 0.1: the focal-loss prior of the paper


def bilinear_kernel(size):
    """(size, size) kernel of bilinear upsampling by ceil(size / 2) (the FCN/CenterNet formula)."""
    factor = math.ceil(size / 2)
    centre = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    line = 1 - np.abs(np.arange(size) / factor - centre)
    return np.outer(line, line).astype(np.float32)


def bilinear_up_weight(channels, size):
    """Transposed-conv weight (in, out, size, size) upsampling every channel bilinearly.

    Channel c feeds only channel c, so at initialisation the layer is exactly bilinear
    interpolation (the official code fills output channel 0 of every input channel and leaves
    the rest random; imported official weights replace this either way).
    """
    weight = np.zeros((channels, channels, size, size), np.float32)
    weight[np.arange(channels), np.arange(channels)] = bilinear_kernel(size)
    return Tensor(weight, mstype.float32)


def head_channels(net_cfg, num_classes):
    """Output channels of each head, in output order."""
    heads = {"hm": num_classes, "wh": 2 * num_classes if net_cfg.cat_spec_wh else 2}
    if net_cfg.reg_offset:
        heads["reg"] = 2
    return heads


def _make_head(in_channels, head_conv, out_channels, is_heatmap):
    """conv3x3(head_conv) + ReLU + conv1x1, or a single conv1x1 when head_conv <= 0."""
    if is_heatmap:
        last = nn.Conv2d(head_conv if head_conv > 0 else in_channels, out_channels, 1, has_bias=True,
                         bias_init=ms.common.initializer.Constant(HM_BIAS))
    else:
        last = nn.Conv2d(head_conv if head_conv > 0 else in_channels, out_channels, 1, has_bias=True,
                         weight_init=Normal(0.001), bias_init="zeros")
    if head_conv <= 0:
        return nn.SequentialCell([last])
    first_kwargs = {} if is_heatmap else {"weight_init": Normal(0.001), "bias_init": "zeros"}
    first = nn.Conv2d(in_channels, head_conv, 3, pad_mode="pad", padding=1, has_bias=True, **first_kwargs)
    return nn.SequentialCell([first, nn.ReLU(), last])


class CenterNetDet(nn.Cell):
    """(N, 3, H, W) -> (hm logits (N, C, H/4, W/4), wh (N, 2|2C, H/4, W/4)[, reg (N, 2, H/4, W/4)])."""

    def __init__(self, net_cfg, num_classes):
        super().__init__()
        if net_cfg.num_stacks != 1:
            raise ValueError("net_config.num_stacks must be 1 for the ResNet backbone, got %r" % net_cfg.num_stacks)
        if net_cfg.down_ratio != 4:
            raise ValueError("net_config.down_ratio must be 4 (three 2x up-convs on a stride-32 trunk), got %r"
                             % net_cfg.down_ratio)
        self.backbone = ResNet(net_cfg.block_type, net_cfg.block_class)
        layers = []
        in_channels = self.backbone.out_channels
        for planes in DECONV_CHANNELS:
            up = nn.Conv2dTranspose(planes, planes, 4, stride=2, pad_mode="pad", padding=1, has_bias=False,
                                    weight_init=bilinear_up_weight(planes, 4))
            layers += [ModulatedDeformConv2d(in_channels, planes, 3, padding=1, implementation=net_cfg.dcn_impl),
                       nn.BatchNorm2d(planes, momentum=BN_MOMENTUM), nn.ReLU(),
                       up, nn.BatchNorm2d(planes, momentum=BN_MOMENTUM), nn.ReLU()]
            in_channels = planes
        self.deconv_layers = nn.SequentialCell(layers)
        self.heads = head_channels(net_cfg, num_classes)
        self.hm = _make_head(in_channels, net_cfg.head_conv, self.heads["hm"], True)
        self.wh = _make_head(in_channels, net_cfg.head_conv, self.heads["wh"], False)
        self.reg_offset = bool(net_cfg.reg_offset)
        if self.reg_offset:
            self.reg = _make_head(in_channels, net_cfg.head_conv, 2, False)

    def construct(self, x):
        x = self.deconv_layers(self.backbone(x))
        if self.reg_offset:
            return self.hm(x), self.wh(x), self.reg(x)
        return self.hm(x), self.wh(x)


class CenterNetLossCell(nn.Cell):
    """Network + loss: the training columns -> (total, hm_loss, wh_loss, off_loss).

    ``columns`` names the inputs in order (default: ``src.data.train_targets.train_columns(net_cfg)``):
    image, hm, reg_mask, ind, the wh target (wh | dense_wh, dense_wh_mask | cat_spec_wh,
    cat_spec_mask), then reg when reg_offset is on. Each input is picked by its name's position,
    resolved once here, so the graph indexes by constants.
    """

    def __init__(self, network, net_cfg, columns=None):
        super().__init__(auto_prefix=False)
        if columns is None:
            from src.data.train_targets import train_columns
            columns = train_columns(net_cfg)
        self.network = network
        self.loss = CenterNetLoss(net_cfg)
        self.reg_offset = bool(net_cfg.reg_offset)
        wh_name, mask_name = _WH_TARGETS["dense_wh" if net_cfg.dense_wh else
                                         "cat_spec_wh" if net_cfg.cat_spec_wh else "wh"]
        needed = ["image", "hm", "reg_mask", "ind", wh_name] + ([mask_name] if mask_name else []) + \
            (["reg"] if self.reg_offset else [])
        missing = [name for name in needed if name not in columns]
        if missing:
            raise ValueError("the training columns %s lack %s, which net_config needs" % (list(columns), missing))
        at = {name: columns.index(name) for name in needed}
        self.image_at, self.hm_at, self.reg_mask_at, self.ind_at = at["image"], at["hm"], at["reg_mask"], at["ind"]
        self.wh_at = at[wh_name]
        self.wh_mask_at = at[mask_name] if mask_name else -1
        self.reg_at = at["reg"] if self.reg_offset else -1

    def construct(self, *inputs):
        outputs = self.network(inputs[self.image_at])
        wh_mask = inputs[self.wh_mask_at] if self.wh_mask_at >= 0 else None
        reg = inputs[self.reg_at] if self.reg_at >= 0 else None
        return self.loss(outputs, inputs[self.hm_at], inputs[self.reg_mask_at], inputs[self.ind_at],
                         inputs[self.wh_at], wh_mask, reg)


class StepOutputs(collections.namedtuple("StepOutputs",
                                         "loss hm_loss wh_loss off_loss overflow loss_scale grad_norm")):
    """One training step's results as Python numbers: losses, whether gradients overflowed (the
    step was skipped), the loss scale the step used and the global gradient norm before clipping."""

    __slots__ = ()

    @classmethod
    def of(cls, outputs):
        """Name the tuple of tensors returned by CenterNetTrainStep (or its data-sink wrapper)."""
        loss, hm_loss, wh_loss, off_loss, overflow, scale, norm = (float(o.asnumpy().reshape(-1)[0])
                                                                    for o in outputs)
        return cls(loss, hm_loss, wh_loss, off_loss, bool(overflow), scale, norm)


_grad_scale = ops.MultitypeFuncGraph("grad_scale")


@_grad_scale.register("Tensor", "Tensor")
def _unscale(scale, grad):
    return grad * ops.cast(ops.reciprocal(scale), ops.dtype(grad))


_grad_mul = ops.MultitypeFuncGraph("grad_mul")


@_grad_mul.register("Tensor", "Tensor")
def _multiply(factor, grad):
    return grad * ops.cast(factor, ops.dtype(grad))


_square_sum = ops.MultitypeFuncGraph("square_sum")


@_square_sum.register("Tensor")
def _sum_of_squares(grad):
    return ops.reduce_sum(ops.square(ops.cast(grad, mstype.float32)))


class CenterNetTrainStep(nn.Cell):
    """One optimisation step: optional loss scaling with overflow skipping, optional clipping.

    Returns the fields of StepOutputs as a plain tuple (graph-mode outputs); name them on the
    Python side with ``StepOutputs.of(outputs)``. Gradients of the total loss are averaged over
    devices in data-parallel runs. With loss scaling (``loss_scale_value`` not None) they are
    computed on the loss times ``scale_sense``, unscaled and checked for inf/nan; an
    overflowed step leaves the weights and optimizer untouched and, with a
    DynamicLossScaleUpdateCell, lowers the scale. Without it (fp32 training) none of that work
    is in the graph: overflow is always False and the scale 1. The global gradient norm
    (after unscaling) is returned; ``grad_clip_norm`` > 0 multiplies the gradients by
    clip / max(norm, clip), as ``ops.clip_by_global_norm`` defines. Everything that defines the
    training state (weights, Adam moments, global step, loss scale and its counters) lives in
    Parameters of this cell, so saving it saves an exactly resumable state.
    """

    def __init__(self, loss_net, optimizer, scale_update_cell=None, loss_scale_value=None, grad_clip_norm=0.0):
        super().__init__(auto_prefix=False)
        self.network = loss_net
        self.network.set_grad()
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        self.loss_scaling = loss_scale_value is not None
        self.scale_sense = Parameter(Tensor(float(loss_scale_value if self.loss_scaling else 1.0), mstype.float32),
                                     name="scale_sense")
        self.scale_update_cell = scale_update_cell if self.loss_scaling else None
        self.clip = float(grad_clip_norm) > 0
        self.clip_norm = Tensor(float(grad_clip_norm), mstype.float32)
        self.one = Tensor(1.0, mstype.float32)
        self.no_overflow = Tensor(False, mstype.bool_)
        self.hyper_map = ops.HyperMap()
        parallel_mode = ms.get_auto_parallel_context("parallel_mode")
        self.reducer_flag = parallel_mode in (ParallelMode.DATA_PARALLEL, ParallelMode.HYBRID_PARALLEL)
        self.grad_reducer = ops.identity
        if self.reducer_flag:
            self.grad_reducer = nn.DistributedGradReducer(self.weights, True, get_group_size())

    def construct(self, *inputs):
        total, hm_loss, wh_loss, off_loss = self.network(*inputs)
        scale = self.one
        sens_total = ops.ones_like(total)
        if self.loss_scaling:
            scale = self.scale_sense * 1.0  # a copy: the value used by this step, before any update
            sens_total = sens_total * ops.cast(scale, ops.dtype(total))
        sens = (sens_total, ops.zeros_like(hm_loss), ops.zeros_like(wh_loss), ops.zeros_like(off_loss))
        grads = self.grad(self.network, self.weights)(*inputs, sens)
        grads = self.grad_reducer(grads)
        overflow = self.no_overflow
        if self.loss_scaling:
            grads = self.hyper_map(ops.partial(_grad_scale, scale), grads)
            overflow = ops.logical_not(ms.amp.all_finite(grads))
            if self.scale_update_cell is not None:
                overflow = self.scale_update_cell(self.scale_sense, overflow)
        norm = ops.sqrt(ops.addn(self.hyper_map(_square_sum, grads)))
        if self.clip:
            factor = self.clip_norm / ops.maximum(norm, self.clip_norm)
            grads = self.hyper_map(ops.partial(_grad_mul, factor), grads)
        if self.loss_scaling:
            if not overflow:
                total = ops.depend(total, self.optimizer(grads))
        else:
            total = ops.depend(total, self.optimizer(grads))
        return total, hm_loss, wh_loss, off_loss, overflow, scale, norm
