"""DCNv2 layer: both implementations follow the numpy reference, agree on outputs and gradients,
and the gather implementation runs with a dynamic input height/width in one compiled graph."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn, ops

from src.network.deform_conv import IMPLEMENTATIONS, ModulatedDeformConv2d


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


def _layer(rng, cin=3, cout=4, offsets=True, implementation="gather", offset_scale=0.3):
    layer = ModulatedDeformConv2d(cin, cout, implementation=implementation)
    layer.bias.set_data(Tensor(rng.standard_normal(cout).astype(np.float32)))
    if offsets:
        layer.conv_offset_mask.weight.set_data(
            Tensor(offset_scale * rng.standard_normal((27, cin, 3, 3)).astype(np.float32)))
        layer.conv_offset_mask.bias.set_data(Tensor(rng.standard_normal(27).astype(np.float32)))
    return layer


def _twin(layer, implementation):
    """A layer of the other implementation holding the same parameter values."""
    weight = layer.weight
    twin = ModulatedDeformConv2d(weight.shape[1], weight.shape[0], implementation=implementation)
    for mine, theirs in zip(twin.get_parameters(), layer.get_parameters()):
        mine.set_data(theirs.value())
    return twin


class _ProbeLoss(nn.Cell):
    """sum(layer(x) * probe): a scalar whose gradients are those of the layer against ``probe``."""

    def __init__(self, layer, probe):
        super().__init__()
        self.layer = layer
        self.probe = probe

    def construct(self, x):
        return (self.layer(x) * self.probe).sum()


class _Gradients(nn.Cell):
    """x -> ((d/dx,), (d/dparameter for every trainable parameter))."""

    def __init__(self, net, weights):
        super().__init__()
        self.net = net
        self.weights = weights
        self.grad = ops.GradOperation(get_all=True, get_by_list=True)

    def construct(self, x):
        return self.grad(self.net, self.weights)(x)


def _gradients(layer, x, probe):
    (grad_x,), grad_params = _Gradients(_ProbeLoss(layer, probe), layer.trainable_params())(x)
    return [grad_x.asnumpy()] + [g.asnumpy() for g in grad_params]


def test_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match="implementation must be one of gather, kernel, got 'cuda'"):
        ModulatedDeformConv2d(3, 4, implementation="cuda")


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_fresh_layer_is_a_plain_conv_at_half_mask(implementation):
    rng = np.random.default_rng(0)
    layer = _layer(rng, offsets=False, implementation=implementation)
    x = Tensor(rng.standard_normal((2, 3, 9, 11)).astype(np.float32))
    plain = ops.conv2d(x, layer.weight, pad_mode="pad", padding=1).asnumpy()
    expected = 0.5 * plain + layer.bias.asnumpy().reshape(1, -1, 1, 1)
    np.testing.assert_allclose(layer(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_offsets_move_the_sampling_as_the_reference(implementation):
    rng = np.random.default_rng(1)
    layer = _layer(rng, implementation=implementation)
    x = rng.standard_normal((1, 3, 7, 8)).astype(np.float32)
    om = ops.conv2d(Tensor(x), layer.conv_offset_mask.weight, layer.conv_offset_mask.bias, pad_mode="pad",
                    padding=1).asnumpy()[0]
    assert np.abs(om[:18]).max() > 0.5  # really deformed
    expected = reference_dcn(x[0], layer.weight.asnumpy(), layer.bias.asnumpy(), om)
    out = layer(Tensor(x)).asnumpy()[0]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    plain = _layer(np.random.default_rng(1), offsets=False, implementation=implementation)
    plain.weight.set_data(layer.weight.value())
    plain.bias.set_data(layer.bias.value())
    assert np.abs(plain(Tensor(x)).asnumpy()[0] - out).max() > 0.1


# cin > cout projects the input by the weight before gathering, cin < cout gathers the input first.
@pytest.mark.parametrize("cin, cout", [(6, 4), (3, 5)])
def test_gather_equals_kernel_outputs_and_gradients(cin, cout):
    """Offsets of several pixels push sampling points off the image: the border rule is exercised."""
    rng = np.random.default_rng(3)
    gather = _layer(rng, cin, cout, offset_scale=1.0)
    kernel = _twin(gather, "kernel")
    x = Tensor(rng.standard_normal((2, cin, 7, 9)).astype(np.float32))
    om = ops.conv2d(x, gather.conv_offset_mask.weight, gather.conv_offset_mask.bias, pad_mode="pad",
                    padding=1).asnumpy()
    assert np.abs(om[:, :18]).max() > 4  # some points land outside the 7x9 map
    out = gather(x).asnumpy()
    np.testing.assert_allclose(out, kernel(x).asnumpy(), rtol=1e-5, atol=1e-5)
    probe = Tensor(rng.standard_normal(out.shape).astype(np.float32))
    names = ["input"] + [p.name for p in gather.trainable_params()]
    assert names == ["input", "weight", "bias", "conv_offset_mask.weight", "conv_offset_mask.bias"]
    for name, mine, theirs in zip(names, _gradients(gather, x, probe), _gradients(kernel, x, probe)):
        assert np.abs(theirs).max() > 0, name
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max(), err_msg=name)


def test_gather_takes_a_dynamic_height_and_width_in_one_graph():
    rng = np.random.default_rng(4)
    static = _layer(rng, 5, 4)
    kernel = _twin(static, "kernel")
    dynamic = _twin(static, "gather")
    dynamic.set_inputs(Tensor(shape=[1, 5, None, None], dtype=ms.float32))
    for height, width in ((7, 9), (12, 5), (16, 16)):
        x = Tensor(rng.standard_normal((1, 5, height, width)).astype(np.float32))
        out = dynamic(x).asnumpy()
        assert out.shape == (1, 4, height, width)
        np.testing.assert_allclose(out, static(x).asnumpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(out, kernel(x).asnumpy(), rtol=1e-5, atol=1e-5)
    assert len(dynamic.compile_cache) == 1
    assert len(static.compile_cache) == 3


def test_gradients_reach_the_offset_conv():
    rng = np.random.default_rng(2)
    layer = _layer(rng)
    x = Tensor(rng.standard_normal((1, 3, 6, 6)).astype(np.float32))
    grads = nn.ForwardValueAndGrad(layer, weights=layer.trainable_params(), get_by_list=True,
                                   sens_param=False)
    _, g = grads(x)
    names = [p.name for p in layer.trainable_params()]
    offset_grad = g[names.index("conv_offset_mask.weight")].asnumpy()
    assert np.isfinite(offset_grad).all() and np.abs(offset_grad).max() > 0


def test_detector_gives_the_same_heads_with_either_implementation(make_config):
    from src.centernet_det import CenterNetDet
    small = {"net_config.block_type": "BasicBlock", "net_config.block_class": [1, 1, 1, 1]}
    ms.set_seed(0)
    gather = CenterNetDet(make_config(small).net_config, 3)
    kernel = CenterNetDet(make_config(small, net_config__dcn_impl="kernel").net_config, 3)
    dcns = [[c for c in net.deconv_layers.cells() if isinstance(c, ModulatedDeformConv2d)] for net in (gather, kernel)]
    assert [c.implementation for c in dcns[0]] == ["gather"] * 3
    assert [c.implementation for c in dcns[1]] == ["kernel"] * 3
    rng = np.random.default_rng(5)
    for dcn in dcns[0]:
        offset_conv = dcn.conv_offset_mask
        offset_conv.weight.set_data(Tensor(0.05 * rng.standard_normal(offset_conv.weight.shape).astype(np.float32)))
    for mine, theirs in zip(kernel.get_parameters(), gather.get_parameters()):
        mine.set_data(theirs.value())
    gather.set_train(False)
    kernel.set_train(False)
    x = Tensor(rng.standard_normal((1, 3, 64, 96)).astype(np.float32))
    for mine, theirs in zip(gather(x), kernel(x)):
        np.testing.assert_allclose(mine.asnumpy(), theirs.asnumpy(), rtol=1e-4, atol=1e-4)


def test_detector_compiles_once_for_several_input_sizes(make_config):
    """With the gather DCN the whole detector takes a dynamic height/width (one graph, same heads)."""
    from src.centernet_det import CenterNetDet
    ms.set_seed(1)
    cfg = make_config({"net_config.block_type": "BasicBlock", "net_config.block_class": [1, 1, 1, 1]})
    static = CenterNetDet(cfg.net_config, 3)
    static.set_train(False)
    dynamic = CenterNetDet(cfg.net_config, 3)
    dynamic.set_train(False)
    for mine, theirs in zip(dynamic.get_parameters(), static.get_parameters()):
        mine.set_data(theirs.value())
    dynamic.set_inputs(Tensor(shape=[1, 3, None, None], dtype=ms.float32))
    rng = np.random.default_rng(6)
    for height, width in ((64, 96), (128, 64)):
        x = Tensor(rng.standard_normal((1, 3, height, width)).astype(np.float32))
        for mine, theirs in zip(dynamic(x), static(x)):
            assert mine.shape == (1, theirs.shape[1], height // 4, width // 4)
            np.testing.assert_allclose(mine.asnumpy(), theirs.asnumpy(), rtol=1e-5, atol=1e-5)
    assert len(dynamic.compile_cache) == 1
