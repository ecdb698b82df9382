"""SD v1's U-Net (diffusers' UNet2DConditionModel) assembled from model.py's own blocks.

The toy U-Net (model.py) has one ResBlock per level and one skip per level. The released one
keeps every block of model.py (ResBlock, SpatialTransformer = GroupNorm, proj_in,
TransformerBlock with GEGLU, proj_out; timestep_embedding; GroupNorm) and arranges more of them:

    time:    sinusoid(t, 320) [cos, sin] -> Linear 320->1280 -> SiLU -> Linear 1280->1280
    conv_in  4 -> 320                                              (B, 320, 64, 64)    skip
    down 0   2 x (ResBlock + SpatialTransformer), conv stride 2    (B, 320, 32, 32)    3 skips
    down 1   2 x (ResBlock + SpatialTransformer), conv stride 2    (B, 640, 16, 16)    3 skips
    down 2   2 x (ResBlock + SpatialTransformer), conv stride 2    (B, 1280, 8, 8)     3 skips
    down 3   2 x ResBlock                                          (B, 1280, 8, 8)     2 skips
    mid      ResBlock, SpatialTransformer, ResBlock                (B, 1280, 8, 8)
    up 0..3  3 x (concat a skip, ResBlock [+ SpatialTransformer]), nearest x2 + conv 3x3
    out      GroupNorm, SiLU, conv 320 -> 4                        (B, 4, 64, 64)

Every transformer has 8 heads (head width 40/80/160) and reads CLIP's (B, 77, 768) through
cross-attention. 859,520,964 parameters at full size; SDUNetConfig shrinks it to a test's size.
tests/test_released.py converts a random diffusers UNet2DConditionModel into this class and
compares the noise prediction and every gradient in float64.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from model import GroupNorm, ResBlock, SpatialTransformer, timestep_embedding


@dataclass
class SDUNetConfig:
    latent_channels: int = 4
    channels: tuple = (320, 640, 1280, 1280)  # block_out_channels, one per resolution
    attention_levels: tuple = (True, True, True, False)  # CrossAttnDownBlock2D / DownBlock2D
    layers_per_block: int = 2  # ResBlocks per down level (the up levels have one more)
    n_head: tuple = (8, 8, 8, 8)  # heads per level (diffusers' SD v1 "attention_head_dim": 8)
    context_dim: int = 768  # CLIP's width
    groups: int = 32
    eps: float = 1e-5
    linear_proj: bool = False  # SD 2's use_linear_projection; SD v1: 1x1 convolutions
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    sample_size: int = 64  # latent side the model was trained at: 512 / 8

    def __post_init__(self):
        self.channels, self.attention_levels = tuple(self.channels), tuple(self.attention_levels)
        n = self.n_head
        self.n_head = tuple(n) if isinstance(n, (list, tuple)) else (n,) * len(self.channels)


class Level(nn.ModuleDict):
    """A down or up level: resnets[j] (+ attentions[j]), then an optional resampling conv."""

    def __init__(self, c_ins, c_out, attention, n_head, config, t_dim, resample=None):
        super().__init__()
        g, eps = config.groups, config.eps
        self["resnets"] = nn.ModuleList(ResBlock(c, c_out, t_dim, g, eps) for c in c_ins)
        if attention:
            ctx, lin = config.context_dim, config.linear_proj
            self["attentions"] = nn.ModuleList(
                SpatialTransformer(c_out, n_head, ctx, g, lin) for _ in c_ins
            )
        if resample == "down":
            self["downsample"] = nn.Conv2d(c_out, c_out, 3, stride=2, padding=1)
        elif resample == "up":
            self["upsample"] = nn.Conv2d(c_out, c_out, 3, padding=1)

    def layers(self):
        attentions = self["attentions"] if "attentions" in self else [None] * len(self["resnets"])
        return zip(self["resnets"], attentions)


class MidBlock(nn.Module):
    """ResBlock, SpatialTransformer, ResBlock at the lowest resolution."""

    def __init__(self, c, n_head, config, t_dim):
        super().__init__()
        g, eps = config.groups, config.eps
        self.res1 = ResBlock(c, c, t_dim, g, eps)
        self.attn = SpatialTransformer(c, n_head, config.context_dim, g, config.linear_proj)
        self.res2 = ResBlock(c, c, t_dim, g, eps)

    def forward(self, h, t_emb, context, mask):
        return self.res2(self.attn(self.res1(h, t_emb), context, mask), t_emb)


class SDUNet(nn.Module):
    """eps_theta(z_t, t, text): (B, 4, h, w) latents and (B, 77, 768) CLIP states -> noise."""

    def __init__(self, config):
        super().__init__()
        self.config = c = config
        chans, L = c.channels, c.layers_per_block
        c0, t_dim = chans[0], 4 * chans[0]
        self.time_mlp = nn.Sequential(nn.Linear(c0, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.conv_in = nn.Conv2d(c.latent_channels, c0, 3, padding=1)
        self.down, skips, c_prev = nn.ModuleList(), [c0], c0
        for i, ch in enumerate(chans):
            last = i == len(chans) - 1
            c_ins = [c_prev] + [ch] * (L - 1)
            resample = None if last else "down"
            self.down.append(
                Level(c_ins, ch, c.attention_levels[i], c.n_head[i], c, t_dim, resample)
            )
            skips += [ch] * (L if last else L + 1)  # each layer's output, and the downsampled map
            c_prev = ch
        self.mid = MidBlock(c_prev, c.n_head[-1], c, t_dim)
        self.up = nn.ModuleList()
        for i, ch in enumerate(reversed(chans)):
            level = len(chans) - 1 - i
            c_ins = [(c_prev if j == 0 else ch) + skips.pop() for j in range(L + 1)]
            resample = "up" if level else None
            attn, heads = c.attention_levels[level], c.n_head[level]
            self.up.append(Level(c_ins, ch, attn, heads, c, t_dim, resample))
            c_prev = ch
        self.norm_out = GroupNorm(c.groups, c0, c.eps)
        self.conv_out = nn.Conv2d(c0, c.latent_channels, 3, padding=1)

    def forward(self, z, t, context, key_padding_mask=None):
        c = self.config
        t_emb = timestep_embedding(
            t, c.channels[0], flip_sin_to_cos=c.flip_sin_to_cos, freq_shift=c.freq_shift,
            dtype=torch.float32,  # as the released model computes its sinusoids
        )  # fmt: skip
        t_emb = self.time_mlp(t_emb.to(z.dtype))
        h = self.conv_in(z)
        skips = [h]
        for level in self.down:
            for res, attn in level.layers():
                h = res(h, t_emb)
                h = attn(h, context, key_padding_mask) if attn is not None else h
                skips.append(h)
            if "downsample" in level:
                h = level["downsample"](h)
                skips.append(h)
        h = self.mid(h, t_emb, context, key_padding_mask)
        for level in self.up:
            for res, attn in level.layers():
                h = res(torch.cat([h, skips.pop()], 1), t_emb)
                h = attn(h, context, key_padding_mask) if attn is not None else h
            if "upsample" in level:  # nearest up to the next skip's size, then a 3x3 conv
                h = level["upsample"](F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))
