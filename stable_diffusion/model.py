"""The latent U-Net of Stable Diffusion, small enough to train on a CPU, read from the pieces up.

Rombach, Blattmann, Lorenz, Esser, Ommer, "High-Resolution Image Synthesis with Latent
Diffusion Models", CVPR 2022 (https://arxiv.org/abs/2112.10752), Sections 3.2-3.3: a U-Net
eps_theta(z_t, t, tau(y)) over the autoencoder's latents z, whose transformer blocks read the
text through cross-attention. The blocks and their names follow the released SD v1 U-Net
(ResBlock, SpatialTransformer = GroupNorm, proj_in, BasicTransformerBlock, proj_out).

    LayerNorm, GroupNorm          normalisation, by hand
    Attention                     softmax(Q K^T / sqrt(d)) V; self- or cross-attention
    GEGLU feed-forward            x W_1 * GELU(x W_2), then W_3 (Shazeer 2020)
    TransformerBlock              self-attn, cross-attn (text), feed-forward, pre-norm
    SpatialTransformer            a TransformerBlock over the H*W positions of a feature map
    timestep_embedding, ResBlock  the time t, added inside every residual block
    UNet                          down, middle, up with skip connections

tests/test_model.py holds each piece against its library twin in float64 (nn.LayerNorm,
nn.GroupNorm, nn.MultiheadAttention with kdim/vdim, diffusers' BasicTransformerBlock).

The same blocks, at full size, are the released SD v1 (sd_unet.py, sd_autoencoder.py, clip.py):
the options they take for it (causal attention, linear projections, flip_sin_to_cos, a
ResBlock without time) default to what the toy uses, so the toy's training is unchanged.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm(nn.Module):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta over the last dimension (biased var)."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        xc = x - x.mean(-1, keepdim=True)  # centred
        var = (xc * xc).mean(-1, keepdim=True)  # biased; from xc, as x.var's kernel is slow on CPU
        return xc / torch.sqrt(var + self.eps) * self.weight + self.bias


class GroupNorm(nn.Module):
    """LayerNorm over groups of channels and all positions: (B, G, C/G * H * W) statistics."""

    def __init__(self, groups, channels, eps=1e-5):
        super().__init__()
        assert channels % groups == 0, f"{channels} channels do not split into {groups} groups"
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        B, C, H, W = x.shape
        g = x.reshape(B, self.groups, -1)  # (B, G, C/G*H*W)
        gc = g - g.mean(-1, keepdim=True)  # centred
        var = (gc * gc).mean(-1, keepdim=True)  # biased, as LayerNorm's
        g = gc / torch.sqrt(var + self.eps)
        return g.reshape(B, C, H, W) * self.weight[:, None, None] + self.bias[:, None, None]


class Attention(nn.Module):
    """Multi-head attention. Self-attention when context is None; cross-attention otherwise.

    Q = x W_q (queries from the image), K = c W_k, V = c W_v (keys and values from the text
    tokens c), out = softmax(Q K^T / sqrt(d_head) + mask) V W_o, per head.

    causal=True masks every key after the query (CLIP's text encoder: token i sees tokens <= i).
    fast=True computes the same softmax(Q K^T / sqrt(d) + mask) V with torch's fused kernel
    (F.scaled_dot_product_attention, never materialising the (N, M) scores): an opt-in speed
    path, off by default, held equal to the hand-written one in tests/test_released.py.
    """

    fast = False  # class-wide switch: Attention.fast = True (bench.py --fast, inference.py --fast)

    def __init__(self, dim, n_head, context_dim=None, bias=False, causal=False):
        super().__init__()
        assert dim % n_head == 0, f"dim {dim} does not split into {n_head} heads"
        context_dim = context_dim or dim
        self.n_head, self.causal = n_head, causal
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(context_dim, dim, bias=bias)
        self.to_v = nn.Linear(context_dim, dim, bias=bias)
        self.to_out = nn.Linear(dim, dim)
        self.last_weights = None  # (B, n_head, N, M), kept for the attention maps when asked
        self.keep_weights = False

    def forward(self, x, context=None, key_padding_mask=None):
        context = x if context is None else context
        B, N, C = x.shape
        M = context.shape[1]
        h, d = self.n_head, C // self.n_head
        q = self.to_q(x).view(B, N, h, d).transpose(1, 2)  # (B, h, N, d)
        k = self.to_k(context).view(B, M, h, d).transpose(1, 2)  # (B, h, M, d)
        v = self.to_v(context).view(B, M, h, d).transpose(1, 2)  # (B, h, M, d)
        if self.fast and not self.keep_weights:
            keep = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
            if self.causal and keep is not None:
                keep = keep & torch.ones(N, M, dtype=torch.bool, device=x.device).tril()
            causal = self.causal and key_padding_mask is None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, is_causal=causal)
            return self.to_out(out.transpose(1, 2).reshape(B, N, C))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, h, N, M)
        if key_padding_mask is not None:  # (B, M), True where the token is padding
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        if self.causal:  # key j > query i is the future
            future = torch.ones(N, M, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        weights = scores.softmax(-1)
        if self.keep_weights:
            self.last_weights = weights.detach()
        out = (weights @ v).transpose(1, 2).reshape(B, N, C)  # (B, N, C)
        return self.to_out(out)


class GEGLU(nn.Module):
    """The feed-forward of SD's transformer blocks: (x W_a * GELU(x W_g)) W_out."""

    def __init__(self, dim, mult=4):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * mult * dim)
        self.out = nn.Linear(mult * dim, dim)

    def forward(self, x):
        a, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(a * F.gelu(gate))


