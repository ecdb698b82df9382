"""Caption attributes measured on hand-made images are the expected words; the judge's measures."""

import numpy as np
import pytest
import torch
from data import (
    ATTRIBUTES,
    attribute_thresholds,
    attribute_words,
    attributes_of,
    caption,
    ink_area,
    ink_mass,
    ink_slant,
    load_images,
    read_idx,
    vocabulary,
)
from harness import UserError
from judge import frechet_distance, ordering_accuracy
from pytorch_fid.fid_score import calculate_frechet_distance


def square(size, thickness, H=32):
    """An outlined square of side `size` (pixels) and line width `thickness`, in [-1, 1]."""
    x = -torch.ones(1, 1, H, H)
    o = (H - size) // 2
    x[..., o : o + size, o : o + size] = 1
    inner = size - 2 * thickness
    if inner > 0:
        x[..., o + thickness : o + thickness + inner, o + thickness : o + thickness + inner] = -1
    return x


def bar(shear, H=32, half_width=1.5):
    """A vertical bar (rows 4..H-5) whose centre moves `shear` columns per row, in [-1, 1]."""
    rows = torch.arange(H, dtype=torch.float64)[:, None]
    cols = torch.arange(H, dtype=torch.float64)[None, :]
    centre = (H - 1) / 2 + shear * (rows - (H - 1) / 2)
    on = ((cols - centre).abs() <= half_width) & (rows >= 4) & (rows <= H - 5)
    return torch.where(on, 1.0, -1.0).float()[None, None]


def test_ink_measures_on_hand_made_images():
    assert ink_mass(-torch.ones(1, 1, 32, 32)).item() == 0.0
    assert ink_mass(square(16, 8)).item() == 16 * 16 / 32**2
    assert ink_area(square(16, 1)).item() == 16 * 16 / 32**2
    assert ink_area(-torch.ones(1, 1, 32, 32)).item() == 0.0


def test_slant_of_upright_and_sheared_bars():
    assert ink_slant(bar(0.0)).item() == 0.0  # mirror-symmetric: mu11 = 0
    for k in (0.2, 0.4, 0.6):  # the shear comes back, leaning either way
        assert abs(ink_slant(bar(k)).item() - k) < 0.03
        assert ink_slant(bar(-k)).item() == ink_slant(bar(k)).item()
    assert ink_slant(square(16, 2)).item() == 0.0
    # a wide bar is not a slanted one: mu02 (rows), not mu20 (columns), is the denominator
    assert ink_slant(bar(0.0, half_width=6)).item() == 0.0
    assert abs(ink_slant(bar(0.3, half_width=4)).item() - 0.3) < 0.03


def test_attribute_words_for_hand_made_images():
    # one class, three weights and three sizes: the extremes get the words, the middle none
    x = torch.cat([square(12, 1), square(20, 3), square(28, 6), square(20, 1), square(20, 10)])
    y = torch.zeros(5, dtype=torch.long)
    thresholds = attribute_thresholds(x[:3], y[:3], n_classes=1)
    words = attribute_words(x, y, thresholds)
    assert words[0] == ("thin", "small", None)  # squares do not lean: no slant word
    assert words[2] == ("bold", "large", None)
    assert words[1] == (None, None, None)
    assert words[3][0] == "thin" and words[4][0] == "bold"


def test_slant_words_for_upright_and_sheared_bars():
    # thresholds from one class of bars sheared 0 .. 0.6, either way
    train = torch.cat([bar(k) for k in (0.0, 0.1, -0.2, 0.3, -0.4, 0.5, 0.6)])
    y = torch.zeros(len(train), dtype=torch.long)
    thresholds = attribute_thresholds(train, y, n_classes=1)
    x = torch.cat([bar(0.0), bar(0.05), bar(0.3), bar(0.55), bar(-0.7)])
    slant = [w[2] for w in attribute_words(x, y[: len(x)], thresholds)]
    assert slant == ["upright", "upright", None, "slanted", "slanted"]
    # Fashion-MNIST captions weight and size only: two words per image
    fashion = attribute_thresholds(train, y, attributes_of("fashion-mnist"), n_classes=1)
    assert len(attribute_words(x, y[: len(x)], fashion)[0]) == 2


def test_captions_use_only_the_vocabulary_and_name_the_class():
    vocab = set(vocabulary("digits"))
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        c = caption(7, ("bold", "small", "slanted"), "digits", g)
        assert set(c.split()) <= vocab
        assert "seven" in c.split() or "7" in c.split()
        seen |= set(c.split())
    assert {"bold", "small", "slanted"} <= seen
    assert [a[0] for a in ATTRIBUTES] == ["weight", "size", "slant"]
    assert "slanted" not in vocabulary("fashion-mnist")
    assert {"slanted", "upright"} <= vocab


def test_idx_reader_gzip_and_raw(tmp_path):
    import gzip

    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(n).to_bytes(4, "big") for n in images.shape)
    (tmp_path / "a-images").write_bytes(header + images.tobytes())
    with gzip.open(tmp_path / "b-images.gz", "wb") as f:
        f.write(header + images.tobytes())
    assert np.array_equal(read_idx(tmp_path, "a-images"), images)
    assert np.array_equal(read_idx(tmp_path, "b-images"), images)
    (tmp_path / "c-images").write_bytes(header + images.tobytes()[:-1])
    with pytest.raises(UserError, match="size its header"):
        read_idx(tmp_path, "c-images")
    with pytest.raises(UserError, match="not found"):
        read_idx(tmp_path, "d-images")


def test_digits_split_is_fixed_and_in_range():
    x_train, y_train, x_test, _ = load_images("digits")
    assert x_train.shape[1:] == (1, 16, 16) and len(x_test) == 297
    assert x_train.min() >= -1 and x_train.max() <= 1
    again = load_images("digits")[0]
    assert torch.equal(x_train, again)


def test_frechet_distance_matches_pytorch_fid():
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(400, 6)), rng.normal(0.3, 1.5, size=(300, 6))
    ref = calculate_frechet_distance(
        f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False)
    )
    assert abs(frechet_distance(f1, f2) - ref) < 1e-8
    assert abs(frechet_distance(f1, f1)) < 1e-8


def test_ordering_accuracy():
    assert ordering_accuracy([3, 4], [1, 2]) == 1.0
    assert ordering_accuracy([1, 2], [3, 4]) == 0.0
    assert ordering_accuracy([1, 3], [2, 2]) == 0.5
