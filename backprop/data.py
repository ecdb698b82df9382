"""Datasets: generated 2-D toys, a 1-D regression, sklearn digits, and MNIST /
Fashion-MNIST read from IDX files in torchvision's layout.

Every generator takes an explicit ``np.random.default_rng`` so a dataset is a
pure function of its seed (inference.py rebuilds the same test set from the
checkpoint's config). IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/):
a big-endian header of two zero bytes, a type byte (0x08 = uint8) and a
dimension count, then one uint32 per dimension, then the raw data; files may be
gzipped. Fashion-MNIST: Xiao et al. 2017, https://arxiv.org/abs/1708.07747.

Tests (tests/test_data.py) round-trip hand-written IDX files (gzip and raw)
and check shapes, labels and determinism of every generator.
"""

import gzip
import os
import struct
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from harness import UserError

TOYS_2D = ("xor", "moons", "circles", "spirals", "swiss-roll", "gaussians")
IMAGES = ("mnist", "fashion-mnist")
DATASETS = TOYS_2D + ("sine", "digits") + IMAGES

# torchvision's folder names and the mirrors it downloads from
IDX_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
IDX_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASS_NAMES = {
    "fashion-mnist": "T-shirt Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag Boot".split(),
}


class DataError(UserError):
    """A dataset that cannot be loaded; the message is one line for the user."""


@dataclass
class Dataset:
    name: str
    task: str  # "binary" (one logit), "multiclass" (C logits) or "regression"
    n_classes: int  # 1 for regression
    X_train: np.ndarray  # (N, D) float
    y_train: np.ndarray  # (N,) int labels, or (N, 1) float targets
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_features(self):
        return self.X_train.shape[1]


# ---------------------------------------------------------------- generated data


def xor(n, rng):
    """Four blobs at the corners of a square; label = x1 XOR x2 (opposite corners agree)."""
    corners = np.array([[-1, -1], [1, 1], [-1, 1], [1, -1]], dtype=float)
    c = rng.integers(0, 4, n)
    return corners[c] + 0.2 * rng.standard_normal((n, 2)), (c >= 2).astype(np.int64)


def moons(n, rng, noise=0.15):
    """Two interleaving half circles (the shape of sklearn's make_moons)."""
    y = rng.integers(0, 2, n)
    t = rng.uniform(0, np.pi, n)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    X = np.where(y[:, None] == 0, upper, lower) - [0.5, 0.25]
    return X + noise * rng.standard_normal((n, 2)), y.astype(np.int64)


def circles(n, rng, noise=0.08, factor=0.5):
    """A small circle (label 1) inside a large one (label 0)."""
    y = rng.integers(0, 2, n)
    t = rng.uniform(0, 2 * np.pi, n)
    r = np.where(y == 1, factor, 1.0)
    X = r[:, None] * np.stack([np.cos(t), np.sin(t)], 1)
    return X + noise * rng.standard_normal((n, 2)), y.astype(np.int64)


def spirals(n, rng, n_classes=3):
    """n_classes spiral arms winding out from the centre (the cs231n toy)."""
    y = rng.integers(0, n_classes, n)
    r = rng.uniform(0.0, 1.0, n)
    theta = y * (2 * np.pi / n_classes) + 4.0 * r + 0.2 * rng.standard_normal(n)
    return r[:, None] * np.stack([np.sin(theta), np.cos(theta)], 1), y.astype(np.int64)


def swiss_roll(n, rng, n_classes=4):
    """The 2-D Swiss roll (t cos t, t sin t), cut into n_classes segments along t."""
    t = rng.uniform(1.5 * np.pi, 4.5 * np.pi, n)
    X = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 10.0
    y = np.minimum(((t - 1.5 * np.pi) / (3 * np.pi) * n_classes).astype(np.int64), n_classes - 1)
    return X + 0.03 * rng.standard_normal((n, 2)), y


def gaussians(n, rng):
    """Four Gaussian clusters, one per class, slightly overlapping."""
    centres = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = rng.integers(0, 4, n)
    return centres[y] + 0.35 * rng.standard_normal((n, 2)), y.astype(np.int64)


