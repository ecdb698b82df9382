"""Image datasets as uint8 tensors in memory, and the standard CIFAR augmentation.

Every loader returns a dict:
    train, val, test: (images uint8 (N, C, S, S), labels int64 (N,));  classes: list of names

    digits         the offline default: scikit-learn's 1,797 handwritten digits (8x8, 17 grey
                   levels, shipped with the package), upsampled to 16x16; 1,297 / 200 / 300
    fashion-mnist  DIR/FashionMNIST/raw/*-ubyte[.gz] (torchvision's layout), 28x28 grey
    cifar10        DIR/cifar-10-batches-py, 32x32 colour (torchvision.datasets.CIFAR10)
    cifar100       DIR/cifar-100-python, 100 classes (torchvision.datasets.CIFAR100)
    imagefolder    DIR/train/CLASS/*, DIR/val/CLASS/* (val is the test set), resized to S

The last 5,000 training images of a fixed permutation (a tenth for imagefolder and digits'
200) are the validation set. `image_size` resizes every split once (e.g. Fashion-MNIST to
14x14 for CPU-sized experiments); `n_train`, `n_val` keep the first N images of a split.

Augmentation (He et al. 2016, Section 4.2, after Lee et al. 2015): pad 4 pixels of zeros on
each side of a 32x32 image (S // 8 in general), take a random S x S crop, mirror it with p = 1/2.
"""

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DATASETS = ("digits", "fashion-mnist", "cifar10", "cifar100", "imagefolder")
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip


class DataError(Exception):
    """The data asked for is not there or not readable: one line for the user."""


def split_val(x, y, n_val, seed=0):
    """The last n_val of a fixed permutation of the training set become the validation set."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    tr, va = perm[:-n_val], perm[-n_val:]
    return (x[tr], y[tr]), (x[va], y[va])


def load_digits():
    """scikit-learn's digits.csv.gz (64 pixels 0..16 and the label per row), read directly:
    the same arrays as sklearn.datasets.load_digits without importing scikit-learn (seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise DataError("--dataset digits needs scikit-learn installed (pip install scikit-learn)")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    rows = np.loadtxt(path, delimiter=",", dtype=np.float32)  # (1797, 65)
    x = torch.from_numpy(rows[:, :64]).reshape(-1, 1, 8, 8) / 16  # (1797, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=16, mode="bilinear", align_corners=False)  # (1797, 1, 16, 16)
    x = (x * 255).round().clamp(0, 255).to(torch.uint8)
    y = torch.from_numpy(rows[:, 64].astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    split = {"train": (x[:1297], y[:1297]), "val": (x[1297:1497], y[1297:1497]), "test": (x[1497:], y[1497:])}  # fmt: skip
    return split | {"classes": [str(i) for i in range(10)]}


def read_idx(path):
    """IDX file (optionally .gz): big-endian magic (0x0801 labels, 0x0803 images), dims, uint8."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\0\0\x08":
        raise DataError(f"{path} is not an IDX file of uint8 (magic {data[:4].hex()})")
    dims = struct.unpack(">" + "I" * data[3], data[4 : 4 + 4 * data[3]])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(dims)


def load_fashion_mnist(data_dir, download=False):
    raw = Path(data_dir) / "FashionMNIST" / "raw"
    if download:
        import torchvision

        for train in (True, False):
            torchvision.datasets.FashionMNIST(data_dir, train=train, download=True)
    split = {}
    for name, stem in (("train", "train"), ("test", "t10k")):
        arrays = []
        for kind in ("images-idx3", "labels-idx1"):
            f = raw / f"{stem}-{kind}-ubyte"
            f = f if f.exists() else f.with_name(f.name + ".gz")
            if not f.exists():
                raise DataError(f"no Fashion-MNIST in {raw} (lacks {f.name}): pass --download or --data-dir")  # fmt: skip
            arrays.append(read_idx(f))
        split[name] = (torch.from_numpy(arrays[0].copy())[:, None], torch.from_numpy(arrays[1].astype(np.int64)))  # fmt: skip
    train, val = split_val(*split["train"], 5000)
    return {"train": train, "val": val, "test": split["test"], "classes": FASHION}


def load_cifar(data_dir, download, classes):
    import torchvision

    cls = torchvision.datasets.CIFAR10 if classes == 10 else torchvision.datasets.CIFAR100
    folder = "cifar-10-batches-py" if classes == 10 else "cifar-100-python"
    try:
        sets = [cls(data_dir, train=t, download=download) for t in (True, False)]
    except RuntimeError as e:
        raise DataError(f"no CIFAR-{classes} in {data_dir}/{folder} ({e}): pass --download") from None  # fmt: skip
    tensors = [(torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(s.targets)) for s in sets]  # fmt: skip
    train, val = split_val(*tensors[0], 5000)
    return {"train": train, "val": val, "test": tensors[1], "classes": sets[0].classes}


def load_image(path, side, channels=3):
    """A file -> uint8 (C, side, side): shorter side resized to `side`, centre crop.

    Grayscale, palette and RGBA files are converted (alpha dropped); not an image: DataError.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if channels == 3 else "L")
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path} is not an image PIL can read ({type(e).__name__})") from None
    w, h = im.size
    s = side / min(w, h)
    im = im.resize((max(side, round(w * s)), max(side, round(h * s))), Image.BILINEAR)
    left, top = (
        int(round((im.size[0] - side) / 2)),
        int(round((im.size[1] - side) / 2)),
    )  # as torchvision
    a = np.asarray(im.crop((left, top, left + side, top + side)), dtype=np.uint8)
    return torch.from_numpy(a.reshape(side, side, channels).copy()).permute(2, 0, 1)


