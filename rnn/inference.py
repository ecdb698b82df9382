"""Sample text from a trained character model: rebuilt from the checkpoint alone.

With no arguments it loads runs/checkpoint.npz (written by `python train.py`) and prints ten
samples. Line corpora (names, Unicode character names) give one new name per sample, each starting
with --prime ("--prime q" for names beginning with q); prose gives --length characters after it.
p(next char) = softmax(logits / temperature) over the --top-k most likely characters (0: all).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from data import DataError, Vocab
from model import sample
from train import (
    CHECKPOINT,
    TrainConfig,
    build_model,
    limit_blas_threads,
    load_checkpoint,
    load_params,
)


def load_model(out_dir):
    arrays, meta = load_checkpoint(Path(out_dir) / CHECKPOINT)
    cfg = TrainConfig(**meta["config"])
    vocab = Vocab(meta["vocab"])
    model = build_model(cfg, len(vocab))
    load_params(model, arrays, f"checkpoint in {out_dir}")
    return model, vocab, meta


def generate(model, vocab, kind, prime="", n=10, length=None, temperature=0.8, top_k=0, seed=0):
    """-> list of n strings, each the prime followed by the model's continuation."""
    rng = np.random.default_rng(seed)
    ids = vocab.encode("\n" + prime)  # start as at the beginning of a line
    if kind == "lines":  # one name each: stop at the terminator
        outs = sample(model, ids, n, length or 100, rng, temperature, top_k, stop_id=0)
    else:
        outs = sample(model, ids, n, length or 300, rng, temperature, top_k)
    return [prime + vocab.decode(o) for o in outs]


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out-dir", default="runs", help="folder holding checkpoint.npz")
    p.add_argument("--prime", default="", help="text every sample starts with")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=0, help="0 = no top-k filter")
    p.add_argument("--n", type=int, default=10, help="number of samples")
    p.add_argument("--length", type=int, default=None,
                   help="max characters per sample (default: 100 for names, 300 for prose)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument(
        "--device", default="auto", choices=["auto", "cpu"], help="NumPy runs on the CPU"
    )
    args = p.parse_args(argv)
    if args.temperature <= 0:
        p.error("--temperature must be positive")
    if args.top_k < 0 or args.n < 1 or (args.length is not None and args.length < 1):
        p.error("--top-k must be >= 0, --n and --length >= 1")
    limit_blas_threads()
    try:
        model, vocab, meta = load_model(args.out_dir)
        texts = generate(
            model, vocab, meta["kind"], args.prime, args.n, args.length,
            args.temperature, args.top_k, args.seed,
        )  # fmt: skip
    except DataError as e:
        sys.exit(f"error: {e}")
    cfg = meta["config"]
    print(
        f"{cfg['cell']} x{cfg['n_layers']} (hidden {cfg['n_hidden']}) trained {meta['step']} steps "
        f"on {Path(cfg['data']).name if cfg['data'] else cfg['dataset']}; "
        f"temperature {args.temperature}, top-k {args.top_k or 'off'}, prime {args.prime!r}"
    )
    sep = "\n" if meta["kind"] == "lines" else "\n" + "-" * 60 + "\n"
    print(sep.join(texts))


if __name__ == "__main__":
    main()
