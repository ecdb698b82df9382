"""LeNet-5 in NumPy: convolution, pooling and the network, forward and backward by hand.

Paper: Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 86(11), 1998 (Section II.B, Fig. 2: the LeNet-5 architecture).
https://doi.org/10.1109/5.726791 (no arXiv version exists).

Read top to bottom: a convolution as loops (`conv2d_naive`), the same convolution as one matrix
multiply (`Conv2D`, im2col with the batch axis last), pooling (loops, then vectorised), the small layers, the loss, and
LeNet-5. Every layer has `forward(x)` and `backward(dout) -> dx`, with parameters in `params` and
their gradients in `grads` (same keys). Layers keep the dtype they are given: float32 to train,
float64 in the tests.

Tests (tests/test_layers.py, tests/test_network.py) hold every backward against centred finite
differences (float64, random upstream gradient, relative error < 1e-6) and against torch autograd
(F.conv2d, F.max_pool2d, F.avg_pool2d, an identical torch.nn LeNet), outputs and gradients.
"""

from dataclasses import dataclass

import numpy as np

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


def out_size(x_shape, kh, kw, stride):
    """(Ho, Wo) of a kh x kw window sliding with stride s over x (N, C, H, W): (H - kh) // s + 1."""
    return (x_shape[2] - kh) // stride + 1, (x_shape[3] - kw) // stride + 1


def batch_last(x):
    """(N, C, H, W) -> (C, H, W, N), contiguous: the layout im2col copies from (see there)."""
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0))


def batch_first(y):
    """(C, H, W, N) -> (N, C, H, W), contiguous: back to the layout between layers."""
    return np.ascontiguousarray(y.transpose(3, 0, 1, 2))


def grid(xt, u, v, stride, Ho, Wo):
    """xt[:, i*s + u, j*s + v, :] for all i < Ho, j < Wo: offset (u, v) of every window, a view.

    xt is (C, H, W, N), batch last (see im2col)."""
    return xt[:, u : u + stride * (Ho - 1) + 1 : stride, v : v + stride * (Wo - 1) + 1 : stride]


