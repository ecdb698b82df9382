"""Our U-Net against diffusers' UNet2DModel with the same weights, in one process, as ratios.

    python bench.py                     # the default digits U-Net, batch 64, CPU
    python bench.py --config cifar10    # DDPM's CIFAR-10 model (35.7M parameters), batch 8

Forward + backward time of one training step, ours / diffusers (interleaved repeats, median),
and sampling throughput (images/s of DDIM 50 with our sampler). Never a timed test.
"""

import argparse
import statistics
import tempfile
import time

import harness
import torch
from convert import load_diffusers_dir
from sample import sample
from schedule import Schedule

CONFIGS = {
    "digits": (dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64), layers_per_block=1,
                    down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                    up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8), 64),
    "cifar10": (dict(sample_size=32, block_out_channels=(128, 256, 256, 256), layers_per_block=2,
                     down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=32), 8),
}  # fmt: skip
COMMON = dict(
    norm_eps=1e-6,
    attention_head_dim=None,
    flip_sin_to_cos=False,
    freq_shift=1,
    downsample_padding=0,
)


def step_time(fn, x, t):
    """(wall, CPU) seconds of one forward + backward. CPU time is this process's alone, which a
    busy machine inflates far less than wall time (on CUDA only the wall time means anything)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn(x, t).square().mean().backward()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--config", default="digits", choices=sorted(CONFIGS))
    p.add_argument("--batch-size", type=int, default=0, help="0: the config's")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--smoke", action="store_true", help="2 repeats, batch 4")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    from diffusers import UNet2DModel

    threads = harness.set_threads(args.threads)
    device = harness.pick_device(args.device)
    cfg, batch = CONFIGS[args.config]
    batch = 4 if args.smoke else args.batch_size or batch
    repeats = 2 if args.smoke else args.repeats
    theirs = UNet2DModel(**cfg, **COMMON)
    with tempfile.TemporaryDirectory() as d:
        theirs.save_pretrained(d)
        ours, config = load_diffusers_dir(d)
    ours, theirs = ours.to(device), theirs.to(device)
    x = torch.randn(batch, config.in_channels, config.image_size, config.image_size, device=device)
    t = torch.randint(1000, (batch,), device=device)
    with torch.no_grad():
        diff = (ours(x, t) - theirs(x, t).sample).abs().max().item()
    run_ours, run_theirs = lambda x, t: ours(x, t), lambda x, t: theirs(x, t).sample
    for f in (run_ours, run_theirs):  # warm-up
        step_time(f, x, t)
    a, b = [], []
    for _ in range(repeats):
        a.append(step_time(run_ours, x, t))
        b.append(step_time(run_theirs, x, t))
    ma, mb = (statistics.median(w for w, _ in r) for r in (a, b))
    ca, cb = (statistics.median(c for _, c in r) for r in (a, b))
    print(
        f"{args.config}: batch {batch}, {sum(p.numel() for p in ours.parameters()):,} parameters, {device}, {threads} threads"
    )
    print(f"max |ours - diffusers| of the output (float32): {diff:.2e}")
    print(
        f"forward+backward: ours {ma * 1e3:.1f} ms, diffusers {mb * 1e3:.1f} ms, ratio {ma / mb:.2f}x"
    )
    print(
        f"  CPU time of this process: ours {ca * 1e3:.1f} ms, diffusers {cb * 1e3:.1f} ms, ratio {ca / cb:.2f}x"
    )
    ours.eval()
    n_steps = 5 if args.smoke else 50
    t0 = time.perf_counter()
    sample(ours, Schedule(1000), (batch, *ours.sample_shape), steps=n_steps)
    s = time.perf_counter() - t0
    print(f"sampling: DDIM {n_steps} steps, {batch / s:.2f} images/s ({s:.1f} s for {batch})")


if __name__ == "__main__":
    main()