class TransformerBlock(nn.Module):
    """x += SelfAttn(LN(x)); x += CrossAttn(LN(x), text); x += FF(LN(x))."""

    def __init__(self, dim, n_head, context_dim):
        super().__init__()
        self.norm1, self.attn1 = LayerNorm(dim), Attention(dim, n_head)
        self.norm2, self.attn2 = LayerNorm(dim), Attention(dim, n_head, context_dim)
        self.norm3, self.ff = LayerNorm(dim), GEGLU(dim)

    def forward(self, x, context, key_padding_mask=None):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context, key_padding_mask)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """A feature map as a sequence: (B, C, H, W) -> (B, H*W, C) -> TransformerBlock -> back.

    linear_proj: proj_in/proj_out as nn.Linear on the sequence (SD 2's use_linear_projection)
    instead of 1x1 convolutions on the map (SD v1): the same per-position matrix, other layout.
    """

    def __init__(self, channels, n_head, context_dim, groups, linear_proj=False):
        super().__init__()
        self.linear_proj = linear_proj
        proj = nn.Linear if linear_proj else lambda c_in, c_out: nn.Conv2d(c_in, c_out, 1)
        self.norm = GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = proj(channels, channels)
        self.block = TransformerBlock(channels, n_head, context_dim)
        self.proj_out = proj(channels, channels)

    def forward(self, x, context, key_padding_mask=None):
        B, C, H, W = x.shape
        h = self.norm(x)
        if not self.linear_proj:
            h = self.proj_in(h)
        h = h.flatten(2).transpose(1, 2)  # (B, H*W, C)
        if self.linear_proj:
            h = self.proj_in(h)
        h = self.block(h, context, key_padding_mask)
        if self.linear_proj:
            h = self.proj_out(h)
        h = h.transpose(1, 2).reshape(B, C, H, W)
        return x + (h if self.linear_proj else self.proj_out(h))


