"""Test reference: a compact PyTorch CenterNet ResNet-DCN with the official names and DCNv2 semantics.

The module tree and parameter names follow CenterNet's ``pose_resnet_dcn.py`` (``conv1``,
``bn1``, ``layerN.i.*``, ``deconv_layers.N``, heads ``hm``/``wh``/``reg`` as conv3x3 + ReLU
+ conv1x1), and ``DCN`` follows DCNv2's module: ``conv_offset_mask`` outputs 27 channels,
``o1, o2, mask = chunk(out, 3)``, ``offset = cat(o1, o2)`` holds interleaved pairs (channel
2k = dy, 2k+1 = dx of kernel point k = i*3+j), ``mask = sigmoid(mask)``. The deformable
convolution itself is written here in plain PyTorch by explicit bilinear gathering, with
DCNv2's border rule (a sampling point outside (-1, H) x (-1, W) contributes zero, and so
does each of its four neighbours that falls outside the image).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

UP_CHANNELS = (256, 128, 64)


def _bilinear_gather(x, py, px):
    """x (N, C, H, W) sampled at float positions py, px (N, h, w) -> (N, C, h, w)."""
    n, c, height, width = x.shape
    flat = x.reshape(n, c, height * width)
    inside_any = (py > -1) & (py < height) & (px > -1) & (px < width)
    y0, x0 = torch.floor(py), torch.floor(px)
    ly, lx = py - y0, px - x0
    out = torch.zeros((n, c) + tuple(py.shape[1:]), dtype=x.dtype)
    for dy, dx, weight in ((0, 0, (1 - ly) * (1 - lx)), (0, 1, (1 - ly) * lx),
                           (1, 0, ly * (1 - lx)), (1, 1, ly * lx)):
        yy, xx = y0 + dy, x0 + dx
        valid = inside_any & (yy >= 0) & (yy <= height - 1) & (xx >= 0) & (xx <= width - 1)
        index = (yy.clamp(0, height - 1) * width + xx.clamp(0, width - 1)).long()
        values = torch.gather(flat, 2, index.reshape(n, 1, -1).expand(n, c, -1)).reshape(out.shape)
        out = out + values * (weight * valid.to(x.dtype)).unsqueeze(1)
    return out


def modulated_deform_conv(x, offset, mask, weight, bias, padding=1):
    """DCNv2 forward, stride 1, dilation 1, one deformable group.

    offset (N, 2*kh*kw, H, W): channel 2k = dy, 2k+1 = dx of kernel point k; mask (N, kh*kw, H, W).
    Point k = i*kw + j of output pixel (h, w) samples (h - padding + i + dy, w - padding + j + dx).
    """
    n, _, height, width = x.shape
    cout, cin, kh, kw = weight.shape
    out_h, out_w = height + 2 * padding - kh + 1, width + 2 * padding - kw + 1
    rows = torch.arange(out_h, dtype=x.dtype).reshape(1, out_h, 1)
    cols = torch.arange(out_w, dtype=x.dtype).reshape(1, 1, out_w)
    columns = []
    for i in range(kh):
        for j in range(kw):
            k = i * kw + j
            py = rows - padding + i + offset[:, 2 * k]
            px = cols - padding + j + offset[:, 2 * k + 1]
            columns.append(_bilinear_gather(x, py, px) * mask[:, k:k + 1])
    columns = torch.stack(columns, 2)  # (N, C, kh*kw, H, W)
    out = torch.einsum("nckhw,ock->nohw", columns, weight.reshape(cout, cin, kh * kw))
    return out + bias.reshape(1, -1, 1, 1)


def modulated_deform_conv_grid(x, offset, mask, weight, bias, padding=1):
    """The same DCNv2 forward with one ``F.grid_sample`` call for all kernel points (for speed).

    Pixel position p maps to grid_sample's normalised coordinate 2p / (size - 1) - 1
    (align_corners=True); its zero padding gives DCNv2's border rule. The sampled columns
    (N, C*kh*kw, H*W) meet the weight (Cout, C*kh*kw) in one matmul. Needs H, W > 1.
    """
    n, cin, height, width = x.shape
    cout, _, kh, kw = weight.shape
    points = kh * kw
    ky = torch.arange(kh, dtype=x.dtype).repeat_interleave(kw).reshape(1, points, 1, 1)
    kx = torch.arange(kw, dtype=x.dtype).repeat(kh).reshape(1, points, 1, 1)
    py = torch.arange(height, dtype=x.dtype).reshape(1, 1, height, 1) - padding + ky + offset[:, 0::2]
    px = torch.arange(width, dtype=x.dtype).reshape(1, 1, 1, width) - padding + kx + offset[:, 1::2]
    grid = torch.stack((px * (2.0 / (width - 1)) - 1, py * (2.0 / (height - 1)) - 1), -1)
    sampled = F.grid_sample(x, grid.reshape(n, points * height, width, 2), mode="bilinear",
                            padding_mode="zeros", align_corners=True)  # (N, C, points*H, W)
    columns = (sampled.reshape(n, cin, points, height, width) * mask.unsqueeze(1)).reshape(
        n, cin * points, height * width)
    out = torch.matmul(weight.reshape(cout, cin * points), columns).reshape(n, cout, height, width)
    return out + bias.reshape(1, -1, 1, 1)


class DCN(nn.Module):
    """DCNv2's ``DCN`` module: parameters weight, bias, conv_offset_mask.{weight,bias}.

    ``impl``: ``reference`` (explicit bilinear gathering, the tests' exact reference) or
    ``grid`` (one grid_sample, the fast plain-PyTorch formulation the benchmarks use).
    """

    def __init__(self, in_channels, out_channels, impl="reference"):
        super().__init__()
        self.deform = {"reference": modulated_deform_conv, "grid": modulated_deform_conv_grid}[impl]
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.conv_offset_mask = nn.Conv2d(in_channels, 27, 3, padding=1, bias=True)
        bound = 1.0 / math.sqrt(in_channels * 9)
        nn.init.uniform_(self.weight, -bound, bound)
        self.last_offset = None

    def forward(self, x):
        o1, o2, mask = torch.chunk(self.conv_offset_mask(x), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        self.last_offset = offset.detach()
        return self.deform(x, offset, torch.sigmoid(mask), self.weight, self.bias)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


SPECS = {18: (BasicBlock, (2, 2, 2, 2)), 101: (Bottleneck, (3, 4, 23, 3))}


class ResNetTrunk(nn.Module):
    """conv1, bn1, maxpool, layer1..4 (torchvision/CenterNet names)."""

    def __init__(self, depth):
        super().__init__()
        block, layers = SPECS[depth]
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            setattr(self, "layer%d" % index, self._make_layer(block, planes, blocks, 1 if index == 1 else 2))

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ImageNetResNet(ResNetTrunk):
    """torchvision-style classifier: the trunk plus avgpool and fc (1000 classes)."""

    def __init__(self, depth):
        super().__init__(depth)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * SPECS[depth][0].expansion, 1000)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


class PoseResNetDCN(ResNetTrunk):
    """CenterNet's PoseResNet with DCN up path (ctdet heads), official parameter names."""

    def __init__(self, depth, num_classes, head_conv=64, cat_spec_wh=False, dcn_impl="reference"):
        super().__init__(depth)
        layers = []
        for planes in UP_CHANNELS:
            layers += [DCN(self.inplanes, planes, dcn_impl), nn.BatchNorm2d(planes), nn.ReLU(),
                       nn.ConvTranspose2d(planes, planes, 4, stride=2, padding=1, output_padding=0, bias=False),
                       nn.BatchNorm2d(planes), nn.ReLU()]
            self.inplanes = planes
        self.deconv_layers = nn.Sequential(*layers)
        self.heads = {"hm": num_classes, "wh": 2 * num_classes if cat_spec_wh else 2, "reg": 2}
        for head, channels in self.heads.items():
            setattr(self, head, nn.Sequential(nn.Conv2d(64, head_conv, 3, padding=1, bias=True), nn.ReLU(),
                                              nn.Conv2d(head_conv, channels, 1, bias=True)))

    def forward(self, x):
        x = self.deconv_layers(self.features(x))
        return {head: getattr(self, head)(x) for head in self.heads}

    def dcn_offsets(self):
        """Offsets used by the three DCN layers in the last forward pass."""
        return [m.last_offset for m in self.deconv_layers if isinstance(m, DCN)]


@torch.no_grad()
def randomize(model, seed, calibration_shape=(2, 3, 96, 128), offset_scale=0.25, residual_gamma=(0.02, 0.15)):
    """Random weights everywhere (offset convs included), then BN statistics of the data.

    Conv weights ~ N(0, 1/fan_in), biases and BN affine random; the running statistics are
    measured on a random batch (so activations keep a sane scale through 100 layers) and then
    perturbed, so mean != 0 and var != 1 everywhere. The model is left in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=gen) * std

    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            fan_in = module.weight[0].numel() if not isinstance(module, nn.ConvTranspose2d) else \
                module.weight.shape[0] * module.weight[0, 0].numel()
            module.weight.copy_(normal(module.weight.shape, 1.0 / math.sqrt(fan_in)))
            if module.bias is not None:
                module.bias.copy_(normal(module.bias.shape, 0.1))
        elif isinstance(module, DCN):
            module.weight.copy_(normal(module.weight.shape, 1.0 / math.sqrt(module.weight[0].numel())))
            module.bias.copy_(normal(module.bias.shape, 0.1))
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=gen))
            module.bias.copy_(normal(module.bias.shape, 0.1))
    for module in model.modules():
        if isinstance(module, (BasicBlock, Bottleneck)):
            last_bn = module.bn3 if isinstance(module, Bottleneck) else module.bn2
            last_bn.weight.copy_(residual_gamma[0] + (residual_gamma[1] - residual_gamma[0])
                                 * torch.rand(last_bn.weight.shape, generator=gen))
    for module in model.modules():
        if isinstance(module, DCN):  # offsets of a few pixels, masks around 0.5
            offset_conv = module.conv_offset_mask
            offset_conv.weight.mul_(offset_scale)
            offset_conv.bias.copy_(normal(offset_conv.bias.shape, 0.5 * offset_scale))
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in batchnorms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batch
    model.train()
    if isinstance(model, PoseResNetDCN):
        model(normal(calibration_shape, 1.0))
    else:
        model.features(normal(calibration_shape, 1.0))
    model.eval()
    for bn in batchnorms:
        bn.momentum = 0.1
        bn.running_mean.add_(normal(bn.running_mean.shape, 0.05))
        bn.running_var.mul_(0.8 + 0.45 * torch.rand(bn.running_var.shape, generator=gen))
    return model


def _nms(heat, kernel=3):
    hmax = F.max_pool2d(heat, kernel, stride=1, padding=(kernel - 1) // 2)
    return heat * (hmax == heat).float()


def ctdet_decode(heat, wh, reg=None, cat_spec_wh=False, K=100):
    """CenterNet's ctdet decoding: heat is the sigmoid heatmap; -> (B, K, 6) x1, y1, x2, y2, score, class."""
    batch, classes, height, width = heat.shape
    heat = _nms(heat)
    topk_scores, topk_inds = torch.topk(heat.view(batch, classes, -1), K)
    topk_ys = (topk_inds // width).float()
    topk_xs = (topk_inds % width).float()
    scores, order = torch.topk(topk_scores.view(batch, -1), K)
    clses = (order // K).float()
    inds = torch.gather(topk_inds.view(batch, -1), 1, order)
    ys = torch.gather(topk_ys.view(batch, -1), 1, order)
    xs = torch.gather(topk_xs.view(batch, -1), 1, order)

    def gather(feat):
        feat = feat.permute(0, 2, 3, 1).reshape(batch, height * width, -1)
        return torch.gather(feat, 1, inds.unsqueeze(2).expand(batch, K, feat.shape[2]))

    if reg is not None:
        offset = gather(reg)
        xs, ys = xs + offset[:, :, 0], ys + offset[:, :, 1]
    else:
        xs, ys = xs + 0.5, ys + 0.5
    sizes = gather(wh)
    if cat_spec_wh:
        sizes = sizes.view(batch, K, classes, 2)
        sizes = torch.gather(sizes, 2, clses.long().view(batch, K, 1, 1).expand(batch, K, 1, 2)).view(batch, K, 2)
    return torch.stack([xs - sizes[..., 0] / 2, ys - sizes[..., 1] / 2, xs + sizes[..., 0] / 2,
                        ys + sizes[..., 1] / 2, scores, clses], dim=2)


def ctdet_post_process(dets, center, scale, out_height, out_width, num_classes):
    """The official ctdet post-processing of one image without rotation, in closed form.

    The official inverse affine transform (rotation 0) is a similarity: an output-map point
    p goes to center + (p - (out_width / 2, out_height / 2)) * scale_w / out_width, where
    scale_w is the first entry of ``scale``. dets (K, 6) numpy -> {class id 1..C: (n, 5)}.
    """
    factor = float(np.atleast_1d(scale)[0]) / out_width
    half = np.array([out_width / 2.0, out_height / 2.0])
    boxes = dets[:, :4].reshape(-1, 2, 2)
    boxes = (np.asarray(center, np.float64) + (boxes - half) * factor).reshape(-1, 4)
    classes = dets[:, 5]
    return {j + 1: np.concatenate([boxes[classes == j], dets[classes == j, 4:5]], axis=1).astype(np.float32)
            for j in range(num_classes)}
