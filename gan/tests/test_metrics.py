"""metrics.py against pytorch_fid and prdc on fixed features; mode coverage by hand."""

import numpy as np
import pytest
from metrics import class_histogram, feature_frechet, frechet_distance, mode_stats, precision_recall


@pytest.fixture
def feats():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8))
    b = rng.standard_normal((250, 8)) @ rng.standard_normal((8, 8)) + 0.5
    return a, b


def test_frechet_distance_equals_pytorch_fid(feats):
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = feats
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(calculate_frechet_distance(mu1, s1, mu2, s2), rel=1e-8)
    assert feature_frechet(a, b) == pytest.approx(ours, rel=1e-12)
    assert abs(feature_frechet(a, a)) < 1e-6  # a set against itself: 0


def test_precision_recall_equal_prdc(feats):
    from prdc import compute_prdc

    a, b = feats
    ref = compute_prdc(real_features=a, fake_features=b, nearest_k=3)
    p, r = precision_recall(a, b, k=3)
    assert p == pytest.approx(ref["precision"], abs=1e-12)
    assert r == pytest.approx(ref["recall"], abs=1e-12)
    assert 0 < p < 1 and 0 < r < 1  # the fixture's sets overlap in part


def test_mode_stats_by_hand():
    centers = np.array([[0.0, 0.0], [10.0, 0.0]])
    # 80 samples at mode 0, 15 at mode 1 (>= 0.1 * 100 / 2 = 5), 5 far from both
    x = np.concatenate(
        [np.zeros((80, 2)) + 0.1, np.tile([[10.0, 0.2]], (15, 1)), np.full((5, 2), 5.0)]
    )
    s = mode_stats(x, centers, std=0.1)
    assert s == {"modes_covered": 2, "high_quality": 0.95, "mode_counts": [80, 15]}
    s = mode_stats(x[:84], centers, std=0.1)  # 4 samples at mode 1: under the threshold 4.2
    assert s["modes_covered"] == 1


def test_class_histogram_kl():
    h = class_histogram(np.repeat(np.arange(10), 5), 10)
    assert h["classes_present"] == 10 and abs(h["kl_to_uniform"]) < 1e-12
    h = class_histogram(np.zeros(50, int), 10)  # total collapse: KL = log 10
    assert h["classes_present"] == 1 and h["kl_to_uniform"] == pytest.approx(np.log(10))
