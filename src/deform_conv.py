"""Modulated deformable convolution (DCNv2) on top of ``ops.deformable_conv2d``."""
import math

from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Uniform, initializer


class ModulatedDeformConv2d(nn.Cell):
    """3x3 (or kxk) DCNv2 layer: a plain conv predicts per-pixel offsets and a mask.

    ``conv_offset_mask`` outputs 3*k*k channels laid out as MindSpore's kernel expects:
    channels [0, k*k) are the x offsets and [k*k, 2*k*k) the y offsets of the kernel points
    in row-major order, [2*k*k, 3*k*k) the mask logits (a sigmoid is applied here). The
    official DCNv2 orders them differently (interleaved (dy, dx) pairs); the checkpoint
    converter permutes its weights into this layout. The offset conv starts at zero, so a
    fresh layer samples the regular grid with mask 0.5.

    Parameter names mirror the official DCN module: ``weight``, ``bias``,
    ``conv_offset_mask.weight``, ``conv_offset_mask.bias``.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=1, has_bias=True):
        super().__init__()
        self.kernel_size = (kernel_size, kernel_size)
        self.padding = (padding, padding, padding, padding)
        points = kernel_size * kernel_size
        self.points = points
        # DCNv2's initialisation: U(-1/sqrt(n), 1/sqrt(n)) with n = fan-in, zero bias.
        bound = 1.0 / math.sqrt(in_channels * points)
        self.weight = Parameter(initializer(Uniform(bound), (out_channels, in_channels, kernel_size, kernel_size)),
                                name="weight")
        self.bias = Parameter(initializer("zeros", (out_channels,)), name="bias") if has_bias else None
        self.conv_offset_mask = nn.Conv2d(in_channels, 3 * points, kernel_size, pad_mode="pad", padding=padding,
                                          has_bias=True, weight_init="zeros", bias_init="zeros")
        self.sigmoid = ops.Sigmoid()

    def construct(self, x):
        om = self.conv_offset_mask(x)
        offsets = om[:, :2 * self.points]
        mask = self.sigmoid(om[:, 2 * self.points:])
        offsets = ops.concat((offsets, mask), 1)
        return ops.deformable_conv2d(x, self.weight, offsets, self.kernel_size, (1, 1, 1, 1), self.padding,
                                     bias=self.bias)
