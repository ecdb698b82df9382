"""Datasets as uint8 tensors in memory: a generated colour default, Fashion-MNIST, CIFAR-10,
and any ImageFolder tree, each stored a little larger than the crop the network sees.

Every loader returns a dict:
    train, val, test: (images uint8 (N, C, S, S), labels int64 (N,))
    classes: list of names;  crop: the side of the patches the network sees (< S)
The paper's recipe (Section 2 and 4.1) is kept at every scale: store S x S, train on random
crop x crop patches, test on the centre patch. ImageNet: S = 256, crop = 224; the 32x32 sets
are zero-padded to 36x36 (Fashion-MNIST's 28x28 by 4 pixels, CIFAR-10's 32x32 by 2) for 32 crops.

`shapes` (the offline default) is generated here: 10 classes of shapes and textures, each
image drawn in two random colours under a random colour cast and lighting gradient, so that
the class lives in the shape and colour/lighting are nuisances that augmentation can vary.
"""

import functools
import gzip
import struct
from pathlib import Path

import numpy as np
import torch

DATASETS = ("shapes", "fashion-mnist", "cifar10", "imagefolder")
SHAPES = ["disk", "ring", "square", "triangle", "cross", "stripes", "checker", "dots", "two-disks", "half"]  # fmt: skip
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class DataError(Exception):
    """The data asked for is not there or not readable: one line for the user."""


# ----------------------------------------------------------------------------- shapes


def shape_mask(c, u, v, r, freq):
    """Class c's region in the image frame (u, v), radius r, texture frequency freq: a bool array."""
    d = np.hypot(u, v)
    if c == 0:
        return d < r
    if c == 1:
        return np.abs(d - r) < 0.3 * r
    if c == 2:
        return np.maximum(np.abs(u), np.abs(v)) < 0.8 * r
    if c == 3:  # the largest of three edge distances: an equilateral triangle
        edges = [u * np.cos(a) + v * np.sin(a) for a in (np.pi / 2, 7 * np.pi / 6, 11 * np.pi / 6)]
        return np.maximum.reduce(edges) < 0.5 * r
    if c == 4:
        return ((np.abs(u) < 0.25 * r) & (np.abs(v) < r)) | (
            (np.abs(v) < 0.25 * r) & (np.abs(u) < r)
        )
    if c == 5:
        return np.sin(u * freq) > 0
    if c == 6:
        return np.sin(u * freq) * np.sin(v * freq) > 0
    if c == 7:
        return np.sin(u * freq) * np.sin(v * freq) > 0.5
    if c == 8:
        return (np.hypot(u - 0.5 * r, v) < 0.4 * r) | (np.hypot(u + 0.5 * r, v) < 0.4 * r)
    return u > 0


def make_shapes(n, size=36, seed=0):
    """n generated images (n, 3, size, size) uint8 and labels (n,), classes in equal numbers."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    rng.shuffle(y)
    g = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)  # pixel centres in [-1, 1]
    X, Y = np.meshgrid(g, g)  # (S, S)
    f32 = lambda a: a.astype(np.float32)
    cx, cy = f32(rng.uniform(-0.25, 0.25, (2, n, 1, 1)))
    r = f32(rng.uniform(0.35, 0.6, (n, 1, 1)))
    th = f32(rng.uniform(0, 2 * np.pi, (n, 1, 1)))
    freq = f32(rng.uniform(6, 9, (n, 1, 1)))
    # u, v: coordinates in each image's rotated, shifted frame, (n, S, S)
    u = np.cos(th) * (X - cx) + np.sin(th) * (Y - cy)
    v = -np.sin(th) * (X - cx) + np.cos(th) * (Y - cy)
    mask = np.zeros(u.shape, np.float32)  # (n, S, S): 1 on the shape, 0 on the background
    for c in range(10):
        i = np.flatnonzero(y == c)
        mask[i] = shape_mask(c, u[i], v[i], r[i], freq[i])
    # two colours per image, at least 0.25 apart in brightness so the shape is visible
    fg, bg = f32(rng.uniform(0, 1, (2, n, 3)))
    dark = fg.mean(1) < bg.mean(1)
    gap = np.abs(fg.mean(1) - bg.mean(1))[:, None]
    push = np.clip(0.25 - gap, 0, None) / 2 * np.where(dark, -1, 1)[:, None]
    fg, bg = np.clip(fg + push, 0, 1), np.clip(bg - push, 0, 1)
    img = mask[:, None] * fg[:, :, None, None] + (1 - mask[:, None]) * bg[:, :, None, None]
    # lighting: a colour cast (per-channel gain) and a brightness ramp in a random direction
    cast = f32(np.exp(rng.normal(0, 0.25, (n, 3, 1, 1))))
    phi = f32(rng.uniform(0, 2 * np.pi, (n, 1, 1)))
    ramp = 1 + f32(rng.uniform(0, 0.5, (n, 1, 1))) * (np.cos(phi) * X + np.sin(phi) * Y)
    img = img * (255 * cast) * ramp[:, None] + rng.standard_normal(img.shape, np.float32) * 10
    img = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return torch.from_numpy(img), torch.from_numpy(y.astype(np.int64))


@functools.cache  # one generation per process (tests call train() many times)
def load_shapes(n_train=5000, n_val=1000, n_test=2000, seed=0):
    """The offline default: the same images for every run (the seed is the data's, not the run's)."""
    x, y = make_shapes(n_train + n_val + n_test, size=36, seed=1234 + seed)
    a, b = n_train, n_train + n_val
    return {"train": (x[:a], y[:a]), "val": (x[a:b], y[a:b]), "test": (x[b:], y[b:]), "classes": SHAPES, "crop": 32}  # fmt: skip


# ----------------------------------------------------------------------------- torchvision layouts


def read_idx(path):
    """IDX file (optionally .gz): big-endian magic (0x0801 labels, 0x0803 images), dims, uint8."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\0\0\x08":
        raise DataError(f"{path} is not an IDX file of uint8 (magic {data[:4].hex()})")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def pad(x, p):
    return torch.nn.functional.pad(x, (p, p, p, p))


