"""Pictures shared by train.py and inference.py: the decision boundary of a 2-D
classifier, the fit of a 1-D regression, a grid of image predictions, and
draw_task_figure that picks one. matplotlib with the file-only Agg backend.
(loss.png is harness.plot_loss.)
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from data import CLASS_NAMES, TOYS_2D  # noqa: E402
from model import predict, to_labels  # noqa: E402


def decision_boundary(predict, X, y, path, title, points=None, ax=None):
    """Colour the plane by predicted class; scatter the data (and given points).

    With ``ax`` it draws into that axes and saves nothing (figure grids)."""
    lo, hi = X.min(0) - 0.3, X.max(0) + 0.3
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300))
    grid = np.stack([g0.ravel(), g1.ravel()], 1)  # (300*300, 2)
    Z = predict(grid).reshape(g0.shape)
    n_classes = int(max(y.max(), Z.max())) + 1
    fig, ax = plt.subplots(figsize=(4.8, 4.4)) if ax is None else (None, ax)
    cmap = plt.get_cmap("tab10")
    colours = [cmap(i) for i in range(n_classes)]
    ax.contourf(g0, g1, Z, levels=np.arange(n_classes + 1) - 0.5, colors=colours, alpha=0.3)
    ax.scatter(X[:, 0], X[:, 1], c=[colours[i] for i in y], s=8, edgecolors="k", linewidths=0.2)
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], marker="*", s=160, c="k", label="your points")
        ax.legend(loc="upper right")
    ax.set(title=title, xlabel="x1", ylabel="x2")
    if fig is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)


def regression_fit(predict, X, y, path, title):
    xs = np.linspace(X.min() - 0.5, X.max() + 0.5, 400)[:, None]  # (400, 1)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.scatter(X[:, 0], y[:, 0], s=6, alpha=0.5, label="test data")
    ax.plot(xs[:, 0], predict(xs)[:, 0], c="C3", lw=2, label="MLP")
    ax.set(title=title, xlabel="x", ylabel="y")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def image_grid(X, y_true, y_pred, path, names=None, n=16):
    """n images (square side inferred from D) titled 'pred (true)', red when wrong."""
    side = int(round(np.sqrt(X.shape[1])))
    cols = 8
    rows = int(np.ceil(min(n, len(X)) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.45))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i >= min(n, len(X)):
            continue
        ax.imshow(X[i].reshape(side, side), cmap="gray_r")
        label = lambda c: names[c] if names else str(c)
        ax.set_title(
            f"{label(y_pred[i])}\n({label(y_true[i])})",
            fontsize=7,
            color="k" if y_pred[i] == y_true[i] else "r",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def draw_task_figure(model, data, mcfg, out_dir, points=None, name=None):
    """The picture that explains the task: boundary, regression fit or image predictions."""
    dtype = np.dtype(mcfg.dtype)
    if data.name in TOYS_2D:
        decision_boundary(
            lambda G: to_labels(predict(model, G.astype(dtype)), data.task),
            data.X_test,
            data.y_test,
            out_dir / (name or "decision_boundary.png"),
            f"{data.name}: MLP {list(mcfg.sizes)} {mcfg.activation}",
            points,
        )
    elif data.task == "regression":
        f = lambda G: predict(model, G.astype(dtype))
        regression_fit(f, data.X_test, data.y_test, out_dir / (name or "fit.png"), data.name)
    else:
        X = data.X_test[:16].astype(dtype)
        pred = to_labels(predict(model, X), data.task)
        names = CLASS_NAMES.get(data.name)
        image_grid(X, data.y_test[:16], pred, out_dir / (name or "predictions.png"), names)
