"""The flags of train.py (one dataclass), their help, the checks of their values, the U-Net they build.

train.py reads its command line into TrainConfig (harness.add_config_flags writes one flag per
field, so no default is typed twice); a resumed run takes the checkpoint's TrainConfig back.
"""

import math
from dataclasses import dataclass

import data as datasets
from harness import UserError, check
from model import UNet, UNetConfig
from schedule import PREDICTIONS, SCHEDULES


@dataclass
class TrainConfig:
    dataset: str = "digits"
    data_dir: str = "data"
    download: bool = False
    conditional: bool = True
    steps: int = 1200
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    schedule_steps: int = 0
    ema_decay: float = 0.995
    timesteps: int = 1000
    beta_schedule: str = "linear"
    prediction: str = "eps"
    label_dropout: float = 0.1
    channels: str = "32,64,64"
    layers_per_block: int = 1
    attention: str = "0,1,1"
    groups: int = 8
    dropout: float = 0.0
    eval_every: int = 300
    eval_ddim_steps: int = 50
    guidance: float = 0.0
    num_eval_samples: int = 0
    judge_steps: int = 400
    amp: str = "auto"
    seed: int = 0
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False
    device: str = "auto"
    threads: int = 0


HELP = {
    "dataset": f"one of {', '.join(datasets.DATASETS)}",
    "conditional": "class-conditional (labels dropped with --label-dropout for guidance)",
    "steps": "optimizer steps",
    "batch_size": "images per process per step (global batch = this x processes)",
    "schedule_steps": "LR horizon: warm-up, then cosine to 10%% by this step (0: --steps)",
    "ema_decay": "EMA decay; the effective decay is min(this, (1+step)/(10+step))",
    "beta_schedule": f"noise schedule: {' or '.join(SCHEDULES)}",
    "prediction": f"what the network predicts: {', '.join(PREDICTIONS)}",
    "channels": "U-Net widths per level, comma-separated",
    "attention": "self-attention per level (0/1), comma-separated",
    "groups": "GroupNorm groups",
    "eval_ddim_steps": "DDIM steps of the final judge-FID (and of the progress grids)",
    "guidance": "classifier-free guidance weight w of the final judge-FID (0: plain conditional)",
    "num_eval_samples": "samples judged at the end (0: as many as the test split)",
    "judge_steps": "training steps of the judge classifier (cached in --out-dir)",
    "amp": "mixed precision on CUDA: auto (bf16 if supported), bf16, fp16, none",
    "threads": "intra-op threads (0: half the cores)",
}


def ints(text, name):
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--{name} {text!r}: expected comma-separated integers") from None


def validate(cfg):
    """Every flag value that cannot work, as one line before any work."""
    join = ", ".join
    for ok, message in [
        (cfg.beta_schedule in SCHEDULES, f"--beta-schedule {cfg.beta_schedule}: unknown schedule, expected one of {join(SCHEDULES)}"),
        (cfg.prediction in PREDICTIONS, f"--prediction {cfg.prediction}: expected one of {join(PREDICTIONS)}"),
        (cfg.dataset in datasets.DATASETS, f"--dataset {cfg.dataset}: unknown dataset, expected one of {join(datasets.DATASETS)}"),
        (min(cfg.steps, cfg.batch_size, cfg.eval_every) > 0, "--steps, --batch-size and --eval-every must be positive"),
        (cfg.lr > 0 and math.isfinite(cfg.lr), f"--lr {cfg.lr}: must be a positive number"),
        (0 <= cfg.ema_decay < 1, f"--ema-decay {cfg.ema_decay}: expected 0 <= decay < 1"),
        (0 <= cfg.label_dropout < 1, f"--label-dropout {cfg.label_dropout}: expected 0 <= p < 1"),
        (cfg.timesteps >= 2, f"--timesteps {cfg.timesteps}: expected at least 2"),
        (1 <= cfg.eval_ddim_steps <= cfg.timesteps, f"--eval-ddim-steps {cfg.eval_ddim_steps}: more DDIM steps than the {cfg.timesteps} training steps"),
        (cfg.guidance == 0 or cfg.conditional, "--guidance needs a class-conditional model (--conditional)"),
        (cfg.num_eval_samples >= 0, f"--num-eval-samples {cfg.num_eval_samples}: must be >= 0"),
        (cfg.amp in ("auto", "bf16", "fp16", "none"), f"--amp {cfg.amp}: expected auto, bf16, fp16 or none"),
    ]:  # fmt: skip
        check(ok, message)


def model_config(cfg, data):
    if cfg.smoke:
        cfg.channels, cfg.attention, cfg.layers_per_block, cfg.groups = "8,16", "0,1", 1, 4
    channels, attention = ints(cfg.channels, "channels"), ints(cfg.attention, "attention")
    _, C, H, _ = data["train_x"].shape
    mc = UNetConfig(image_size=H, in_channels=C, out_channels=C, channels=channels, layers_per_block=cfg.layers_per_block,
                    attention=tuple(bool(a) for a in attention), groups=cfg.groups, dropout=cfg.dropout,
                    num_classes=10 if cfg.conditional else 0)  # fmt: skip
    try:
        return mc, UNet(mc)
    except ValueError as e:
        raise UserError(str(e)) from None
