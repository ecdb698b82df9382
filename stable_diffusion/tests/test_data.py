"""Caption attributes measured on hand-made images are the expected words; the judge's measures."""

import numpy as np
import torch
from data import attribute_thresholds, attribute_words, caption, ink_area, ink_mass, load_images
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


def test_ink_measures_on_hand_made_images():
    assert ink_mass(-torch.ones(1, 1, 32, 32)).item() == 0.0
    assert ink_mass(square(16, 8)).item() == 16 * 16 / 32**2
    assert ink_area(square(16, 1)).item() == 16 * 16 / 32**2
    assert ink_area(-torch.ones(1, 1, 32, 32)).item() == 0.0


def test_attribute_words_for_hand_made_images():
    # one class, three weights and three sizes: the extremes get the words, the middle none
    x = torch.cat([square(12, 1), square(20, 3), square(28, 6), square(20, 1), square(20, 10)])
    y = torch.zeros(5, dtype=torch.long)
    thresholds = attribute_thresholds(x[:3], y[:3], n_classes=1)
    words = attribute_words(x, y, thresholds)
    assert words[0] == ("thin", "small")
    assert words[2] == ("bold", "large")
    assert words[1] == (None, None)
    assert words[3][0] == "thin" and words[4][0] == "bold"


def test_captions_use_only_the_vocabulary_and_name_the_class():
    from data import vocabulary

    vocab = set(vocabulary("digits"))
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        c = caption(7, "bold", "small", "digits", g)
        assert set(c.split()) <= vocab
        assert "seven" in c.split() or "7" in c.split()


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
