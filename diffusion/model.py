"""The DDPM U-Net: a network eps_theta(x_t, t) that predicts the noise in a noisy image.

Ho, Jain, Abbeel 2020 (arXiv 2006.11239, Sec. 4 and Appendix B): a PixelCNN++-style U-Net of
wide residual blocks with GroupNorm, the timestep added to every block through a sinusoidal
embedding (as in the Transformer), and self-attention at the 16x16 resolution. Read top to
bottom: time embedding -> GroupNorm -> attention -> residual block -> down/up-sampling -> U-Net.

One configuration (`UNetConfig.ddpm_cifar10()`) is exactly the published CIFAR-10 model in
diffusers' UNet2DModel layout, so convert.py can load its released weights. Tests
(tests/test_model.py) hold GroupNorm against nn.GroupNorm, attention against
F.scaled_dot_product_attention and the time embedding against diffusers'
get_timestep_embedding (values and gradients, float64), and a random diffusers UNet2DModel,
converted, against this U-Net (tests/test_convert.py).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class UNetConfig:
    image_size: int = 8  # sklearn digits are 8x8
    in_channels: int = 1
    out_channels: int = 1
    channels: tuple = (64, 128, 128)  # per level; each level but the last halves the resolution
    layers_per_block: int = 2  # residual blocks per level on the way down (one more on the way up)
    attention: tuple = (False, True, True)  # self-attention after each residual block of a level
    mid_attention: bool = True
    head_dim: int = 0  # 0: one head over all channels (as DDPM)
    groups: int = 32  # GroupNorm groups
    eps: float = 1e-6  # GroupNorm epsilon
    dropout: float = 0.0
    flip_sin_to_cos: bool = False  # embedding order [sin, cos] (DDPM) or [cos, sin]
    freq_shift: int = 1  # frequencies 10000^(-i / (half - freq_shift)), as DDPM's code
    downsample_padding: int = 0  # 0: pad right/bottom by one, then a stride-2 conv (DDPM)
    num_classes: int = 0  # > 0: class-conditional, with one extra "null" label for guidance

    @staticmethod
    def ddpm_cifar10():
        """google/ddpm-cifar10-32: 35.7M parameters, attention at 16x16 (DDPM Appendix B)."""
        return UNetConfig(image_size=32, in_channels=3, out_channels=3, channels=(128, 256, 256, 256),
                          attention=(False, True, False, False), dropout=0.1)  # fmt: skip


def check_config(c):
    """One clear line for a U-Net that cannot be built."""
    L = len(c.channels)
    if len(c.attention) != L:
        raise ValueError(f"attention has {len(c.attention)} entries for {L} levels")
    if any(ch % c.groups for ch in c.channels):
        raise ValueError(f"channels {tuple(c.channels)} are not all divisible by {c.groups} groups")
    if c.head_dim and any(ch % c.head_dim for ch in c.channels):
        raise ValueError(
            f"channels {tuple(c.channels)} are not all divisible by head_dim {c.head_dim}"
        )
    if c.image_size % 2 ** (L - 1):
        raise ValueError(f"image size {c.image_size} does not halve {L - 1} times")


# ----------------------------------------------------------------------------- time embedding


def timestep_embedding(t, dim, flip_sin_to_cos=False, freq_shift=1, max_period=10000.0):
    """PE(t)_i = sin(t w_i), PE(t)_{half+i} = cos(t w_i),  w_i = max_period^(-i / (half - freq_shift)).

    The Transformer's positional encoding (Vaswani et al. 2017, Sec. 3.5) with the timestep as
    the position. Computed in float64, then cast by the caller.
    """
    half = dim // 2
    w = torch.exp(
        -math.log(max_period)
        * torch.arange(half, dtype=torch.float64, device=t.device)
        / (half - freq_shift)
    )
    args = t.to(torch.float64)[:, None] * w[None]  # (B, half)
    emb = torch.cat(
        [args.cos(), args.sin()] if flip_sin_to_cos else [args.sin(), args.cos()], dim=1
    )
    return F.pad(emb, (0, dim % 2))  # (B, dim)


class TimeEmbedding(nn.Module):
    """emb = W_2 SiLU(W_1 PE(t)): the sinusoid through a two-layer MLP, 4x the base width."""

    def __init__(self, dim, emb_dim):
        super().__init__()
        self.linear_1 = nn.Linear(dim, emb_dim)
        self.linear_2 = nn.Linear(emb_dim, emb_dim)

    def forward(self, pe):
        return self.linear_2(F.silu(self.linear_1(pe)))


# ----------------------------------------------------------------------------- normalisation


class GroupNormFunction(torch.autograd.Function):
    """GroupNorm's forward and its backward written out (README, Equations).

    Per image b and group g of m = C/G * H * W values: mu, var = mean, biased variance;
    x^ = (x - mu) r with r = 1/sqrt(var + eps); y = gamma x^ + beta. Per (image, channel) that is
    y = a x + c with a = gamma r and c = beta - mu a: one multiply-add over the big tensor.
    Shapes: x is viewed as (B, G, k, HW), k = C/G channels per group; mu, r are (B, G, 1, 1).
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)  # as nn.GroupNorm: fp32
    def forward(ctx, x, weight, bias, groups, eps):
        B, C, H, W = x.shape
        g = x.reshape(B, groups, C // groups, H * W)
        mu = g.mean((2, 3), keepdim=True)
        var = (g - mu).square_().mean((2, 3), keepdim=True)  # biased; var_mean is 10x slower
        r = torch.rsqrt(var + eps)
        a = r * weight.view(groups, -1, 1)  # (B, G, k, 1)
        c = bias.view(groups, -1, 1) - mu * a
        ctx.save_for_backward(x, weight, mu, r)
        return (g * a).add_(c).view(B, C, H, W)  # in place on the fresh product: one allocation

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, dy):
        x, weight, mu, r = ctx.saved_tensors
        B, G = mu.shape[:2]
        g, dy = (
            x.reshape(B, G, -1, x.shape[2] * x.shape[3]),
            dy.reshape(B, G, -1, x.shape[2] * x.shape[3]),
        )
        gamma = weight.view(G, -1, 1)
        sum_dy = dy.sum(3, keepdim=True)  # (B, G, k, 1)
        sum_dy_xhat = ((dy * g).sum(3, keepdim=True) - mu * sum_dy) * r  # sum over pixels of dy x^
        # dx = r (dx^ - mean(dx^) - x^ mean(dx^ x^)), dx^ = gamma dy, means over the group's m values
        m = g.shape[2] * g.shape[3]
        mean_dxhat = (gamma * sum_dy).sum(2, keepdim=True) / m  # (B, G, 1, 1)
        mean_dxhat_xhat = (gamma * sum_dy_xhat).sum(2, keepdim=True) / m
        # ... = (r gamma) dy + p x + q,  p = -r^2 mean(dx^ x^),  q = -p mu - r mean(dx^)
        p = -r * r * mean_dxhat_xhat
        q = -p * mu - r * mean_dxhat
        dx = (g * p).add_(q).addcmul_(dy, r * gamma)  # in place: one allocation
        dgamma, dbeta = sum_dy_xhat.sum(0).flatten(), sum_dy.sum(0).flatten()
        return dx.view(x.shape), dgamma, dbeta, None, None


