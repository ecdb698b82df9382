"""Each hand-written layer against the library module doing the same job, float64, values and grads."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from model import (
    GroupNorm,
    GroupNormFunction,
    SelfAttention,
    UNet,
    UNetConfig,
    attention,
    timestep_embedding,
)


@pytest.fixture(autouse=True)
def float64():
    """Every layer of this module is compared in float64 (and the default restored after)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def grads(loss, *tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("groups,channels", [(1, 6), (3, 6), (6, 6), (8, 32)])
def test_groupnorm_matches_nn_groupnorm(groups, channels):
    g = torch.Generator().manual_seed(groups)
    x = (3 * torch.randn(4, channels, 5, 3, generator=g) + 2).requires_grad_()
    ours, ref = GroupNorm(groups, channels, eps=1e-6), nn.GroupNorm(groups, channels, eps=1e-6)
    with torch.no_grad():
        for p in (ours.weight, ours.bias):
            p.copy_(torch.randn(channels, generator=g))
        ref.weight.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
    up = torch.randn(4, channels, 5, 3, generator=g)  # a random upstream gradient
    y, y_ref = ours(x), ref(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(
        grads((y * up).sum(), x, ours.weight, ours.bias),
        grads((y_ref * up).sum(), x, ref.weight, ref.bias),
    ):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_groupnorm_backward_passes_gradcheck():
    """The written-out backward against finite differences of the forward (float64)."""
    g = torch.Generator().manual_seed(0)
    x = (2 * torch.randn(2, 6, 3, 2, generator=g) + 1).requires_grad_()
    w, b = (torch.randn(6, generator=g).requires_grad_() for _ in range(2))
    assert torch.autograd.gradcheck(lambda *a: GroupNormFunction.apply(*a, 3, 1e-6), (x, w, b))


def test_attention_matches_scaled_dot_product_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 5, generator=g).requires_grad_() for _ in range(3))
    up = torch.randn(2, 3, 7, 5, generator=g)
    y, y_ref = attention(q, k, v), F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(grads((y * up).sum(), q, k, v), grads((y_ref * up).sum(), q, k, v)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("head_dim", [0, 4])
def test_self_attention_block_matches_multihead_attention(head_dim):
    """The whole block (GroupNorm, projections, heads, residual) vs nn.GroupNorm + nn.MultiheadAttention."""
    g = torch.Generator().manual_seed(1)
    C = 8
    ours = SelfAttention(C, head_dim, groups=2, eps=1e-6)
    nh = C // head_dim if head_dim else 1
    mha, gn = nn.MultiheadAttention(C, nh, batch_first=True), nn.GroupNorm(2, C, eps=1e-6)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        gn.weight.copy_(ours.norm.weight)
        gn.bias.copy_(ours.norm.bias)
        mha.in_proj_weight.copy_(torch.cat([ours.to_q.weight, ours.to_k.weight, ours.to_v.weight]))
        mha.in_proj_bias.copy_(torch.cat([ours.to_q.bias, ours.to_k.bias, ours.to_v.bias]))
        mha.out_proj.weight.copy_(ours.to_out.weight)
        mha.out_proj.bias.copy_(ours.to_out.bias)
    x = torch.randn(2, C, 3, 4, generator=g, requires_grad=True)
    h = gn(x).flatten(2).transpose(1, 2)  # (B, N, C)
    ref = x + mha(h, h, h, need_weights=False)[0].transpose(1, 2).reshape(x.shape)
    y = ours(x)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    up = torch.randn(x.shape, generator=g)
    torch.testing.assert_close(
        grads((y * up).sum(), x)[0], grads((ref * up).sum(), x)[0], rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize("dim,flip,shift", [(32, False, 1), (32, True, 0), (7, False, 1)])
def test_time_embedding_matches_diffusers(dim, flip, shift):
    """diffusers computes the frequencies in float32, so the comparison is at float32 precision."""
    t = torch.tensor([0, 1, 10, 500, 999])
    ref = get_timestep_embedding(t, dim, flip_sin_to_cos=flip, downscale_freq_shift=shift)
    torch.testing.assert_close(
        timestep_embedding(t, dim, flip, shift).float(), ref, rtol=0, atol=2e-4
    )
    # the low frequencies (where float32 t * w is exact enough) agree much more tightly
    ours = timestep_embedding(t[:3], dim, flip, shift).float()
    torch.testing.assert_close(ours, ref[:3], rtol=0, atol=1e-6)


def test_unet_shapes_and_conditioning():
    c = UNetConfig(
        channels=(8, 16), attention=(False, True), groups=4, layers_per_block=1, num_classes=3
    )
    net = UNet(c)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    y = torch.tensor([0, 2])
    out = net(x, t, y)
    assert out.shape == x.shape
    assert not torch.allclose(out, net(x, t, torch.tensor([1, 1])))  # the label changes the output
    assert torch.allclose(net(x, t), net(x, t, torch.tensor([3, 3])))  # y = None is the null label


def test_ddpm_cifar10_config_has_the_published_size():
    """DDPM Appendix B: 35.7M parameters for CIFAR-10."""
    n = sum(p.numel() for p in UNet(UNetConfig.ddpm_cifar10()).parameters())
    assert n == 35_746_307, n


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="divisible by 32 groups"):
        UNet(UNetConfig(channels=(48, 64, 64)))
    with pytest.raises(ValueError, match="attention has 2 entries"):
        UNet(UNetConfig(attention=(False, True)))
