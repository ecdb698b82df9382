"""Train a character-level RNN, LSTM or GRU language model with truncated BPTT, in NumPy.

Each step reads the next T characters of B parallel streams (data.Streams), starts from the hidden
state the previous chunk ended in (carried, but cut off from the gradient: truncated BPTT,
Williams & Peng 1990), backpropagates through the T steps, clips the
gradient by its global norm (Pascanu et al., https://arxiv.org/abs/1211.5063) and takes an Adam /
Adagrad / RMSProp step. Loss in nats per character; perplexity = exp(loss). Writes the run
contract (CONTRIBUTING.md): checkpoint.npz, metrics.json (val_loss of the final model), loss.png.
tests/test_train.py holds it to a stated loss on a tiny corpus and resume == uninterrupted (bitwise).
"""

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import harness
import numpy as np
from data import DATASETS, DataError, Streams, Vocab, load_text, split
from model import CELLS, CharRNN, ModelConfig, sample, softmax_cross_entropy
from optim import OPTIMIZERS, SCHEDULES, clip_grad_norm, lr_at
from tqdm import tqdm


@dataclass
class TrainConfig:
    dataset: str = "unicode"
    data: str = ""  # any UTF-8 text file; overrides dataset
    data_dir: str = "data"
    download: bool = False
    cell: str = "lstm"
    n_layer: int = 1
    n_embd: int = 32
    n_hidden: int = 128
    forget_bias: float = 1.0
    dropout: float = 0.0  # on every layer's output, training only
    weight_drop: float = 0.0  # DropConnect on every W_hh, training only
    seq_len: int = 64  # T: characters backpropagated through per chunk
    batch_size: int = 32  # B: parallel streams
    steps: int = 2000
    optimizer: str = "adam"
    lr: float = 3e-3
    weight_decay: float = 0.0  # decoupled (AdamW), on the weight matrices
    schedule: str = "constant"
    warmup_steps: int = 0
    schedule_steps: int = 0  # the cosine horizon; 0: this run's length
    grad_clip: float = 5.0  # max global gradient norm (0: no clipping)
    eval_every: int = 200
    seed: int = 0
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False


HELP = {
    "dataset": "unicode and pydoc ship with Python; names/shakespeare read --data-dir",
    "data": "any UTF-8 text file (overrides --dataset)",
    "data_dir": "holds text/names.txt, text/tinyshakespeare.txt",
    "download": "fetch names/shakespeare into --data-dir",
    "n_layer": "stacked recurrent layers",
    "n_embd": "embedding size",
    "n_hidden": "hidden units per layer",
    "forget_bias": "initial LSTM forget-gate bias (LSTM only)",
    "dropout": "probability of dropping a unit of each layer's output (training only)",
    "weight_drop": "probability of dropping each recurrent weight (W_hh), one mask per step",
    "seq_len": "truncated-BPTT length T",
    "steps": "optimiser steps (the total, also with --resume)",
    "batch_size": "parallel text streams B",
    "weight_decay": "decoupled weight decay of the weight matrices: p -= lr * wd * p each step",
    "schedule": "learning-rate schedule after the warm-up",
    "warmup_steps": "linear warm-up steps",
    "schedule_steps": "the cosine horizon in steps (0: this run's length; kept on --resume)",
    "grad_clip": "max global gradient norm, 0 = off",
    "eval_every": "steps between validation loss + checkpoint",
    "seed": "initialisation, data split and the samples printed while training",
    "out_dir": "checkpoint.npz, metrics.json, loss.png",
    "resume": "continue OUT_DIR/checkpoint.npz with its flags; only --steps may grow",
    "smoke": "30 steps, to check that it runs",
}
CHOICES = {
    "dataset": DATASETS,
    "cell": tuple(CELLS),
    "optimizer": tuple(OPTIMIZERS),
    "schedule": SCHEDULES,
}


