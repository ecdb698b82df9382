"""Pictures of a trained AlexNet: first-layer filters (the paper's Figure 3), augmentation
examples (Section 4.1), the test confusion matrix, and test images with their top-5 bars
(the paper's Figure 4, left).

    python visualize.py                          # runs/checkpoint.pt -> runs/*.png
    python visualize.py --init-from torchvision --weights alexnet-owt-7be5be79.pth   # filters only
"""

import argparse
from pathlib import Path

import harness
import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from augment import center_crop, fancy_pca, fancy_pca_basis, random_crop_flip  # noqa: E402
from data import DataError, load  # noqa: E402
from inference import from_checkpoint, from_torchvision, predict  # noqa: E402


def filter_grid(model, path):
    """conv1's kernels, each scaled to [0, 1] on its own, as in Figure 3 (96 of 11x11x3 there)."""
    w = model.features[0].weight.detach().cpu()  # (out, in, k, k)
    n = w.shape[0]
    cols = 12 if n > 48 else 8
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            k = w[i]
            k = (k - k.min()) / (k.max() - k.min() + 1e-12)
            ax.imshow(k.permute(1, 2, 0).squeeze(-1), cmap="gray" if k.shape[0] == 1 else None)
    fig.suptitle(f"conv1: {n} filters of {tuple(w.shape[1:])}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def augmentation_examples(train_x, crop, path, std=0.1, n=4):
    """Rows: an image, then random crop+flip, then three draws of the PCA colour noise."""
    values, vectors = fancy_pca_basis(center_crop(train_x[:2000], crop).float() / 255)
    x = train_x[:n].float() / 255
    columns = [("stored", center_crop(x, crop)), ("crop + flip", random_crop_flip(x, crop))]
    columns += [(f"fancy PCA {i + 1}", fancy_pca(center_crop(x, crop), values, vectors, std * 3)) for i in range(3)]  # fmt: skip
    fig, axes = plt.subplots(n, len(columns), figsize=(len(columns) * 1.4, n * 1.4))
    for j, (title, imgs) in enumerate(columns):
        axes[0, j].set_title(title, fontsize=8)
        for i in range(n):
            axes[i, j].imshow(
                imgs[i].clamp(0, 1).permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1
            )
            axes[i, j].axis("off")
    fig.suptitle("augmentation (PCA noise shown at 3x the training std)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion(probs, y, classes, path):
    k = len(classes)
    m = torch.zeros(k, k, dtype=torch.long)
    m.index_put_((y, probs.argmax(1)), torch.ones_like(y), accumulate=True)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(m, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, m[i, j].item(), ha="center", va="center", fontsize=7, color="white" if m[i, j] > m.max() / 2 else "black")  # fmt: skip
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test accuracy {(m.diag().sum() / m.sum()).item():.4f} on {len(y)} images")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def top5_grid(images, probs, y, classes, crop, path, n=8):
    fig, axes = plt.subplots(2, n, figsize=(n * 1.6, 3.6), gridspec_kw={"height_ratios": [1, 1]})
    top = probs.topk(min(5, probs.shape[1]), dim=1)
    for i in range(n):
        img = center_crop(images[i].float() / 255, crop)
        axes[0, i].imshow(img.permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(classes[y[i]], fontsize=7)
        axes[0, i].axis("off")
        names = [classes[c] for c in top.indices[i].tolist()]
        colours = ["tab:red" if c == y[i] else "tab:gray" for c in top.indices[i].tolist()]
        axes[1, i].barh(range(len(names))[::-1], top.values[i].tolist(), color=colours)
        axes[1, i].set_yticks(range(len(names))[::-1], names, fontsize=6)
        axes[1, i].set_xlim(0, 1)
        axes[1, i].tick_params(axis="x", labelsize=6)
    fig.suptitle("test images and their top-5 (red: the true class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args):
    out = Path(args.out_dir)
    device = torch.device("cpu")
    harness.set_threads(args.threads)
    if args.init_from == "torchvision":
        model, _ = from_torchvision(args.weights, args.download, device)
        figures = harness.prepare_out_dir(args.figures_dir or out)
        filter_grid(model, figures / "filters_torchvision.png")
        print(f"wrote {figures / 'filters_torchvision.png'}")
        return 0
    model, info = from_checkpoint(out / harness.CHECKPOINT, device)
    figures = harness.prepare_out_dir(args.figures_dir or out)
    tc = info["train_config"]
    try:
        data = load(tc["dataset"], tc["data_dir"], False, tc["image_size"], tc["num_classes"], tc["smoke"])  # fmt: skip
    except DataError as e:
        raise harness.UserError(f"cannot load the run's data: {e}") from None
    x, y = data["test"]
    probs = torch.cat([predict(model, info, x[i : i + 500]) for i in range(0, len(y), 500)])
    filter_grid(model, figures / "filters.png")
    augmentation_examples(data["train"][0], info["crop"], figures / "augment.png", tc["fancy_pca"] or 0.1)  # fmt: skip
    confusion(probs, y, info["classes"], figures / "confusion.png")
    top5_grid(x, probs, y, info["classes"], info["crop"], figures / "top5.png", n=min(8, len(y)))
    print(f"wrote filters.png augment.png confusion.png top5.png in {figures}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--out-dir", default="runs", help="the run whose checkpoint is drawn")
    p.add_argument("--figures-dir", default="", help="where the PNGs go (default: --out-dir)")
    p.add_argument("--init-from", default="", choices=["", "torchvision"], help="torchvision: draw the ImageNet weights' filters")  # fmt: skip
    p.add_argument("--weights", default="", help="with --init-from torchvision: alexnet-owt-7be5be79.pth")  # fmt: skip
    p.add_argument("--download", action="store_true", help="with --init-from torchvision: fetch the weights if absent")  # fmt: skip
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: half the cores)")
    args = p.parse_args(argv)
    return harness.run_main(lambda: run(args), lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
