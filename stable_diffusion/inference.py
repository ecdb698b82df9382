"""Text to image with a trained pipeline: a grid of samples for a prompt.

    python inference.py "a bold seven" --guidance 3 --steps 50
    python inference.py                      # every class prompt, one row each
    python inference.py ""                   # the empty prompt: unconditional samples

Rebuilds everything from --out-dir's autoencoder.pt and checkpoint.pt alone (pipeline.py).
A word outside the caption vocabulary is one line that lists the vocabulary.

The released Stable Diffusion v1 weights, in a diffusers-format folder you downloaded yourself
(unet/ vae/ text_encoder/ tokenizer/; nothing here uses the network), run in the same code:

    python inference.py --init-from DIR "a photograph of an astronaut riding a horse" \
        --steps 50 --guidance 7.5 --seed 0      # writes --out-dir/sd_<prompt>.png, 512x512
"""

import argparse
import re
import sys
from pathlib import Path

import torch
from harness import UserError, pick_device, run_main, set_threads
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
        default=None,
        help="classifier-free guidance scale s (1: plain conditional); default 3, --init-from 7.5",
    )
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument(
        "--eta", type=float, default=0.0, help="DDIM eta (0: deterministic, 1: DDPM-like)"
    )
    p.add_argument(
        "--num-samples", type=int, default=None, help="default 16 (a grid), --init-from 1"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: half the cores)")
    p.add_argument("--out-dir", default="runs", help="where train.py wrote its checkpoints")
    p.add_argument(
        "--no-ema", dest="ema", action="store_false", help="use the raw weights, not their EMA"
    )
    sd = p.add_argument_group("the released SD v1 weights")
    sd.add_argument("--init-from", default=None, help="a diffusers-format Stable Diffusion folder")
    sd.add_argument("--image-size", type=int, default=512, help="a multiple of 8 (64 for tests)")
    sd.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    sd.add_argument(
        "--dtype",
        default="auto",
        help="auto (cuda: float16, else float32)|float32|float16|bfloat16",
    )
    sd.add_argument(
        "--fast", action="store_true", help="fused attention (model.Attention.fast): less memory"
    )
    return p


def released(args):
    """Text -> one PNG per sample with the released weights, our code (convert.py, sd_unet.py)."""
    from convert import load_released
    from PIL import Image

    device = pick_device(args.device)
    dtype = {"auto": torch.float16 if device.type == "cuda" else torch.float32,
             "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}.get(args.dtype)  # fmt: skip
    if dtype is None:
        raise UserError(f"--dtype {args.dtype}: expected auto, float32, float16 or bfloat16")
    if dtype == torch.float16 and device.type == "cpu":
        raise UserError("--dtype float16 needs --device cuda (CPU: float32 or bfloat16)")
    if args.image_size < 64 or args.image_size % 8:
        raise UserError(f"--image-size {args.image_size}: a multiple of 8, at least 64")
    prompt = args.prompt or ""
    pipe = load_released(args.init_from, dtype).to(device)
    if pipe.tokenizer.too_long(prompt):
        print(f"warning: the prompt is {pipe.tokenizer.too_long(prompt)} tokens over CLIP's 75; "
              "they are dropped", file=sys.stderr)  # fmt: skip
    from model import Attention

    Attention.fast = args.fast
    g = torch.Generator().manual_seed(args.seed)
    n = args.num_samples or 1
    images = pipe.generate(
        [prompt] * n, steps=args.steps, guidance=7.5 if args.guidance is None else args.guidance,
        image_size=args.image_size, generator=g, eta=args.eta, progress=True,
    )  # fmt: skip
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:60] or "unconditional"
    for i, image in enumerate(images):
        path = out / (f"sd_{name}.png" if n == 1 else f"sd_{name}_{i}.png")
        pixels = (image.permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")
        Image.fromarray(pixels).save(path)
        print(
            f"wrote {path} ({args.image_size}x{args.image_size}, DDIM {args.steps} steps, seed {args.seed})"
        )


def main(argv=None):
    args = build_parser().parse_args(argv)

    def run():
        set_threads(args.threads)
        if args.init_from is not None:
            if args.num_samples is not None and args.num_samples < 1:
                raise UserError("--num-samples must be >= 1")
            if (args.guidance or 0) < 0 or not 1 <= args.steps <= 1000 or not 0 <= args.eta <= 1:
                raise UserError("need --guidance >= 0, --steps in 1..1000 and --eta in [0, 1]")
            return released(args)
        args.guidance = 3.0 if args.guidance is None else args.guidance
        args.num_samples = 16 if args.num_samples is None else args.num_samples
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
