"""SD v1's autoencoder (diffusers' AutoencoderKL) from the toy's pieces: f = 8, 4 latent channels.

The toy autoencoder (autoencoder.py) downsamples by 4 with one residual block per level. The
released one has the same shape of computation with more of it, and one self-attention in the
middle: the U-Net's ResBlock without its time input, model.py's GroupNorm and Attention.

    encoder  conv_in 3 -> 128                                   (B, 128, 512, 512)
             4 levels of 2 ResBlocks (128, 256, 512, 512), each but the last followed by
             pad (0, 1, 0, 1) + conv 3x3 stride 2                (B, 512, 64, 64)
             mid: ResBlock, AttnBlock (1 head over 64*64 positions), ResBlock
             GroupNorm, SiLU, conv 512 -> 8; quant_conv 1x1      (B, 8, 64, 64) = mean, logvar
    decoder  post_quant_conv 1x1, conv_in 4 -> 512, mid, 4 levels of 3 ResBlocks (512, 512,
             256, 128), each but the last followed by nearest x2 + conv 3x3; GroupNorm, SiLU,
             conv 128 -> 3                                      (B, 3, 512, 512)

All its GroupNorms use eps 1e-6. The diffusion model sees z * 0.18215 (scale_factor: 1 / std
of the latents, the toy's own scale_factor). 83,653,863 parameters at full size.
tests/test_released.py: a random diffusers AutoencoderKL converted into this, encode and
decode equal in float64.
"""

from dataclasses import dataclass

import torch.nn as nn
import torch.nn.functional as F
from model import Attention, GroupNorm, ResBlock


@dataclass
class AutoencoderKLConfig:
    image_channels: int = 3
    latent_channels: int = 4
    channels: tuple = (128, 256, 512, 512)  # block_out_channels
    layers_per_block: int = 2
    groups: int = 32
    mid_attention: bool = True
    scale_factor: float = 0.18215
    sample_size: int = 512

    def __post_init__(self):
        self.channels = tuple(self.channels)


EPS = 1e-6


class AttnBlock(nn.Module):
    """x + Attention(GN(x)) over the H*W positions, one head of all C channels, with biases."""

    def __init__(self, c, groups):
        super().__init__()
        self.norm = GroupNorm(groups, c, EPS)
        self.attn = Attention(c, 1, bias=True)

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, H*W, C)
        return x + self.attn(h).transpose(1, 2).reshape(B, C, H, W)


class Mid(nn.Module):
    def __init__(self, c, config):
        super().__init__()
        self.res1 = ResBlock(c, c, None, config.groups, EPS)
        self.attn = AttnBlock(c, config.groups) if config.mid_attention else None
        self.res2 = ResBlock(c, c, None, config.groups, EPS)

    def forward(self, h):
        h = self.res1(h)
        return self.res2(self.attn(h) if self.attn is not None else h)


class Level(nn.ModuleDict):
    """ResBlocks, then an optional resampling conv (down: stride 2 after a right/bottom pad)."""

    def __init__(self, c_in, c_out, n, groups, resample=None):
        super().__init__()
        self["resnets"] = nn.ModuleList(
            ResBlock(c_in if j == 0 else c_out, c_out, None, groups, EPS) for j in range(n)
        )
        if resample == "down":
            self["downsample"] = nn.Conv2d(c_out, c_out, 3, stride=2)
        elif resample == "up":
            self["upsample"] = nn.Conv2d(c_out, c_out, 3, padding=1)

    def forward(self, h):
        for res in self["resnets"]:
            h = res(h)
        if "downsample" in self:
            h = self["downsample"](F.pad(h, (0, 1, 0, 1)))
        if "upsample" in self:
            h = self["upsample"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return h


class Encoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        chans, g, n = config.channels, config.groups, config.layers_per_block
        self.conv_in = nn.Conv2d(config.image_channels, chans[0], 3, padding=1)
        c_ins = (chans[0],) + chans[:-1]
        last = len(chans) - 1
        self.down = nn.ModuleList(
            Level(ci, co, n, g, None if i == last else "down")
            for i, (ci, co) in enumerate(zip(c_ins, chans))
        )
        self.mid = Mid(chans[-1], config)
        self.norm_out = GroupNorm(g, chans[-1], EPS)
        self.conv_out = nn.Conv2d(chans[-1], 2 * config.latent_channels, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        chans, g, n = config.channels[::-1], config.groups, config.layers_per_block + 1
        self.conv_in = nn.Conv2d(config.latent_channels, chans[0], 3, padding=1)
        self.mid = Mid(chans[0], config)
        c_ins = (chans[0],) + chans[:-1]
        last = len(chans) - 1
        self.up = nn.ModuleList(
            Level(ci, co, n, g, None if i == last else "up")
            for i, (ci, co) in enumerate(zip(c_ins, chans))
        )
        self.norm_out = GroupNorm(g, chans[-1], EPS)
        self.conv_out = nn.Conv2d(chans[-1], config.image_channels, 3, padding=1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for level in self.up:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """encode: (B, 3, H, W) in [-1, 1] -> (mean, logvar) of (B, 4, H/8, W/8); decode: back."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        zc = config.latent_channels
        self.encoder = Encoder(config)
        self.quant_conv = nn.Conv2d(2 * zc, 2 * zc, 1)
        self.post_quant_conv = nn.Conv2d(zc, zc, 1)
        self.decoder = Decoder(config)

    def encode(self, x):
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))
