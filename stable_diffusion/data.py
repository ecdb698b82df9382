"""Images and the captions generated from them, so the default run needs no download.

Offline default: scikit-learn's 8x8 digits, upsampled to 16x16 (bilinear) in [-1, 1], so
that the autoencoder's factor-4 latent (4, 4, 4) holds as many numbers as the original image.
Real data: `--dataset mnist|fashion-mnist --data-dir DIR [--download]` in torchvision's layout,
28x28, latent (4, 7, 7).

A caption names the class ("seven", "7", "the digit seven") and, from measurements on
the image, its weight and size relative to the other images of its class: "bold"/"thin"
for the top/bottom third of ink mass (mean intensity), "large"/"small" for the top/bottom
third of the ink's bounding-box area. "a bold small seven" is then a checkable request:
tests/test_data.py computes the words for hand-made images.
"""

import numpy as np
import torch
import torch.nn.functional as F
from harness import UserError

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FASHION_WORDS = [
    "tshirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
]
DATASETS = ("digits", "mnist", "fashion-mnist")


def load_images(dataset, data_dir="data", download=False, n_test=297, seed=0):
    """-> (x_train, y_train, x_test, y_test): float32 (N, 1, H, W) in [-1, 1], int64 labels."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8)
        x = F.interpolate(x, size=16, mode="bilinear", align_corners=False)  # (N, 1, 16, 16)
        y = torch.tensor(d.target, dtype=torch.long)
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(x)))
        x, y = x[order] * 2 - 1, y[order]
        return x[n_test:], y[n_test:], x[:n_test], y[:n_test]
    if dataset in ("mnist", "fashion-mnist"):
        from torchvision import datasets

        cls = datasets.MNIST if dataset == "mnist" else datasets.FashionMNIST
        try:
            train = cls(data_dir, train=True, download=download)
            test = cls(data_dir, train=False, download=download)
        except (RuntimeError, OSError) as e:
            raise UserError(
                f"{dataset} not found under --data-dir {data_dir} ({e}); add --download"
            ) from None

        def prep(ds):
            x = ds.data.float()[:, None] / 255.0  # (N, 1, 28, 28)
            return x * 2 - 1, ds.targets.long()

        return (*prep(train), *prep(test))
    raise UserError(f"unknown --dataset {dataset}; choose from {', '.join(DATASETS)}")


def class_words(dataset):
    return FASHION_WORDS if dataset == "fashion-mnist" else DIGIT_WORDS


def ink_mass(x):
    """Mean intensity in [0, 1] per image: (B, 1, H, W) in [-1, 1] -> (B,)."""
    return ((x + 1) / 2).mean(dim=(1, 2, 3))


def ink_area(x, threshold=0.25):
    """Area of the bounding box of the pixels brighter than threshold, as a share of the image."""
    ink = (x + 1) / 2 > threshold  # (B, 1, H, W)
    rows, cols = ink.any(dim=3)[:, 0], ink.any(dim=2)[:, 0]  # (B, H), (B, W)

    def extent(m):
        idx = torch.arange(m.shape[1]).expand_as(m)
        hi = torch.where(m, idx, -1).max(1).values
        lo = torch.where(m, idx, m.shape[1]).min(1).values
        return (hi - lo + 1).clamp(min=0)

    return (extent(rows) * extent(cols)).float() / (x.shape[2] * x.shape[3])


def attribute_thresholds(x, y, n_classes=10):
    """Per class, the 1/3 and 2/3 quantiles of ink mass and of ink area: (n_classes, 2) each."""
    mass, area = ink_mass(x), ink_area(x)
    q = torch.tensor([1 / 3, 2 / 3], dtype=mass.dtype)
    return {
        "mass": torch.stack([torch.quantile(mass[y == c], q) for c in range(n_classes)]),
        "area": torch.stack(
            [torch.quantile(area[y == c].to(q.dtype), q) for c in range(n_classes)]
        ),
    }


def attribute_words(x, y, thresholds):
    """For each image: (weight word or None, size word or None), relative to its class."""
    mass, area = ink_mass(x), ink_area(x)
    out = []
    for m, a, c in zip(mass.tolist(), area.tolist(), y.tolist()):
        lo, hi = thresholds["mass"][c].tolist()
        weight = "bold" if m > hi else "thin" if m < lo else None
        lo, hi = thresholds["area"][c].tolist()
        size = "large" if a > hi else "small" if a < lo else None
        out.append((weight, size))
    return out


def vocabulary(dataset):
    words = class_words(dataset)
    numerals = [str(i) for i in range(10)] if dataset != "fashion-mnist" else []
    return [*words, *numerals, "a", "the", "digit", "photo", "of", "bold", "thin", "small", "large"]


def caption(label, weight, size, dataset, generator):
    """One random caption for an image, its attributes included or left out at random."""
    r = torch.rand(4, generator=generator).tolist()
    name = class_words(dataset)[label]
    if dataset != "fashion-mnist" and r[0] < 0.3:
        name = str(label)
    attrs = [w for w, keep in ((weight, r[1] < 0.7), (size, r[2] < 0.7)) if w and keep]
    if not attrs:
        prefix = (
            "the digit"
            if dataset != "fashion-mnist" and r[3] < 0.3
            else "a photo of a"
            if r[3] < 0.3
            else ""
        )
        return f"{prefix} {name}".strip()
    return " ".join(["a", *attrs, name])


def captions_for(labels, attributes, dataset, generator, p_uncond):
    """Captions for a batch; with probability p_uncond the empty prompt (for guidance)."""
    out = []
    for label, (weight, size) in zip(labels.tolist(), attributes):
        if torch.rand(1, generator=generator).item() < p_uncond:
            out.append("")
        else:
            out.append(caption(label, weight, size, dataset, generator))
    return out
