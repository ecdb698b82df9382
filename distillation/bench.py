"""The hand-written distillation loss against torch's fused ops, same process, as ratios.

    python bench.py [--repeats 50]

Then the point of distilling: the forward latency of the teacher and of each student.

Ours: model.distillation_loss (temperature log-softmax by hand, KL summed over classes, mean
over examples). Reference: alpha * T^2 * F.kl_div(..., reduction="batchmean",
log_target=True) + (1 - alpha) * F.cross_entropy. Forward + backward, median of --repeats.
"""

import argparse
import statistics
import time

import harness
import torch
import torch.nn.functional as F
from model import STUDENTS, TEACHER, Classifier, build_config, distillation_loss, n_params


def reference(s, t, y, T, alpha):
    kl = F.kl_div(
        F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean", log_target=True
    )
    return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, y)


def median_seconds(fn, s, t, y, repeats):
    times = []
    for _ in range(repeats + 3):
        s.grad = None
        t0 = time.perf_counter()
        fn(s, t, y, 4.0, 0.9).backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[3:])


def latency(model, x, repeats):
    """Median seconds of one forward pass of model on x."""
    times = []
    with torch.no_grad():
        for _ in range(repeats + 3):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[3:])


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--repeats", type=int, default=50, help="timed forward+backward passes")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: half the cores)")
    args = p.parse_args(argv)

    def run():
        harness.check(args.repeats > 0, f"--repeats {args.repeats}: must be > 0")
        print(f"threads {harness.set_threads(args.threads)}")
        print("| batch x classes | ours (ms) | torch (ms) | ours / torch |")
        print("|---|---|---|---|")
        for n, k in [(64, 10), (1024, 10), (1024, 1000)]:
            s = torch.randn(n, k, requires_grad=True)
            t, y = torch.randn(n, k), torch.randint(0, k, (n,))
            ours = median_seconds(distillation_loss, s, t, y, args.repeats)
            ref = median_seconds(reference, s, t, y, args.repeats)
            print(f"| {n} x {k} | {1e3 * ours:.3f} | {1e3 * ref:.3f} | {ours / ref:.2f} |")
        print(
            "\n| model (8x8 digits) | parameters | batch 1 (us) | batch 256 (ms) | teacher / model, batch 256 |"
        )
        print("|---|---|---|---|---|")
        models = {"teacher": TEACHER} | {f"{k} student": v for k, v in STUDENTS.items()}
        x, ref = torch.rand(256, 1, 8, 8), None
        for name, preset in models.items():
            m = Classifier(build_config(preset, 8, 1, 10)).eval()
            one, many = latency(m, x[:1], args.repeats), latency(m, x, args.repeats)
            ref = ref or many
            print(
                f"| {name} | {n_params(m):,} | {1e6 * one:.0f} | {1e3 * many:.2f} | {ref / many:.1f} |"
            )

    return harness.run_main(run)


if __name__ == "__main__":
    raise SystemExit(main())
