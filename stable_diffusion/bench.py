"""Why a latent space: FLOPs and seconds per sampling step, latent vs pixel-space U-Net.

    python bench.py                 # digits size: 16x16 images, 4x4x4 latents
    python bench.py --image-size 28 --repeats 20

The same U-Net configuration (channels, attention, text) runs once on the autoencoder's
latents (4, H/4, W/4) and once on pixels (1, H, W), as a pixel-space diffusion model would.
FLOPs are counted by torch.utils.flop_counter (matmuls and convolutions); seconds are the
median of --repeats guided steps (a batch of 2 x --batch-size, as classifier-free guidance
needs), in this process, one after the other. The decoder runs once per image, not per step:
its cost is printed beside.

    python bench.py --released --steps 2     # SD v1's full-size U-Net at 512x512, ours vs diffusers

--released: seconds per guided denoising step (a batch of 2 latents of 4x64x64 and 77 CLIP
states) of diffusers' UNet2DConditionModel and of sd_unet.SDUNet holding the very same
tensors (random weights, SD v1's config; about 3.4 GB in float32), interleaved, median of
--steps after one warm-up each; ours twice: the hand-written attention and --fast's fused one.
"""

import argparse
import statistics
import time

import torch
from autoencoder import Autoencoder, AutoencoderConfig
from model import Attention, UNet, UNetConfig
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


def released(args):
    """Ours vs diffusers on the same full-size SD v1 U-Net weights, one process, interleaved."""
    from convert import SD_V1_UNET, load_into, unet_config, unet_to_ours
    from diffusers import UNet2DConditionModel
    from sd_unet import SDUNet

    config = dict(SD_V1_UNET)
    if args.smoke:  # the same blocks at a toy width: checks the command runs
        config.update(
            block_out_channels=[32, 32, 64, 64], norm_num_groups=8, cross_attention_dim=32
        )
    with torch.device("meta"):
        ref = UNet2DConditionModel(**config)
        ours = SDUNet(unet_config(config))
    ref = ref.to_empty(device="cpu").eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights at a sane scale (no random init of 860M numbers)
        for name, p in ref.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            else:
                p.fill_(1.0 if "norm" in name and name.endswith("weight") else 0.0)
    load_into(ours, unet_to_ours(ref.state_dict()), "bench").eval()  # shares ref's tensors
    n_params = sum(p.numel() for p in ours.parameters())
    side = args.image_size // 8
    z = torch.randn(2, 4, side, side, generator=g)
    t = torch.full((2,), 981)
    context = torch.randn(2, 77, config["cross_attention_dim"], generator=g)

    def ours_step(fast):
        Attention.fast = fast
        return ours(z, t, context)

    runs = {
        "diffusers": lambda: ref(z, t, encoder_hidden_states=context).sample,
        "ours": lambda: ours_step(False),
        "ours --fast": lambda: ours_step(True),
    }
    times = {name: [] for name in runs}
    with torch.no_grad():
        outs = {name: fn() for name, fn in runs.items()}  # warm-up, and the same numbers?
        for _ in range(args.steps):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    Attention.fast = False
    diff = max((outs[n] - outs["diffusers"]).abs().max().item() for n in ("ours", "ours --fast"))
    print(f"SD v1 U-Net, {n_params / 1e6:.1f}M parameters, float32, {args.image_size}x{args.image_size} "
          f"(latents 4x{side}x{side}), batch 2 (guidance), {args.threads} thread(s), "
          f"median of {args.steps} step(s); max |ours - diffusers| = {diff:.1e}")  # fmt: skip
    base = statistics.median(times["diffusers"])
    for name, ts in times.items():
        s = statistics.median(ts)
        print(f"{name:<14}{s:>9.2f} s/step{s / base:>8.2f}x diffusers")


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
    p.add_argument(
        "--released", action="store_true", help="SD v1's U-Net: ours vs diffusers (see above)"
    )
    p.add_argument("--steps", type=int, default=2, help="--released: timed steps per model")
    args = p.parse_args(argv)
    if args.released:
        if args.image_size == 16:
            args.image_size = 64 if args.smoke else 512
        if args.image_size % 64 or args.steps < 1:
            p.error("--released needs --image-size a multiple of 64 and --steps >= 1")
        torch.set_num_threads(args.threads)
        args.steps = 1 if args.smoke else args.steps
        return released(args)
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
