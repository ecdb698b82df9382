"""Generated datasets are deterministic and well-formed; the IDX reader round-trips."""

import gzip

import numpy as np
import pytest
from data import DATASETS, GENERATORS, DataError, load_dataset, read_idx, write_idx


@pytest.mark.parametrize("name", GENERATORS)
def test_generators_are_deterministic_and_shaped(name):
    a = load_dataset(name, seed=3, n_train=60, n_test=30)
    b = load_dataset(name, seed=3, n_train=60, n_test=30)
    c = load_dataset(name, seed=4, n_train=60, n_test=30)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)
    assert a.X_train.shape == (60, 1 if name == "sine" else 2) and len(a.X_test) == 30
    if a.task == "regression":
        assert a.y_train.shape == (60, 1)
    else:
        assert set(np.unique(np.r_[a.y_train, a.y_test])) == set(range(max(a.n_classes, 2)))


def test_digits_split():
    d = load_dataset("digits", seed=0)
    assert d.X_train.shape == (1437, 64) and d.X_test.shape == (360, 64)
    assert 0 <= d.X_train.min() and d.X_train.max() <= 1


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, suffix):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    write_idx(tmp_path / f"x{suffix}", images)
    np.testing.assert_array_equal(read_idx(tmp_path / f"x{suffix}"), images)


def test_idx_header_by_hand(tmp_path):
    """The bytes of a 2-label file, written without write_idx: magic 0x00000801, n=2."""
    (tmp_path / "l").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 3]))
    np.testing.assert_array_equal(read_idx(tmp_path / "l"), [7, 3])
    (tmp_path / "bad").write_bytes(bytes([1, 2, 8, 1, 0, 0, 0, 2, 7, 3]))
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 3]))
    with pytest.raises(DataError, match="holds 2 bytes"):
        read_idx(tmp_path / "short")


def fake_idx_folder(root, folder, n_train, n_test):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        if n:
            write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
            with gzip.open(raw / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
                f.write(
                    bytes([0, 0, 8, 1])
                    + n.to_bytes(4, "big")
                    + bytes(rng.integers(0, 10, n).tolist())
                )


def test_fashion_mnist_layout(tmp_path):
    fake_idx_folder(tmp_path, "FashionMNIST", 20, 10)
    d = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert d.X_train.shape == (20, 784) and d.X_test.shape == (10, 784)
    assert d.X_train.dtype == np.float32 and d.X_train.max() <= 1.0


def test_mnist_test_set_only_is_split(tmp_path, capsys):
    fake_idx_folder(tmp_path, "MNIST", 0, 50)
    d = load_dataset("mnist", data_dir=tmp_path)
    assert len(d.X_train) == 40 and len(d.X_test) == 10
    assert "splitting the test set" in capsys.readouterr().err


def test_missing_and_unknown_datasets(tmp_path):
    with pytest.raises(DataError, match="pass --download"):
        load_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(DataError, match=", ".join(DATASETS)):
        load_dataset("cifar10")


def test_download_fetches_the_four_files(tmp_path, monkeypatch):
    """--download, with the network replaced by a function that writes small IDX files."""
    fetched = []

    def fake_urlretrieve(url, dest):
        fetched.append(url)
        n = 6 if "train" in url else 4
        with gzip.open(dest, "wb") as f:  # dest is a temporary name, always gzip content
            if "images" in url:
                f.write(bytes([0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 28, 0, 0, 0, 28]) + bytes(n * 784))
            else:
                f.write(bytes([0, 0, 8, 1, 0, 0, 0, n]) + bytes(range(n)))

    monkeypatch.setattr("urllib.request.urlretrieve", fake_urlretrieve)
    d = load_dataset("fashion-mnist", data_dir=tmp_path, download=True)
    assert len(fetched) == 4 and all(u.endswith("-ubyte.gz") for u in fetched)
    assert d.X_train.shape == (6, 784) and list(d.y_test) == [0, 1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "FashionMNIST" / "raw").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