def sine(n, rng):
    """1-D regression: y = sin(2x) + 0.1 noise on x in [-3, 3]; targets (n, 1)."""
    x = rng.uniform(-3, 3, (n, 1))
    return x, np.sin(2 * x) + 0.1 * rng.standard_normal((n, 1))


GENERATORS = {
    "xor": (xor, "binary", 1),
    "moons": (moons, "binary", 1),
    "circles": (circles, "binary", 1),
    "spirals": (spirals, "multiclass", 3),
    "swiss-roll": (swiss_roll, "multiclass", 4),
    "gaussians": (gaussians, "multiclass", 4),
    "sine": (sine, "regression", 1),
}


# ---------------------------------------------------------------- IDX files


def read_idx(path):
    """Read one IDX file (raw or .gz) into a uint8 array of the stored shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not a uint8 IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def write_idx(path, array):
    """Write a uint8 array as an IDX file (gzip when the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _find(raw_dir, stem):
    for name in (stem, stem + ".gz"):
        if (raw_dir / name).exists():
            return raw_dir / name
    return None


def download_idx(name, data_dir):
    """Fetch the four gzipped IDX files into DATA_DIR/<Folder>/raw (only with --download)."""
    raw_dir = Path(data_dir) / IDX_FOLDERS[name] / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stem in IDX_STEMS["train"] + IDX_STEMS["test"]:
        if _find(raw_dir, stem) is None:
            url = IDX_URLS[name] + stem + ".gz"
            print(f"downloading {url}", file=sys.stderr)
            tmp = raw_dir / (stem + ".gz.part")
            urllib.request.urlretrieve(url, tmp)
            os.replace(tmp, raw_dir / (stem + ".gz"))


def load_idx_split(name, data_dir, split):
    raw_dir = Path(data_dir) / IDX_FOLDERS[name] / "raw"
    paths = [_find(raw_dir, stem) for stem in IDX_STEMS[split]]
    if None in paths:
        return None
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"{raw_dir}: images {images.shape} do not match labels {labels.shape}")
    # pixels to [0, 1], each image flattened: (N, 28, 28) -> (N, 784)
    return images.reshape(len(images), -1).astype(np.float32) / 255.0, labels.astype(np.int64)


# ---------------------------------------------------------------- entry point


def load_dataset(name, seed=0, data_dir="data", download=False, n_train=1000, n_test=500):
    """Build or read dataset ``name``; the toys draw n_train + n_test points from ``seed``."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    rng = np.random.default_rng(seed)
    if name in GENERATORS:
        gen, task, n_classes = GENERATORS[name]
        X, y = gen(n_train + n_test, rng)
        return Dataset(name, task, n_classes, X[:n_train], y[:n_train], X[n_train:], y[n_train:])
    if name == "digits":
        from sklearn.datasets import load_digits  # bundled with sklearn, no download

        d = load_digits()
        X, y = d.data / 16.0, d.target.astype(np.int64)  # 8x8 grey levels 0..16 -> [0, 1]
        perm = rng.permutation(len(X))
        n_tr = int(0.8 * len(X))
        tr, te = perm[:n_tr], perm[n_tr:]
        return Dataset(name, "multiclass", 10, X[tr], y[tr], X[te], y[te])
    if download:
        download_idx(name, data_dir)
    test = load_idx_split(name, data_dir, "test")
    train = load_idx_split(name, data_dir, "train")
    where = Path(data_dir) / IDX_FOLDERS[name] / "raw"
    if test is None:
        raise DataError(
            f"no {name} IDX files in {where}; pass --download or a --data-dir that has them"
        )
    if train is None:
        # e.g. a folder that holds only t10k: split it 8000 / 2000
        print(f"note: no training files in {where}; splitting the test set 80/20", file=sys.stderr)
        X, y = test
        perm = rng.permutation(len(X))
        n_tr = int(0.8 * len(X))
        train = X[perm[:n_tr]], y[perm[:n_tr]]
        test = X[perm[n_tr:]], y[perm[n_tr:]]
    return Dataset(name, "multiclass", 10, train[0], train[1], test[0], test[1])
