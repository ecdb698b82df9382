"""Centred finite differences in float64, the yardstick for every backward.

The same file in backprop/, lenet/ and rnn/ (CONTRIBUTING.md, NumPy layer API).
df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / 2h, error O(h^2); with h = 1e-6 in
float64 the truncation error (~1e-12) and the rounding error (~1e-16/h = 1e-10)
stay far below the 1e-6 relative error asserted (cs231n: above 1e-2 is wrong).
The upstream gradient that makes f() a scalar is random, never all ones.
"""

import numpy as np


def numerical_grad(f, x, h=1e-6, at=None):
    """Gradient of the scalar f() with respect to array x, perturbed in place and restored.

    at=None: every entry, in x's shape; else only the flat indices `at`, as a vector (for
    a whole network, whose parameters are too many to perturb one by one).
    """
    flat = np.arange(x.size) if at is None else np.asarray(at)
    grad = np.empty(len(flat))
    for j, i in enumerate(flat):
        idx = np.unravel_index(i, x.shape)
        old = x[idx]
        x[idx] = old + h
        fp = f()
        x[idx] = old - h
        fm = f()
        x[idx] = old
        grad[j] = (fp - fm) / (2 * h)
    return grad.reshape(x.shape) if at is None else grad


def rel_error(a, b):
    """||a - b|| / (||a|| + ||b||): scale-free, and 0 only when they agree."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))