def im2col(x, kh, kw, stride):
    """x (N, C, H, W) -> cols (C*kh*kw, Ho*Wo*N): every receptive field of every image as a column.

    Row (c, u, v) holds x[n, c, i*s + u, j*s + v] for every output position (i, j) and image n,
    so a layer with weights W_mat (F, C*kh*kw) is ONE matrix multiply, W_mat @ cols, whose output
    (F, Ho*Wo*N) is out[n, f, i, j] in the order (f, i, j, n). The rows are filled one kernel
    offset (u, v) at a time: kh*kw copies of a whole strided grid, not N*Ho*Wo small patch copies.
    The batch axis goes last (x is first copied to (C, H, W, N)), so one offset's grid is C*Ho
    runs of Wo*N contiguous numbers: with the batch first it would be N*C*Ho runs of Wo (10 for
    C3), and NumPy pays per run. That layout makes C3's im2col and col2im about 5x faster.
    """
    N, C = x.shape[:2]
    Ho, Wo = out_size(x.shape, kh, kw, stride)
    xt = batch_last(x)  # (C, H, W, N)
    cols = np.empty((C, kh, kw, Ho, Wo, N), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            cols[:, u, v] = grid(xt, u, v, stride, Ho, Wo)
    return cols.reshape(C * kh * kw, Ho * Wo * N)


def col2im(dcols, x_shape, kh, kw, stride):
    """The adjoint of `im2col`: add each column's gradient back to the pixels it was copied from.

    dcols (C*kh*kw, Ho*Wo*N) -> dx (N, C, H, W). Overlapping windows (stride < kernel) add up.
    One strided add per kernel offset (u, v), in the batch-last layout of im2col.
    """
    N, C, H, W = x_shape
    Ho, Wo = out_size(x_shape, kh, kw, stride)
    dcols = dcols.reshape(C, kh, kw, Ho, Wo, N)
    dxt = np.zeros((C, H, W, N), dtype=dcols.dtype)
    for u in range(kh):
        for v in range(kw):
            grid(dxt, u, v, stride, Ho, Wo)[...] += dcols[:, u, v]
    return batch_first(dxt)


class Conv2D:
    """2-D convolution (cross-correlation), NCHW, as im2col + one matrix multiply.

    forward:  cols = im2col(x_pad)            (C*kh*kw, Ho*Wo*N)
              out  = W_mat @ cols + b         (F, Ho*Wo*N), W_mat = W.reshape(F, C*kh*kw)
    backward: dW_mat = g @ cols.T             (correlation of input and upstream gradient g)
              db     = sum over n, i, j of g
              dx     = col2im(W_mat.T @ g)    (= full convolution of g with the flipped W)
    with g = dL/dout in im2col's order (F, Ho*Wo*N).
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
        N = x.shape[0]
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        Ho, Wo = out_size(xp.shape, kh, kw, self.stride)
        cols = im2col(xp, kh, kw, self.stride)  # (C*kh*kw, Ho*Wo*N)
        out = W.reshape(F, -1) @ cols + b[:, None]  # (F, Ho*Wo*N)
        self.cache = (xp.shape, x.shape, cols)
        return batch_first(out.reshape(F, Ho, Wo, N))

    def backward(self, dout, need_dx=True):
        xp_shape, x_shape, cols = self.cache
        W, p = self.params["W"], self.pad
        F, C, kh, kw = W.shape
        g = batch_last(dout).reshape(F, -1)  # (F, Ho*Wo*N), the order of the forward's out
        self.grads["W"] = (g @ cols.T).reshape(W.shape)  # (F, Ho*Wo*N) @ (Ho*Wo*N, C*kh*kw)
        self.grads["b"] = g.sum(axis=1)
        if not need_dx:  # the first layer's input gradient is never used in training
            return None
        dxp = col2im(W.reshape(F, -1).T @ g, xp_shape, kh, kw, self.stride)  # (N, C, Hp, Wp)
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

    def windows(self, x):
        """x (N, C, H, W) -> (C, k*k, Ho, Wo, N): the k*k inputs of every window, im2col's rows.

        A reduction over axis 1 (max, mean) is k*k - 1 elementwise operations on whole
        contiguous (Ho, Wo, N) maps: fast in NumPy, where a reduction along a short strided or
        innermost axis is not.
        """
        k, s = self.kernel, self.stride
        Ho, Wo = out_size(x.shape, k, k, s)
        return im2col(x, k, k, s).reshape(x.shape[1], k * k, Ho, Wo, x.shape[0])

    def unwindows(self, dwin):
        """The adjoint of `windows` (col2im): window gradients (C, k*k, Ho, Wo, N) back to pixels."""
        return col2im(dwin, self.x_shape, self.kernel, self.kernel, self.stride)


class MaxPool2D(Pool2D):
    """Max pooling: each window's maximum; the backward puts dout on the input that won.

    Ties go to the first offset and a NaN wins its window (as np.argmax and torch; with two NaNs
    in one window torch picks the last), so NaN propagates and takes the gradient.
    """

    def forward(self, x):
        win = self.windows(x)  # (C, k*k, Ho, Wo, N)
        out = win.max(axis=1)  # (C, Ho, Wo, N); NaN if the window holds one
        # The winner of each window, as a mask over its k*k offsets: the inputs equal to the max
        # (or NaN), then only the first of them, so that a tie sends the gradient to one input.
        won = (win == out[:, None]) | np.isnan(win)
        taken = won[:, 0].copy()
        for i in range(1, won.shape[1]):
            won[:, i] &= ~taken
            taken |= won[:, i]
        self.won, self.x_shape = won, x.shape
        return batch_first(out)

    def backward(self, dout):
        # dout to each window's winner, 0 to the others (the mask holds one True per window;
        # a mask times dout is cheaper than np.where, and differs only for an infinite dout)
        return self.unwindows(self.won * batch_last(dout)[:, None])


class AvgPool2D(Pool2D):
    """Average pooling (LeNet's subsampling layers S2 and S4, without their trainable scale)."""

    def forward(self, x):
        self.x_shape = x.shape
        return batch_first(self.windows(x).mean(axis=1))

    def backward(self, dout):
        share = batch_last(dout)[:, None] / self.kernel**2  # (C, 1, Ho, Wo, N): an equal share
        return self.unwindows(np.repeat(share, self.kernel**2, axis=1))  # for every input


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