def timestep_embedding(
    t, dim, max_period=10000, flip_sin_to_cos=True, freq_shift=0, dtype=torch.float64
):
    """[cos(t w_i), sin(t w_i)], w_i = max_period^(-i / (dim/2 - freq_shift)): SD's order.

    flip_sin_to_cos=False gives [sin, cos] instead. dtype: the precision of the arguments t w_i
    (float64 here; the released SD U-Net, as diffusers runs it, computes them in float32).
    """
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=dtype, device=t.device)
    args = t.to(dtype)[:, None] * torch.exp(exponent / (half - freq_shift))[None]  # (B, dim/2)
    cos, sin = torch.cos(args), torch.sin(args)
    return torch.cat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=-1)


class ResBlock(nn.Module):
    """h = conv(SiLU(GN(x))) + W t_emb; out = skip(x) + conv(SiLU(GN(h))).

    t_dim=None: no time input (the autoencoder's blocks, sd_autoencoder.py).
    """

    def __init__(self, c_in, c_out, t_dim, groups, eps=1e-5):
        super().__init__()
        self.norm1 = GroupNorm(groups, c_in, eps)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out) if t_dim else None
        self.norm2 = GroupNorm(groups, c_out, eps)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, t_emb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time is not None:
            h = h + self.time(F.silu(t_emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


@dataclass
class UNetConfig:
    latent_channels: int = 4
    channels: tuple = (32, 64)  # per resolution level: the 4x4 latent, then 2x2
    attention_levels: tuple = (True, True)
    n_head: int = 4
    context_dim: int = 64  # the text encoder's width
    groups: int = 8

    def __post_init__(self):
        self.channels, self.attention_levels = tuple(self.channels), tuple(self.attention_levels)


class Level(nn.Module):
    """One resolution: ResBlock, then (optionally) a SpatialTransformer reading the text."""

    def __init__(self, c_in, c_out, attention, config, t_dim):
        super().__init__()
        self.res = ResBlock(c_in, c_out, t_dim, config.groups)
        g = config.groups
        self.attn = (
            SpatialTransformer(c_out, config.n_head, config.context_dim, g) if attention else None
        )

    def forward(self, x, t_emb, context, mask):
        x = self.res(x, t_emb)
        return self.attn(x, context, mask) if self.attn is not None else x


class UNet(nn.Module):
    """eps_theta(z_t, t, text): (B, 4, h, w) latents and (B, L, context_dim) text -> noise."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        c0, t_dim = config.channels[0], 4 * config.channels[0]
        self.time_mlp = nn.Sequential(nn.Linear(c0, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.conv_in = nn.Conv2d(config.latent_channels, c0, 3, padding=1)
        chans, attn = config.channels, config.attention_levels
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = c0
        for i, c in enumerate(chans):
            self.down.append(Level(c_prev, c, attn[i], config, t_dim))
            last = i == len(chans) - 1
            self.downsample.append(
                nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1)
            )
            c_prev = c
        self.mid = Level(c_prev, c_prev, True, config, t_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(chans))):
            self.up.append(Level(c_prev + chans[i], chans[i], attn[i], config, t_dim))
            self.upsample.append(
                nn.Conv2d(chans[i], chans[i - 1], 3, padding=1) if i else nn.Identity()
            )
            c_prev = chans[i - 1] if i else chans[0]
        self.norm_out = GroupNorm(config.groups, c0)
        self.conv_out = nn.Conv2d(c0, config.latent_channels, 3, padding=1)

    def forward(self, z, t, context, key_padding_mask=None):
        t_emb = self.time_mlp(timestep_embedding(t, self.config.channels[0]).to(z.dtype))
        h = self.conv_in(z)
        skips = []
        for level, down in zip(self.down, self.downsample):
            h = level(h, t_emb, context, key_padding_mask)
            skips.append(h)  # (B, c_i, H_i, W_i)
            h = down(h)
        h = self.mid(h, t_emb, context, key_padding_mask)
        for level, up in zip(self.up, self.upsample):
            h = level(torch.cat([h, skips.pop()], 1), t_emb, context, key_padding_mask)
            if not isinstance(
                up, nn.Identity
            ):  # nearest up to the next skip's size, then a 3x3 conv
                h = up(F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))
