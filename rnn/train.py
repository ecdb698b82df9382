"""Train a character-level RNN, LSTM or GRU language model with truncated BPTT, in NumPy.

Each step reads the next T characters of B parallel streams (data.Streams), starts from the hidden
state the previous chunk ended in (carried, but cut off from the gradient: truncated BPTT,
Williams & Peng 1990), backpropagates through the T steps, clips the
gradient by its global norm (Pascanu et al., https://arxiv.org/abs/1211.5063) and takes an Adam /
Adagrad / RMSProp step. Loss in nats per character; perplexity = exp(loss).
tests/test_train.py holds it to a stated loss on a tiny corpus and resume == uninterrupted (bitwise).
"""

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from data import DATASETS, DataError, Streams, Vocab, load_text, split
from model import CELLS, CharRNN, sample, softmax_cross_entropy
from optim import OPTIMIZERS, clip_grad_norm
from tqdm import tqdm

CHECKPOINT = "checkpoint.npz"


@dataclass
class TrainConfig:
    dataset: str = "unicode"
    data: str | None = None  # any UTF-8 text file; overrides dataset
    data_dir: str = "data"
    download: bool = False
    cell: str = "lstm"
    n_layers: int = 1
    n_embd: int = 32
    n_hidden: int = 128
    forget_bias: float = 1.0
    seq_len: int = 64  # T: characters backpropagated through per chunk
    batch_size: int = 32  # B: parallel streams
    steps: int = 2000
    optimizer: str = "adam"
    lr: float = 3e-3
    clip: float = 5.0  # max global gradient norm (0: no clipping)
    eval_every: int = 200
    seed: int = 0
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False


def limit_blas_threads():
    """One BLAS thread unless the user chose: BPTT is hundreds of small (B, H) @ (H, 4H) matmuls
    per step, and waking worker threads for each costs more than it saves (10x slower on a busy
    2-core machine)."""
    if "OPENBLAS_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" in os.environ:
        return
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:
        return
    threadpool_limits(1, user_api="blas")


def prepare_data(cfg):
    text, kind = load_text(cfg.dataset, cfg.data, cfg.data_dir, cfg.download)
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


def save_checkpoint(path, model, opt, states, meta):
    """Plain arrays + a JSON string, written to a temp file then renamed (atomic)."""
    arrays = {f"model.{k}": v for k, v in model.params.items()}
    arrays |= {f"optim.{k}": v for k, v in opt.state_dict().items()}
    for l, state in enumerate(states or []):
        arrays |= {f"state.{l}.{i}": s for i, s in enumerate(state)}
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def load_checkpoint(path):
    """-> (arrays dict, meta dict); a missing or unreadable file is a DataError (one line)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no checkpoint at {path}: run train.py first")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta")))
        TrainConfig(**meta["config"])  # a config this code can rebuild the model from
        missing = {"vocab", "kind", "step", "seconds", "history"} - meta.keys()
        if missing:
            raise KeyError(", ".join(sorted(missing)))
    except Exception as e:  # zip, json, key errors all mean the same to the user
        raise DataError(f"cannot read checkpoint {path} ({type(e).__name__}): retrain") from None
    return arrays, meta


def load_params(model, arrays, where):
    """Copy the checkpoint's "model.*" arrays into model.params in place (shapes must match)."""
    try:
        for k, v in model.params.items():
            v[...] = arrays[f"model.{k}"]
    except (KeyError, ValueError):
        raise DataError(f"{where} does not match its config or data: retrain") from None


def build_model(cfg, vocab_size, dtype=np.float32):
    return CharRNN(
        vocab_size,
        cfg.cell,
        cfg.n_embd,
        cfg.n_hidden,
        cfg.n_layers,
        cfg.forget_bias,
        cfg.seed,
        dtype,
    )


