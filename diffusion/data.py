"""Images for the diffusion model, scaled to [-1, 1] as DDPM does (Sec. 4), with class labels.

Offline default: sklearn's 8x8 handwritten digits (1,797 images, 17 grey levels), split once,
independent of --seed, into 1,437 training and 360 test images so that the judge (judge.py) and
its real-vs-real floor never change between runs. Real datasets come in torchvision's layout
with --data-dir DIR [--download]; their 28x28 images are padded to 32x32 so that a U-Net of
four levels halves them evenly.
"""

import gzip
from pathlib import Path

import numpy as np
import torch

DATASETS = ("digits", "mnist", "fashion-mnist")


def load(name, data_dir="data", download=False):
    """{train_x, train_y, test_x, test_y}: x (N, 1, H, W) float32 in [-1, 1], y (N,) int64."""
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16 * 2 - 1  # (1797, 1, 8, 8)
        y = torch.tensor(d.target, dtype=torch.int64)
        perm = torch.from_numpy(np.random.default_rng(0).permutation(len(x)))
        train, test = perm[:1437], perm[1437:]
        return dict(train_x=x[train], train_y=y[train], test_x=x[test], test_y=y[test])
    if name in ("mnist", "fashion-mnist"):
        return load_torchvision(name, data_dir, download)
    raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")


def read_idx(path):
    """An IDX file (plain or gzip): big-endian magic, dims as uint32, then uint8 data."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", ndim, 4).astype(int)
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims).copy())


def load_torchvision(name, data_dir, download):
    """DIR/MNIST/raw or DIR/FashionMNIST/raw, extracted or still gzipped (torchvision's layout)."""
    folder = "MNIST" if name == "mnist" else "FashionMNIST"
    if download:
        from torchvision import datasets

        getattr(datasets, folder)(root=data_dir, train=True, download=True)
        getattr(datasets, folder)(root=data_dir, train=False, download=True)
    raw, out = Path(data_dir).expanduser() / folder / "raw", {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        arrays = []
        for kind in ("images-idx3", "labels-idx1"):
            path = raw / f"{prefix}-{kind}-ubyte"
            path = path if path.exists() else path.with_name(path.name + ".gz")
            if not path.exists():
                raise ValueError(
                    f"{name}: {path.name} not found under --data-dir {data_dir}; add --download"
                )
            arrays.append(read_idx(path))
        x = arrays[0].float()[:, None] / 255 * 2 - 1  # (N, 1, 28, 28)
        out[f"{split}_x"] = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)  # (N, 1, 32, 32)
        out[f"{split}_y"] = arrays[1].long()
    return out
