"""Text to image with a trained pipeline: a grid of samples for a prompt.

    python inference.py "a bold seven" --guidance 3 --steps 50
    python inference.py                      # every class prompt, one row each
    python inference.py ""                   # the empty prompt: unconditional samples

Rebuilds everything from --out-dir's autoencoder.pt and checkpoint.pt alone (pipeline.py).
A word outside the caption vocabulary is one line that lists the vocabulary.
"""

import argparse
import re
from pathlib import Path

import torch
from harness import UserError, run_main, set_threads
from pipeline import load_pipeline
from visualize import prompt_grid, save_grid, show


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "prompt",
        nargs="?",
        default=None,
        help="the caption; omitted: one row per class; '': unconditional",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=3.0,
        help="classifier-free guidance scale s (1: plain conditional)",
    )
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument(
        "--eta", type=float, default=0.0, help="DDIM eta (0: deterministic, 1: DDPM-like)"
    )
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: half the cores)")
    p.add_argument("--out-dir", default="runs", help="where train.py wrote its checkpoints")
    p.add_argument(
        "--no-ema", dest="ema", action="store_false", help="use the raw weights, not their EMA"
    )
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)

    def run():
        set_threads(args.threads)
        if args.guidance < 0:
            raise UserError(
                f"--guidance {args.guidance}: must be >= 0 (0 = unconditional, 1 = conditional)"
            )
        if args.num_samples < 1 or not 1 <= args.steps <= 1000 or not 0 <= args.eta <= 1:
            raise UserError("need --num-samples >= 1, --steps in 1..1000 and --eta in [0, 1]")
        pipe, ckpt = load_pipeline(args.out_dir, ema=args.ema)
        out = Path(args.out_dir)
        if args.prompt is None:
            prompt_grid(
                pipe,
                out / "prompts.png",
                guidance=args.guidance,
                steps=args.steps,
                dataset=ckpt["train_config"]["dataset"],
            )
            print(
                f"wrote {out}/prompts.png (one row per class prompt, s={args.guidance}, {args.steps} DDIM steps)"
            )
            return
        pipe.tokenizer.encode([args.prompt])  # unknown or too many words: one line, before any work
        g = torch.Generator().manual_seed(args.seed)
        images = pipe.generate(
            [args.prompt] * args.num_samples,
            steps=args.steps,
            guidance=args.guidance,
            eta=args.eta,
            generator=g,
        )
        cols = min(8, args.num_samples)
        tiles = list(show(images))
        rows = [tiles[i : i + cols] for i in range(0, len(tiles), cols)]
        rows[-1] += [tiles[0] * 0 + 1] * (cols - len(rows[-1]))  # pad the last row with blank tiles
        name = re.sub(r"[^a-z0-9]+", "_", args.prompt.lower()).strip("_") or "unconditional"
        path = out / f"prompt_{name}.png"
        title = f"'{args.prompt}'" if args.prompt else "'' (unconditional)"
        save_grid(
            rows,
            [""] * len(rows),
            path,
            f"{title}, s={args.guidance}, DDIM {args.steps} steps, seed {args.seed}",
        )
        print(f"wrote {path}")

    return run_main(run, lambda: None)


if __name__ == "__main__":
    raise SystemExit(main())
