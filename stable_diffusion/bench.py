"""Why a latent space: FLOPs and seconds per sampling step, latent vs pixel-space U-Net.

    python bench.py                 # digits size: 16x16 images, 4x4x4 latents
    python bench.py --image-size 28 --repeats 20

The same U-Net configuration (channels, attention, text) runs once on the autoencoder's
latents (4, H/4, W/4) and once on pixels (1, H, W), as a pixel-space diffusion model would.
FLOPs are counted by torch.utils.flop_counter (matmuls and convolutions); seconds are the
median of --repeats guided steps (a batch of 2 x --batch-size, as classifier-free guidance
needs), in this process, one after the other. The decoder runs once per image, not per step:
its cost is printed beside.
"""

import argparse
import statistics
import time

import torch
from autoencoder import Autoencoder, AutoencoderConfig
from model import UNet, UNetConfig
from torch.utils.flop_counter import FlopCounterMode


def flops(fn):
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def seconds(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--smoke", action="store_true", help="one repeat of a batch of 2: checks it runs"
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.repeats, args.batch_size = 1, 1
    if args.image_size % 4 or args.image_size < 8 or args.repeats < 1 or args.batch_size < 1:
        p.error("--image-size must be a multiple of 4 and >= 8; --repeats and --batch-size >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, H = 2 * args.batch_size, args.image_size
    context, mask = torch.randn(B, 8, 64), torch.zeros(B, 8, dtype=torch.bool)
    t = torch.full((B,), 500)
    rows = []
    for name, channels, side in (("latent", 4, H // 4), ("pixel", 1, H)):
        unet = UNet(UNetConfig(latent_channels=channels)).eval()
        x = torch.randn(B, channels, side, side)
        step = lambda unet=unet, x=x: unet(x, t, context, mask)  # noqa: E731
        with torch.no_grad():
            rows.append(
                (name, f"{channels}x{side}x{side}", flops(step), seconds(step, args.repeats))
            )
    ae = Autoencoder(AutoencoderConfig()).eval()
    z = torch.randn(args.batch_size, 4, H // 4, H // 4)
    with torch.no_grad():
        decode = (flops(lambda: ae.decode(z)), seconds(lambda: ae.decode(z), args.repeats))
    print(f"one guided DDIM step, batch {B} (= 2 x {args.batch_size}), {args.threads} thread(s):")
    print(f"{'space':<8}{'input':>10}{'GFLOP/step':>12}{'ms/step':>10}")
    for name, shape, f, s in rows:
        print(f"{name:<8}{shape:>10}{f / 1e9:>12.3f}{s * 1e3:>10.1f}")
    (_, _, f_lat, s_lat), (_, _, f_pix, s_pix) = rows
    print(f"pixel / latent: {f_pix / f_lat:.1f}x the FLOPs, {s_pix / s_lat:.1f}x the time per step")
    print(
        f"decoder, once per batch of {args.batch_size}: {decode[0] / 1e9:.3f} GFLOP, {decode[1] * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