class GroupNorm(nn.Module):
    """y = (x - mu_g) / sqrt(var_g + eps) * gamma + beta, statistics over each group of channels.

    Wu and He 2018 (arXiv 1803.08494): C channels split into G groups; mean and (biased)
    variance over a group's channels and all pixels of one image, so it does not depend on
    the batch, which for a diffusion model mixes images at very different noise levels.
    The arithmetic is GroupNormFunction's: autograd through the five-line forward would keep
    every intermediate and spend twice the passes over memory (README, bench.py).
    """

    def __init__(self, groups, channels, eps=1e-6):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return GroupNormFunction.apply(x, self.weight, self.bias, self.groups, self.eps)


# ----------------------------------------------------------------------------- attention


def attention(q, k, v):
    """softmax(Q K^T / sqrt(d)) V over the last two axes (Vaswani et al. 2017, eq. 1)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, nh, N, N)
    return scores.softmax(-1) @ v  # (B, nh, N, d)


class SelfAttention(nn.Module):
    """x + W_o Attention(W_q h, W_k h, W_v h),  h = GroupNorm(x), over the H*W pixels as tokens."""

    def __init__(self, channels, head_dim, groups, eps):
        super().__init__()
        self.n_head = channels // head_dim if head_dim else 1
        self.norm = GroupNorm(groups, channels, eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.norm(x).reshape(B, C, H * W).transpose(1, 2)  # (B, N, C), N = H*W tokens
        split = lambda z: z.view(B, H * W, self.n_head, C // self.n_head).transpose(
            1, 2
        )  # (B, nh, N, d)
        a = attention(split(self.to_q(h)), split(self.to_k(h)), split(self.to_v(h)))
        a = a.transpose(1, 2).reshape(B, H * W, C)  # (B, N, C)
        return x + self.to_out(a).transpose(1, 2).reshape(B, C, H, W)


# ----------------------------------------------------------------------------- residual block


class ResBlock(nn.Module):
    """h = conv(SiLU(GN(x))) + W_t SiLU(emb);  out = skip(x) + conv(dropout(SiLU(GN(h)))).

    The timestep enters every block as a per-channel bias (DDPM Appendix B); skip is a 1x1
    convolution when the width changes, the identity otherwise.
    """

    def __init__(self, c_in, c_out, emb_dim, groups, eps, dropout):
        super().__init__()
        self.norm1 = GroupNorm(groups, c_in, eps)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time_emb_proj = nn.Linear(emb_dim, c_out)
        self.norm2 = GroupNorm(groups, c_out, eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(emb))[:, :, None, None]  # (B, C_out, 1, 1) broadcast
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


# ----------------------------------------------------------------------------- resolution changes


class Downsample(nn.Module):
    """A stride-2 3x3 convolution: (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))  # DDPM's TensorFlow "SAME" padding of a stride-2 conv
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution of the U-Net: residual blocks, each optionally followed by attention."""

    def __init__(self, c_ins, c_out, attn, resample, c, emb_dim):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResBlock(ci, c_out, emb_dim, c.groups, c.eps, c.dropout) for ci in c_ins
        )
        self.attentions = (
            nn.ModuleList(SelfAttention(c_out, c.head_dim, c.groups, c.eps) for _ in c_ins)
            if attn
            else None
        )
        self.downsample = Downsample(c_out, c.downsample_padding) if resample == "down" else None
        self.upsample = Upsample(c_out) if resample == "up" else None


class MidBlock(nn.Module):
    def __init__(self, ch, c, emb_dim):
        super().__init__()
        self.res1 = ResBlock(ch, ch, emb_dim, c.groups, c.eps, c.dropout)
        self.attn = SelfAttention(ch, c.head_dim, c.groups, c.eps) if c.mid_attention else None
        self.res2 = ResBlock(ch, ch, emb_dim, c.groups, c.eps, c.dropout)

    def forward(self, h, emb):
        h = self.res1(h, emb)
        return self.res2(h if self.attn is None else self.attn(h), emb)


# ----------------------------------------------------------------------------- the U-Net


class UNet(nn.Module):
    """eps_theta(x_t, t, y): down the levels keeping every activation, back up concatenating them.

    Shapes for the default digits model (B, 1, 8, 8), channels (64, 128, 128):
    conv_in (B, 64, 8, 8) -> level 0 (B, 64, 8, 8) -> (B, 64, 4, 4) -> level 1 (B, 128, 4, 4)
    -> (B, 128, 2, 2) -> level 2 (B, 128, 2, 2) -> mid -> up levels 2, 1, 0 back to (B, 64, 8, 8)
    -> conv_out (B, 1, 8, 8). Each up block takes the matching down activation by concatenation.
    """

    def __init__(self, config):
        super().__init__()
        check_config(config)
        self.config = c = config
        self.num_classes = c.num_classes
        ch, L, n = list(c.channels), len(c.channels), c.layers_per_block
        emb_dim = 4 * ch[0]
        self.conv_in = nn.Conv2d(c.in_channels, ch[0], 3, padding=1)
        self.time_embed = TimeEmbedding(ch[0], emb_dim)
        self.class_embed = nn.Embedding(c.num_classes + 1, emb_dim) if c.num_classes else None
        self.down = nn.ModuleList(
            Level(
                [ch[max(l - 1, 0)]] + [ch[l]] * (n - 1),
                ch[l],
                c.attention[l],
                "down" if l < L - 1 else None,
                c,
                emb_dim,
            )
            for l in range(L)
        )
        self.mid = MidBlock(ch[-1], c, emb_dim)
        self.up = nn.ModuleList()
        for l in reversed(range(L)):
            prev = ch[min(l + 1, L - 1)]  # width coming from below
            skips = [ch[l]] * n + [ch[max(l - 1, 0)]]  # widths popped from the down path
            c_ins = [(prev if j == 0 else ch[l]) + s for j, s in enumerate(skips)]
            self.up.append(Level(c_ins, ch[l], c.attention[l], "up" if l > 0 else None, c, emb_dim))
        self.norm_out = GroupNorm(c.groups, ch[0], c.eps)
        self.conv_out = nn.Conv2d(ch[0], c.out_channels, 3, padding=1)

    @property
    def sample_shape(self):
        return (self.config.in_channels, self.config.image_size, self.config.image_size)

    def embed(self, t, y):
        """The conditioning vector: time MLP (+ class embedding; y = None -> the null label)."""
        c = self.config
        pe = timestep_embedding(t, c.channels[0], c.flip_sin_to_cos, c.freq_shift)
        emb = self.time_embed(pe.to(self.conv_in.weight.dtype))  # (B, 4 C0)
        if self.class_embed is not None:
            if y is None:
                y = torch.full_like(t, self.num_classes)
            emb = emb + self.class_embed(y)
        return emb

    def forward(self, x, t, y=None):
        emb = self.embed(t, y)
        h = self.conv_in(x)
        skips = [h]
        for level in self.down:
            for i, res in enumerate(level.resnets):
                h = res(h, emb)
                if level.attentions is not None:
                    h = level.attentions[i](h)
                skips.append(h)
            if level.downsample is not None:
                h = level.downsample(h)
                skips.append(h)
        h = self.mid(h, emb)
        for level in self.up:
            for i, res in enumerate(level.resnets):
                h = res(torch.cat([h, skips.pop()], dim=1), emb)  # (B, C_h + C_skip, H, W)
                if level.attentions is not None:
                    h = level.attentions[i](h)
            if level.upsample is not None:
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
