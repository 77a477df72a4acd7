"""ResNet backbone (Bottleneck for ResNet-50/101/152, BasicBlock for ResNet-18/34).

Layer and parameter names follow torchvision/official CenterNet (``conv1``, ``bn1``,
``layer1.0.conv2``, ``layer1.0.downsample.0``...), so imported weights map one to one.
Padding is explicit and symmetric (PyTorch semantics); the stride sits on the 3x3 conv.
"""
from mindspore import nn
from mindspore.common.initializer import HeNormal

BN_MOMENTUM = 0.9  # MindSpore's momentum is 1 - PyTorch's (0.1)


def _conv(in_channels, out_channels, kernel_size, stride=1):
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, pad_mode="pad",
                     padding=kernel_size // 2, has_bias=False,
                     weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))


def _bn(channels):
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM, eps=1e-5)


class BasicBlock(nn.Cell):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut."""
    expansion = 1

    def __init__(self, in_channels, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = _conv(in_channels, planes, 3, stride)
        self.bn1 = _bn(planes)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def construct(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Cell):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a shortcut."""
    expansion = 4

    def __init__(self, in_channels, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = _conv(in_channels, planes, 1)
        self.bn1 = _bn(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = _bn(planes)
        self.conv3 = _conv(planes, planes * self.expansion, 1)
        self.bn3 = _bn(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def construct(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


BLOCKS = {"Bottleneck": Bottleneck, "BasicBlock": BasicBlock}


class ResNet(nn.Cell):
    """ResNet trunk without the classifier: (N, 3, H, W) -> (N, 512 * expansion, H/32, W/32)."""

    def __init__(self, block_type="Bottleneck", block_class=(3, 4, 23, 3)):
        super().__init__()
        if block_type not in BLOCKS:
            raise ValueError("net_config.block_type must be one of %s, got %r" % (sorted(BLOCKS), block_type))
        if len(block_class) != 4 or any(int(n) < 1 for n in block_class):
            raise ValueError("net_config.block_class must list 4 positive block counts, got %r" % (block_class,))
        block = BLOCKS[block_type]
        self.in_channels = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, pad_mode="pad", padding=3, has_bias=False,
                               weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))
        self.bn1 = _bn(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="pad", padding=1)
        self.layer1 = self._make_layer(block, 64, block_class[0], 1)
        self.layer2 = self._make_layer(block, 128, block_class[1], 2)
        self.layer3 = self._make_layer(block, 256, block_class[2], 2)
        self.layer4 = self._make_layer(block, 512, block_class[3], 2)
        self.out_channels = 512 * block.expansion

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.in_channels != planes * block.expansion:
            downsample = nn.SequentialCell([_conv(self.in_channels, planes * block.expansion, 1, stride),
                                            _bn(planes * block.expansion)])
        layers = [block(self.in_channels, planes, stride, downsample)]
        self.in_channels = planes * block.expansion
        layers += [block(self.in_channels, planes) for _ in range(1, int(blocks))]
        return nn.SequentialCell(layers)

    def construct(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)
