"""LeNet-5 in NumPy: convolution, pooling and the network, forward and backward by hand.

Paper: Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 86(11), 1998 (Section II.B, Fig. 2: the LeNet-5 architecture).
https://doi.org/10.1109/5.726791 (no arXiv version exists).

Read top to bottom: a convolution as loops (`conv2d_naive`), the same convolution as one matrix
multiply (`Conv2D`, im2col), pooling (loops, then vectorised), the small layers, the loss, and
LeNet-5. Every layer has `forward(x)` and `backward(dout) -> dx`, with parameters in `params` and
their gradients in `grads` (same keys). Layers keep the dtype they are given: float32 to train,
float64 in the tests.

Tests (tests/test_layers.py, tests/test_network.py) hold every backward against centred finite
differences (float64, random upstream gradient, relative error < 1e-6) and against torch autograd
(F.conv2d, F.max_pool2d, F.avg_pool2d, an identical torch.nn LeNet), outputs and gradients.
"""

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

# ---------------------------------------------------------------------------------------------
# Convolution, the readable way: four loops. Deep-learning "convolution" is cross-correlation:
#   out[n, f, i, j] = b[f] + sum_{c, u, v} x_pad[n, c, i*s + u, j*s + v] * W[f, c, u, v]
# ---------------------------------------------------------------------------------------------


