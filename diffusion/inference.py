"""Sample from a trained diffusion model: a grid, and a denoising strip from x_T to x_0.

    python inference.py                                  # runs/checkpoint.pt, DDIM 50 steps, EMA weights
    python inference.py --sampler ddpm                   # all 1000 ancestral steps
    python inference.py --ddim-steps 10 --guidance 2     # fewer steps, classifier-free guidance w = 2
    python inference.py --init-from ~/models/ddpm-cifar10-32 --num-samples 16   # DDPM's released weights

The model is rebuilt from the checkpoint's model_config alone (or, with --init-from, from a
diffusers UNet2DModel directory through convert.py).
"""

import argparse
import time
from pathlib import Path

import harness
import torch
from harness import UserError, check
from model import UNet, UNetConfig
from sample import sample
from schedule import Schedule
from visualize import image_rows


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out-dir", default="runs", help="where the checkpoint is and the pictures go")
    p.add_argument(
        "--checkpoint", default="", help="checkpoint path (default OUT_DIR/checkpoint.pt)"
    )
    p.add_argument(
        "--init-from",
        default="",
        help="a diffusers UNet2DModel directory (config.json + safetensors)",
    )
    p.add_argument("--num-samples", type=int, default=20, help="images in the grid")
    p.add_argument("--sampler", default="ddim", help="ddim or ddpm (all training steps)")
    p.add_argument(
        "--ddim-steps",
        type=int,
        default=50,
        help="DDIM steps (a sub-sequence of the training steps)",
    )
    p.add_argument(
        "--eta", type=float, default=0.0, help="DDIM eta: 0 deterministic, 1 DDPM's variance"
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=0.0,
        help="classifier-free guidance w (0: plain conditional)",
    )
    p.add_argument(
        "--label", type=int, default=-1, help="class of every sample (-1: 0, 1, ..., 9 in turn)"
    )
    p.add_argument(
        "--clip", action="store_true", help="clip the predicted x_0 to [-1, 1] at every step"
    )
    p.add_argument("--raw", action="store_true", help="the raw weights instead of the EMA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: half the cores)")
    return p


def load_model(args, device):
    """(model, schedule, prediction) from our checkpoint or a diffusers directory."""
    if args.init_from:
        from convert import load_diffusers_dir, schedule_from_dir

        try:
            model, _ = load_diffusers_dir(args.init_from)
            T, kind = schedule_from_dir(args.init_from)
        except ValueError as e:
            raise UserError(f"--init-from {args.init_from}: {e}") from None
        return model.to(device).eval(), Schedule(T, kind), "eps"
    ckpt = harness.load_checkpoint(Path(args.checkpoint or Path(args.out_dir) / harness.CHECKPOINT))
    mc = ckpt["model_config"]
    model = UNet(
        UNetConfig(**{**mc, "channels": tuple(mc["channels"]), "attention": tuple(mc["attention"])})
    )
    model.load_state_dict(ckpt["model"] if args.raw else ckpt["ema"])
    tc = ckpt["train_config"]
    return model.to(device).eval(), Schedule(tc["timesteps"], tc["beta_schedule"]), tc["prediction"]


def run(args):
    check(args.num_samples > 0, f"--num-samples {args.num_samples}: must be positive")
    check(args.sampler in ("ddim", "ddpm"), f"--sampler {args.sampler}: expected ddim or ddpm")
    check(args.eta >= 0, f"--eta {args.eta}: must be >= 0")
    harness.set_threads(args.threads)
    device = harness.pick_device(args.device)
    out = harness.prepare_out_dir(args.out_dir)
    model, schedule, prediction = load_model(args, device)
    n_cls = model.num_classes
    check(
        args.guidance == 0 or n_cls > 0,
        f"--guidance {args.guidance}: this model is unconditional (trained without labels)",
    )
    check(args.sampler == "ddpm" or 1 <= args.ddim_steps <= schedule.T,
          f"--ddim-steps {args.ddim_steps}: expected 1 to the {schedule.T} training steps")  # fmt: skip
    check(
        args.label < n_cls,
        f"--label {args.label}: the model knows classes 0..{n_cls - 1}"
        if n_cls
        else "--label: this model is unconditional",
    )
    y = None
    if n_cls:
        y = (
            torch.full((args.num_samples,), args.label)
            if args.label >= 0
            else torch.arange(args.num_samples) % n_cls
        )
        y = y.to(device)
    g = torch.Generator().manual_seed(args.seed)
    shape = (args.num_samples, *model.sample_shape)
    t0 = time.time()
    x, kept = sample(model, schedule, shape, y, args.sampler, args.ddim_steps, args.eta, args.guidance,
                     args.clip, prediction, generator=g, keep=8)  # fmt: skip
    seconds = time.time() - t0
    steps = schedule.T if args.sampler == "ddpm" else args.ddim_steps
    cols = 10 if args.num_samples >= 10 else args.num_samples
    image_rows([x[i : i + cols] for i in range(0, len(x), cols)], out / "samples.png")
    n_strip = min(args.num_samples, 8)  # rows: samples; columns: x_T ... x_0
    image_rows([torch.stack([k[1][i] for k in kept]) for i in range(n_strip)], out / "strip.png",
               col_labels=[f"t={k[0]}" if k[0] >= 0 else "x_0" for k in kept])  # fmt: skip
    what = f"{args.sampler.upper()} {steps} steps" + (
        f", eta {args.eta}" if args.sampler == "ddim" else ""
    )
    print(
        f"{args.num_samples} samples, {what}, guidance {args.guidance}: {seconds:.1f} s ({args.num_samples / seconds:.1f} images/s)"
    )
    print(f"wrote {out / 'samples.png'} and {out / 'strip.png'} (x_T to x_0)")


def main(argv=None):
    args = build_parser().parse_args(argv)
    return harness.run_main(lambda: run(args), lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
