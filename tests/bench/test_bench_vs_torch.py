"""The PyTorch side of bench/bench_vs_torch.py computes the same DCNv2 as the tests' reference."""
import pytest
import torch

from testkit.official_centernet_torch import modulated_deform_conv, modulated_deform_conv_grid


@pytest.mark.parametrize("height, width", [(7, 9), (16, 16)])
def test_grid_sample_dcn_equals_the_reference_forward_and_backward(height, width):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, height, width, generator=gen, requires_grad=True)
    # offsets up to 3 px reach past every border: the zero-padding rule is exercised
    offset = (torch.rand(2, 18, height, width, generator=gen) * 6 - 3).requires_grad_()
    mask = torch.rand(2, 9, height, width, generator=gen).requires_grad_()
    weight = torch.randn(4, 5, 3, 3, generator=gen, requires_grad=True)
    bias = torch.randn(4, generator=gen, requires_grad=True)
    inputs = (x, offset, mask, weight, bias)
    upstream = torch.randn(2, 4, height, width, generator=gen)
    results = []
    for fn in (modulated_deform_conv, modulated_deform_conv_grid):
        out = fn(*inputs)
        grads = torch.autograd.grad((out * upstream).sum(), inputs)
        results.append((out.detach(), grads))
    (ref, ref_grads), (fast, fast_grads) = results
    assert fast.shape == ref.shape == (2, 4, height, width)
    assert torch.allclose(fast, ref, atol=1e-4, rtol=1e-4), (fast - ref).abs().max()
    for name, a, b in zip(("x", "offset", "mask", "weight", "bias"), fast_grads, ref_grads):
        assert torch.allclose(a, b, atol=2e-3, rtol=1e-3), (name, (a - b).abs().max())
