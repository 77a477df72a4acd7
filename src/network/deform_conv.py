"""Modulated deformable convolution (DCNv2): MindSpore's kernel, or bilinear gathers plus one matmul.

Both implementations compute the same function (stride 1, dilation 1, one deformable group):
output pixel (h, w) of a k x k layer with padding p sums, over kernel points t = i*k + j,
``weight[:, :, i, j] @ x(h - p + i + dy_t, w - p + j + dx_t) * mask_t`` plus the bias, where
``x(y, x)`` is bilinear interpolation with DCNv2's border rule: a point outside
(-1, H) x (-1, W) reads zero, and so does each of its four neighbours outside the image.

``"gather"`` builds that sum from standard operators: floor, one row gather on a channel-last
map, a batched product with the bilinear-times-mask weights and one matrix multiply with the
weight (done before the gather when out_channels <= in_channels, so the narrower rows are
gathered). It takes a dynamic input height/width in graph mode, which ``ops.deformable_conv2d``
(``"kernel"``) cannot infer.
"""
import math

import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common import dtype as mstype
from mindspore.common.initializer import Uniform, initializer

IMPLEMENTATIONS = ("gather", "kernel")


class ModulatedDeformConv2d(nn.Cell):
    """k x k DCNv2 layer: a plain conv predicts per-pixel offsets and a mask.

    ``conv_offset_mask`` outputs 3*k*k channels laid out as MindSpore's kernel expects:
    channels [0, k*k) are the x offsets and [k*k, 2*k*k) the y offsets of the kernel points
    in row-major order, [2*k*k, 3*k*k) the mask logits (a sigmoid is applied here). The
    official DCNv2 orders them differently (interleaved (dy, dx) pairs); the checkpoint
    converter permutes its weights into this layout. The offset conv starts at zero, so a
    fresh layer samples the regular grid with mask 0.5.

    Parameter names mirror the official DCN module: ``weight``, ``bias``,
    ``conv_offset_mask.weight``, ``conv_offset_mask.bias``. ``implementation`` is one of
    IMPLEMENTATIONS (see the module docstring); both give the same outputs and gradients.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=1, has_bias=True, implementation="gather"):
        super().__init__()
        if implementation not in IMPLEMENTATIONS:
            raise ValueError("deformable convolution implementation must be one of %s, got %r"
                             % (", ".join(IMPLEMENTATIONS), implementation))
        self.implementation = implementation
        self.kernel_size = (kernel_size, kernel_size)
        self.padding = (padding, padding, padding, padding)
        points = kernel_size * kernel_size
        self.points = points
        self.out_channels = out_channels
        # DCNv2's initialisation: U(-1/sqrt(n), 1/sqrt(n)) with n = fan-in, zero bias.
        bound = 1.0 / math.sqrt(in_channels * points)
        self.weight = Parameter(initializer(Uniform(bound), (out_channels, in_channels, kernel_size, kernel_size)),
                                name="weight")
        self.bias = Parameter(initializer("zeros", (out_channels,)), name="bias") if has_bias else None
        self.conv_offset_mask = nn.Conv2d(in_channels, 3 * points, kernel_size, pad_mode="pad", padding=padding,
                                          has_bias=True, weight_init="zeros", bias_init="zeros")
        self.sigmoid = ops.Sigmoid()
        # Kernel point t = i*k + j sits at (i - padding, j - padding) from the output pixel.
        grid = np.arange(kernel_size, dtype=np.float32) - padding
        self.point_y = Tensor(np.repeat(grid, kernel_size).reshape(1, 1, 1, points), mstype.float32)
        self.point_x = Tensor(np.tile(grid, kernel_size).reshape(1, 1, 1, points), mstype.float32)
        self.corners = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))
        self.point_index = Tensor(np.arange(points, dtype=np.int32).reshape(1, 1, 1, points, 1))
        # Gather the narrower side: the projected (Cout) rows when Cout <= C, else the input rows.
        self.project_first = out_channels <= in_channels

    def construct(self, x):
        om = self.conv_offset_mask(x)
        if self.implementation == "kernel":
            offsets = ops.concat((om[:, :2 * self.points], self.sigmoid(om[:, 2 * self.points:])), 1)
            return ops.deformable_conv2d(x, self.weight, offsets, self.kernel_size, (1, 1, 1, 1), self.padding,
                                         bias=self.bias)
        return self._gather_conv(x, om)

    def _gather_conv(self, x, om):
        """x (N, C, H, W), om (N, 3k^2, Ho, Wo) -> (N, Cout, Ho, Wo)."""
        n, channels, height, width = ops.shape(x)
        points = self.points
        # Channel-last offsets: (N, Ho, Wo, k^2), so the gathered rows come out as (N*Ho*Wo, k^2 * C).
        # Positions and row indices stay float32 under mixed precision: float16 would round the
        # bilinear fractions and every index above 2048.
        om = ops.transpose(ops.cast(om, mstype.float32), (0, 2, 3, 1))
        dx, dy = om[..., :points], om[..., points:2 * points]
        mask = self.sigmoid(om[..., 2 * points:])
        # Output-pixel coordinates from cumulative sums, so no static size is needed.
        ones = ops.ones_like(dx[..., :1])
        rows = ops.cumsum(ones, 1) - 1.0
        cols = ops.cumsum(ones, 2) - 1.0
        py = rows + self.point_y + dy
        px = cols + self.point_x + dx
        h_f = ops.scalar_to_tensor(height, mstype.float32)
        w_f = ops.scalar_to_tensor(width, mstype.float32)
        inside = ops.cast((py > -1.0) & (py < h_f) & (px > -1.0) & (px < w_f), mstype.float32) * mask
        y0 = ops.floor(py)
        x0 = ops.floor(px)
        ly = py - y0
        lx = px - x0
        # Rows of image n start at n*H*W in the (N*H*W, C) channel-last map.
        base = (ops.cumsum(ones[:, :1, :1], 0) - 1.0) * (h_f * w_f)
        indices = []
        weights = []
        for cy, cx in self.corners:
            yy = y0 + cy
            xx = x0 + cx
            valid = ops.cast((yy >= 0.0) & (yy <= h_f - 1.0) & (xx >= 0.0) & (xx <= w_f - 1.0), mstype.float32)
            wy = ly if cy else 1.0 - ly
            wx = lx if cx else 1.0 - lx
            weights.append(wy * wx * valid * inside)
            index = (ops.minimum(ops.maximum(yy, 0.0), h_f - 1.0) * w_f
                     + ops.minimum(ops.maximum(xx, 0.0), w_f - 1.0) + base)
            indices.append(ops.stop_gradient(index))
        # (N, Ho, Wo, k^2, 4): the four neighbours of each sampling point side by side.
        index = ops.cast(ops.stack(indices, -1), mstype.int32)
        weight4 = ops.cast(ops.stack(weights, -1), x.dtype)
        table = ops.transpose(x, (0, 2, 3, 1)).reshape(-1, channels)
        if self.project_first:
            # Project every input pixel by every kernel point's weight (N*H*W, k^2 * Cout), then
            # gather Cout-wide rows: row (pixel, t) sits at pixel*k^2 + t.
            kernel = ops.transpose(self.weight, (1, 2, 3, 0)).reshape(channels, points * self.out_channels)
            table = ops.matmul(table, kernel).reshape(-1, self.out_channels)
            index = index * points + self.point_index
            samples = ops.gather(table, index.reshape(-1), 0).reshape(-1, 4 * points, self.out_channels)
            out = ops.bmm(weight4.reshape(-1, 1, 4 * points), samples).reshape(-1, self.out_channels)
        else:
            samples = ops.gather(table, index.reshape(-1), 0).reshape(-1, 4, channels)
            columns = ops.bmm(weight4.reshape(-1, 1, 4), samples).reshape(-1, points * channels)
            # weight (Cout, C, k, k) -> (k*k*C, Cout), rows ordered as the columns (point, channel).
            kernel = ops.transpose(self.weight, (2, 3, 1, 0)).reshape(points * channels, self.out_channels)
            out = ops.matmul(columns, kernel)
        if self.bias is not None:
            out = out + self.bias
        out = out.reshape(n, ops.shape(om)[1], ops.shape(om)[2], self.out_channels)
        return ops.transpose(out, (0, 3, 1, 2))
