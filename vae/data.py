"""Data for the VAE: sklearn digits (offline default), MNIST, Fashion-MNIST, any image folder.

Every dataset is held as integer pixel levels 0..L-1 (L = 17 for digits, 256 otherwise) and
turned into what the likelihood models by `Pixels`:
- Bernoulli: binary pixels. digits: a fixed threshold (level >= 8 of 16), the same images
  every epoch. mnist / fashion-mnist: dynamic binarisation, x ~ Bernoulli(level / 255) drawn
  afresh for every training batch and once, with a fixed seed, for the test set.
- Gaussian: a density on [0, 1] for discrete levels, by uniform dequantisation
  x = (level + u) / L, u ~ U(0, 1) (Theis et al. 2016, https://arxiv.org/abs/1511.01844):
  -log P(level) <= -log p(x) + D log L, so bits/dim = (NLL + D log L) / (D ln 2).

Splits are fixed: digits 70/10/20 (train/val/test), mnist / fashion-mnist the official train
split minus 5,000 images for validation and the official test split (or, with
--test-set-only, the 10,000 test images split 7,000 train / 1,000 val / 2,000 test),
imagefolder 80/10/10. tests/test_data.py checks the readers, splits and the bad-input lines.
"""

import gzip
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from harness import UserError

DATASETS = ("digits", "mnist", "fashion-mnist", "imagefolder")
IDX_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
VAL_SIZE = 5000


@dataclass
class Split:
    levels: torch.Tensor  # (N, C, H, W) uint8 pixel levels 0..L-1
    labels: torch.Tensor  # (N,) int64 class (0 where the data has none)


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    n_levels: int  # L
    class_names: list

    @property
    def shape(self):
        return tuple(self.train.levels.shape[1:])


# ----------------------------------------------------------------------------- readers


def read_idx(path):
    """An IDX file (gzip if .gz): zero bytes, type 0x08 (uint8), ndim, big-endian dims, data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] == 0:
        raise UserError(f"{path} is not a uint8 IDX file (magic {raw[:4].hex()})")
    dims = struct.unpack(f">{raw[3]}I", raw[4 : 4 + 4 * raw[3]])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * raw[3])
    if data.size != math.prod(dims):
        raise UserError(f"{path}: header says {dims} but holds {data.size} values")
    return data.reshape(dims)


def write_idx(path, array):
    """A uint8 array as IDX (gzip if the name ends in .gz); for the tests."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def idx_split(data_dir, name, split):
    """DIR/MNIST/raw/{split}-images-idx3-ubyte(.gz) and labels: (N, 1, 28, 28) uint8, (N,)."""
    raw = Path(data_dir) / IDX_FOLDERS[name] / "raw"
    found = []
    for stem in (f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"):
        path = next((p for p in (raw / f"{stem}.gz", raw / stem) if p.exists()), None)
        if path is None:
            raise UserError(
                f"{name}: {raw / stem}(.gz) not found; pass --download, or --data-dir DIR "
                "holding MNIST/raw or FashionMNIST/raw"
                + ("; with only the t10k files, pass --test-set-only" if split == "train" else "")
            )
        found.append(read_idx(path))
    images, labels = found
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{raw}: {split} images and labels do not match")
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))


def download(name, data_dir):
    """torchvision writes the IDX files into DIR/MNIST/raw/...; needs the network."""
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]
    for train in (True, False):
        try:
            cls(root=str(data_dir), train=train, download=True)
        except Exception as e:  # network errors come in many types
            raise UserError(f"download of {name} failed: {e}") from None


