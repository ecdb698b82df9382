"""Pictures for the LeNet-5 lesson: confusion matrix, mistakes, C1 filters, feature maps.

(loss.png, the curves, is harness.plot_loss.)

Used by train.py and inference.py; matplotlib with the Agg backend (files only, no window).
tests/test_inference.py checks that each function writes a PNG.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion(y_true, y_pred, names, path):
    """Counts of (true class, predicted class) on the test split; the diagonal is correct."""
    k = len(names)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (y_true, y_pred), 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                color = "white" if cm[i, j] > cm.max() / 2 else "black"
                ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(k), names, rotation=45 if len(names[0]) > 1 else 0, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title=f"test confusion ({np.trace(cm)}/{cm.sum()})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_misclassified(x, y_true, y_pred, names, path, limit=24):
    """A grid of the test images the model got wrong, titled true -> predicted."""
    wrong = np.flatnonzero(y_true != y_pred)[:limit]
    if len(wrong) == 0:  # say so, rather than an empty canvas
        fig, ax = plt.subplots(figsize=(5, 1.4))
        ax.axis("off")
        ax.text(0.5, 0.5, f"no errors: all {len(y_true)} test images classified correctly",
                ha="center", va="center", fontsize=10)  # fmt: skip
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return
    cols = 8
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(x[i, 0], cmap="gray")
        ax.set_title(f"{names[y_true[i]]}->{names[y_pred[i]]}", fontsize=7, color="crimson")
    fig.suptitle(f"misclassified test images: {int(np.sum(y_true != y_pred))} (true->predicted)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_filters(W, path):
    """C1's six 5x5 kernels (F, 1, 5, 5), each on its own symmetric colour scale."""
    fig, axes = plt.subplots(1, len(W), figsize=(1.6 * len(W), 1.9))
    for f, ax in enumerate(np.atleast_1d(axes)):
        m = np.abs(W[f, 0]).max()
        im = ax.imshow(W[f, 0], cmap="RdBu_r", vmin=-m, vmax=m)
        ax.set_title(f"C1 #{f}", fontsize=8)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
    fig.suptitle("learned C1 filters (red +, blue -; each on its own scale)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_feature_maps(image, maps, path):
    """The input and the feature maps of C1 (6@28x28), S2 (6@14x14), C3 (16@10x10)."""
    rows = [("C1", maps["A1"][0]), ("S2", maps["S2"][0]), ("C3", maps["A3"][0])]
    fig, axes = plt.subplots(4, 16, figsize=(14, 4.2))
    for ax in axes.flat:
        ax.axis("off")
    im = axes[0, 0].imshow(image, cmap="gray")
    axes[0, 0].set_title("input", fontsize=8)
    bar = dict(fraction=0.01, pad=0.01)  # one colour bar at the end of each row, for the row
    fig.colorbar(im, ax=axes[0].tolist(), **bar).ax.tick_params(labelsize=6)
    for r, (name, fmap) in enumerate(rows, start=1):
        # one colour scale per row, so the maps of a layer compare; the bar at the row's end
        lo, hi = float(fmap.min()), float(fmap.max())
        for c in range(len(fmap)):
            im = axes[r, c].imshow(fmap[c], cmap="viridis", vmin=lo, vmax=hi)
        fig.colorbar(im, ax=axes[r].tolist(), **bar).ax.tick_params(labelsize=6)
        axes[r, 0].set_title(
            f"{name} {fmap.shape[0]}@{fmap.shape[1]}x{fmap.shape[2]}", fontsize=8, loc="left"
        )
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_prediction(image, probs, names, title, path):
    """The image the model saw (32x32) beside a bar chart of its class probabilities."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7, 3.3), gridspec_kw={"width_ratios": [1, 1.6]})
    ax1.imshow(image, cmap="gray")
    ax1.set_title(title, fontsize=9)
    ax1.axis("off")
    top = int(np.argmax(probs))
    ax2.barh(
        range(len(names)),
        probs,
        color=["crimson" if i == top else "grey" for i in range(len(names))],
    )
    ax2.set_yticks(range(len(names)), names, fontsize=8)
    ax2.invert_yaxis()
    ax2.set(xlim=(0, 1), xlabel="probability")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
