"""Speed in one process, as ratios: the three detectors' images/s on the same test scenes,
and our NMS and RoIAlign against torchvision.ops on the same inputs.

    python bench.py --runs runs/sliding runs/two-stage runs/one-stage --repeats 3 --threads 1

Without --runs only the box operations are timed. Each figure is the best of --repeats.
"""

import argparse
import time
from pathlib import Path

import harness
import torch
import torchvision
from boxes import nms, roi_align
from inference import from_checkpoint, run_test_images


def best_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--runs", nargs="*", default=[], help="run folders whose checkpoints are timed")
    p.add_argument("--n-test", type=int, default=64, help="test scenes each detector sees")
    p.add_argument("--repeats", type=int, default=3, help="timings per figure (the best is kept)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: half the cores)")
    args = p.parse_args(argv)
    return harness.run_main(lambda: run(args))


def run(args):
    harness.check(args.repeats > 0, f"--repeats {args.repeats}: expected a positive number")
    harness.check(args.n_test > 0, f"--n-test {args.n_test}: expected a positive number")
    threads = harness.set_threads(args.threads)
    print(f"{threads} threads; best of {args.repeats}")
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 4 + torch.rand(300, 2, generator=g) * 20], 1)
    scores = torch.rand(300, generator=g)
    feats = torch.randn(16, 64, 16, 16, generator=g)
    rois = torch.cat([torch.randint(0, 16, (512, 1), generator=g).float(), boxes[:256].repeat(2, 1)], 1)  # fmt: skip
    print("| operation | ours ms | torchvision ms | ours / torchvision |")
    print("|---|---:|---:|---:|")
    for name, ours, ref in [
        (
            "nms, 300 boxes, IoU 0.7",
            lambda: nms(boxes, scores, 0.7),
            lambda: torchvision.ops.nms(boxes, scores, 0.7),
        ),  # fmt: skip
        (
            "roi_align, 512 RoIs, 64x16x16, 7x7",
            lambda: roi_align(feats, rois, 7, 0.25, 2, True),
            lambda: torchvision.ops.roi_align(feats, rois, 7, 0.25, 2, True),
        ),  # fmt: skip
    ]:
        a, b = best_time(ours, args.repeats), best_time(ref, args.repeats)
        print(f"| {name} | {a * 1e3:.2f} | {b * 1e3:.2f} | {a / b:.2f}x |")
    if args.runs:
        print("\n| detector | images/s | relative to the first |")
        print("|---|---:|---:|")
        first = None
        for d in args.runs:
            model, _, tc = from_checkpoint(Path(d) / harness.CHECKPOINT, torch.device("cpu"))
            x, _ = run_test_images(tc, args.n_test)
            images = x.float() / 255
            with torch.no_grad():
                s = best_time(lambda m=model, im=images: [m.detect(im[i : i + 32]) for i in range(0, len(im), 32)], args.repeats)  # fmt: skip
            ips = len(images) / s
            first = first or ips
            print(f"| {model.cfg.detector} | {ips:.1f} | {ips / first:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
