"""Decode the heads into boxes inside the graph (part of the exported model).

Steps: sigmoid, 3x3 max-pool peak extraction (a pixel survives when it equals the maximum of
its neighbourhood), top-K over classes x positions, then the offset and size gathered at the
peaks. Boxes come out in output-map coordinates (input / down_ratio); post_process maps them
back to the original image.
"""
from mindspore import nn, ops
from mindspore.common import dtype as mstype

from src.network.head_ops import gather_feat


class DetectionDecode(nn.Cell):
    """(hm probabilities (B, C, H, W), wh, [reg]) -> detections (B, K, 6): x1, y1, x2, y2, score, class.

    Top-K runs in two stages like the official decoder (K per class, then K overall), which
    is much cheaper than one top-K over C*H*W. Without ``reg`` the centre is the pixel
    centre (+0.5). With ``cat_spec_wh`` the size of the detected class is picked from the
    2*C size channels. A map of fewer than K pixels (a tiny image) gives min(K, H*W) rows.
    """

    def __init__(self, K=100, cat_spec_wh=False, reg_offset=True):
        super().__init__()
        self.K = K
        self.cat_spec_wh = cat_spec_wh
        self.reg_offset = reg_offset
        self.pool = nn.MaxPool2d(kernel_size=3, stride=1, pad_mode="same")

    def peaks(self, heat):
        """Zero every pixel that is not the maximum of its 3x3 neighbourhood."""
        hmax = self.pool(heat)
        return heat * ops.cast(ops.equal(hmax, heat), heat.dtype)

    def topk(self, heat):
        """(scores, flat position y*W+x, class, y, x), each (B, K)."""
        batch, classes, height, width = heat.shape
        k = self.K if self.K <= height * width else height * width  # a map of fewer pixels: all of them
        per_class_scores, per_class_pos = ops.topk(ops.reshape(heat, (batch, classes, height * width)), k)
        scores, order = ops.topk(ops.reshape(per_class_scores, (batch, classes * k)), k)
        cls = ops.cast(ops.floor_divide(order, k), mstype.int32)
        pos = ops.gather_elements(ops.reshape(per_class_pos, (batch, classes * k)), 1, order)
        ys = ops.cast(ops.floor_divide(pos, width), mstype.float32)
        xs = ops.cast(pos - ops.floor_divide(pos, width) * width, mstype.float32)
        return scores, pos, cls, ys, xs

    def construct(self, heat, wh, reg=None):
        batch = heat.shape[0]
        num = self.K if self.K <= heat.shape[2] * heat.shape[3] else heat.shape[2] * heat.shape[3]
        scores, pos, cls, ys, xs = self.topk(self.peaks(heat))
        if self.reg_offset:
            offset = gather_feat(reg, pos)
            xs = xs + offset[:, :, 0]
            ys = ys + offset[:, :, 1]
        else:
            xs = xs + 0.5
            ys = ys + 0.5
        sizes = gather_feat(wh, pos)
        if self.cat_spec_wh:
            sizes = ops.reshape(sizes, (batch, num, -1, 2))
            index = ops.broadcast_to(ops.reshape(cls, (batch, num, 1, 1)), (batch, num, 1, 2))
            sizes = ops.reshape(ops.gather_elements(sizes, 2, index), (batch, num, 2))
        half_w = sizes[:, :, 0] / 2
        half_h = sizes[:, :, 1] / 2
        return ops.stack((xs - half_w, ys - half_h, xs + half_w, ys + half_h, scores,
                          ops.cast(cls, mstype.float32)), axis=2)


class CenterNetDetEval(nn.Cell):
    """Network + decode for inference: image (1, 3, H, W) -> detections (1, K, 6) in output-map coordinates.

    With ``flip_test`` the mirrored image runs in the same batch and the heatmaps (after the
    sigmoid) and sizes of the two are averaged, as the official flip testing; the offsets
    come from the unflipped image.
    """

    def __init__(self, network, K=100, cat_spec_wh=False, reg_offset=True, flip_test=False):
        super().__init__(auto_prefix=False)
        self.network = network
        self.flip_test = flip_test
        self.reg_offset = reg_offset
        self.decode = DetectionDecode(K, cat_spec_wh, reg_offset)

    def construct(self, image):
        if self.flip_test:
            image = ops.concat((image, ops.flip(image, (3,))), 0)
        outputs = self.network(image)
        heat = ops.sigmoid(outputs[0])
        wh = outputs[1]
        reg = outputs[2] if self.reg_offset else None
        if self.flip_test:
            heat = (heat[0:1] + ops.flip(heat[1:2], (3,))) / 2
            wh = (wh[0:1] + ops.flip(wh[1:2], (3,))) / 2
            if self.reg_offset:
                reg = reg[0:1]
        return self.decode(heat, wh, reg)