def plot_losses(history, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = np.array(history["train"])
    w = min(50, len(tr))
    smooth = np.convolve(tr, np.ones(w) / w, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(w, len(tr) + 1), smooth, label=f"train (mean of {w} steps)")
    if history["val"]:
        s, v = zip(*history["val"])
        ax.plot(s, v, "o-", label="validation")
    ax.set(xlabel="step", ylabel="loss (nats/char)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(cfg: TrainConfig) -> dict:
    if cfg.smoke:
        cfg.steps, cfg.eval_every = min(cfg.steps, 30), 15
    if cfg.cell not in CELLS:
        raise DataError(f"unknown cell type {cfg.cell!r}: choose one of {', '.join(CELLS)}")
    out = Path(cfg.out_dir)
    ckpt = out / CHECKPOINT
    steps_wanted = cfg.steps
    if cfg.resume:
        arrays, meta = load_checkpoint(ckpt)
        # the saved config may say resume=False (the first run's): keep this run's flags
        keep = {"steps": steps_wanted, "out_dir": cfg.out_dir, "resume": True, "smoke": cfg.smoke}
        cfg = TrainConfig(**{**meta["config"], **keep})
    vocab, kind, train_streams, val_streams = prepare_data(cfg)
    model = build_model(cfg, len(vocab))
    opt = OPTIMIZERS[cfg.optimizer](model.params, lr=cfg.lr)
    step, states, seconds = 0, None, 0.0
    history = {"train": [], "val": []}
    if cfg.resume:
        load_params(model, arrays, ckpt)
        try:
            opt.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("optim.")})
            step, seconds, history = meta["step"], meta["seconds"], meta["history"]
            if "state.0.0" in arrays:
                states = [
                    tuple(arrays[f"state.{l}.{i}"] for i in range(layer.n_states))
                    for l, layer in enumerate(model.layers)
                ]
        except (KeyError, ValueError):
            raise DataError(f"{ckpt} does not match its config or data: retrain") from None
        if step > cfg.steps:
            raise DataError(f"{ckpt} is already at step {step}: pass --steps {step} or more")
        print(f"resumed from {ckpt} at step {step}")
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"{cfg.cell} x{cfg.n_layers}, hidden {cfg.n_hidden}: {model.n_params():,} parameters | "
        f"vocab {len(vocab)} | {train_streams.n_chunks} chunks of {cfg.batch_size}x{cfg.seq_len} "
        f"per epoch | NumPy on the CPU"
    )

    def meta(done):
        return {"config": asdict(cfg), "vocab": vocab.chars, "kind": kind, "step": done,
                "seconds": seconds, "history": history}  # fmt: skip

    t0 = time.perf_counter() - seconds
    bar = tqdm(range(step, cfg.steps), initial=step, total=cfg.steps, disable=None)
    for step in bar:
        k = step % train_streams.n_chunks
        if k == 0:
            states = None  # a new pass over the streams starts from zero state
        x, y = train_streams.chunk(k)
        logits, new_states = model.forward(x, states)
        loss, dlogits = softmax_cross_entropy(logits, y)
        if not np.isfinite(loss):
            bar.close()
            raise FloatingPointError(
                f"non-finite loss at step {step}: stopped; the last good checkpoint is {ckpt}"
            )
        model.backward(dlogits)  # no dstates: the gradient stops at the chunk's start
        if cfg.clip > 0:
            clip_grad_norm(model.grads, cfg.clip)
        opt.step(model.grads)
        states = new_states
        history["train"].append(loss)
        bar.set_postfix(loss=f"{loss:.3f}")
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            val = evaluate(model, val_streams)
            history["val"].append((step + 1, val))
            seconds = time.perf_counter() - t0
            rng = np.random.default_rng((cfg.seed, step + 1))
            prime = vocab.encode("\n")
            txt = vocab.decode(sample(model, prime, 1, 60, rng, 0.8, 0, 0)[0])
            tqdm.write(
                f"step {step + 1} | loss {loss:.4f} | val {val:.4f} (ppl {np.exp(val):.2f}) | "
                f"{1000 * seconds / (step + 1):.0f} ms/step | {txt!r}"
            )
            save_checkpoint(ckpt, model, opt, states, meta(step + 1))
    step = cfg.steps
    seconds = time.perf_counter() - t0
    best = min(v for _, v in history["val"])
    metrics = {
        "project": "rnn",
        "dataset": Path(cfg.data).name if cfg.data else cfg.dataset,
        "metric": "val_loss_nats_per_char",
        "value": round(best, 4),
        "higher_is_better": False,
        "seconds": round(seconds, 1),
        "steps": step,
        "device": "cpu",
        "seed": cfg.seed,
        "final_val_loss": round(history["val"][-1][1], 4),
        "val_perplexity": round(float(np.exp(best)), 3),
        "cell": cfg.cell,
        "n_layers": cfg.n_layers,
        "n_hidden": cfg.n_hidden,
        "n_params": model.n_params(),
        "ms_per_step": round(1000 * seconds / step, 1),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_losses(history, out / "loss.png", f"{cfg.cell} on {metrics['dataset']}")
    return metrics


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    d = TrainConfig()
    p.add_argument("--dataset", default=d.dataset, choices=DATASETS,
                   help="unicode and pydoc ship with Python; names/shakespeare read --data-dir")  # fmt: skip
    p.add_argument("--data", default=None, help="any UTF-8 text file (overrides --dataset)")
    p.add_argument(
        "--data-dir", default=d.data_dir, help="holds text/names.txt, text/tinyshakespeare.txt"
    )
    p.add_argument(
        "--download", action="store_true", help="fetch names/shakespeare into --data-dir"
    )
    p.add_argument("--cell", default=d.cell, help="rnn, lstm or gru")
    p.add_argument("--n-layers", type=int, default=d.n_layers, help="stacked recurrent layers")
    p.add_argument("--n-embd", type=int, default=d.n_embd, help="embedding size")
    p.add_argument("--n-hidden", type=int, default=d.n_hidden, help="hidden units per layer")
    p.add_argument("--forget-bias", type=float, default=d.forget_bias, help="LSTM only")
    p.add_argument("--seq-len", type=int, default=d.seq_len, help="truncated-BPTT length T")
    p.add_argument(
        "--steps", type=int, default=d.steps, help="optimiser steps (total, also with --resume)"
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="parallel text streams B")
    p.add_argument("--optimizer", default=d.optimizer, choices=list(OPTIMIZERS))
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate")
    p.add_argument("--clip", type=float, default=d.clip, help="max global grad norm, 0 = off")
    p.add_argument(
        "--eval-every", type=int, default=d.eval_every, help="steps between val loss + checkpoint"
    )
    p.add_argument("--seed", type=int, default=d.seed, help="initialisation and data split")
    p.add_argument(
        "--device", default="auto", choices=["auto", "cpu"], help="NumPy runs on the CPU"
    )
    p.add_argument("--out-dir", default=d.out_dir, help="checkpoint, metrics.json, loss.png")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.npz")
    p.add_argument("--smoke", action="store_true", help="30 steps, to check that it runs")
    return p


def check_sizes(parser, args, names):
    """One line and exit 2 (parser.error) for a size flag below 1 or a learning rate <= 0."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.lr <= 0:
        parser.error("--lr must be positive")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cell not in CELLS:
        parser.error(f"unknown cell type {args.cell!r}: choose one of {', '.join(CELLS)}")
    sizes = ("steps", "batch_size", "seq_len", "n_hidden", "n_embd", "n_layers", "eval_every")
    check_sizes(parser, args, sizes)
    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    limit_blas_threads()
    try:
        metrics = train(cfg)
    except (DataError, FloatingPointError) as e:
        sys.exit(f"error: {e}")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
