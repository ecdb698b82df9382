"""The flags of train.py: their help, their validation before any work, and what --smoke and
--resume make of them (CONTRIBUTING.md "The run contract", sections 4, 6 and 7).

Not the lesson: train.py keeps TrainConfig (one flag per field) and the training loop; this file
keeps the checks that turn a value that cannot work into one line, and the rules that decide
which config a resumed run continues with. tests/test_train.py holds both.
"""

import sys
from dataclasses import replace
from pathlib import Path

import hardware
import harness
from data import DATASETS
from model import PRESETS, GPTConfig

HELP = {
    "dataset": "built-in text (pydoc is offline)",
    "data_dir": "where real data lives (DIR/text/tinyshakespeare.txt)",
    "data": "any UTF-8 text file; overrides --dataset",
    "download": "allow fetching tinyshakespeare into --data-dir",
    "tokenizer": "characters, or byte-level BPE trained on the text",
    "preset": "model size (cpu-* train on a laptop; gpt2* are OpenAI's sizes)",
    "n_layer": "blocks (None: the preset's)", "n_head": "attention heads (None: the preset's)",
    "n_embd": "width, divisible by --n-head (None: the preset's)",
    "block_size": "context length (None: the preset's)",
    "fused_attention": "use F.scaled_dot_product_attention instead of the hand-written attention",
    "init_from": "start from official weights: gpt2 | gpt2-medium | gpt2-large | gpt2-xl | PATH to a Hugging Face directory",
    "schedule_steps": "step where the cosine reaches --min-lr, kept on --resume (0: --steps)",
    "batch_size": "sequences per process and micro-step",
    "grad_accum": "micro-steps per optimizer step",
    "grad_clip": "max global gradient norm (0: off)",
    "dtype": "auto: bf16 on CUDA, else float32; float16 uses a GradScaler",
    "compile": "torch.compile the model",
    "device": "auto picks cuda, then mps, then cpu",
    "threads": "torch CPU threads (0: half the cores, at least 1)",
    "resume": "continue OUT_DIR/checkpoint.pt (model, optimizer, step, RNG, data position)",
    "smoke": "a tiny model for 60 steps, in seconds",
    "progress": "show the progress bar",
    "bpe_vocab_size": "vocabulary size of --tokenizer bpe",
    "dropout": "dropout probability (0 for small data and short runs)",
    "steps": "optimizer steps",
    "warmup_steps": "linear learning-rate warm-up steps",
    "lr": "peak learning rate", "min_lr": "final learning rate of the cosine",
    "weight_decay": "AdamW decay on weight matrices",
    "beta2": "AdamW's second-moment decay, in [0, 1)",
    "eval_every": "steps between evaluations and checkpoints",
    "eval_iters": "batches per evaluation",
    "eval_full": "at the end, also the loss over the whole validation split (non-overlapping windows)",
    "seed": "seeds torch and the batch sampler",
    "out_dir": "checkpoint, metrics.json, loss.png and the tokenised data go here",
}  # fmt: skip
CHOICES = {"dataset": DATASETS, "tokenizer": ("char", "bpe"), "preset": tuple(PRESETS),
           "dtype": hardware.DTYPES, "device": ("auto", "cpu", "cuda", "mps")}  # fmt: skip


def model_config(cfg, vocab_size: int) -> GPTConfig:
    """The preset, with the --n-layer --n-head --n-embd --block-size the user gave."""
    dims = ("n_layer", "n_head", "n_embd", "block_size")
    given = {k: getattr(cfg, k) for k in dims if getattr(cfg, k) is not None}
    extra = dict(dropout=cfg.dropout, fused_attention=cfg.fused_attention)
    return GPTConfig.from_preset(cfg.preset, vocab_size=vocab_size, **extra, **given)


def validate(cfg):
    """Every flag value that cannot work is one line before any work (CONTRIBUTING.md 6)."""
    for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_iters"):
        harness.check(getattr(cfg, name) >= 1, f"--{name.replace('_', '-')} must be at least 1")
    for name in ("schedule_steps", "warmup_steps", "weight_decay", "grad_clip", "threads"):
        harness.check(getattr(cfg, name) >= 0, f"--{name.replace('_', '-')} must be >= 0")
    harness.check(cfg.lr > 0 and cfg.min_lr >= 0, "--lr must be > 0 and --min-lr >= 0")
    harness.check(0 <= cfg.beta2 < 1, "--beta2 must be in [0, 1)")
    harness.check(
        cfg.tokenizer != "bpe" or cfg.bpe_vocab_size >= 256, "--bpe-vocab-size must be >= 256"
    )
    harness.check(cfg.tokenizer in ("char", "bpe"), f"--tokenizer {cfg.tokenizer}: char or bpe")
    harness.check(
        cfg.data or cfg.dataset in DATASETS, f"--dataset {cfg.dataset}: one of {DATASETS}"
    )
    sizes = [
        k for k in ("n_layer", "n_head", "n_embd", "block_size") if getattr(cfg, k) is not None
    ]
    if cfg.init_from and sizes:  # the official weights fix the shape (and the tokenizer)
        raise harness.UserError(
            f"--init-from fixes the model's shape: drop --{sizes[0].replace('_', '-')}"
        )
    try:
        model_config(cfg, vocab_size=1)
    except ValueError as e:
        raise harness.UserError(str(e)) from None


def resolve(cfg, given: set, out: Path):
    """(config, checkpoint or None): --resume continues the stored run (CONTRIBUTING.md 7)."""
    if not cfg.resume:
        if cfg.smoke:  # a few steps of a tiny model, at a rate that learns in so few
            small = dict(steps=60, eval_every=30, warmup_steps=5, batch_size=8)
            fixed = dict(preset="cpu-tiny", eval_iters=2, lr=3e-3, min_lr=3e-4)
            cfg = replace(cfg, **fixed, **{k: min(getattr(cfg, k), v) for k, v in small.items()})
        cfg = replace(cfg, schedule_steps=cfg.schedule_steps or cfg.steps)
        return cfg, None
    ckpt = harness.load_checkpoint(out / harness.CHECKPOINT)
    try:
        may_change = ("steps", "device", "threads", "out_dir", "resume", "progress", "eval_full")
        cfg = harness.resume_train_config(ckpt["train_config"], cfg, given, may_change)
    except TypeError:
        raise harness.UserError(
            f"{out / harness.CHECKPOINT} was written by another train.py"
        ) from None
    harness.check(
        cfg.steps >= ckpt["step"],
        f"the checkpoint is at step {ckpt['step']}: --steps {cfg.steps} is behind it",
    )
    if cfg.steps > cfg.schedule_steps:
        print(f"warning: --steps {cfg.steps} runs past the schedule's horizon of {cfg.schedule_steps} steps: "
              f"the learning rate stays at --min-lr {cfg.min_lr:g} from there", file=sys.stderr)  # fmt: skip
    return cfg, ckpt
