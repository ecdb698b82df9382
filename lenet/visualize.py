"""Pictures for the LeNet-5 lesson: curves, confusion matrix, mistakes, C1 filters, feature maps.

Used by train.py and inference.py; matplotlib with the Agg backend (files only, no window).
tests/test_inference.py checks that each function writes a PNG.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_curves(history, path):
    """Training loss/accuracy per epoch, with validation when there is a validation split."""
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax2.plot(epochs, [h["train_acc"] for h in history], label="train")
    if "val_loss" in history[0]:
        ax1.plot(epochs, [h["val_loss"] for h in history], label="val")
        ax2.plot(epochs, [h["val_acc"] for h in history], label="val")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax2.set_ylim(max(0.0, min(h["train_acc"] for h in history) - 0.02), 1.0)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


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
    fig, axes = plt.subplots(1, len(W), figsize=(1.3 * len(W), 1.6))
    for f, ax in enumerate(np.atleast_1d(axes)):
        m = np.abs(W[f, 0]).max()
        ax.imshow(W[f, 0], cmap="RdBu_r", vmin=-m, vmax=m)
        ax.set_title(f"C1 #{f}", fontsize=8)
        ax.axis("off")
    fig.suptitle("learned C1 filters (red +, blue -)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_feature_maps(image, maps, path):
    """The input and the feature maps of C1 (6@28x28), S2 (6@14x14), C3 (16@10x10)."""
    rows = [("C1", maps["A1"][0]), ("S2", maps["S2"][0]), ("C3", maps["A3"][0])]
    fig, axes = plt.subplots(4, 16, figsize=(14, 4.2))
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(image, cmap="gray")
    axes[0, 0].set_title("input", fontsize=8)
    for r, (name, fmap) in enumerate(rows, start=1):
        for c in range(len(fmap)):
            axes[r, c].imshow(fmap[c], cmap="viridis")
        axes[r, 0].set_title(
            f"{name} {fmap.shape[0]}@{fmap.shape[1]}x{fmap.shape[2]}", fontsize=8, loc="left"
        )
    fig.tight_layout()
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
