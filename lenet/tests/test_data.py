"""The IDX reader on files the test writes (gzip and raw), bad files, the torchvision layout,
the digits split and the shift augmentation. No network, no real data."""

import gzip

import numpy as np
import pytest
from data import DataError, load_dataset, random_shift, read_idx, write_idx


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / name, images)
    raw = (gzip.open if name.endswith(".gz") else open)(tmp_path / name, "rb").read()
    assert raw[:4] == bytes([0, 0, 8, 3])  # magic 0x00000803
    np.testing.assert_array_equal(read_idx(tmp_path / name), images)
    write_idx(tmp_path / "labels", np.arange(5))
    assert open(tmp_path / "labels", "rb").read(4) == bytes([0, 0, 8, 1])
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), np.arange(5))


@pytest.mark.parametrize(
    "header", [b"\x08\x03\x00\x00", b"\x00\x01\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04"]
)
def test_bad_magic_is_rejected(tmp_path, header):
    (tmp_path / "bad").write_bytes(header + b"\x00\x00\x00\x02ab")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def test_truncated_and_corrupt_gzip_are_rejected(tmp_path):
    write_idx(tmp_path / "short", np.zeros((4, 3, 3)))
    data = (tmp_path / "short").read_bytes()
    (tmp_path / "short").write_bytes(data[:-5])
    with pytest.raises(DataError, match="header says"):
        read_idx(tmp_path / "short")
    (tmp_path / "x.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "x.gz")


def fake_mnist(root, folder="MNIST", n_train=60, n_test=50, gz=True):
    rng = np.random.default_rng(1)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    ext = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{split}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{split}-labels-idx1-ubyte{ext}", np.arange(n) % 10)


def test_mnist_layout_gzip(tmp_path, monkeypatch):
    import data

    monkeypatch.setattr(data, "MNIST_VAL", 10)
    fake_mnist(tmp_path)
    d = load_dataset("mnist", tmp_path)
    assert d["train"][0].shape == (50, 1, 32, 32) and d["val"][0].shape == (10, 1, 32, 32)
    assert d["test"][0].shape == (50, 1, 32, 32) and d["test"][0].dtype == np.float32
    assert d["test"][0].max() <= 1.0 and d["test"][0][:, :, :2].max() == 0.0  # padded 28 -> 32


def test_fashion_raw_files_and_test_set_only_split(tmp_path):
    fake_mnist(tmp_path, "FashionMNIST", n_train=5, n_test=100, gz=False)
    d = load_dataset("fashion-mnist", tmp_path, test_set_only=True)
    assert len(d["train"][1]) == 80 and len(d["test"][1]) == 20 and d["val"] is None
    assert np.bincount(d["test"][1]).tolist() == [2] * 10  # stratified


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", tmp_path)
    msg = str(e.value)
    assert "FashionMNIST/raw/train-images-idx3-ubyte" in msg and "--download" in msg


def test_only_test_files_suggests_test_set_only(tmp_path):
    fake_mnist(tmp_path)
    for f in (tmp_path / "MNIST" / "raw").glob("train-*"):
        f.unlink()
    with pytest.raises(DataError, match="--test-set-only"):
        load_dataset("mnist", tmp_path)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("cifar10")


def test_digits_split_is_stratified_and_disjoint():
    d = load_dataset("digits", seed=0)
    sizes = [len(d[k][1]) for k in ("train", "val", "test")]
    assert sum(sizes) == 1797 and sizes[2] in range(355, 365)
    x = d["train"][0]
    assert x.shape[1:] == (1, 32, 32) and 0.0 <= x.min() and x.max() <= 1.0
    counts = np.bincount(d["test"][1])
    assert counts.min() >= 34 and counts.max() <= 38
    flat = {k: {a.tobytes() for a in d[k][0]} for k in ("train", "test")}
    assert len(flat["test"] - flat["train"]) >= 0.95 * len(
        flat["test"]
    )  # (a few exact duplicates exist)


def test_random_shift_moves_content_and_keeps_mass():
    x = np.zeros((50, 1, 32, 32), dtype=np.float32)
    x[:, :, 14:18, 14:18] = 1.0
    out = random_shift(x, np.random.default_rng(0), max_shift=2)
    np.testing.assert_array_equal(out.sum(axis=(1, 2, 3)), x.sum(axis=(1, 2, 3)))
    centres = np.array([np.argwhere(o[0]).mean(axis=0) for o in out]) - 15.5
    assert np.abs(centres).max() == 2 and len({tuple(c) for c in centres}) > 10
    assert random_shift(x, np.random.default_rng(0), 0) is x


def test_download_goes_through_torchvision_into_the_layout(tmp_path, monkeypatch):
    """--download calls torchvision's dataset class (faked here: no network) for both splits;
    the files it leaves in DIR/MNIST/raw are then read like any others."""
    import sys
    import types

    calls = []

    class FakeMNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            if len(calls) == 2:
                fake_mnist(tmp_path)

    datasets = types.SimpleNamespace(MNIST=FakeMNIST, FashionMNIST=None)
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(datasets=datasets))
    d = load_dataset("mnist", tmp_path, download_ok=True, test_set_only=True)
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]
    assert len(d["train"][1]) == 40 and len(d["test"][1]) == 10