def split_val(x, y, n_val, seed=0):
    """The last n_val of a fixed permutation of the training set become the validation set."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    tr, va = perm[:-n_val], perm[-n_val:]
    return (x[tr], y[tr]), (x[va], y[va])


def load_fashion_mnist(data_dir, download=False):
    raw = Path(data_dir) / "FashionMNIST" / "raw"
    if download:
        import torchvision

        for train in (True, False):
            torchvision.datasets.FashionMNIST(data_dir, train=train, download=True)
    split = {}
    for name, stem in (("train", "train"), ("test", "t10k")):
        files = []
        for kind in ("images-idx3", "labels-idx1"):
            f = raw / f"{stem}-{kind}-ubyte"
            f = f if f.exists() else f.with_name(f.name + ".gz")
            if not f.exists():
                raise DataError(
                    f"no Fashion-MNIST in {raw} (lacks {f.name}): pass --download or --data-dir"
                )
            files.append(read_idx(f))
        split[name] = (pad(torch.from_numpy(files[0].copy())[:, None], 4), torch.from_numpy(files[1].astype(np.int64)))  # fmt: skip
    train, val = split_val(*split["train"], 5000)
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
    return {"train": train, "val": val, "test": split["test"], "classes": classes, "crop": 32}


def load_cifar10(data_dir, download=False):
    import torchvision

    try:
        sets = [torchvision.datasets.CIFAR10(data_dir, train=t, download=download) for t in (True, False)]  # fmt: skip
    except RuntimeError as e:
        raise DataError(
            f"no CIFAR-10 in {data_dir}/cifar-10-batches-py ({e}): pass --download"
        ) from None
    tensors = [(pad(torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(), 2), torch.tensor(s.targets)) for s in sets]  # fmt: skip
    train, val = split_val(*tensors[0], 5000)
    return {"train": train, "val": val, "test": tensors[1], "classes": sets[0].classes, "crop": 32}


# ----------------------------------------------------------------------------- ImageFolder


def load_image(path, side, channels=3):
    """A file -> uint8 (C, side, side): shorter side resized to `side`, centre crop (Section 2).

    Grayscale, palette and RGBA images are converted to RGB (alpha dropped), or to L for a
    one-channel model. A file that is not an image raises DataError.
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
    w, h = im.size
    left, top = int(round((w - side) / 2)), int(round((h - side) / 2))  # as torchvision rounds
    im = im.crop((left, top, left + side, top + side))
    a = np.asarray(im, dtype=np.uint8).reshape(side, side, channels)
    return torch.from_numpy(a.copy()).permute(2, 0, 1)  # (C, side, side)


def load_imagefolder(data_dir, crop=224, num_classes=0, max_per_class=0):
    """DIR/train/CLASS/*.jpg and DIR/val/CLASS/*.jpg (Imagenette, Tiny-ImageNet, your photos).

    Resize to 256/224 * crop, keep the first num_classes classes (0: all). The val split is
    the test set; a tenth of train is held out for validation.
    """
    root = Path(data_dir)
    side = round(crop * 256 / 224)
    if not (root / "train").is_dir():
        raise DataError(f"no ImageFolder tree at {root}/train/CLASS/*: see README, Datasets")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    classes = classes[:num_classes] if num_classes else classes
    if len(classes) < 2:
        raise DataError(f"{root}/train has {len(classes)} class folders: need at least 2")
    split = {}
    for name in ("train", "val"):
        xs, ys = [], []
        for label, c in enumerate(classes):
            files = sorted(f for f in (root / name / c).glob("*") if f.is_file())
            for f in files[:max_per_class] if max_per_class else files:
                xs.append(load_image(f, side))
                ys.append(label)
        if not xs:
            raise DataError(f"no images under {root}/{name}/")
        split[name] = (torch.stack(xs), torch.tensor(ys))
    train, val = split_val(*split["train"], max(1, len(split["train"][1]) // 10))
    return {"train": train, "val": val, "test": split["val"], "classes": classes, "crop": crop}


def load(dataset, data_dir="data", download=False, crop=0, num_classes=0, smoke=False):
    if dataset == "shapes":
        return load_shapes(256, 256, 256) if smoke else load_shapes()
    if dataset == "fashion-mnist":
        return load_fashion_mnist(data_dir, download)
    if dataset == "cifar10":
        return load_cifar10(data_dir, download)
    if dataset == "imagefolder":
        return load_imagefolder(data_dir, crop or 224, num_classes)
    raise DataError(f"unknown --dataset {dataset!r}: expected {', '.join(DATASETS)}")


def channel_stats(images):
    """Per-channel mean and std of uint8 images, as fractions of 255 (for Normalize)."""
    x = images.transpose(0, 1).reshape(images.shape[1], -1).double() / 255
    return x.mean(1).tolist(), x.std(1).tolist()
