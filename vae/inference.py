"""Samples, reconstructions, interpolations and the NLL of given images, from a checkpoint alone.

    python inference.py                          # runs/checkpoint.pt -> runs/samples.png ...
    python inference.py --images a.png b.png     # -ELBO and IWAE NLL of each image, in nats

The model is rebuilt from the checkpoint's model_config; the test set it reconstructs is
the run's own (train_config names it). tests/test_inference.py runs both modes on a smoke
checkpoint and checks the one-line errors (missing checkpoint, image of the wrong size).
"""

import argparse
import math
from pathlib import Path

import harness
import numpy as np
import torch
from data import Pixels, load_dataset
from model import VAE, VAEConfig
from train import CONTINUOUS, DYNAMIC_BINARY
from visualize import samples_and_reconstructions, save_grid


def load_model(checkpoint, device="cpu"):
    ckpt = harness.load_checkpoint(checkpoint, device)
    model = VAE(VAEConfig(**ckpt["model_config"])).to(device)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError:
        raise harness.UserError(f"{checkpoint}: weights do not match its model_config") from None
    return model.eval(), ckpt


def run_data(ckpt, device):
    """The run's dataset and its pixel preparation, as train.py had them."""
    tc = ckpt["train_config"]
    data = load_dataset(tc["dataset"], tc["data_dir"], False, tc["test_set_only"], tc["image_size"])
    mc = ckpt["model_config"]
    if data.shape != (mc["channels"], mc["height"], mc["width"]):
        raise harness.UserError(f"the data is {data.shape} but the checkpoint models {mc}")
    pixels = Pixels(mc["likelihood"], data.n_levels, dynamic=tc["dataset"] in DYNAMIC_BINARY)
    return data, pixels


def read_images(paths, mc, n_levels):
    """Image files -> (N, C, H, W) levels 0..L-1, refused unless already the model's size."""
    from PIL import Image, UnidentifiedImageError

    C, H, W = mc.channels, mc.height, mc.width
    out = []
    for p in paths:
        try:
            with Image.open(p) as img:
                arr = np.asarray(img.convert("RGB" if C == 3 else "L"), dtype=np.float64)
        except (UnidentifiedImageError, OSError) as e:
            raise harness.UserError(f"{p} is not an image ({type(e).__name__})") from None
        if arr.shape[:2] != (H, W):
            raise harness.UserError(
                f"{p} is {arr.shape[1]}x{arr.shape[0]}; the checkpoint models {W}x{H} images (resize it first)"
            )
        arr = arr.reshape(H, W, C).transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
        out.append(np.round(arr / 255 * (n_levels - 1)))
    return torch.from_numpy(np.stack(out)).to(torch.uint8)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--out-dir", default="runs", help="where train.py wrote its checkpoint")
    p.add_argument("--checkpoint", default=None, help="default: OUT_DIR/checkpoint.pt")
    p.add_argument("--num-samples", type=int, default=64, help="samples and reconstructions")
    p.add_argument("--images", nargs="+", default=None, help="image files whose NLL to print")
    p.add_argument("--k", type=int, default=1000, help="importance samples of the IWAE NLL")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: half the cores)")
    args = p.parse_args(argv)
    return harness.run_main(lambda: infer(args), lambda: args.out_dir)


def infer(args):
    harness.check(args.num_samples >= 1, f"--num-samples {args.num_samples}: must be at least 1")
    harness.check(args.k >= 1, f"--k {args.k}: the IWAE bound needs at least one sample")
    harness.set_threads(args.threads)
    device = harness.pick_device(args.device)
    out = Path(args.out_dir)
    model, ckpt = load_model(args.checkpoint or out / harness.CHECKPOINT, device)
    mc, tc = model.config, ckpt["train_config"]
    g = torch.Generator(device=device).manual_seed(args.seed)
    if args.images:
        n_levels = 17 if tc["dataset"] == "digits" else 256
        pixels = Pixels(mc.likelihood, n_levels, dynamic=tc["dataset"] in DYNAMIC_BINARY)
        x = pixels.fixed(read_images(args.images, mc, n_levels).to(device))
        with torch.no_grad():
            nelbo = -model.elbo(x, eps=torch.randn(10, len(x), mc.latent_dim, generator=g, device=device))["elbo"]  # fmt: skip
            nll = -model.iwae_bound(x, args.k, generator=g)
        D = math.prod(x.shape[1:])
        for path, a, b in zip(args.images, nelbo.tolist(), nll.tolist()):
            bpd = (
                f" ({pixels.bits_per_dim(b, D):.3f} bits/dim)"
                if mc.likelihood == "gaussian"
                else ""
            )
            print(f"{path}: -ELBO {a:.3f} nats, IWAE(k={args.k}) NLL {b:.3f} nats{bpd}")
        return 0
    data, pixels = run_data(ckpt, device)
    harness.prepare_out_dir(out)
    x = pixels.fixed(data.test.levels[: args.num_samples].to(device), seed=2)
    n = len(x)
    samples_and_reconstructions(model, x, out, args.num_samples, g)
    written = [out / "samples.png", out / "reconstructions.png"]
    if n >= 2:  # rows of 10 steps between pairs of test images
        pairs = [model.interpolate(x[2 * i], x[2 * i + 1], steps=10) for i in range(min(4, n // 2))]
        save_grid(torch.cat(pairs), out / "interpolation.png", nrow=10)
        written.append(out / "interpolation.png")
    with torch.no_grad():
        nll = -model.iwae_bound(x[:8], args.k, generator=g)
    kind = "continuous" if tc["dataset"] in CONTINUOUS else "binarised"
    print(f"{tc['dataset']} ({kind}, {mc.likelihood}): IWAE(k={args.k}) NLL of the first test images: " + " ".join(f"{v:.2f}" for v in nll.tolist()))  # fmt: skip
    print("wrote " + ", ".join(map(str, written)) + " (reconstructions: original | model)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