def load_imagefolder(data_dir, side):
    root = Path(data_dir)
    if not (root / "train").is_dir():
        raise DataError(f"no ImageFolder tree at {root}/train/CLASS/*")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DataError(f"{root}/train has {len(classes)} class folders: need at least 2")
    split = {}
    for name in ("train", "val"):
        xs, ys = [], []
        for label, c in enumerate(classes):
            for f in sorted(f for f in (root / name / c).glob("*") if f.is_file()):
                xs.append(load_image(f, side))
                ys.append(label)
        if not xs:
            raise DataError(f"no images under {root}/{name}/")
        split[name] = (torch.stack(xs), torch.tensor(ys))
    train, val = split_val(*split["train"], max(1, len(split["train"][1]) // 10))
    return {"train": train, "val": val, "test": split["val"], "classes": classes}


def resize(x, size):
    """uint8 (N, C, S, S) -> uint8 (N, C, size, size), area-averaged when shrinking."""
    if x.shape[-1] == size:
        return x
    mode = "area" if size < x.shape[-1] else "bilinear"
    y = F.interpolate(x.float(), size=size, mode=mode)
    return y.round().clamp(0, 255).to(torch.uint8)


def load(dataset, data_dir="data", download=False, image_size=0, n_train=0, n_val=0):
    if dataset == "digits":
        data = load_digits()
    elif dataset == "fashion-mnist":
        data = load_fashion_mnist(data_dir, download)
    elif dataset in ("cifar10", "cifar100"):
        data = load_cifar(data_dir, download, int(dataset[5:]))
    elif dataset == "imagefolder":
        data = load_imagefolder(data_dir, image_size or 64)
    else:
        raise DataError(f"unknown --dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    if image_size:
        data |= {k: (resize(data[k][0], image_size), data[k][1]) for k in ("train", "val", "test")}
    for split, n in (("train", n_train), ("val", n_val)):
        if n:
            data[split] = (data[split][0][:n], data[split][1][:n])
    return data


def channel_stats(images):
    """Per-channel mean and std of uint8 images, as fractions of 255 (for normalising)."""
    x = images.transpose(0, 1).reshape(images.shape[1], -1).double() / 255
    return x.mean(1).tolist(), x.std(1).tolist()


# ----------------------------------------------------------------------------- augmentation


def pad_crop_flip(x, flip=True, generator=None):
    """x: (B, C, S, S) -> (B, C, S, S): zero-pad S // 8, a random S x S crop, mirror with p = 1/2."""
    B, _, S, _ = x.shape
    p = max(1, S // 8)
    padded = F.pad(x, (p, p, p, p))  # (B, C, S + 2p, S + 2p)
    offsets = torch.randint(0, 2 * p + 1, (B, 2), generator=generator).tolist()
    out = torch.stack([padded[b, :, i : i + S, j : j + S] for b, (i, j) in enumerate(offsets)])
    if flip:
        mirror = torch.rand(B, generator=generator) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    return out
