"""Data for distillation: sklearn's digits (offline default), MNIST and Fashion-MNIST from IDX files.

- digits: the 1,797 real 8x8 handwritten digits that ship with scikit-learn (UCI "Optical
  Recognition of Handwritten Digits"), kept at 8x8 (values 0..16 scaled to [0, 1]) so that
  a teacher and a dozen students train in minutes; split stratified 70/10/20 into
  1,258 train / 180 val / 359 test with a fixed seed (the split never changes with --seed).
- mnist / fashion-mnist: IDX files in torchvision's layout (DIR/MNIST/raw/...,
  DIR/FashionMNIST/raw/..., gzip or raw). The official train split minus 5,000 images for
  validation, and the official test split. `test_set_only`: the 10,000 test images alone,
  split stratified 8,000 / 2,000 (the 2,000 are the very test images of lenet/'s
  --test-set-only), the 8,000 as 6,999 train / 1,001 val (for the bias fix).
- augmentation: `random_shift`, every image moved by up to `max_shift` pixels (zero fill),
  drawn from torch's global RNG so that --resume replays it exactly.

tests/test_data.py writes IDX files and reads them back through `load_dataset`.
"""

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

DATASETS = ("digits", "mnist", "fashion-mnist")
FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
CLASS_NAMES = {
    "digits": [str(d) for d in range(10)],
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": "T-shirt Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag Boot".split(),
}
SPLIT_SEED = 0  # the train/val/test split is fixed: seeds vary the training, not the data
MNIST_VAL = 5000


class DataError(Exception):
    """A data problem the user can fix; train.py prints it as one line."""


def read_idx(path):
    """IDX (http://yann.lecun.com/exdb/mnist/): 0, 0, type 0x08 (uint8), ndim, ndim big-endian sizes, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] == 0:
        raise DataError(f"{path} is not a uint8 IDX file (magic {raw[:4].hex()})")
    dims = struct.unpack(f">{raw[3]}I", raw[4 : 4 + 4 * raw[3]])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * raw[3])
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} but holds {data.size} values")
    return data.reshape(dims)


def write_idx(path, array):
    """A uint8 array as IDX (gzip if the name ends in .gz); the tests use it."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def load_idx_split(data_dir, dataset, split):
    raw = Path(data_dir) / FOLDERS[dataset] / "raw"
    found = []
    for stem in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        names = [raw / f"{split}-{stem}.gz", raw / f"{split}-{stem}"]
        path = next((p for p in names if p.exists()), None)
        if path is None:
            raise DataError(
                f"{dataset}: {names[1]}(.gz) not found; pass --download to fetch it, "
                "or --data-dir to point at the folder that holds MNIST/ or FashionMNIST/"
            )
        found.append(read_idx(path))
    images, labels = found
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{raw}: {split} images and labels do not match")
    return images, labels.astype(np.int64)


def download(dataset, data_dir):
    """Fetch the IDX files with torchvision (it writes DIR/MNIST/raw/...); needs the network."""
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[dataset]
    for train in (True, False):
        try:
            cls(root=str(data_dir), train=train, download=True)
        except Exception as e:  # network errors come in many types
            raise DataError(f"download of {dataset} failed: {e}") from None


def stratified_split(y, sizes, seed=SPLIT_SEED):
    """Index arrays for consecutive parts of `sizes` (fractions summing to 1), per class."""
    rng = np.random.default_rng(seed)
    parts = [[] for _ in sizes]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = np.round(np.cumsum(sizes)[:-1] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts)):
            part.append(chunk)
    return [rng.permutation(np.concatenate(p)) for p in parts]


def as_tensors(x, y):
    """(N, H, W) floats in [0, 1] -> (N, 1, H, W) float32 tensor, labels int64."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)[:, None]), torch.from_numpy(y)


def load_dataset(name, data_dir="data", download_ok=False, test_set_only=False):
    """{"train": (x, y), "val": (x, y), "test": (x, y), "classes": [...]}; x (N, 1, H, W) in [0, 1]."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = d.images / 16.0, d.target.astype(np.int64)
        tr, va, te = stratified_split(y, [0.7, 0.1, 0.2])
        splits = {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[te], y[te])}
    else:
        if download_ok:
            download(name, data_dir)
        if test_set_only:
            images, labels = load_idx_split(data_dir, name, "t10k")
            x, y = images / 255.0, labels
            tr, va, te = stratified_split(y, [0.7, 0.1, 0.2])
            splits = {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[te], y[te])}
        else:
            images, labels = load_idx_split(data_dir, name, "train")
            test_images, test_labels = load_idx_split(data_dir, name, "t10k")
            perm = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
            va, tr = perm[:MNIST_VAL], perm[MNIST_VAL:]
            x = images / 255.0
            splits = {
                "train": (x[tr], labels[tr]),
                "val": (x[va], labels[va]),
                "test": (test_images / 255.0, test_labels),
            }
    out = {k: as_tensors(*v) for k, v in splits.items()}
    out["classes"] = CLASS_NAMES[name]
    return out


def labelled_subset(y, fraction, seed=SPLIT_SEED):
    """Indices of a stratified `fraction` of the examples (the low-data regime's labelled part)."""
    if fraction >= 1.0:
        return torch.arange(len(y))
    keep = stratified_split(y.numpy(), [fraction, 1.0 - fraction], seed)[0]
    return torch.from_numpy(np.sort(keep))


def random_shift(x, max_shift):
    """Shift each image of x (N, C, H, W) by (dy, dx) in [-max_shift, max_shift]^2, zero fill."""
    if max_shift == 0:
        return x
    m = max_shift
    N, C, H, W = x.shape
    padded = torch.nn.functional.pad(x, (m, m, m, m))  # (N, C, H+2m, W+2m)
    dy, dx = torch.randint(0, 2 * m + 1, (2, N, 1))
    rows = (dy + torch.arange(H))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx + torch.arange(W))[:, None, None, :]  # (N, 1, 1, W)
    n = torch.arange(N)[:, None, None, None]
    c = torch.arange(C)[None, :, None, None]
    return padded[n, c, rows, cols]  # (N, C, H, W)


# ----------------------------------------------------------------------------- the transfer set


def transfer_indices(c, y_train):
    """The training examples this run learns from (the student's transfer set)."""
    if c.role == "teacher" or c.transfer_set == "unlabelled":
        idx = torch.arange(len(y_train))
    else:
        idx = labelled_subset(y_train, c.label_fraction)
    if c.role != "teacher" and c.omit_class >= 0:
        idx = idx[y_train[idx] != c.omit_class]
    return idx


def batch_at(step, idx, c):
    """Batch `step` of epoch-wise permutations of idx, each seeded by (seed, epoch): resumable."""
    per_epoch = max(1, len(idx) // c.batch_size)
    epoch, i = divmod(step, per_epoch)
    perm = torch.randperm(
        len(idx), generator=torch.Generator().manual_seed(c.seed * 100_003 + epoch)
    )
    return idx[perm[i * c.batch_size : (i + 1) * c.batch_size]]
