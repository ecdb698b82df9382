"""Pictures of the game: the 2-D strip with D's decision surface, sample grids, curves, bars.

    python visualize.py                    # redraws runs/'s pictures from its checkpoint

train.py calls game_strip / progress_strip / plot_curves at the end of a run; benchmark2d.py
calls coverage_bars. Radford et al. 2016 (arXiv 1511.06434) show samples on fixed noise the
same way; the 2-D strip follows Metz et al. 2016 (arXiv 1611.02163, figure 1).
tests/test_train.py checks that these files are written.
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def game_strip(frames, centers, path, title="", max_frames=6):
    """Each frame: D's score over the plane (colour: the frame's own scale), G's points, the modes."""
    idx = np.unique(
        np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
    )
    fig, axes = plt.subplots(1, len(idx), figsize=(2.6 * len(idx), 2.8), squeeze=False)
    for ax, i in zip(axes[0], idx):
        f = frames[i]
        lim = float(f["lim"])
        s = f["surface"].float().numpy()
        ax.imshow(s, extent=(-lim, lim, -lim, lim), origin="lower", cmap="coolwarm", alpha=0.8)
        pts = f["fake"].float().numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=1, c="k", alpha=0.5)
        ax.scatter(centers[:, 0], centers[:, 1], s=25, facecolors="none", edgecolors="lime", lw=1.2)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], title=f"step {f['step']}")
    fig.suptitle(
        f"{title}: D's score (red high: 'real'), G's samples (black), modes (green)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def image_grid(x, nrow=8):
    """(N, C, S, S) in [-1, 1] -> one (rows*S, nrow*S, C) array in [0, 1], 1-pixel gaps."""
    x = np.clip((np.asarray(x, np.float32) + 1) / 2, 0, 1)
    n, c, s, _ = x.shape
    rows = -(-n // nrow)
    out = np.ones((rows * (s + 1), nrow * (s + 1), c), np.float32)
    for i in range(n):
        r, q = divmod(i, nrow)
        out[r * (s + 1) : r * (s + 1) + s, q * (s + 1) : q * (s + 1) + s] = x[i].transpose(1, 2, 0)
    return out[..., 0] if c == 1 else out


def save_grid(x, path, nrow=8, title=""):
    g = image_grid(x, nrow)
    fig, ax = plt.subplots(figsize=(g.shape[1] / 30 + 0.5, g.shape[0] / 30 + 0.7))
    ax.imshow(g, cmap="gray", vmin=0, vmax=1)
    ax.set(xticks=[], yticks=[], title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def progress_strip(frames, path, max_frames=6):
    """The same fixed noise at each evaluation: one column of 8 samples per frame."""
    idx = np.unique(
        np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
    )
    fig, axes = plt.subplots(1, len(idx), figsize=(1.6 * len(idx), 6.5), squeeze=False)
    for ax, i in zip(axes[0], idx):
        ax.imshow(image_grid(frames[i]["fake"][:16].numpy(), nrow=2), cmap="gray", vmin=0, vmax=1)
        ax.set(xticks=[], yticks=[], title=f"step {frames[i]['step']}")
    fig.suptitle("fixed noise over training", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_curves(history, path):
    """D's loss per step (light), the held-out D and mean G losses per evaluation."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["step"], history["train_loss"], alpha=0.3, label="D loss (train, per step)")
    ax.plot(history["eval_step"], history["val_loss"], "o-", label="D loss (held-out batch)")
    ax.plot(history["eval_step"], history["g_loss"], "s-", label="G loss (mean since last eval)")
    ax.set(xlabel="generator step", ylabel="loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def coverage_bars(table, path):
    """table: {dataset: {variant: [(modes, high_quality) per seed]}} -> grouped bars, mean +- std."""
    datasets = list(table)
    fig, axes = plt.subplots(2, len(datasets), figsize=(5 * len(datasets), 5.5), squeeze=False)
    for j, ds in enumerate(datasets):
        variants = list(table[ds])
        for i, (what, label) in enumerate([(0, "modes covered"), (1, "high-quality share")]):
            vals = [np.array([r[what] for r in table[ds][v]], float) for v in variants]
            ax = axes[i, j]
            ax.bar(
                variants,
                [v.mean() for v in vals],
                yerr=[v.std() for v in vals],
                capsize=4,
                color="C0",
            )
            for k, v in enumerate(vals):
                ax.scatter([k] * len(v), v, c="k", s=10, zorder=3)
            ax.set(ylabel=label, title=f"{ds}: {label} (bars mean +- std, dots seeds)")
            ax.tick_params(axis="x", labelsize=8, labelrotation=35)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    import harness

    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--checkpoint", default="", help="default: OUT_DIR/checkpoint.pt")
    args = p.parse_args(argv)

    def run():
        from pathlib import Path

        from data import mixture_centers

        out = Path(args.out_dir)
        ckpt = harness.load_checkpoint(args.checkpoint or out / harness.CHECKPOINT)
        frames, tc = ckpt["frames"], ckpt["train_config"]
        if ckpt["model_config"]["kind"] == "mlp":
            game_strip(frames, mixture_centers(tc["dataset"]), out / "game.png", tc["loss"])
        else:
            progress_strip(frames, out / "progress.png")
        plot_curves(ckpt["history"], out / "curves.png")
        print(f"wrote {out}/curves.png and the progress strip")

    return harness.run_main(run)


if __name__ == "__main__":
    raise SystemExit(main())