def validate(cfg):
    for name in ("steps", "batch_size", "seq_len", "n_hidden", "n_embd", "n_layer", "eval_every"):
        harness.check(getattr(cfg, name) >= 1, f"--{name.replace('_', '-')} must be at least 1")
    harness.check(cfg.lr > 0 and np.isfinite(cfg.lr), f"--lr must be positive, got {cfg.lr}")
    harness.check(0 <= cfg.dropout < 1, f"--dropout must be in [0, 1), got {cfg.dropout}")
    harness.check(0 <= cfg.weight_drop < 1, f"--weight-drop must be in [0, 1), got {cfg.weight_drop}")  # fmt: skip
    for name in ("grad_clip", "warmup_steps", "schedule_steps", "weight_decay"):
        harness.check(getattr(cfg, name) >= 0, f"--{name.replace('_', '-')} must be >= 0")
    harness.check(cfg.lr * cfg.weight_decay < 1, "--lr times --weight-decay must be below 1")


def prepare_data(cfg):
    text, kind = load_text(cfg.dataset, cfg.data or None, cfg.data_dir, cfg.download)
    if len(text.strip()) == 0:
        raise DataError("the corpus is empty")
    vocab = Vocab(text)
    train_text, val_text = split(text, kind, 0.1, cfg.seed)
    train = Streams(vocab.encode(train_text), cfg.batch_size, cfg.seq_len)
    n_val = (len(val_text) - 1) // cfg.seq_len  # streams the val split can fill
    if n_val < 1:
        raise DataError(
            f"corpus too short: the 10% validation split has {len(val_text)} characters"
        )
    val = Streams(vocab.encode(val_text), min(cfg.batch_size, n_val), cfg.seq_len)
    return vocab, kind, train, val


def evaluate(model, streams):
    """Mean loss (nats/char) over every chunk of the streams, state carried across chunks."""
    states, total = None, 0.0
    for k in range(streams.n_chunks):
        x, y = streams.chunk(k)
        logits, states = model.forward(x, states)
        total += softmax_cross_entropy(logits, y)[0]
    return total / streams.n_chunks


def state_arrays(states):
    """The hidden state carried into the next chunk, as checkpoint arrays `state.<layer>.<i>`."""
    return {f"state.{l}.{i}": s for l, st in enumerate(states or []) for i, s in enumerate(st)}


def train(cfg, given=None):
    """Train, evaluate, checkpoint every --eval-every steps; returns the metrics.

    given: the flags the user typed (main() knows them); by default the fields that differ
    from their defaults. On --resume only the length (--steps) and --out-dir may differ.
    """
    with harness.blas_threads(1):
        return _train(cfg, harness.changed_fields(cfg) if given is None else given)


