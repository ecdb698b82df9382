"""train.py's flags: the TrainConfig dataclass (every flag and its default, once), the help
for the ones that are the lesson, the --smoke sizes, and the checks of a config's values.
"""

from dataclasses import dataclass, replace

from autoencoder import AutoencoderConfig
from data import DATASETS
from harness import check
from model import UNetConfig
from pipeline import DiffusionConfig
from text import TextConfig


@dataclass
class TrainConfig:
    stage: str = "all"
    dataset: str = "digits"
    data_dir: str = "data"
    download: bool = False
    ae_steps: int = 500
    ae_lr: float = 1e-3
    kl_weight: float = 1e-6
    steps: int = 1000
    batch_size: int = 64
    lr: float = 5e-4
    warmup_steps: int = 100
    p_uncond: float = 0.1
    ema_decay: float = 0.999
    eval_every: int = 500
    eval_guidance: float = 3.0
    judge_steps: int = 600
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False


HELP = {
    "batch_size": "images per process and step (under torchrun: x processes = the global batch)",
    "stage": "autoencoder, diffusion (needs OUT_DIR/autoencoder.pt) or all",
    "ae_steps": "autoencoder optimizer steps",
    "kl_weight": "weight of the latent KL to N(0, I) (LDM's KL-reg: tiny)",
    "steps": "diffusion (text encoder + U-Net) optimizer steps",
    "lr": "diffusion learning rate, constant after the warm-up (so --resume can extend exactly)",
    "p_uncond": "caption dropout: share of empty prompts, for classifier-free guidance",
    "ema_decay": "EMA of the diffusion weights, warmed up as min(decay, (1+t)/(10+t))",
    "eval_guidance": "guidance scale s of the headline judge accuracy",
    "judge_steps": "training steps of the judge classifier",
    "threads": "torch intra-op threads (0: half the cores)",
}
# Fashion-MNIST's 10,000 test images cost as much to encode as training: the validation figures
# (PSNR, eps-MSE) use the first EVAL_IMAGES, the scale factor the first SCALE_IMAGES of training
# (digits: all of both).
EVAL_IMAGES, SCALE_IMAGES = 2000, 10000
SMOKE = dict(ae_steps=20, steps=20, batch_size=16, eval_every=20, judge_steps=20)


def smoke_models():
    ae = AutoencoderConfig(channels=8, groups=4)
    return ae, DiffusionConfig(
        UNetConfig(channels=(16, 32), n_head=2, context_dim=16, groups=4),
        TextConfig(d_model=16, n_head=2, n_layer=1),
    )


def checked(config):
    """config after the checks of its values (each failure: one error line); under --smoke with
    the tiny sizes, a smaller value typed with --smoke kept."""
    check(
        config.stage in ("autoencoder", "diffusion", "all"),
        f"--stage {config.stage}: choose autoencoder, diffusion or all",
    )
    check(
        config.dataset in DATASETS,
        f"unknown --dataset {config.dataset}; choose from {', '.join(DATASETS)}",
    )
    check(0 <= config.p_uncond < 1, f"--p-uncond {config.p_uncond} must be in [0, 1)")
    check(config.eval_guidance >= 0, f"--eval-guidance {config.eval_guidance} must be >= 0")
    check(0 < config.ema_decay < 1, f"--ema-decay {config.ema_decay} must be in (0, 1)")
    check(
        min(config.steps, config.batch_size, config.eval_every) > 0 and config.ae_steps >= 0,
        "--steps, --batch-size and --eval-every must be > 0",
    )
    if config.smoke:  # tiny sizes; a smaller value typed with --smoke is kept
        config = replace(config, **{k: min(v, getattr(config, k)) for k, v in SMOKE.items()})
    return config
