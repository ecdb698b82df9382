"""The first stage of latent diffusion: a KL-regularised convolutional autoencoder.

Rombach et al. 2022 (https://arxiv.org/abs/2112.10752), Section 3.1 and Appendix G: an
encoder E maps an image x (1, H, W) to a diagonal Gaussian q(z|x) over a latent
z (4, H/4, W/4), a downsampling factor f = 4 (digits: 16x16 -> 4x4x4; Fashion-MNIST 28x28 -> 7x7x4); a decoder D maps z back. The KL to N(0, I) is
weighted very lightly (1e-6 in LDM's "KL-reg"): it only keeps the latent from drifting to a
huge scale, it is not a VAE prior to sample from. The diffusion model then learns the latents,
multiplied by scale_factor = 1 / std(z) so that they have unit variance, as the noise
schedule assumes (SD v1's 0.18215 is the same number for its autoencoder).

tests/test_autoencoder.py: the KL against diffusers' DiagonalGaussianDistribution.kl().
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from model import GroupNorm


@dataclass
class AutoencoderConfig:
    image_channels: int = 1
    latent_channels: int = 4
    channels: int = 16
    groups: int = 8


class ConvBlock(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x)))))): a residual block with no time input."""

    def __init__(self, c, groups):
        super().__init__()
        self.norm1, self.conv1 = GroupNorm(groups, c), nn.Conv2d(c, c, 3, padding=1)
        self.norm2, self.conv2 = GroupNorm(groups, c), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


def gaussian_kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) = 1/2 sum(mean^2 + var - 1 - logvar), per image."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2, 3))


class Autoencoder(nn.Module):
    """E: (B, 1, H, W) -> (mean, logvar) of (B, 4, H/4, W/4); D: the way back."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        c, g, zc = config.channels, config.groups, config.latent_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(config.image_channels, c, 3, padding=1),  # (B, c, H, W)
            ConvBlock(c, g),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),  # (B, 2c, H/2, W/2)
            ConvBlock(2 * c, g),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1),  # (B, 2c, H/4, W/4)
            ConvBlock(2 * c, g),
            GroupNorm(g, 2 * c),
            nn.SiLU(),
            nn.Conv2d(2 * c, 2 * zc, 3, padding=1),  # (B, 2*4, H/4, W/4): mean and log-variance
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(zc, 2 * c, 3, padding=1),  # (B, 2c, H/4, W/4)
            ConvBlock(2 * c, g),
            nn.Upsample(scale_factor=2.0, mode="nearest"),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1),  # (B, 2c, H/2, W/2)
            ConvBlock(2 * c, g),
            nn.Upsample(scale_factor=2.0, mode="nearest"),
            nn.Conv2d(2 * c, c, 3, padding=1),  # (B, c, H, W)
            ConvBlock(c, g),
            GroupNorm(g, c),
            nn.SiLU(),
            nn.Conv2d(c, config.image_channels, 3, padding=1),
        )

    def encode(self, x):
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x, eps=None, generator=None):
        """Reconstruction through a sampled latent z = mean + sigma * eps, and the KL per image.

        eps: given (under DDP, this process's rows of one global draw) or drawn here."""
        mean, logvar = self.encode(x)
        if eps is None:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * eps
        return self.decode(z), gaussian_kl(mean, logvar)


@torch.no_grad()
def reconstruction_error(ae, x):
    ae.eval()
    mean, _ = ae.encode(x)
    mse = F.mse_loss(ae.decode(mean).clamp(-1, 1), x).item()
    ae.train()
    return mse, 10 * math.log10(4.0 / mse)  # PSNR for a [-1, 1] range (peak-to-peak 2)


@torch.no_grad()
def encode_all(ae, x, device):
    """The latent means of x, in batches. 1 / their std is the scale factor that gives the
    diffusion model unit-variance latents."""
    was_training = ae.training
    ae.eval()
    z = torch.cat([ae.encode(x[i : i + 500].to(device))[0] for i in range(0, len(x), 500)])
    ae.train(was_training)
    return z
