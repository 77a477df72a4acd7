"""ResNet trunk: depths, channels, strides and official parameter names."""
import numpy as np
import pytest
from mindspore import Tensor

from src.resnet101 import ResNet

TORCHVISION_TRUNK_PARAMS = {  # torchvision resnet parameters without the 1000-class fc
    ("Bottleneck", (3, 4, 23, 3)): 44549160 - 2049000,
    ("BasicBlock", (2, 2, 2, 2)): 11689512 - 513000,
}


@pytest.mark.parametrize("block_type, block_class", list(TORCHVISION_TRUNK_PARAMS))
def test_trunk_matches_torchvision(block_type, block_class):
    net = ResNet(block_type, block_class)
    count = sum(int(np.prod(p.shape)) for p in net.trainable_params())
    assert count == TORCHVISION_TRUNK_PARAMS[(block_type, block_class)]
    names = {p.name for p in net.get_parameters()}
    assert {"conv1.weight", "bn1.moving_mean", "layer1.0.conv1.weight", "layer4.1.bn2.gamma"} <= names
    assert ("layer2.0.downsample.0.weight" in names)


def test_small_trunk_output_stride_and_channels():
    net = ResNet("BasicBlock", (1, 1, 1, 1))
    out = net(Tensor(np.zeros((1, 3, 96, 64), np.float32)))
    assert out.shape == (1, 512, 3, 2)


def test_bad_block_settings_are_named():
    with pytest.raises(ValueError, match="block_type"):
        ResNet("Wide", (1, 1, 1, 1))
    with pytest.raises(ValueError, match="block_class"):
        ResNet("Bottleneck", (1, 1, 1))
