"""The IDX reader behind --dataset mnist / fashion-mnist, on tiny files written here."""

import gzip

import numpy as np
import pytest
import torch
from data import load


def write_idx(path, array, magic):
    header = bytes([0, 0, 8, magic]) + np.array(array.shape, ">u4").tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_reads_torchvision_layout_gzipped_or_extracted(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {s: rng.integers(0, 256, (n, 28, 28)) for s, n in (("train", 5), ("t10k", 3))}
    labels = {s: rng.integers(0, 10, len(images[s])) for s in images}
    for s, ext in (("train", ".gz"), ("t10k", "")):  # both forms torchvision leaves on disk
        write_idx(raw / f"{s}-images-idx3-ubyte{ext}", images[s], 3)
        write_idx(raw / f"{s}-labels-idx1-ubyte{ext}", labels[s], 1)
    d = load("fashion-mnist", str(tmp_path))
    assert d["train_x"].shape == (5, 1, 32, 32) and d["test_x"].shape == (3, 1, 32, 32)
    expected = torch.tensor(images["t10k"][1], dtype=torch.float32) / 255 * 2 - 1
    torch.testing.assert_close(d["test_x"][1, 0, 2:30, 2:30], expected)
    assert (d["test_x"][:, :, :2] == -1).all()  # padded with black
    assert d["train_y"].tolist() == labels["train"].tolist()
    with pytest.raises(ValueError, match="add --download"):
        load("mnist", str(tmp_path))
