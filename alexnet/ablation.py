"""What each of the paper's tricks buys: train.py's recipe with one trick taken away at a time,
the same steps and seeds for every variant, then a table and a figure.

    python ablation.py --dataset fashion-mnist --data-dir ~/data --steps 430 --eval-every 43 --fancy-pca 0 --threads 1

Every train.py flag sets the recipe the variants share; --seeds and --variants choose the runs.
Writes OUT_DIR/ablation.json, OUT_DIR/ablation.md (the README's table) and --figure: the
validation error of every variant by step, and the training error of ReLU against tanh
(the paper's Figure 1: a four-layer CNN with ReLUs reached 25% training error on CIFAR-10 six
times sooner than the same network with tanh units). Each run keeps its own OUT_DIR/NAME_sSEED/.
"""

import statistics
import time
from dataclasses import replace
from pathlib import Path

import harness
import matplotlib
import train as T

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# name -> the TrainConfig fields that differ from the recipe
VARIANTS = {
    "full": {},
    "no-augment": {"augment": False, "fancy_pca": 0.0},
    "no-dropout": {"dropout": 0.0},
    "no-lrn": {"lrn": False},
    "tanh": {"activation": "tanh"},
    "pool-2x2": {"pool_kernel": 2},
}
LABELS = {
    "full": "full recipe",
    "no-augment": "without crops, flips, PCA noise (`--no-augment --fancy-pca 0`)",
    "no-dropout": "without dropout (`--dropout 0`)",
    "no-lrn": "without LRN (`--no-lrn`)",
    "tanh": "tanh instead of ReLU (`--activation tanh`)",
    "pool-2x2": "non-overlapping 2x2/2 pooling (`--pool-kernel 2`)",
}
TARGET_TRAIN_ERROR = 0.25  # Figure 1's threshold


def steps_to(history, error=TARGET_TRAIN_ERROR):
    """The first eval_step whose training batches since the previous one erred <= error."""
    for step, acc in zip(history["eval_step"], history["train_accuracy"]):
        if 1 - acc <= error:
            return step
    return None


def run_all(cfg, names, seeds, out):
    """{name: [{seed, test_accuracy, cpu_seconds, history}, ...]} for every name and seed."""
    results = {}
    for name in names:
        for seed in seeds:
            run_cfg = replace(
                cfg, seed=seed, out_dir=str(out / f"{name}_s{seed}"), **VARIANTS[name]
            )
            cpu = time.process_time()
            metrics = T.train(run_cfg)
            history = harness.load_checkpoint(Path(run_cfg.out_dir) / harness.CHECKPOINT)["history"]
            results.setdefault(name, []).append(
                dict(
                    seed=seed,
                    test_accuracy=metrics["value"],
                    cpu_seconds=time.process_time() - cpu,
                    wall_seconds=metrics["seconds"],
                    steps_to_target=steps_to(history),
                    history={
                        k: history[k] for k in ("eval_step", "val_accuracy", "train_accuracy")
                    },
                )
            )
    return results


def table(results, seeds):
    """The README's markdown table: test accuracy per seed, mean, change from the full recipe."""
    full = (
        statistics.mean(r["test_accuracy"] for r in results["full"]) if "full" in results else None
    )
    head = "| variant | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | vs full |"
    head += f" steps to {TARGET_TRAIN_ERROR:.0%} train error | CPU s per run |"
    lines = [head, "|---|" + "---:|" * (len(seeds) + 4)]
    for name, runs in results.items():
        accs = [r["test_accuracy"] for r in runs]
        mean = statistics.mean(accs)
        delta = "" if full is None or name == "full" else f"{100 * (mean - full):+.2f} pt"
        reach = ", ".join(str(r["steps_to_target"] or "not reached") for r in runs)
        cpu = statistics.mean(r["cpu_seconds"] for r in runs)
        cells = " | ".join(f"{a:.4f}" for a in accs)
        lines.append(f"| {LABELS[name]} | {cells} | {mean:.4f} | {delta} | {reach} | {cpu:.0f} |")
    return "\n".join(lines) + "\n"


def figure(results, path, title):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, runs) in enumerate(results.items()):
        for j, r in enumerate(runs):
            h = r["history"]
            err = [1 - a for a in h["val_accuracy"]]
            left.plot(h["eval_step"], err, color=f"C{i}", alpha=1 if j == 0 else 0.45,
                      label=name if j == 0 else None)  # fmt: skip
            if name in ("full", "tanh"):
                err = [1 - a for a in h["train_accuracy"]]
                right.plot(h["eval_step"], err, color=f"C{i}", alpha=1 if j == 0 else 0.45,
                           label=("ReLU" if name == "full" else "tanh") if j == 0 else None)  # fmt: skip
    left.set(xlabel="step", ylabel="validation error", title=f"{title}: one trick removed")
    right.axhline(TARGET_TRAIN_ERROR, color="gray", ls="--", lw=1, label="25% (Figure 1)")
    right.set(xlabel="step", ylabel="training error (batches since last point)",
              title="ReLU vs tanh, the paper's Figure 1")  # fmt: skip
    for ax in (left, right):
        ax.set_ylim(0, None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("lighter lines: the other seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = T.build_parser()
    parser.description = __doc__.split("\n")[0]
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds, one run per variant each")  # fmt: skip
    parser.add_argument("--variants", default=",".join(list(VARIANTS)[:5]), help=f"comma-separated, of {', '.join(VARIANTS)}")  # fmt: skip
    parser.add_argument("--figure", default="", help="where the figure goes (default OUT_DIR/ablation.png)")  # fmt: skip
    parser.set_defaults(out_dir="runs/ablation")
    args = parser.parse_args(argv)

    def run():
        cfg = harness.config_from_args(T.TrainConfig, args)
        harness.check(not cfg.resume, "--resume: not for ablation.py (each variant is a fresh run)")
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
        bad = [n for n in names if n not in VARIANTS]
        harness.check(names and not bad, f"--variants {args.variants}: expected names from {', '.join(VARIANTS)}")  # fmt: skip
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise harness.UserError(f"--seeds {args.seeds}: expected integers, e.g. 0,1") from None
        out = harness.prepare_out_dir(cfg.out_dir)
        results = run_all(cfg, names, seeds, out)
        md = table(results, seeds)
        harness.write_json(results, out / "ablation.json")
        (out / "ablation.md").write_text(md)
        fig = Path(args.figure) if args.figure else out / "ablation.png"
        figure(results, fig, cfg.dataset)
        print(md + f"wrote {out / 'ablation.json'}, {out / 'ablation.md'}, {fig}")
        return 0

    return harness.run_main(run, lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
