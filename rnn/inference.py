"""Sample text from a trained character model: rebuilt from the checkpoint's model_config alone.

With no arguments it loads runs/checkpoint.npz (written by `python train.py`) and prints ten
samples. Line corpora (names, Unicode character names) give one new name per sample, each starting
with --prompt ("--prompt q" for names beginning with q); prose gives --max-new-tokens characters
after it. p(next char) = softmax(logits / temperature) over the --top-k most likely characters
(0: all); --temperature 0 is greedy decoding (always the most likely character).
"""

import argparse
from pathlib import Path

import harness
import numpy as np
from data import Vocab
from harness import UserError
from model import CharRNN, ModelConfig, sample


def load_model(out_dir):
    """-> (model, vocab, checkpoint) from OUT_DIR/checkpoint.npz."""
    path = Path(out_dir) / harness.CHECKPOINT
    ckpt = harness.load_checkpoint(path)
    try:
        model = CharRNN(**vars(harness.config_from_dict(ModelConfig, ckpt["model_config"])))
        vocab, _ = Vocab(ckpt["vocab"]), ckpt["kind"]
    except (TypeError, ValueError, KeyError) as e:
        raise UserError(f"{path} does not describe a CharRNN this code can build ({e})") from None
    harness.load_params(model.params, ckpt["model"], path)
    return model, vocab, ckpt


def generate(model, vocab, kind, prompt="", n=10, max_new=None, temperature=0.8, top_k=0, seed=0):
    """-> list of n strings, each the prompt followed by the model's continuation."""
    rng = np.random.default_rng(seed)
    ids = vocab.encode("\n" + prompt)  # start as at the beginning of a line
    if kind == "lines":  # one name each: stop at the terminator
        outs = sample(model, ids, n, max_new or 100, rng, temperature, top_k, stop_id=0)
    else:
        outs = sample(model, ids, n, max_new or 300, rng, temperature, top_k)
    return [prompt + vocab.decode(o) for o in outs]


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out-dir", default="runs", help="folder holding checkpoint.npz")
    p.add_argument("--prompt", default="", help="text every sample starts with")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0, help="0 = no top-k filter")
    p.add_argument("--num-samples", type=int, default=10, help="number of samples")
    p.add_argument("--max-new-tokens", type=int, default=0,
                   help="max characters per sample (0: 100 for names, 300 for prose)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    return p


def run(args):
    harness.check(args.temperature >= 0 and np.isfinite(args.temperature), f"--temperature must be >= 0 (0: greedy), got {args.temperature}")  # fmt: skip
    harness.check(args.top_k >= 0, f"--top-k must be >= 0, got {args.top_k}")
    harness.check(args.num_samples >= 1, f"--num-samples must be at least 1, got {args.num_samples}")  # fmt: skip
    harness.check(args.max_new_tokens >= 0, f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")  # fmt: skip
    with harness.blas_threads(1):
        model, vocab, ckpt = load_model(args.out_dir)
        texts = generate(model, vocab, ckpt["kind"], args.prompt, args.num_samples,
                         args.max_new_tokens, args.temperature, args.top_k, args.seed)  # fmt: skip
    cfg = ckpt["train_config"]
    print(
        f"{cfg['cell']} x{cfg['n_layer']} (hidden {cfg['n_hidden']}) trained {ckpt['step']} steps "
        f"on {Path(cfg['data']).name if cfg['data'] else cfg['dataset']}; temperature "
        f"{args.temperature}{' (greedy)' if args.temperature == 0 else ''}, "
        f"top-k {args.top_k or 'off'}, prompt {args.prompt!r}"
    )
    sep = "\n" if ckpt["kind"] == "lines" else "\n" + "-" * 60 + "\n"
    print(sep.join(texts))


def main(argv=None):
    args = build_parser().parse_args(argv)
    return harness.run_main(lambda: run(args), lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
