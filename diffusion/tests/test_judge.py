"""The Frechet distance against pytorch-fid's, on features with a known answer."""

import numpy as np
from judge import frechet_distance
from pytorch_fid.fid_score import calculate_frechet_distance


def test_frechet_distance_matches_pytorch_fid():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6))
    b = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 0.7
    ref = calculate_frechet_distance(
        a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    )
    assert abs(frechet_distance(a, b) - ref) < 1e-8
    assert abs(frechet_distance(a, a)) < 1e-8
    # shifting every feature by 1 adds exactly D = 6 to the distance
    assert abs(frechet_distance(a, a + 1) - 6) < 1e-8