def _train(cfg, given):
    out = Path(cfg.out_dir)
    ckpt_path = out / harness.CHECKPOINT
    ckpt = None
    if cfg.resume:
        ckpt = harness.load_checkpoint(ckpt_path)
        cfg = harness.resume_train_config(ckpt["train_config"], cfg, given)
    if cfg.smoke:
        cfg = replace(cfg, steps=min(cfg.steps, 30), eval_every=15)
    validate(cfg)
    harness.prepare_out_dir(out)
    vocab, kind, train_streams, val_streams = prepare_data(cfg)
    mcfg = ModelConfig(len(vocab), cfg.cell, cfg.n_embd, cfg.n_hidden, cfg.n_layer,
                       cfg.forget_bias, cfg.seed, cfg.dropout, cfg.weight_drop)  # fmt: skip
    model = CharRNN(**vars(mcfg))
    opt = OPTIMIZERS[cfg.optimizer](model.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if not cfg.resume and cfg.schedule_steps == 0:
        cfg = replace(cfg, schedule_steps=cfg.steps)  # stored: a resumed run keeps this horizon
    harness.warn_past_horizon(cfg.steps, cfg.schedule_steps, cfg.schedule)
    rng = np.random.default_rng(cfg.seed)  # draws the dropout masks and the printed samples
    step, states, seconds, history = 0, None, 0.0, harness.new_history()
    if ckpt is not None:
        harness.check(ckpt["vocab"] == vocab.chars, f"{ckpt_path} was trained on another corpus")
        harness.load_params(model.params, ckpt["model"], ckpt_path)
        opt.load_state_dict(ckpt["optimizer"])
        rng.bit_generator.state = ckpt["rng"]
        step, seconds, history = ckpt["step"], ckpt["seconds"], ckpt["history"]
        if "state" in ckpt:
            states = [tuple(ckpt["state"][f"{l}.{i}"] for i in range(layer.n_states))
                      for l, layer in enumerate(model.layers)]  # fmt: skip
        harness.check(step < cfg.steps, f"{ckpt_path} is already at step {step}: pass --steps above {step}")  # fmt: skip
        print(f"resumed from {ckpt_path} at step {step}")
    n_params = model.n_params()
    print(
        f"{cfg.cell} x{cfg.n_layer}, hidden {cfg.n_hidden}: {n_params:,} parameters | "
        f"vocab {len(vocab)} | {train_streams.n_chunks} chunks of {cfg.batch_size}x{cfg.seq_len} "
        f"per epoch | NumPy on the CPU"
    )

    t0 = time.perf_counter() - seconds
    bar = tqdm(range(step, cfg.steps), initial=step, total=cfg.steps, disable=None)
    for step in bar:
        k = step % train_streams.n_chunks
        if k == 0:
            states = None  # a new pass over the streams starts from zero state
        x, y = train_streams.chunk(k)
        opt.lr = lr_at(step, lr=cfg.lr, warmup_steps=cfg.warmup_steps,
                       schedule_steps=cfg.schedule_steps, schedule=cfg.schedule)  # fmt: skip
        logits, new_states = model.forward(x, states, rng)  # rng: dropout masks, if any
        loss, dlogits = softmax_cross_entropy(logits, y)
        harness.check_finite(loss, step + 1, out)
        model.backward(dlogits)  # no dstates: the gradient stops at the chunk's start
        if cfg.grad_clip > 0:
            clip_grad_norm(model.grads, cfg.grad_clip)
        opt.step(model.grads)
        states = new_states
        history["step"].append(step + 1)
        history["train_loss"].append(loss)
        bar.set_postfix(loss=f"{loss:.3f}")
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            val = evaluate(model, val_streams)
            history["eval_step"].append(step + 1)
            history["val_loss"].append(val)
            seconds = time.perf_counter() - t0
            txt = vocab.decode(sample(model, vocab.encode("\n"), 1, 60, rng, 0.8, 0, 0)[0])
            tqdm.write(
                f"step {step + 1} | loss {loss:.4f} | val {val:.4f} (ppl {np.exp(val):.2f}) | "
                f"{1000 * seconds / (step + 1):.0f} ms/step | {txt!r}"
            )
            harness.save_checkpoint(ckpt_path, model=model, optimizer=opt, model_config=mcfg,
                                    train_config=cfg, step=step + 1, rng=rng, history=history,
                                    vocab=vocab.chars, kind=kind, seconds=seconds,
                                    **state_arrays(states))  # fmt: skip
    step, seconds = cfg.steps, time.perf_counter() - t0
    final = history["val_loss"][-1]
    dataset = Path(cfg.data).name if cfg.data else cfg.dataset
    metrics = harness.write_metrics(
        out / "metrics.json",
        project="rnn",
        dataset=dataset,
        metric="val_loss",
        value=round(final, 4),
        unit="nats/token",  # one token is one character here
        higher_is_better=False,
        selection="final",
        n_params=n_params,
        steps=step,
        seconds=round(seconds, 1),
        seed=cfg.seed,
        best_val_loss=round(min(history["val_loss"]), 4),
        val_perplexity=round(float(np.exp(final)), 3),
        cell=cfg.cell,
        n_layer=cfg.n_layer,
        n_hidden=cfg.n_hidden,
        ms_per_step=round(1000 * seconds / step, 1),
    )
    harness.plot_loss(history, out / "loss.png", f"{cfg.cell} on {dataset}", ylabel="loss (nats/char)")  # fmt: skip
    print(f"val_loss {final:.4f} nats/char (perplexity {np.exp(final):.2f}) after {step} steps, "
          f"{seconds:.0f} s -> {out}")  # fmt: skip
    return metrics


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    harness.add_config_flags(p, TrainConfig, HELP, CHOICES)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = harness.config_from_args(TrainConfig, args)
    return harness.run_main(
        lambda: train(config, harness.given_flags(argv)) and None, lambda: args.out_dir
    )


if __name__ == "__main__":
    raise SystemExit(main())
