"""The run's settings for train.py: the flags (one per TrainConfig field), their checks,
--smoke and --resume. Not the lesson; train.py imports it so that its loop fits on a screen.

    from config import TrainConfig, settle_config
"""

import math
from dataclasses import dataclass, replace

import harness
from model import TransformerConfig

M = TransformerConfig  # the model's defaults are read from model.py, never typed twice
MODEL_FIELDS = ("d_model", "n_head", "n_layer", "d_ff", "dropout", "max_len", "pre_norm",
                "learned_pos", "tie_embeddings", "pooling")  # fmt: skip
DATASETS = {"translate": ("auto", "grammar", "tatoeba"), "classify": ("auto", "topics", "csv")}


@dataclass
class TrainConfig:
    task: str = "translate"
    dataset: str = "auto"
    data: str = ""
    data_dir: str = "data"
    download: bool = False
    tokenizer: str = "char"
    max_words: int = 10
    n_train: int = 100000
    n_test: int = 1000
    steps: int = 1200
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 200
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 500
    ema: float = 0.995
    d_model: int = M.d_model
    n_head: int = M.n_head
    n_layer: int = M.n_layer
    d_ff: int = M.d_ff
    dropout: float = M.dropout
    max_len: int = M.max_len
    pre_norm: bool = M.pre_norm
    learned_pos: bool = M.learned_pos
    tie_embeddings: bool = M.tie_embeddings
    pooling: str = M.pooling
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False
    plots: bool = True


HELP = {
    "task": "translate (encoder-decoder) or classify (encoder only)",
    "dataset": "auto | grammar | tatoeba (translate); auto | topics | csv (classify)",
    "data": "a file: tab-separated sentence pairs (.txt or .zip) or a text,label CSV",
    "data_dir": "--dataset tatoeba reads DATA_DIR/fra-eng.zip",
    "download": "fetch fra-eng.zip from manythings.org into --data-dir if it is missing",
    "tokenizer": "char or word (words and punctuation marks)",
    "max_words": "keep sentence pairs of at most this many words (tatoeba, --data)",
    "n_train": "generated training examples (grammar, topics)",
    "n_test": "held-out examples",
    "steps": "optimizer steps (the schedule has no horizon, so a resumed run extends exactly)",
    "batch_size": "sentences per batch (batches grouped by length)",
    "warmup_steps": "steps of linear warm-up before the inverse-square-root decay",
    "label_smoothing": "eps_ls of the smoothed target distribution",
    "d_model": "model width d_model (the paper: 512)",
    "n_head": "attention heads h (d_model / h per head)",
    "d_ff": "feed-forward width d_ff (the paper: 2048)",
    "dropout": "dropout on sublayers, attention weights and embeddings",
    "seed": "seeds python, numpy, torch and the data",
    "out_dir": "checkpoint.pt, metrics.json and the plots go here",
    "lr": "peak learning rate, reached at the end of the warm-up",
    "grad_clip": "largest gradient norm",
    "eval_every": "steps between held-out evaluations (200 examples) and checkpoints",
    "ema": "weight-averaging decay used for evaluation and inference (0 = off)",
    "n_layer": "layers in the encoder and in the decoder, each",
    "max_len": "longest sequence in tokens",
    "pre_norm": "LayerNorm before each sublayer (and after each stack)",
    "learned_pos": "learned positional embeddings instead of sinusoids",
    "tie_embeddings": "share the decoder embedding and the output layer",
    "pooling": "classify: mean or cls",
    "device": "auto | cpu | cuda | mps (auto: cuda, then mps, then cpu)",
    "threads": "intra-op threads; 0 = half the cores (README, Threads)",
    "resume": "continue OUT_DIR/checkpoint.pt with its stored flags",
    "smoke": "a tiny model for 20 steps, in seconds (CI)",
    "plots": "write loss.png and the attention maps",
}
SMOKE = dict(steps=20, n_train=400, n_test=50, eval_every=10, batch_size=32, max_words=6,
             d_model=32, n_head=2, n_layer=1, d_ff=64)  # fmt: skip


def validate(cfg):
    """Every flag value that cannot work, in one line, before any work."""
    check = harness.check
    check(cfg.task in DATASETS, f"--task {cfg.task}: expected translate or classify")
    check(cfg.dataset in DATASETS[cfg.task] or cfg.data, f"--dataset {cfg.dataset}: "
          f"unknown for --task {cfg.task} (expected {', '.join(DATASETS[cfg.task])})")  # fmt: skip
    check(cfg.tokenizer in ("char", "word"), f"--tokenizer {cfg.tokenizer}: expected char or word")
    check(cfg.pooling in ("mean", "cls"), f"--pooling {cfg.pooling}: expected mean or cls")
    for name in ("steps", "batch_size", "d_model", "n_head", "n_layer", "d_ff", "n_train",
                 "n_test", "max_words", "warmup_steps", "eval_every"):  # fmt: skip
        flag = "--" + name.replace("_", "-")
        check(getattr(cfg, name) >= 1, f"{flag} {getattr(cfg, name)}: must be at least 1")
    check(cfg.d_model % cfg.n_head == 0, f"--d-model {cfg.d_model} is not divisible by "
          f"--n-head {cfg.n_head}")  # fmt: skip
    check(cfg.max_len >= 4, f"--max-len {cfg.max_len}: must be at least 4")
    check(0 < cfg.lr < math.inf, f"--lr {cfg.lr}: must be positive and finite")
    check(0 < cfg.grad_clip < math.inf, f"--grad-clip {cfg.grad_clip}: must be positive")
    for name in ("ema", "dropout", "label_smoothing"):
        value = getattr(cfg, name)
        check(0 <= value < 1, f"--{name.replace('_', '-')} {value}: must be in [0, 1)")
    check(cfg.threads >= 0, f"--threads {cfg.threads}: must be 0 (auto) or more")


def settle_config(cfg, given, ckpt):
    """--resume takes the stored flags (a changed one is refused); --smoke caps every size."""
    if ckpt is not None:
        may_change = ("steps", "device", "threads", "out_dir", "resume", "plots")
        cfg = harness.resume_train_config(ckpt["train_config"], cfg, given, may_change)
    if cfg.smoke:  # a tiny model and a few steps: each size at most its SMOKE value
        cfg = replace(cfg, **{k: min(getattr(cfg, k), v) for k, v in SMOKE.items()})
    validate(cfg)
    return cfg
