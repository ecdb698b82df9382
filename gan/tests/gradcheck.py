"""Centred finite differences in float64, the yardstick for every backward.

df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / 2h, error O(h^2); with h = 1e-6 in
float64 the truncation error (~1e-12) and the rounding error (~1e-16/h = 1e-10)
stay far below the 1e-6 relative error asserted (cs231n: above 1e-2 is wrong).
"""

import numpy as np


def numerical_grad(f, x, h=1e-6):
    """Gradient of the scalar f() with respect to array x, perturbed in place."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


def rel_error(a, b):
    """||a - b|| / (||a|| + ||b||): scale-free, and 0 only when they agree."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))