def conv2d_naive(x, W, b, stride=1, pad=0):
    """x (N, C, H, W), W (F, C, kh, kw), b (F,) -> (N, F, Ho, Wo). Slow; the test oracle."""
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho = (H + 2 * pad - kh) // stride + 1
    Wo = (Wd + 2 * pad - kw) // stride + 1
    out = np.zeros((N, F, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    patch = xp[n, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    out[n, f, i, j] = np.sum(patch * W[f]) + b[f]
    return out


def windows(xp, kh, kw, stride):
    """A view (N, Ho, Wo, C, kh, kw) of every kh x kw patch of xp (N, C, H, W); no copy."""
    N, C, H, Wd = xp.shape
    sN, sC, sH, sW = xp.strides
    Ho, Wo = (H - kh) // stride + 1, (Wd - kw) // stride + 1
    shape = (N, Ho, Wo, C, kh, kw)
    return as_strided(xp, shape, (sN, sH * stride, sW * stride, sC, sH, sW), writeable=False)


def grid(x, u, v, stride, Ho, Wo):
    """x[:, :, i*s + u, j*s + v] for all i < Ho, j < Wo: offset (u, v) of every window, a view."""
    return x[:, :, u : u + stride * (Ho - 1) + 1 : stride, v : v + stride * (Wo - 1) + 1 : stride]


def scatter_windows(dwin, x_shape, stride):
    """The adjoint of `windows`: add each patch gradient (N, Ho, Wo, C, kh, kw) back into place.

    Overlapping patches (stride < kernel) add up; this is col2im. One strided add per kernel
    offset (u, v), so kh*kw vectorised adds instead of N*Ho*Wo small ones.
    """
    N, Ho, Wo, C, kh, kw = dwin.shape
    dxp = np.zeros(x_shape, dtype=dwin.dtype)
    dwin = dwin.transpose(0, 3, 4, 5, 1, 2)  # (N, C, kh, kw, Ho, Wo)
    for u in range(kh):
        for v in range(kw):
            grid(dxp, u, v, stride, Ho, Wo)[...] += dwin[:, :, u, v]
    return dxp


class Conv2D:
    """2-D convolution (cross-correlation), NCHW, as im2col + one matrix multiply.

    forward:  cols = im2col(x_pad)            (N*Ho*Wo, C*kh*kw)
              out  = cols @ W_mat.T + b       (N*Ho*Wo, F), W_mat = W.reshape(F, C*kh*kw)
    backward: dW_mat = dout_mat.T @ cols      (correlation of input and upstream gradient)
              db     = sum over n, i, j of dout
              dx     = col2im(dout_mat @ W_mat)   (= full convolution of dout with flipped W)
    """

    def __init__(self, c_in, c_out, kernel, stride=1, pad=0, rng=None, gain=2.0, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng(0)
        fan_in = c_in * kernel * kernel
        std = np.sqrt(gain / fan_in)  # He (gain 2, ReLU) or LeCun (gain 1, tanh) initialisation
        self.params = {
            "W": (rng.standard_normal((c_out, c_in, kernel, kernel)) * std).astype(dtype),
            "b": np.zeros(c_out, dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.stride, self.pad = stride, pad

    def forward(self, x):
        W, b, p = self.params["W"], self.params["b"], self.pad
        F, C, kh, kw = W.shape
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        win = windows(xp, kh, kw, self.stride)  # (N, Ho, Wo, C, kh, kw), a view
        N, Ho, Wo = win.shape[:3]
        cols = win.reshape(N * Ho * Wo, C * kh * kw)  # (N*Ho*Wo, C*kh*kw), the im2col copy
        out = cols @ W.reshape(F, -1).T + b  # (N*Ho*Wo, F)
        self.cache = (xp.shape, x.shape, cols, (N, Ho, Wo))
        return out.reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2)  # (N, F, Ho, Wo)

    def backward(self, dout, need_dx=True):
        xp_shape, x_shape, cols, (N, Ho, Wo) = self.cache
        W, p = self.params["W"], self.pad
        F, C, kh, kw = W.shape
        dmat = dout.transpose(0, 2, 3, 1).reshape(N * Ho * Wo, F)  # (N*Ho*Wo, F)
        self.grads["W"] = (dmat.T @ cols).reshape(W.shape)  # (F, C*kh*kw) -> (F, C, kh, kw)
        self.grads["b"] = dmat.sum(axis=0)
        if not need_dx:  # the first layer's input gradient is never used in training
            return None
        dcols = (dmat @ W.reshape(F, -1)).reshape(N, Ho, Wo, C, kh, kw)  # (N*Ho*Wo, C*kh*kw)
        dxp = scatter_windows(dcols, xp_shape, self.stride)
        return dxp[:, :, p : p + x_shape[2], p : p + x_shape[3]] if p else dxp


# ---------------------------------------------------------------------------------------------
# Pooling. Max:  out[n, c, i, j] = max_{u, v} x[n, c, i*s + u, j*s + v]; the gradient goes to
# the arg-max only. Average (LeNet's "subsampling"): out = mean_{u, v} x[...]; the gradient is
# shared equally, dout / (k*k), by every input of the window.
# ---------------------------------------------------------------------------------------------


def maxpool2d_naive(x, kernel=2, stride=2):
    """x (N, C, H, W) -> (N, C, Ho, Wo) with loops; the test oracle for MaxPool2D."""
    N, C, H, Wd = x.shape
    Ho, Wo = (H - kernel) // stride + 1, (Wd - kernel) // stride + 1
    out = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            patch = x[:, :, i * stride : i * stride + kernel, j * stride : j * stride + kernel]
            out[:, :, i, j] = patch.max(axis=(2, 3))
    return out


class Pool2D:
    """What both poolings share: kernel k, stride s (default k), no parameters, and the output size
    Ho = (H - k) // s + 1, Wo = (W - k) // s + 1."""

    def __init__(self, kernel=2, stride=None):
        self.kernel, self.stride = kernel, stride or kernel
        self.params, self.grads = {}, {}

    def out_size(self, x):
        """-> (k, s, Ho, Wo) for x (N, C, H, W)."""
        k, s = self.kernel, self.stride
        H, Wd = x.shape[2:]
        return k, s, (H - k) // s + 1, (Wd - k) // s + 1


class MaxPool2D(Pool2D):
    """Max pooling, vectorised over the k*k offsets: a running max and arg-max over shifted grids.

    Ties go to the first offset and a NaN wins its window (as in torch: NaN propagates); the
    backward adds dout where the arg-max is (u, v).
    """

    def forward(self, x):
        k, s, Ho, Wo = self.out_size(x)
        out = grid(x, 0, 0, s, Ho, Wo).copy()  # (N, C, Ho, Wo)
        arg = np.zeros(out.shape, dtype=np.intp)  # offset index t = u*k + v of the winner
        for t in range(1, k * k):
            cand = grid(x, t // k, t % k, s, Ho, Wo)
            better = (cand > out) | np.isnan(cand)  # torch's rule: val > max or isnan(val)
            out = np.where(better, cand, out)
            arg[better] = t
        self.arg, self.x_shape = arg, x.shape
        return out

    def backward(self, dout):
        k, s = self.kernel, self.stride
        N, C, Ho, Wo = dout.shape
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        for t in range(k * k):
            grid(dx, t // k, t % k, s, Ho, Wo)[...] += np.where(self.arg == t, dout, 0)
        return dx


class AvgPool2D(Pool2D):
    """Average pooling (LeNet's subsampling layers S2 and S4, without their trainable scale)."""

    def forward(self, x):
        k, s, Ho, Wo = self.out_size(x)
        self.x_shape = x.shape
        return sum(grid(x, u, v, s, Ho, Wo) for u in range(k) for v in range(k)) / (k * k)

    def backward(self, dout):
        k, s = self.kernel, self.stride
        N, C, Ho, Wo = dout.shape
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        share = dout / (k * k)  # every input of a window gets an equal share
        for u in range(k):
            for v in range(k):
                grid(dx, u, v, s, Ho, Wo)[...] += share
        return dx


# ---------------------------------------------------------------------------------------------
# The small layers and the loss.
# ---------------------------------------------------------------------------------------------


class Flatten:
    """(N, C, H, W) -> (N, C*H*W); backward restores the shape."""

    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)  # (N, C*H*W)

    def backward(self, dout):
        return dout.reshape(self.x_shape)


class Linear:
    """y = x @ W.T + b, W (out, in) as in torch.nn.Linear.  dW = dy.T @ x, db = sum dy, dx = dy @ W."""

    def __init__(self, n_in, n_out, rng=None, gain=2.0, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng(0)
        std = np.sqrt(gain / n_in)
        self.params = {
            "W": (rng.standard_normal((n_out, n_in)) * std).astype(dtype),
            "b": np.zeros(n_out, dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"].T + self.params["b"]  # (N, in) @ (in, out) -> (N, out)

    def backward(self, dout):
        self.grads["W"] = dout.T @ self.x  # (out, N) @ (N, in) -> (out, in)
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"]  # (N, out) @ (out, in) -> (N, in)


class ReLU:
    """y = max(0, x);  dx = dy * [x > 0]."""

    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, x):
        self.mask = x > 0
        return np.maximum(x, 0)  # not x * mask: -inf * 0 is nan, torch's relu(-inf) is 0

    def backward(self, dout):
        return dout * self.mask


class Tanh:
    """y = tanh(x);  dx = dy * (1 - y^2)."""

    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dout):
        return dout * (1.0 - self.y * self.y)


def softmax(logits):
    """p_k = exp(z_k - max z) / sum_j exp(z_j - max z), row-wise; shifting keeps exp finite."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, y):
    """Mean loss L = -1/N sum_n log p[n, y_n] and its gradient dL/dlogits = (p - onehot(y)) / N.

    log p = z - max z - log sum_j exp(z_j - max z): exact, and never log(0).
    """
    N = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (N, K)
    loss = -np.mean(log_p[np.arange(N), y])
    dlogits = np.exp(log_p)
    dlogits[np.arange(N), y] -= 1.0
    return float(loss), dlogits / N


# ---------------------------------------------------------------------------------------------
# LeNet-5 (Fig. 2 of the paper): 32x32 input
#   C1 conv 6@5x5 -> 28x28 | S2 pool 2x2 -> 14x14 | C3 conv 16@5x5 -> 10x10 | S4 pool -> 5x5
#   C5 conv 120@5x5 -> 1x1 | F6 linear 84 | output linear 10 (the paper used RBF units here)
# ---------------------------------------------------------------------------------------------

VARIANTS = {"classic": (Tanh, AvgPool2D, 1.0), "modern": (ReLU, MaxPool2D, 2.0)}


@dataclass
class ModelConfig:
    """What inference.py needs to rebuild LeNet5 (stored in the checkpoint): LeNet5(**fields)."""

    variant: str = "modern"
    n_classes: int = 10
    in_channels: int = 1
    seed: int = 0  # draws the initial weights


class LeNet5:
    """LeNet-5. variant "classic": tanh + average pooling; "modern": ReLU + max pooling.

    Differences from the paper, kept for clarity: C3 connects to all 6 S2 maps (the paper used a
    sparse connection table, Table I), S2/S4 have no trainable coefficient and bias, activations
    are plain tanh rather than 1.7159 tanh(2a/3), and the output is a linear layer with softmax
    cross-entropy instead of Euclidean RBF units.
    """

    def __init__(self, variant="modern", n_classes=10, in_channels=1, seed=0, dtype=np.float32):
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}")
        act, pool, gain = VARIANTS[variant]
        rng = np.random.default_rng(seed)
        self.variant = variant
        self.layers = [
            ("C1", Conv2D(in_channels, 6, 5, rng=rng, gain=gain, dtype=dtype)),
            ("A1", act()),
            ("S2", pool(2)),
            ("C3", Conv2D(6, 16, 5, rng=rng, gain=gain, dtype=dtype)),
            ("A3", act()),
            ("S4", pool(2)),
            ("C5", Conv2D(16, 120, 5, rng=rng, gain=gain, dtype=dtype)),
            ("A5", act()),
            ("flatten", Flatten()),
            ("F6", Linear(120, 84, rng=rng, gain=gain, dtype=dtype)),
            ("A6", act()),
            # a small output layer starts the softmax near uniform (loss near ln 10)
            ("output", Linear(84, n_classes, rng=rng, gain=0.1, dtype=dtype)),
        ]

    def forward(self, x, keep=None):
        """x (N, 1, 32, 32) -> logits (N, 10). `keep` (a dict) collects each layer's output."""
        for name, layer in self.layers:
            x = layer.forward(x)
            if keep is not None:
                keep[name] = x
        return x

    def backward(self, dlogits, need_dx=True):
        """Backpropagate dL/dlogits through every layer in reverse; fills each layer's grads.

        Returns dL/dx (N, 1, 32, 32), or None with need_dx=False (saves C1's col2im).
        """
        d = dlogits
        for _, layer in reversed(self.layers[1:]):
            d = layer.backward(d)
        return self.layers[0][1].backward(d, need_dx=need_dx)

    @property
    def params(self):
        """{"C1.W": array, ...}: references to the live arrays (optimizers update in place)."""
        return {f"{n}.{k}": v for n, layer in self.layers for k, v in layer.params.items()}

    @property
    def grads(self):
        """{"C1.W": dL/dW, ...}, filled by the last backward (each backward overwrites them)."""
        return {f"{n}.{k}": v for n, layer in self.layers for k, v in layer.grads.items()}

    def param_counts(self):
        """[(layer name, number of parameters)] for every layer that has any."""
        return [
            (n, sum(v.size for v in layer.params.values()))
            for n, layer in self.layers
            if layer.params
        ]
