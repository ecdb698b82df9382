"""Data for the GANs: two 2-D mixtures (generated) and image sets (sklearn digits offline).

2-D benchmark (Metz et al. 2016, Unrolled GAN, arXiv 1611.02163, section 3.1; Srivastava et
al. 2017, VEEGAN, arXiv 1705.07761; Lin et al. 2018, PacGAN, arXiv 1712.04086):
- ring8: 8 Gaussians of standard deviation 0.05 evenly spaced on a circle of radius 2;
- grid25: 25 Gaussians of standard deviation 0.05 on the grid {-4, -2, 0, 2, 4}^2.
Every mode has the same weight, so a generator that covers them all puts 1/K of its mass on
each. NumPy only (numpy_gan.py uses it too).

Images, scaled to [-1, 1] (the range of G's tanh):
- digits: the 1,797 real 8x8 handwritten digits that ship with scikit-learn, upsampled
  bilinearly to 16x16, split 80/20 stratified (train / test, the test split for the
  judge's real-vs-real floor);
- mnist / fashion-mnist: IDX files in torchvision's layout (DIR/MNIST/raw/...,
  DIR/FashionMNIST/raw/...), 28x28 zero-padded to 32x32; `--download` fetches them;
- imagefolder: DIR/class_name/*.png|jpg, resized to --image-size, RGB.
tests/test_train.py trains on these mixtures, on the digits and on an image folder it writes.
"""

import gzip
import struct
from pathlib import Path

import numpy as np

MIXTURES = ("ring8", "grid25")
IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist", "imagefolder")
DATASETS = MIXTURES + IMAGE_DATASETS
MODE_STD = 0.05
FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


class DataError(Exception):
    """A data problem the user can fix (missing files, an unknown name): one line."""


# ----------------------------------------------------------------------------- 2-D mixtures


def mixture_centers(name):
    """The K mode centres (K, 2) of a 2-D benchmark mixture."""
    if name == "ring8":
        angles = 2 * np.pi * np.arange(8) / 8
        return 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if name == "grid25":
        g = np.arange(-4.0, 5.0, 2.0)
        return np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    raise DataError(f"unknown 2-D mixture {name!r}: choose from {', '.join(MIXTURES)}")


def sample_mixture(name, n, rng):
    """n points x = mu_k + sigma * eps, k ~ Uniform{1..K}, eps ~ N(0, I): (n, 2) float64."""
    centers = mixture_centers(name)
    k = rng.integers(len(centers), size=n)
    return centers[k] + MODE_STD * rng.standard_normal((n, 2))


# ----------------------------------------------------------------------------- images


