"""CenterNet-ResNet-DCN: official parameter counts, head shapes, initialisation, training step."""
import cv2
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from src.centernet_det import (CenterNetDet, CenterNetLossCell, CenterNetTrainStep, bilinear_kernel,
                               bilinear_up_weight)
from src.network.deform_conv import ModulatedDeformConv2d
from conftest import SMALL as SMALL_NET, override_args
from src.model_utils.config import get_config

SMALL = override_args(SMALL_NET)


def _count(net):
    return sum(int(np.prod(p.shape)) for p in net.trainable_params())


def test_full_resnet101_matches_official_count_and_shapes():
    """The official PoseResNet-DCN-101 (80 classes) has 49,673,189 trainable parameters."""
    net = CenterNetDet(get_config([]).net_config, 80)
    assert _count(net) == 49673189
    net.set_train(False)
    ms.set_context(mode=ms.PYNATIVE_MODE)  # one forward pass: skip the graph compilation
    try:
        hm, wh, reg = net(Tensor(np.random.default_rng(0).random((1, 3, 512, 512), np.float32)))
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)
    assert hm.shape == (1, 80, 128, 128) and wh.shape == (1, 2, 128, 128) and reg.shape == (1, 2, 128, 128)
    dcn = [c for c in net.cells_and_names() if isinstance(c[1], ModulatedDeformConv2d)]
    assert [c[0] for c in dcn] == ["deconv_layers.0", "deconv_layers.6", "deconv_layers.12"]
    assert [c[1].weight.shape[0] for c in dcn] == [256, 128, 64]


def test_resnet18_matches_official_count():
    cfg = get_config(["--net_config.block_type=BasicBlock", "--net_config.block_class=[2,2,2,2]"])
    assert _count(CenterNetDet(cfg.net_config, 80)) == 14437349


@pytest.mark.parametrize("extra, wh_channels, has_reg", [
    ([], 2, True),
    (["--net_config.cat_spec_wh=true"], 14, True),
    (["--net_config.reg_offset=false"], 2, False),
    (["--net_config.head_conv=0"], 2, True),
])
def test_head_shapes_of_small_configurations(extra, wh_channels, has_reg):
    net = CenterNetDet(get_config(SMALL + extra).net_config, 7)
    out = net(Tensor(np.zeros((2, 3, 128, 96), np.float32)))
    assert len(out) == (3 if has_reg else 2)
    assert out[0].shape == (2, 7, 32, 24) and out[1].shape == (2, wh_channels, 32, 24)
    if has_reg:
        assert out[2].shape == (2, 2, 32, 24)


def test_head_initialisation():
    net = CenterNetDet(get_config(SMALL).net_config, 3)
    np.testing.assert_allclose(net.hm[2].bias.asnumpy(), -2.19)
    assert np.abs(net.wh[0].weight.asnumpy()).std() < 0.01 and not net.wh[2].bias.asnumpy().any()
    offset_conv = net.deconv_layers[0].conv_offset_mask
    assert not offset_conv.weight.asnumpy().any() and not offset_conv.bias.asnumpy().any()


def test_up_conv_is_bilinear_interpolation_at_init():
    np.testing.assert_allclose(bilinear_kernel(4)[0], [0.0625, 0.1875, 0.1875, 0.0625])
    channels = 3
    up = nn.Conv2dTranspose(channels, channels, 4, stride=2, pad_mode="pad", padding=1, has_bias=False,
                            weight_init=bilinear_up_weight(channels, 4))
    img = np.random.default_rng(0).random((channels, 12, 10)).astype(np.float32)
    out = up(Tensor(img[None])).asnumpy()[0]
    for c in range(channels):
        expected = cv2.resize(img[c], (20, 24), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(out[c, 1:-1, 1:-1], expected[1:-1, 1:-1], atol=1e-5)


def test_net_bad_settings():
    with pytest.raises(ValueError, match="num_stacks=2 is out of range"):
        get_config(SMALL + ["--net_config.num_stacks=2"])
    cfg = get_config(SMALL)
    cfg.net_config.num_stacks = 2  # a configuration built in code bypasses the yaml ranges
    with pytest.raises(ValueError, match="num_stacks"):
        CenterNetDet(cfg.net_config, 3)


def _targets(batch, classes, out_h, out_w, k=8):
    hm = np.zeros((batch, classes, out_h, out_w), np.float32)
    hm[:, 1, 5, 6] = 1.0
    reg_mask = np.zeros((batch, k), np.float32)
    reg_mask[:, 0] = 1
    ind = np.zeros((batch, k), np.int32)
    ind[:, 0] = 5 * out_w + 6
    wh = np.zeros((batch, k, 2), np.float32)
    wh[:, 0] = (4.0, 6.0)
    reg = np.zeros((batch, k, 2), np.float32)
    reg[:, 0] = (0.25, 0.5)
    return hm, reg_mask, ind, wh, reg


def test_train_step_learns_a_fixed_batch_and_skips_overflow():
    ms.set_seed(1)
    cfg = get_config(SMALL)
    net = CenterNetDet(cfg.net_config, 3)
    loss_net = CenterNetLossCell(net, cfg.net_config)
    opt = nn.Adam(net.trainable_params(), 1e-3)
    step = CenterNetTrainStep(loss_net, opt, nn.DynamicLossScaleUpdateCell(1024.0, 2, 1000), 1024.0)
    step.set_train()
    image = np.random.default_rng(0).random((2, 3, 64, 64), np.float32)
    batch = [Tensor(a) for a in (image,) + _targets(2, 3, 16, 16)]
    losses = [float(step(*batch)[0].asnumpy()) for _ in range(12)]
    assert losses[-1] < 0.5 * losses[0]
    before = net.hm[2].weight.asnumpy().copy()
    step.scale_sense.set_data(Tensor(np.float32(3e38)))  # scaled gradients overflow to inf
    _, _, _, _, overflow, scale, _ = step(*batch)
    assert bool(overflow.asnumpy()) and float(scale.asnumpy()) == pytest.approx(3e38)
    np.testing.assert_array_equal(net.hm[2].weight.asnumpy(), before)
    assert float(step.scale_sense.asnumpy()) == pytest.approx(1.5e38)  # the dynamic scale halves
    step.scale_sense.set_data(Tensor(np.float32(1024.0)))
    _, _, _, _, overflow, _, _ = step(*batch)
    assert not bool(overflow.asnumpy())
