"""demo.py: the printed hand derivation equals the layers' backward, and XOR gets solved."""

import demo
import numpy as np


def test_walkthrough_formulas_equal_layers(capsys):
    g = demo.walkthrough(seed=0)
    np.testing.assert_allclose(g["dW1"], g["layers_dW1"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g["dW2"], g["layers_dW2"], rtol=1e-12, atol=1e-15)
    out = capsys.readouterr().out
    assert "dL/dz1 = dL/dh * (1 - h^2)" in out and "check:" in out


def test_xor_gets_solved(capsys):
    steps = demo.solve(seed=0)
    assert steps is not None and steps < 5000
    assert "solved at step" in capsys.readouterr().out
