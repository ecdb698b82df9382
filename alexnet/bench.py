"""Speed of model.py's AlexNet against torchvision's, same weights, same process, as ratios.

    python bench.py                       # CPU, 224x224, forward + backward, batch 8
    python bench.py --device cuda --batch-size 128   # adds AMP + channels_last rows on a GPU

Both networks are the `torchvision` layout with the same state dict, so the ratio measures
only the code around the same convolutions (it should be about 1.00). The small preset's
training step is timed with and without LRN, which is where its time goes, and our
LocalResponseNorm (its backward written out) against torch.nn.LocalResponseNorm on the
activation of the small preset's first LRN.
"""

import argparse
import time
from contextlib import nullcontext

import harness
import torch
import torch.nn.functional as F
import torchvision
from model import AlexNet, AlexNetConfig, LocalResponseNorm


def step_seconds(model, x, y, repeats, ctx, device):
    """Median seconds of forward + backward (no optimizer) over `repeats` after one warm-up."""
    times = []
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with ctx:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t)
        model.zero_grad(set_to_none=True)
    return sorted(times)[len(times) // 2]


def compare(name, ours, ref, x, y, repeats, ctx, device, labels=("ours", "torchvision")):
    """Interleaved so that a change of machine load hits both alike."""
    a, b = [], []
    for _ in range(3):
        a.append(step_seconds(ours, x, y, repeats, ctx, device))
        b.append(step_seconds(ref, x, y, repeats, ctx, device))
    a, b = min(a), min(b)
    n = x.shape[0]
    print(
        f"{name:30s} {labels[0]} {n / a:8.1f} img/s  {labels[1]} {n / b:8.1f} img/s  time ratio {a / b:.3f}x"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="auto|cpu|cuda|mps")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: half the cores)")
    p.add_argument("--smoke", action="store_true", help="tiny batch and input, one repeat: seconds")
    args = p.parse_args(argv)

    def run():
        device = harness.pick_device(args.device)
        threads = harness.set_threads(args.threads)
        size, bs, reps = (64, 2, 1) if args.smoke else (224, args.batch_size, args.repeats)
        print(f"device {harness.device_name(device)}, {threads} threads, batch {bs}, {size}x{size}")
        torch.manual_seed(0)
        ref = torchvision.models.alexnet(weights=None).to(device).train()
        ours = AlexNet(AlexNetConfig(preset="torchvision", num_classes=1000)).to(device).train()
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(bs, 3, size, size, device=device)
        y = torch.randint(0, 1000, (bs,), device=device)
        compare("torchvision layout, float32", ours, ref, x, y, reps, nullcontext(), device)
        if device.type == "cuda":
            amp = torch.autocast("cuda", dtype=torch.bfloat16)
            ours, ref = ours.to(memory_format=torch.channels_last), ref.to(memory_format=torch.channels_last)  # fmt: skip
            xc = x.contiguous(memory_format=torch.channels_last)
            compare("bf16 autocast + channels_last", ours, ref, xc, y, reps, amp, device)
        xs = torch.randn(128 if not args.smoke else 8, 3, 32, 32, device=device)
        ys = torch.randint(0, 10, (xs.shape[0],), device=device)
        small = AlexNet(AlexNetConfig(preset="small")).to(device)
        no_lrn = AlexNet(AlexNetConfig(preset="small", lrn=False)).to(device)
        compare("small preset, 32x32, batch %d" % xs.shape[0], small, no_lrn, xs, ys, reps, nullcontext(), device, ("LRN", "no LRN"))  # fmt: skip
        # the layer alone, forward + backward, on conv1's output: (B, 48, 16, 16); the loss is a
        # cross-entropy over the 48 channels at every position, so the backward gets a real g
        a = torch.randn(xs.shape[0], 48, 16, 16, device=device, requires_grad=True)
        ya = torch.randint(0, 48, (xs.shape[0], 16, 16), device=device)
        ref_lrn = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        compare("LRN layer, (%d, 48, 16, 16)" % xs.shape[0], LocalResponseNorm(), ref_lrn, a, ya, reps, nullcontext(), device, ("ours", "torch.nn"))  # fmt: skip

    return harness.run_main(run)


if __name__ == "__main__":
    raise SystemExit(main())
