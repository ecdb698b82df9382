"""Images and the captions generated from them, so the default run needs no download.

Offline default: scikit-learn's 8x8 digits, upsampled to 16x16 (bilinear) in [-1, 1], so
that the autoencoder's factor-4 latent (4, 4, 4) holds as many numbers as the original image.
Real data: `--dataset mnist|fashion-mnist --data-dir DIR [--download]` in torchvision's layout
(DIR/FashionMNIST/raw/train-images-idx3-ubyte, or the same name ending in .gz), 28x28,
latent (4, 7, 7).

A caption names the class ("seven", "7", "the digit seven") and, from measurements on
the image, its attributes relative to the other images of its class, each word for the
top or bottom third of that class's training images:
- weight: "bold"/"thin" from the ink mass (mean intensity);
- size: "large"/"small" from the area of the ink's bounding box;
- slant (digits only): "slanted"/"upright" from the ink's second moments, the shear
  |mu11 / mu02| (how far the strokes move sideways per row, in either direction).
"a bold small seven" is then a checkable request: tests/test_data.py computes the words
for hand-made images.
"""

import gzip
from pathlib import Path

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
        folder = Path(data_dir) / ("MNIST" if dataset == "mnist" else "FashionMNIST") / "raw"
        if download:  # torchvision fetches and unpacks into the same layout
            from torchvision import datasets

            cls = datasets.MNIST if dataset == "mnist" else datasets.FashionMNIST
            for train in (True, False):
                cls(data_dir, train=train, download=True)

        def prep(split):
            x = torch.from_numpy(read_idx(folder, f"{split}-images-idx3-ubyte"))
            y = torch.from_numpy(read_idx(folder, f"{split}-labels-idx1-ubyte"))
            return (x.float()[:, None] / 255.0) * 2 - 1, y.long()  # (N, 1, 28, 28) in [-1, 1]

        return (*prep("train"), *prep("t10k"))
    raise UserError(f"unknown --dataset {dataset}; choose from {', '.join(DATASETS)}")


def read_idx(folder, name):
    """An IDX file (the MNIST format: magic 0x0801 labels or 0x0803 images, big-endian uint32
    sizes, then uint8 data), raw or gzip (name + ".gz"), as a uint8 array."""
    path = next((p for p in (folder / name, folder / f"{name}.gz") if p.exists()), None)
    if path is None:
        raise UserError(f"{folder / name} not found (nor .gz); check --data-dir or add --download")
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        raw = f.read()
    magic, n_dims = int.from_bytes(raw[:2], "big"), raw[3]
    shape = np.frombuffer(raw, ">u4", count=n_dims, offset=4).astype(int)
    if magic != 0 or raw[2] != 0x08 or len(raw) != 4 + 4 * n_dims + int(np.prod(shape)):
        raise UserError(f"{path} is not an uint8 IDX file of the size its header states")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * n_dims).reshape(shape).copy()


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


def ink_slant(x):
    """How far the ink leans, either way: |mu11 / mu02| from the intensity-weighted central
    second moments (mu11 = sum I (col - c_col)(row - c_row), mu02 = sum I (row - c_row)^2),
    the columns the strokes shift per row: 0 for an upright bar, k for one sheared by k."""
    ink = ((x + 1) / 2)[:, 0].double()  # (B, H, W)
    rows = torch.arange(x.shape[2], dtype=ink.dtype)[:, None]  # (H, 1)
    cols = torch.arange(x.shape[3], dtype=ink.dtype)[None, :]  # (1, W)
    total = ink.sum(dim=(1, 2)).clamp(min=1e-12)  # (B,)
    c_row = (ink * rows).sum(dim=(1, 2)) / total
    c_col = (ink * cols).sum(dim=(1, 2)) / total
    dr, dc = rows - c_row[:, None, None], cols - c_col[:, None, None]  # (B, H, 1), (B, 1, W)
    mu11, mu02 = (ink * dc * dr).sum(dim=(1, 2)), (ink * dr**2).sum(dim=(1, 2))
    return (mu11 / mu02.clamp(min=1e-12)).abs().float()


# (attribute, its measure, the word for the top third of a class, for the bottom third)
ATTRIBUTES = (
    ("weight", ink_mass, "bold", "thin"),
    ("size", ink_area, "large", "small"),
    ("slant", ink_slant, "slanted", "upright"),
)


def attributes_of(dataset):
    """The attributes captioned: slant is a digit's (a coat's outline does not lean)."""
    return ATTRIBUTES if dataset != "fashion-mnist" else ATTRIBUTES[:2]


def attribute_thresholds(x, y, attributes=ATTRIBUTES, n_classes=10):
    """{attribute: (n_classes, 2)}: per class, the 1/3 and 2/3 quantiles of its measure."""
    q = torch.tensor([1 / 3, 2 / 3])
    out = {}
    for name, measure, _, _ in attributes:
        m = measure(x).float()
        out[name] = torch.stack([torch.quantile(m[y == c], q) for c in range(n_classes)])
    return out


def attribute_words(x, y, thresholds):
    """For each image a tuple, one word or None per attribute in thresholds (ATTRIBUTES'
    order): the top third of its class gets the first word, the bottom third the second."""
    columns = []
    for name, measure, more, less in ATTRIBUTES:
        if name in thresholds:
            lo, hi = thresholds[name][y].unbind(1)  # (B,) each
            m = measure(x).float()
            columns.append([more if v > h else less if v < l else None
                            for v, l, h in zip(m.tolist(), lo.tolist(), hi.tolist())])  # fmt: skip
    return list(zip(*columns))


def vocabulary(dataset):
    words = class_words(dataset)
    numerals = [str(i) for i in range(10)] if dataset != "fashion-mnist" else []
    base = ["a", "the", "digit", "photo", "of", "bold", "thin", "small", "large"]
    extra = ["slanted", "upright"] if len(attributes_of(dataset)) > 2 else []
    return [*words, *numerals, *base, *extra]


def caption(label, words, dataset, generator):
    """One random caption for an image; each of its attribute words (a tuple, None where the
    image is in the middle third) kept with probability 0.7."""
    r = torch.rand(2 + len(words), generator=generator).tolist()
    name = class_words(dataset)[label]
    if dataset != "fashion-mnist" and r[0] < 0.3:
        name = str(label)
    attrs = [w for w, keep in zip(words, r[1:-1]) if w and keep < 0.7]
    if not attrs:
        prefix = (
            "the digit"
            if dataset != "fashion-mnist" and r[-1] < 0.3
            else "a photo of a"
            if r[-1] < 0.3
            else ""
        )
        return f"{prefix} {name}".strip()
    return " ".join(["a", *attrs, name])


def captions_for(labels, attributes, dataset, generator, p_uncond):
    """Captions for a batch; with probability p_uncond the empty prompt (for guidance)."""
    out = []
    for label, words in zip(labels.tolist(), attributes):
        if torch.rand(1, generator=generator).item() < p_uncond:
            out.append("")
        else:
            out.append(caption(label, words, dataset, generator))
    return out
