"""data.py: IDX files read back, the fixed splits, image folders (mixed sizes, non-images), pixels."""

import math

import numpy as np
import pytest
import torch
from data import Pixels, load_dataset, read_idx, read_image_folder, write_idx
from harness import UserError


def test_idx_round_trip_and_a_bad_magic_number(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    for name in ("x-idx3-ubyte", "x-idx3-ubyte.gz"):
        write_idx(tmp_path / name, a)
        assert np.array_equal(read_idx(tmp_path / name), a)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(UserError, match="not a uint8 IDX file"):
        read_idx(tmp_path / "bad")


def fake_mnist(root, n_train, n_test):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        if n:
            write_idx(raw / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
            write_idx(raw / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))


def test_mnist_splits_and_the_test_set_only_split(tmp_path):
    fake_mnist(tmp_path, 0, 3100)
    with pytest.raises(UserError, match="--test-set-only"):
        load_dataset("mnist", tmp_path)
    d = load_dataset("mnist", tmp_path, test_set_only=True)
    assert (len(d.train.labels), len(d.val.labels), len(d.test.labels)) == (100, 1000, 2000)
    assert d.shape == (1, 28, 28) and d.n_levels == 256
    both = torch.cat([d.train.levels, d.val.levels, d.test.levels]).flatten(1)
    assert len(torch.unique(both, dim=0)) == 3100  # disjoint parts of one permutation


def test_digits_split_is_fixed():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert (len(a.train.labels), len(a.val.labels), len(a.test.labels)) == (1259, 179, 359)
    assert torch.equal(a.test.levels, b.test.levels) and a.test.levels.max() == 16


def test_image_folder_resizes_mixed_sizes_and_names_classes(tmp_path):
    from PIL import Image

    for cls, size in (("cats", (20, 12)), ("dogs", (5, 9))):
        (tmp_path / cls).mkdir()
        Image.new("RGBA", size, (255, 0, 0, 0)).save(tmp_path / cls / "a.png")  # transparent
        Image.new("RGB", size, (0, 0, 255)).save(tmp_path / cls / "b.jpg")
    (tmp_path / ".DS_Store").write_bytes(b"junk")  # hidden files are skipped
    levels, labels, classes = read_image_folder(tmp_path, 8)
    assert levels.shape == (4, 3, 8, 8) and levels.dtype == torch.uint8
    assert classes == ["cats", "dogs"] and labels.tolist() == [0, 0, 1, 1]
    assert levels[0].min() == 255  # transparent red over white is white
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    with pytest.raises(UserError, match="notes.txt is not an image"):
        read_image_folder(tmp_path, 8)


def test_pixels_binarise_and_dequantise():
    levels = torch.tensor([[0, 7, 8, 16]], dtype=torch.uint8)
    assert Pixels("bernoulli", 17, dynamic=False)(levels).tolist() == [[0, 0, 1, 1]]
    big = torch.full((20000,), 64, dtype=torch.uint8)
    dyn = Pixels("bernoulli", 256, dynamic=True).fixed(big)
    assert set(dyn.unique().tolist()) == {0.0, 1.0} and abs(dyn.mean() - 64 / 255) < 0.01
    x = Pixels("gaussian", 256, dynamic=False).fixed(big)
    assert (x >= 64 / 256).all() and (x < 65 / 256).all()  # inside the level's bin


def test_bits_per_dim_of_the_uniform_density_is_eight():
    """p(x) = 1 on [0, 1]^D: NLL 0 nats, so the levels cost log2(256) = 8 bits each."""
    assert math.isclose(Pixels("gaussian", 256, False).bits_per_dim(0.0, 784), 8.0)
    assert math.isclose(Pixels("gaussian", 256, False).bits_per_dim(784 * math.log(2), 784), 9.0)
