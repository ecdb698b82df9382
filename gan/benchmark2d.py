"""The 2-D benchmark: vanilla GAN vs LSGAN vs WGAN-GP vs spectral norm, 8-ring and 5x5 grid, 3 seeds.

    python benchmark2d.py                      # 4 variants x 2 mixtures x 3 seeds, --jobs 2
    python benchmark2d.py --datasets ring8 --seeds 0,1,2 --steps 2000

Each run is `train.py --dataset D --loss L [--spectral-norm] --seed S --ema 0.99` with the
variant's own recipe (train.variant_settings: Adam betas, n_critic, the penalty's lambda); all
share one step budget and lr 1e-3 (README, Flags, says why). Every run is scored twice on the
same noise: its final G, and an exponential moving average of G's weights (Yazici et al. 2019,
arXiv 1806.04498), which costs no extra training. Writes OUT_DIR/results.json (one row per
run), table.md (mean +- std over seeds, and every seed), coverage.png (bars) and samples.png
(the EMA G's samples of seed 0 per variant and mixture). Modes covered and the high-quality
share are defined in metrics.py (Metz et al. 2016, arXiv 1611.02163; Srivastava et al. 2017,
arXiv 1705.07761).
"""

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import harness
import numpy as np

VARIANTS = {
    "vanilla": {"loss": "ns"},
    "lsgan": {"loss": "lsgan"},
    "wgan-gp": {"loss": "wgan-gp"},
    "sn": {"loss": "ns", "spectral_norm": True},
}


def one_run(job):
    """A train() in a worker process with one thread: (variant, dataset, seed, metrics).

    cpu_seconds: the worker's CPU time for this run (time.process_time), beside the wall-clock
    `seconds` that depend on the machine's load."""
    from train import TrainConfig, train

    variant, dataset, seed, steps, ema, out, smoke = job
    cfg = TrainConfig(dataset=dataset, seed=seed, steps=steps, eval_every=max(steps // 4, 1), ema=ema, threads=1, out_dir=str(out / f"{dataset}-{variant}-{seed}"), smoke=smoke, **VARIANTS[variant])  # fmt: skip
    cpu = time.process_time()
    m = train(cfg) | {"cpu_seconds": round(time.process_time() - cpu, 2)}
    keys = ("modes_covered", "high_quality", "mode_counts", "seconds", "cpu_seconds", "steps")
    keys += ("modes_covered_no_ema", "high_quality_no_ema") if ema else ()
    return variant, dataset, seed, {k: m[k] for k in keys}


def write_table(rows, path, k_of):
    """Mean +- std over seeds, and every seed, per mixture and variant: final G, then G's EMA."""
    lines = ["| mixture | variant | G | modes covered (mean +- std) | high-quality share | per seed (modes, share) |", "|---|---|---|---|---|---|"]  # fmt: skip
    kinds = [("final", "_no_ema"), ("EMA", "")] if "high_quality_no_ema" in rows[0] else [("final", "")]  # fmt: skip
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        for v in VARIANTS:
            rs = [r for r in rows if r["dataset"] == ds and r["variant"] == v]
            for kind, suffix in kinds if rs else []:
                m = np.array([r["modes_covered" + suffix] for r in rs], float)
                q = np.array([r["high_quality" + suffix] for r in rs])
                seeds = ", ".join(f"({int(a)}, {b:.0%})" for a, b in zip(m, q))
                lines.append(f"| {ds} | {v} | {kind} | {m.mean():.1f} +- {m.std():.1f} of {k_of[ds]} | {q.mean():.1%} +- {q.std():.1%} | {seeds} |")  # fmt: skip
    Path(path).write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def samples_figure(rows, out, path):
    import torch
    from data import mixture_centers
    from visualize import plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(len(datasets), len(VARIANTS), figsize=(2.6 * len(VARIANTS), 2.6 * len(datasets)), squeeze=False)  # fmt: skip
    for i, ds in enumerate(datasets):
        c = mixture_centers(ds)
        for j, v in enumerate(VARIANTS):
            ax = axes[i, j]
            ax.set(xticks=[], yticks=[], title=f"{ds}: {v}")
            ckpt = out / f"{ds}-{v}-{min(r['seed'] for r in rows)}" / harness.CHECKPOINT
            if not ckpt.exists():
                continue
            pts = torch.load(ckpt, weights_only=True)["frames"][-1]["fake"].numpy()
            ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.4, c="k")
            ax.scatter(c[:, 0], c[:, 1], s=20, facecolors="none", edgecolors="lime")
            lim = np.abs(c).max() + 1.5
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--datasets", default="ring8,grid25")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=2000, help="generator steps per run")
    p.add_argument("--ema", type=float, default=0.99, help="also score an EMA of G (0: off)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    p.add_argument("--out-dir", default="runs/benchmark2d")
    p.add_argument("--smoke", action="store_true", help="one seed, a few steps of tiny models")
    args = p.parse_args(argv)

    def run():
        from data import MIXTURES, mixture_centers
        from visualize import coverage_bars

        datasets, variants = args.datasets.split(","), args.variants.split(",")
        datasets = datasets[:1] if args.smoke else datasets
        harness.check(all(d in MIXTURES for d in datasets), f"--datasets {args.datasets}: from {', '.join(MIXTURES)}")  # fmt: skip
        harness.check(all(v in VARIANTS for v in variants), f"--variants {args.variants}: from {', '.join(VARIANTS)}")  # fmt: skip
        try:
            seeds = [int(s) for s in args.seeds.split(",")][: 1 if args.smoke else None]
        except ValueError:
            raise harness.UserError(f"--seeds {args.seeds}: integers separated by commas") from None
        harness.check(args.steps >= 1 and args.jobs >= 1, "--steps and --jobs must be >= 1")
        harness.check(0 <= args.ema < 1, f"--ema {args.ema}: expected a decay in [0, 1)")
        out = harness.prepare_out_dir(args.out_dir)
        jobs = [
            (v, d, s, args.steps, args.ema, out, args.smoke)
            for d in datasets
            for v in variants
            for s in seeds
        ]
        wall = time.time()
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = [
                dict(variant=v, dataset=d, seed=s, **m) for v, d, s, m in pool.map(one_run, jobs)
            ]
        harness.write_json(rows, out / "results.json")
        print(write_table(rows, out / "table.md", {d: len(mixture_centers(d)) for d in datasets}))
        kinds = {"": ""} | ({" no-EMA": "_no_ema"} if args.ema else {})
        table = {d: {v + k: [(r["modes_covered" + x], r["high_quality" + x]) for r in rows if r["dataset"] == d and r["variant"] == v] for v in variants for k, x in kinds.items()} for d in datasets}  # fmt: skip
        coverage_bars(table, out / "coverage.png")
        samples_figure(rows, out, out / "samples.png")
        cpu = sum(r["cpu_seconds"] for r in rows)
        print(f"{len(rows)} runs in {time.time() - wall:.0f} s wall, {cpu:.0f} s of CPU in {args.jobs} workers")  # fmt: skip
        print(f"wrote {out}/results.json, table.md, coverage.png, samples.png")

    return harness.run_main(run)


if __name__ == "__main__":
    raise SystemExit(main())