def read_image_folder(root, size):
    """Every image under root (recursively), as RGB resized to size x size: (N, 3, S, S) uint8.

    Images of any size are resized (bilinear, no crop: the aspect ratio is not kept);
    transparent pixels are composited onto white. The first folder level names the classes.
    A file that is not an image stops the run with its name (hidden files are skipped).
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--data-dir {root} is not a folder of images")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise UserError(f"--data-dir {root} holds no images")
    images, labels, classes = [], [], {}
    for p in files:
        try:
            with Image.open(p) as img:
                img = img.convert("RGBA")
                white = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, img).convert("RGB")
                img = img.resize((size, size), Image.BILINEAR)
        except (UnidentifiedImageError, OSError) as e:
            raise UserError(f"{p} is not an image ({type(e).__name__}): remove it") from None
        images.append(np.asarray(img).transpose(2, 0, 1))  # (H, W, 3) -> (3, H, W)
        rel = p.relative_to(root).parts
        labels.append(classes.setdefault(rel[0] if len(rel) > 1 else "", len(classes)))
    return (
        torch.from_numpy(np.stack(images)),
        torch.tensor(labels),
        [c or "all" for c in classes],
    )


# ----------------------------------------------------------------------------- datasets


def split_by(levels, labels, sizes, seed):
    """Consecutive parts of one fixed permutation: sizes are counts, the last part the rest."""
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    cuts = np.cumsum([0, *sizes, len(labels) - sum(sizes)])
    return [Split(levels[perm[a:b]], labels[perm[a:b]]) for a, b in zip(cuts[:-1], cuts[1:])]


def load_dataset(name, data_dir="data", download_ok=False, test_set_only=False, image_size=32):
    if name not in DATASETS:
        raise UserError(f"unknown --dataset {name!r}; choose from {', '.join(DATASETS)}")
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()  # 1,797 images, 8x8, levels 0..16
        levels = torch.from_numpy(d.images.astype(np.uint8))[:, None]  # (N, 1, 8, 8)
        n = len(levels)
        test, val, train = split_by(levels, torch.from_numpy(d.target), [n // 5, n // 10], 0)
        return Dataset(name, train, val, test, 17, [str(i) for i in range(10)])
    if name == "imagefolder":
        levels, labels, classes = read_image_folder(data_dir, image_size)
        n = len(labels)
        if n < 10:
            raise UserError(f"--data-dir {data_dir}: {n} images; at least 10 are needed")
        test, val, train = split_by(levels, labels, [n // 10, n // 10], 0)
        return Dataset(name, train, val, test, 256, classes)
    if download_ok:
        download(name, data_dir)
    names = {"mnist": [str(i) for i in range(10)], "fashion-mnist": FASHION_CLASSES}[name]
    if test_set_only:
        test, val, train = split_by(*idx_split(data_dir, name, "t10k"), [2000, 1000], 0)
        return Dataset(name, train, val, test, 256, names)
    val, train = split_by(*idx_split(data_dir, name, "train"), [VAL_SIZE], 0)
    test = Split(*idx_split(data_dir, name, "t10k"))
    return Dataset(name, train, val, test, 256, names)


FASHION_CLASSES = "T-shirt Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag Boot".split()


# ----------------------------------------------------------------------------- pixels


class Pixels:
    """Levels -> the values the likelihood models (see the module docstring)."""

    def __init__(self, likelihood, n_levels, dynamic):
        self.likelihood, self.n_levels, self.dynamic = likelihood, n_levels, dynamic

    def __call__(self, levels, generator=None):
        x = levels.float()
        if self.likelihood == "bernoulli":
            if not self.dynamic:
                return (x >= self.n_levels // 2).float()
            p = x / (self.n_levels - 1)
            return torch.bernoulli(p, generator=generator)
        u = torch.rand(x.shape, generator=generator, device=x.device)
        return (x + u) / self.n_levels

    def fixed(self, levels, seed=1234):
        """A test or validation set prepared once, the same for every evaluation."""
        g = torch.Generator(device=levels.device).manual_seed(seed)
        return self(levels, generator=g)

    def bits_per_dim(self, nll, dims):
        """nats per image of the density on [0, 1]^D -> bits per dimension of the levels."""
        return (nll + dims * math.log(self.n_levels)) / (dims * math.log(2))
