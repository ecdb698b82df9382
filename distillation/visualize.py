"""Pictures of dark knowledge: soft targets as bar charts, and the class similarity they reveal.

Hinton et al. 2015 (https://arxiv.org/abs/1503.02531), Section 2: the teacher's small
probabilities ("a 2 that looks a bit like a 3") are the information a student learns from;
raising T makes them visible. Used by inference.py and experiments.py.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_soft_targets(images, titles, rows, classes, path):
    """One row per image: the image, then one bar chart per (label, probs (N, K)) in rows."""
    n, m = len(images), len(rows)
    fig, axes = plt.subplots(n, m + 1, figsize=(2.0 + 2.6 * m, 1.6 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i], cmap="gray")
        axes[i, 0].set_title(titles[i], fontsize=8)
        axes[i, 0].axis("off")
        for j, (label, probs) in enumerate(rows):
            ax = axes[i, j + 1]
            p = np.asarray(probs[i])
            ax.bar(
                range(len(p)), p, color=["C1" if k == p.argmax() else "C0" for k in range(len(p))]
            )
            ax.set_ylim(0, 1)
            ax.set_xticks(range(len(p)))
            ax.set_xticklabels(
                classes if len(classes[0]) == 1 else [c[:2] for c in classes], fontsize=6
            )
            ax.tick_params(axis="y", labelsize=6)
            if i == 0:
                ax.set_title(label, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_similarity(matrix, classes, path, title):
    """matrix (K, K): mean teacher probability of class j on test images of class i (diagonal hidden)."""
    m = np.array(matrix, dtype=float)
    np.fill_diagonal(m, np.nan)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    im = ax.imshow(m, cmap="viridis")
    ax.set_xticks(
        range(len(classes)), classes, fontsize=7, rotation=90 if len(classes[0]) > 1 else 0
    )
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("teacher's probability for class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_sweep(xs, series, xlabel, path, title, log_x=False):
    """series: {label: (means, stds)} against xs."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for label, (means, stds) in series.items():
        ax.errorbar(
            xs, 100 * np.array(means), yerr=100 * np.array(stds), marker="o", capsize=3, label=label
        )
    if log_x:
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