def read_idx(path):
    """An IDX file (gzip if .gz): 2 zero bytes, a type code, ndim, ndim big-endian sizes, data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] != 0x08:
        raise DataError(f"{path} is not a uint8 IDX file")
    dims = struct.unpack(f">{raw[3]}I", raw[4 : 4 + 4 * raw[3]])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)


def _idx_split(root, split):
    stem = "train" if split == "train" else "t10k"
    for suffix in (".gz", ""):
        img = root / f"{stem}-images-idx3-ubyte{suffix}"
        lab = root / f"{stem}-labels-idx1-ubyte{suffix}"
        if img.exists() and lab.exists():
            return read_idx(img), read_idx(lab)
    raise DataError(f"no {stem}-images-idx3-ubyte(.gz) in {root}: pass --data-dir or --download")


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    x = upsample_bilinear(x, 2)  # (1797, 16, 16)
    xtr, xte, ytr, yte = train_test_split(
        x, d.target, test_size=0.2, stratify=d.target, random_state=0
    )
    return (xtr, ytr), (xte, yte)


def upsample_bilinear(x, factor):
    """(N, H, W) -> (N, factor H, factor W), half-pixel centres (align_corners=False)."""
    n, h, w = x.shape

    def coords(size):
        src = (np.arange(size * factor) + 0.5) / factor - 0.5
        src = np.clip(src, 0, size - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, size - 1)
        return lo, hi, (src - lo).astype(np.float32)

    r0, r1, fr = coords(h)
    c0, c1, fc = coords(w)
    rows = x[:, r0] * (1 - fr)[None, :, None] + x[:, r1] * fr[None, :, None]
    return rows[:, :, c0] * (1 - fc) + rows[:, :, c1] * fc


def _idx_dataset(name, data_dir, download):
    root = Path(data_dir).expanduser() / FOLDERS[name] / "raw"
    if download:
        import torchvision

        cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.FashionMNIST
        for train in (True, False):
            cls(str(Path(data_dir).expanduser()), train=train, download=True)
    if not root.is_dir():
        raise DataError(f"{root} not found: pass --data-dir DIR (or add --download)")
    out = []
    for split in ("train", "test"):
        x, y = _idx_split(root, split)
        x = np.pad(x.astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))  # 28 -> 32
        out.append((x, y.astype(np.int64)))
    return out


def _imagefolder(data_dir, image_size):
    from PIL import Image

    root = Path(data_dir).expanduser()
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    xs, ys = [], []
    for c, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"):
                img = Image.open(f).convert("RGB").resize((image_size, image_size))
                xs.append(np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0)
                ys.append(c)
    if len(xs) < 10:
        raise DataError(f"{root}: expected DIR/class_name/*.png with at least 10 images")
    x, y = np.stack(xs), np.array(ys)
    perm = np.random.default_rng(0).permutation(len(x))
    cut = int(0.8 * len(x))
    return (x[perm[:cut]], y[perm[:cut]]), (x[perm[cut:]], y[perm[cut:]])


def load_images(name, data_dir="data", download=False, image_size=32):
    """((x_train, y_train), (x_test, y_test)) with x (N, C, H, W) float32 in [-1, 1]."""
    if name == "digits":
        splits = _digits()
    elif name in FOLDERS:
        splits = _idx_dataset(name, data_dir, download)
    elif name == "imagefolder":
        splits = _imagefolder(data_dir, image_size)
    else:
        raise DataError(f"unknown dataset {name!r}: choose from {', '.join(DATASETS)}")
    out = []
    for x, y in splits:
        x = x[:, None] if x.ndim == 3 else x  # (N, 1, H, W) for grey images
        out.append((np.ascontiguousarray(x * 2.0 - 1.0, np.float32), np.asarray(y, np.int64)))
    return out


class RealData:
    """Real batches drawn with the global torch RNG (so --resume replays them), a fixed eval set.

    2-D: eval_x is 2,500 points from a generator of its own; images: the test split, resized
    to image_size where it differs (8x8 digits to 16x16 by default).
    """

    def __init__(self, dataset, data_dir, download, image_size, num_eval_samples, device):
        import torch  # here, so that numpy_gan.py's imports of this file stay NumPy-only

        self.device, self.mixture = device, dataset in MIXTURES
        if self.mixture:
            self.centers = torch.tensor(mixture_centers(dataset), dtype=torch.float32)
            self.eval_x = self.sample_mixture(num_eval_samples, torch.Generator().manual_seed(1))
            return
        (xtr, ytr), (xte, yte) = load_images(dataset, data_dir, download, image_size)
        x, x_test = torch.from_numpy(xtr), torch.from_numpy(xte)
        if x.shape[-1] != image_size:
            x = torch.nn.functional.interpolate(x, size=image_size, mode="bilinear")
            x_test = torch.nn.functional.interpolate(x_test, size=image_size, mode="bilinear")
        self.x, self.y, self.x_test, self.y_test = (
            x,
            torch.from_numpy(ytr),
            x_test,
            torch.from_numpy(yte),
        )
        self.eval_x = self.x_test

    def sample_mixture(self, n, generator=None):
        """x = mu_k + sigma eps with k ~ U{1..K}, eps ~ N(0, I), in torch."""
        import torch

        k = torch.randint(len(self.centers), (n,), generator=generator)
        return self.centers[k] + MODE_STD * torch.randn(n, 2, generator=generator)

    def batch(self, n):
        import torch

        x = self.sample_mixture(n) if self.mixture else self.x[torch.randint(len(self.x), (n,))]
        return x.to(self.device)
