"""visualize.py: the filter normalisation of Li et al. and each panel at a tiny size."""

import numpy as np
import visualize


def test_filter_normalized_direction_matches_filter_norms():
    rng = np.random.default_rng(0)
    # W is (out 4, in 5): row j holds unit j's incoming weights, one filter
    W = rng.standard_normal((4, 5)) * np.arange(1, 5)[:, None]
    params = {"0.W": W, "0.b": rng.standard_normal(4)}
    d = visualize.filter_normalized_direction(params, rng)
    np.testing.assert_allclose(np.linalg.norm(d["0.W"], axis=1), np.linalg.norm(W, axis=1))
    assert not np.allclose(d["0.W"], params["0.W"])
    assert np.all(d["0.b"] == 0)


def test_init_stats_show_vanishing_and_preserved_signals():
    small, _ = visualize.layer_stats("tanh", "normal", depth=4, width=64, n=64)
    xavier, _ = visualize.layer_stats("tanh", "xavier", depth=4, width=64, n=64)
    he_fwd, he_grad = visualize.layer_stats("relu", "he", depth=4, width=64, n=64)
    assert small[-1] < 1e-3 * small[0]  # N(0, 0.01^2): the signal dies layer by layer
    assert 0.2 < xavier[-1] / xavier[0] < 1.5
    assert 0.3 < he_fwd[-1] / he_fwd[0] < 3 and 0.1 < he_grad[0] / he_grad[-1] < 10


def test_panels_draw(tmp_path):
    visualize.init_stats(tmp_path / "b.png", depth=3, width=16)
    visualize.gradient_flow(tmp_path / "c.png", depth=3, steps=20, every=5)
    Z = visualize.loss_landscape(tmp_path / "d.png", n_grid=5, epochs=2)
    assert Z.shape == (5, 5) and Z[2, 2] == Z.min()  # the trained point sits lowest on this grid
    visualize.boundaries(tmp_path / "e.png", datasets=("xor", "gaussians"), epochs=2)
    for name in ("b.png", "c.png", "d.png", "e.png"):
        assert (tmp_path / name).stat().st_size > 1000
