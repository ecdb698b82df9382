"""Data for LeNet-5: sklearn's digits (offline default), MNIST and Fashion-MNIST from IDX files.

- digits: the 1,797 real 8x8 handwritten digits that ship with scikit-learn (UCI "Optical
  Recognition of Handwritten Digits"), upsampled to 28x28 and padded to LeNet's 32x32, split
  stratified into train/val/test (70/10/20).
- mnist / fashion-mnist: IDX files in torchvision's layout, DIR/MNIST/raw/... and
  DIR/FashionMNIST/raw/..., gzip or raw, read by `read_idx` (format: http://yann.lecun.com/exdb/mnist/).
  28x28 images are padded to 32x32, as in the paper (Section III.A).
- augmentation: random shifts of up to a few pixels (zero fill).

tests/test_data.py writes IDX files (gzip and raw) and reads them back, and checks that bad magic
numbers and missing files are rejected with a clear message.
"""

import functools
import gzip
import struct
from pathlib import Path

import numpy as np
from harness import UserError

DATASETS = ("digits", "mnist", "fashion-mnist")
FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
CLASS_NAMES = {
    "digits": [str(d) for d in range(10)],
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": "T-shirt Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag Boot".split(),
}
MNIST_VAL = 5000  # images of the official train split held out for validation
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(UserError):
    """A data problem the user can fix; train.py prints it as one line."""


def read_idx(path):
    """Read an IDX file (gzip if it ends in .gz, else raw) into an array.

    Header: two zero bytes, a type code (0x08 = uint8), the number of dimensions d, then d
    big-endian uint32 sizes, then the data. MNIST images: magic 0x00000803, labels: 0x00000801.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} but holds {data.size} values")
    return data.reshape(dims)


def write_idx(path, array):
    """Write a uint8 array as IDX (gzip if the name ends in .gz); used by the tests."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def idx_path(data_dir, dataset, split, kind):
    """DIR/MNIST/raw/train-images-idx3-ubyte(.gz): the gzip file, else the raw one, else None."""
    stem = {"images": "images-idx3-ubyte", "labels": "labels-idx1-ubyte"}[kind]
    base = Path(data_dir) / FOLDERS[dataset] / "raw" / f"{split}-{stem}"
    for candidate in (base.with_name(base.name + ".gz"), base):
        if candidate.exists():
            return candidate
    return None


def download(dataset, data_dir):
    """Fetch the IDX files with torchvision (it writes DIR/MNIST/raw/...); needs the network."""
    try:
        from torchvision import datasets
    except ImportError:
        raise DataError("--download needs torchvision (pip install torchvision)") from None
    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[dataset]
    for train in (True, False):
        try:
            cls(root=str(data_dir), train=train, download=True)
        except Exception as e:  # network errors come in many types
            raise DataError(f"download of {dataset} failed: {e}") from None


def load_idx_split(data_dir, dataset, split):
    paths = [idx_path(data_dir, dataset, split, kind) for kind in ("images", "labels")]
    if None in paths:
        where = Path(data_dir) / FOLDERS[dataset] / "raw"
        raise DataError(
            f"{dataset} {split} files not found: expected {where}/{split}-images-idx3-ubyte(.gz) "
            f"and {split}-labels-idx1-ubyte(.gz); pass --download to fetch them, or --data-dir "
            "to point at them"
        )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{paths[0]} and {paths[1]} do not hold matching images and labels")
    return images, labels.astype(np.int64)


def pad_to_32(images):
    """(N, h, w) floats -> (N, 1, 32, 32), centred with zero padding."""
    N, h, w = images.shape
    top, left = (32 - h) // 2, (32 - w) // 2
    out = np.zeros((N, 1, 32, 32), dtype=np.float32)
    out[:, 0, top : top + h, left : left + w] = images
    return out


def upsample_digits(images8):
    """(N, 8, 8) values 0..16 -> (N, 28, 28) in [0, 1], bilinear (Pillow)."""
    from PIL import Image

    out = np.empty((len(images8), 28, 28), dtype=np.float32)
    for i, img in enumerate(images8):
        pil = Image.fromarray((img / 16.0).astype(np.float32), mode="F")
        out[i] = np.asarray(pil.resize((28, 28), Image.BILINEAR))
    return np.clip(out, 0.0, 1.0)


@functools.lru_cache(maxsize=1)
def digits_32():
    """All 1,797 sklearn digits as (N, 1, 32, 32) float32 in [0, 1] and labels (cached)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = pad_to_32(upsample_digits(d.images)), d.target.astype(np.int64)
    x.flags.writeable = y.flags.writeable = False  # shared by every caller
    return x, y


def stratified_split(y, sizes, seed):
    """Index arrays for consecutive parts of `sizes` (fractions summing to 1), per class."""
    rng = np.random.default_rng(seed)
    parts = [[] for _ in sizes]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = np.round(np.cumsum(sizes)[:-1] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts)):
            part.append(chunk)
    return [rng.permutation(np.concatenate(p)) for p in parts]


def load_dataset(name, data_dir="data", download_ok=False, test_set_only=False, seed=0):
    """{"train": (x, y), "val": (x, y) or None, "test": (x, y)}; x (N, 1, 32, 32) float32 in [0, 1].

    digits: stratified 70/10/20 split (1,258 / 180 / 359 images with seed 0).
    mnist, fashion-mnist: the official train split minus 5,000 random images for validation,
    and the official test split. With test_set_only: the 10,000 test images alone, split
    stratified into 8,000 train and 2,000 test (no validation set).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if name == "digits":
        x, y = digits_32()
        tr, va, te = stratified_split(y, [0.7, 0.1, 0.2], seed)
        return {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[te], y[te])}
    if download_ok:
        download(name, data_dir)
    if test_set_only:
        images, labels = load_idx_split(data_dir, name, "t10k")
        x, y = pad_to_32(images / np.float32(255)), labels
        tr, te = stratified_split(y, [0.8, 0.2], seed)
        return {"train": (x[tr], y[tr]), "val": None, "test": (x[te], y[te])}
    if idx_path(data_dir, name, "train", "images") is None and idx_path(
        data_dir, name, "t10k", "images"
    ):
        raise DataError(
            f"{name}: only the t10k (test) files are in {Path(data_dir) / FOLDERS[name] / 'raw'}; "
            "pass --test-set-only to split them 8,000 train / 2,000 test, or --download"
        )
    train_images, train_labels = load_idx_split(data_dir, name, "train")
    test_images, test_labels = load_idx_split(data_dir, name, "t10k")
    x, y = pad_to_32(train_images / np.float32(255)), train_labels
    perm = np.random.default_rng(seed).permutation(len(y))
    va, tr = perm[:MNIST_VAL], perm[MNIST_VAL:]
    test = (pad_to_32(test_images / np.float32(255)), test_labels)
    return {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": test}


def random_shift(x, rng, max_shift=2):
    """Shift each image by (dy, dx) in [-max_shift, max_shift]^2 with zero fill; (N, 1, 32, 32)."""
    if max_shift == 0:
        return x
    m = max_shift
    N, C, H, W = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (m, m), (m, m)))
    offsets = rng.integers(0, 2 * m + 1, size=(N, 2))
    out = np.empty_like(x)
    for n, (dy, dx) in enumerate(offsets):
        out[n] = padded[n, :, dy : dy + H, dx : dx + W]
    return out
