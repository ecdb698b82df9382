"""Shapes and sizes of the teacher and the students, the bias shift, the shift augmentation."""

import numpy as np
import pytest
import torch
from data import (
    labelled_subset,
    load_dataset,
    random_shift,
    read_idx,
    stratified_split,
    write_idx,
)
from model import STUDENTS, TEACHER, Classifier, best_bias_shift, build_config, n_params


@pytest.mark.parametrize("side", [8, 28])
def test_teacher_and_students_map_images_to_logits(side):
    teacher = Classifier(build_config(TEACHER, side, 1, 10))
    x = torch.rand(3, 1, side, side)
    assert teacher(x).shape == (3, 10)
    for preset in STUDENTS.values():
        student = Classifier(build_config(preset, side, 1, 10))
        assert student(x).shape == (3, 10)
        assert n_params(teacher) > 20 * n_params(student)  # "several times": here 25-60x


def test_bias_shift_recovers_a_suppressed_class():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(100) % 4
    logits = 5.0 * torch.nn.functional.one_hot(y, 4).float() + torch.randn(100, 4, generator=g)
    logits[:, 3] -= 6.0  # class 3 is almost never predicted, as after omitting it
    b, correct = best_bias_shift(logits, y, 3, [i / 4 for i in range(41)])
    assert 4.0 <= b <= 8.0 and correct >= 95
    assert int((logits.argmax(1) == y).sum()) <= 80


def test_random_shift_moves_each_image_whole():
    torch.manual_seed(0)
    x = torch.zeros(20, 1, 8, 8)
    x[:, :, 3:5, 2:6] = torch.rand(20, 1, 2, 4) + 0.5  # ink away from the border
    out = random_shift(x, 1)
    assert torch.equal(random_shift(x, 0), x)
    moved = 0
    for n in range(20):
        hits = [
            (dy, dx)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if torch.equal(out[n], torch.roll(x[n], (dy, dx), (1, 2)))
        ]
        assert len(hits) == 1
        moved += hits[0] != (0, 0)
    assert moved >= 10


def test_digits_split_and_labelled_subset():
    d = load_dataset("digits")
    sizes = [len(d[k][1]) for k in ("train", "val", "test")]
    assert sum(sizes) == 1797 and sizes[0] > 1200
    assert (
        d["train"][0].shape[1:] == (1, 8, 8)
        and 0 <= d["train"][0].min() <= d["train"][0].max() <= 1
    )
    sub = labelled_subset(d["train"][1], 0.1)
    counts = np.bincount(d["train"][1][sub].numpy(), minlength=10)
    assert abs(len(sub) - 126) <= 5 and counts.min() >= 11  # stratified: every class kept


def test_idx_round_trip_and_mnist_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (200, 28, 28)), np.arange(200) % 10
    write_idx(raw / "t10k-images-idx3-ubyte.gz", images)
    write_idx(raw / "t10k-labels-idx1-ubyte", labels)
    assert np.array_equal(read_idx(raw / "t10k-images-idx3-ubyte.gz"), images)
    d = load_dataset("mnist", str(tmp_path), test_set_only=True)
    assert [len(d[k][1]) for k in ("train", "val", "test")] == [140, 20, 40]
    assert d["test"][0].shape[1:] == (1, 28, 28)
    # the test images are lenet/'s: its stratified 80/20 split with seed 0 (the same 2,000 of
    # 10,000 on MNIST); the 80% is our train + val
    _, te = stratified_split(labels, [0.8, 0.2], 0)
    pixels = np.rint(d["test"][0].numpy() * 255).astype(np.int64).reshape(40, -1)
    key = lambda x: sorted(map(tuple, x.reshape(len(x), -1).tolist()))  # noqa: E731
    assert key(pixels) == key(images[te])
    # train and val are the other 80%, no image in two parts
    seen = torch.cat([d[k][0] for k in ("train", "val", "test")]).flatten(1)
    assert len(torch.unique(seen, dim=0)) == 200
