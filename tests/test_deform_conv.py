"""DCNv2 layer: the sampling follows the offsets (numpy reference), zero offsets give a plain conv."""
import numpy as np
from mindspore import Tensor, ops

from src.deform_conv import ModulatedDeformConv2d


def _bilinear(img, y, x):
    """img (C, H, W) sampled at (y, x); pixels outside the image count as zero (DCNv2)."""
    height, width = img.shape[1:]
    if y <= -1 or y >= height or x <= -1 or x >= width:
        return np.zeros(img.shape[0])
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    ly, lx = y - y0, x - x0
    out = np.zeros(img.shape[0])
    for yy, xx, w in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                      (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        if 0 <= yy < height and 0 <= xx < width:
            out += w * img[:, yy, xx]
    return out


def reference_dcn(x, weight, bias, om):
    """Modulated deformable 3x3 conv, padding 1, om = (27, H, W) in this project's layout."""
    _, height, width = x.shape
    out = np.zeros((weight.shape[0], height, width))
    mask = 1 / (1 + np.exp(-om[18:]))
    for h in range(height):
        for w in range(width):
            acc = bias.astype(np.float64).copy()
            for i in range(3):
                for j in range(3):
                    k = i * 3 + j
                    sample = _bilinear(x, h - 1 + i + om[9 + k, h, w], w - 1 + j + om[k, h, w])
                    acc += weight[:, :, i, j] @ (sample * mask[k, h, w])
            out[:, h, w] = acc
    return out


def _layer(rng, cin=3, cout=4, offsets=True):
    layer = ModulatedDeformConv2d(cin, cout)
    layer.bias.set_data(Tensor(rng.standard_normal(cout).astype(np.float32)))
    if offsets:
        layer.conv_offset_mask.weight.set_data(Tensor(0.3 * rng.standard_normal((27, cin, 3, 3)).astype(np.float32)))
        layer.conv_offset_mask.bias.set_data(Tensor(rng.standard_normal(27).astype(np.float32)))
    return layer


def test_fresh_layer_is_a_plain_conv_at_half_mask():
    rng = np.random.default_rng(0)
    layer = _layer(rng, offsets=False)
    x = Tensor(rng.standard_normal((2, 3, 9, 11)).astype(np.float32))
    plain = ops.conv2d(x, layer.weight, pad_mode="pad", padding=1).asnumpy()
    expected = 0.5 * plain + layer.bias.asnumpy().reshape(1, -1, 1, 1)
    np.testing.assert_allclose(layer(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_offsets_move_the_sampling_as_the_reference():
    rng = np.random.default_rng(1)
    layer = _layer(rng)
    x = rng.standard_normal((1, 3, 7, 8)).astype(np.float32)
    om = ops.conv2d(Tensor(x), layer.conv_offset_mask.weight, layer.conv_offset_mask.bias, pad_mode="pad",
                    padding=1).asnumpy()[0]
    assert np.abs(om[:18]).max() > 0.5  # really deformed
    expected = reference_dcn(x[0], layer.weight.asnumpy(), layer.bias.asnumpy(), om)
    out = layer(Tensor(x)).asnumpy()[0]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    plain = _layer(np.random.default_rng(1), offsets=False)
    plain.weight.set_data(layer.weight.value())
    plain.bias.set_data(layer.bias.value())
    assert np.abs(plain(Tensor(x)).asnumpy()[0] - out).max() > 0.1


def test_gradients_reach_the_offset_conv():
    from mindspore import nn

    rng = np.random.default_rng(2)
    layer = _layer(rng)
    x = Tensor(rng.standard_normal((1, 3, 6, 6)).astype(np.float32))
    grads = nn.ForwardValueAndGrad(layer, weights=layer.trainable_params(), get_by_list=True,
                                   sens_param=False)
    _, g = grads(x)
    names = [p.name for p in layer.trainable_params()]
    offset_grad = g[names.index("conv_offset_mask.weight")].asnumpy()
    assert np.isfinite(offset_grad).all() and np.abs(offset_grad).max() > 0
