"""The assembled model: autoencoder + text encoder + U-Net + schedule, and text -> image.

    z_T ~ N(0, I)  --DDIM with guidance, reading tau(prompt)-->  z_0  --D(z_0 / scale)-->  image

train.py writes two checkpoints under --out-dir, each in the run contract's layout:
autoencoder.pt (first stage, with the latent `scale_factor`) and checkpoint.pt (the
text encoder and U-Net, with their EMA and the tokenizer's vocabulary). load_pipeline()
rebuilds everything from those two files alone.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from autoencoder import Autoencoder, AutoencoderConfig
from harness import UserError, load_checkpoint
from model import UNet, UNetConfig
from sample import Schedule, sample_latents
from text import TextConfig, TextEncoder, Tokenizer


@dataclass
class DiffusionConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    text: TextConfig = field(default_factory=TextConfig)
    latent_size: int = 4  # the autoencoder's latent side: image side / 4

    @classmethod
    def from_dict(cls, d):
        return cls(UNetConfig(**d["unet"]), TextConfig(**d["text"]), d["latent_size"])


class LatentDiffusion(nn.Module):
    """The trained second stage: tau_theta (text) and eps_theta (U-Net), one state dict."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.text = TextEncoder(config.text)
        self.unet = UNet(config.unet)

    def forward(self, z_t, t, ids, mask):
        """eps_theta(z_t, t, tau_theta(caption)): the training call (one forward for DDP)."""
        return self.unet(z_t, t, self.text(ids, mask), mask)


@dataclass
class Pipeline:
    autoencoder: Autoencoder
    diffusion: LatentDiffusion
    tokenizer: Tokenizer
    scale_factor: float
    schedule: Schedule

    @torch.no_grad()
    def generate(self, prompts, *, steps=50, guidance=3.0, eta=0.0, generator=None, keep=False):
        """prompts -> images (B, 1, H, W) in [-1, 1] (and the latent path if keep)."""
        z = sample_latents(
            self.diffusion.unet, self.diffusion.text, self.tokenizer, self.schedule, prompts,
            size=self.diffusion.config.latent_size, steps=steps, guidance=guidance, eta=eta,
            generator=generator, keep=keep,
        )  # fmt: skip
        z, path = z if keep else (z, None)
        images = self.autoencoder.decode(z / self.scale_factor).clamp(-1, 1)
        return (images, path) if keep else images


@dataclass
class ReleasedPipeline:
    """SD v1 with the released weights (convert.load_released), in this folder's classes:
    sd_unet.SDUNet, sd_autoencoder.AutoencoderKL, text.TextEncoder with clip.py's settings and
    tokenizer. It samples with the toy's own code (sample.sample_latents: DDIM + guidance)."""

    unet: nn.Module
    vae: nn.Module
    text: nn.Module
    tokenizer: object
    schedule: Schedule

    def to(self, device):
        self.unet, self.vae, self.text = (m.to(device) for m in (self.unet, self.vae, self.text))
        return self

    @torch.no_grad()
    def generate(
        self, prompts, *, steps=50, guidance=7.5, image_size=512, generator=None, latents=None,
        eta=0.0, progress=False,
    ):  # fmt: skip
        """prompts -> images (B, 3, image_size, image_size) in [0, 1], float32."""
        f = 2 ** (len(self.vae.config.channels) - 1)  # the autoencoder's downsampling: 8
        z = sample_latents(
            self.unet, self.text, self.tokenizer, self.schedule, prompts, size=image_size // f,
            steps=steps, guidance=guidance, eta=eta, generator=generator, latents=latents,
            progress=progress,
        )  # fmt: skip
        vae_dtype = next(self.vae.parameters()).dtype
        x = self.vae.decode(z.to(vae_dtype) / self.vae.config.scale_factor)
        return (x / 2 + 0.5).clamp(0, 1).float()


def load_autoencoder(path, device="cpu"):
    ckpt = load_checkpoint(path, device)
    ae = Autoencoder(AutoencoderConfig(**ckpt["model_config"])).to(device)
    ae.load_state_dict(ckpt["model"])
    return ae.eval(), ckpt


def load_pipeline(out_dir, device="cpu", ema=True):
    out_dir = Path(out_dir)
    if (out_dir / "checkpoint.pt").exists() and not (out_dir / "autoencoder.pt").exists():
        raise UserError(
            f"{out_dir}/checkpoint.pt has no autoencoder.pt beside it: train with --stage autoencoder"
        )
    ckpt = load_checkpoint(out_dir / "checkpoint.pt", device)
    ae, ae_ckpt = load_autoencoder(out_dir / "autoencoder.pt", device)
    diffusion = LatentDiffusion(DiffusionConfig.from_dict(ckpt["model_config"])).to(device)
    diffusion.load_state_dict(ckpt["ema"] if ema else ckpt["model"])
    tok = ckpt["tokenizer"]
    tokenizer = Tokenizer(tok["vocab"], tok["context"])
    return Pipeline(ae, diffusion.eval(), tokenizer, ae_ckpt["scale_factor"], Schedule()), ckpt


def tokenizer_state(tokenizer):
    return {"vocab": tokenizer.vocab, "context": tokenizer.context}
