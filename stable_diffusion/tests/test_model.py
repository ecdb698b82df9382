"""Each hand-written piece of the U-Net against its library twin: outputs and gradients, float64."""

import pytest
import torch
import torch.nn as nn
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.embeddings import get_timestep_embedding
from model import (
    Attention,
    GroupNorm,
    LayerNorm,
    TransformerBlock,
    UNet,
    UNetConfig,
    timestep_embedding,
)


@pytest.fixture(autouse=True)
def float64():
    """Every comparison here in float64, restored afterwards for the other test files."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def assert_same_grads(ours, theirs, pairs):
    for a, b in pairs:
        pa, pb = dict(ours.named_parameters())[a], dict(theirs.named_parameters())[b]
        torch.testing.assert_close(pa.grad, pb.grad, msg=f"gradient of {a} differs from {b}")


def test_layernorm_matches_torch():
    x = torch.randn(3, 5, 12, requires_grad=True)
    ours, ref = LayerNorm(12), nn.LayerNorm(12)
    with torch.no_grad():
        ours.weight.normal_(), ours.bias.normal_()
        ref.weight.copy_(ours.weight), ref.bias.copy_(ours.bias)
    up = torch.randn(3, 5, 12)
    y1 = ours(x)
    (g1,) = torch.autograd.grad((y1 * up).sum(), x, retain_graph=True)
    y2 = ref(x)
    (g2,) = torch.autograd.grad((y2 * up).sum(), x, retain_graph=True)
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(g1, g2)
    (y1 * up).sum().backward(), (y2 * up).sum().backward()
    assert_same_grads(ours, ref, [("weight", "weight"), ("bias", "bias")])


@pytest.mark.parametrize("groups,channels", [(4, 12), (1, 6), (6, 6)])
def test_groupnorm_matches_torch(groups, channels):
    x = torch.randn(2, channels, 5, 3, requires_grad=True)
    ours, ref = GroupNorm(groups, channels), nn.GroupNorm(groups, channels)
    with torch.no_grad():
        ours.weight.normal_(), ours.bias.normal_()
        ref.weight.copy_(ours.weight), ref.bias.copy_(ours.bias)
    up = torch.randn_like(x)
    y1, y2 = ours(x), ref(x)
    torch.testing.assert_close(y1, y2)
    g1, *w1 = torch.autograd.grad((y1 * up).sum(), [x, ours.weight, ours.bias])
    g2, *w2 = torch.autograd.grad((y2 * up).sum(), [x, ref.weight, ref.bias])
    torch.testing.assert_close(g1, g2)
    for a, b in zip(w1, w2):
        torch.testing.assert_close(a, b)


def test_cross_attention_matches_multihead_attention_with_kdim_vdim_and_padding():
    torch.manual_seed(0)
    dim, ctx, heads = 12, 7, 3
    ours = Attention(dim, heads, context_dim=ctx, bias=True)
    ref = nn.MultiheadAttention(dim, heads, kdim=ctx, vdim=ctx, batch_first=True)
    with torch.no_grad():
        ref.q_proj_weight.copy_(ours.to_q.weight), ref.k_proj_weight.copy_(ours.to_k.weight)
        ref.v_proj_weight.copy_(ours.to_v.weight)
        ref.in_proj_bias.copy_(torch.cat([ours.to_q.bias, ours.to_k.bias, ours.to_v.bias]))
        ref.out_proj.weight.copy_(ours.to_out.weight), ref.out_proj.bias.copy_(ours.to_out.bias)
    x = torch.randn(2, 5, dim, requires_grad=True)
    c = torch.randn(2, 4, ctx, requires_grad=True)
    pad = torch.tensor([[False, False, True, True], [False, False, False, False]])
    up = torch.randn(2, 5, dim)
    y1 = ours(x, c, pad)
    y2, _ = ref(x, c, c, key_padding_mask=pad, need_weights=False)
    torch.testing.assert_close(y1, y2)
    g1 = torch.autograd.grad(
        (y1 * up).sum(), [x, c, ours.to_q.weight, ours.to_k.weight, ours.to_v.weight]
    )
    g2 = torch.autograd.grad(
        (y2 * up).sum(), [x, c, ref.q_proj_weight, ref.k_proj_weight, ref.v_proj_weight]
    )
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_padding_changes_nothing_it_should_not():
    """A padded key gets zero weight: the output equals attention over the real tokens alone."""
    torch.manual_seed(1)
    attn = Attention(8, 2, context_dim=6)
    x, c = torch.randn(1, 3, 8), torch.randn(1, 4, 6)
    pad = torch.tensor([[False, False, True, True]])
    torch.testing.assert_close(attn(x, c, pad), attn(x, c[:, :2]))


def test_transformer_block_matches_diffusers_basic_transformer_block():
    torch.manual_seed(0)
    dim, heads, ctx = 16, 2, 10
    ours = TransformerBlock(dim, heads, ctx)
    ref = BasicTransformerBlock(
        dim, heads, dim // heads, cross_attention_dim=ctx, activation_fn="geglu"
    )
    for p in ours.parameters():  # LayerNorm gains away from 1 so that they are tested too
        torch.nn.init.normal_(p, std=0.3)
    rename = {"to_out.": "to_out.0.", "ff.proj.": "ff.net.0.proj.", "ff.out.": "ff.net.2."}

    def theirs(name):
        for a, b in rename.items():
            name = name.replace(a, b)
        return name

    state = {theirs(k): v for k, v in ours.state_dict().items()}
    ref.load_state_dict(state, strict=True)
    x = torch.randn(2, 6, dim, requires_grad=True)
    c = torch.randn(2, 3, ctx)
    up = torch.randn(2, 6, dim)
    y1, y2 = ours(x, c), ref(x, encoder_hidden_states=c)
    torch.testing.assert_close(y1, y2)
    (y1 * up).sum().backward(), (y2 * up).sum().backward()
    assert_same_grads(ours, ref, [(k, theirs(k)) for k, _ in ours.named_parameters()])


def test_timestep_embedding_matches_diffusers():
    t = torch.tensor([0, 1, 17, 999])
    ref = get_timestep_embedding(t, 32, flip_sin_to_cos=True, downscale_freq_shift=0)
    torch.testing.assert_close(timestep_embedding(t, 32).float(), ref.float())


def test_unet_maps_latents_to_noise_of_the_same_shape_and_reads_the_text():
    torch.manual_seed(0)
    config = UNetConfig(channels=(8, 16), n_head=2, context_dim=6, groups=4)
    unet = UNet(config)
    z, t = torch.randn(2, 4, 8, 8), torch.tensor([3, 500])
    c1, c2 = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    out = unet(z, t, c1)
    assert out.shape == z.shape
    assert not torch.allclose(out, unet(z, t, c2)), "the text does not reach the output"
    out.pow(2).sum().backward()
    dead = [n for n, p in unet.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead}"
