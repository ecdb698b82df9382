"""A multi-layer perceptron in NumPy with every gradient written by hand.

Read top to bottom: weight initialisations, then the layers (Linear, the
activations, Dropout), then the container (Sequential, MLP), then the losses.
Each layer has ``forward(x)`` and ``backward(dout) -> dx``; parameters live in
``params`` and their gradients in ``grads`` under the same keys. ``backward``
must follow the ``forward`` whose input it differentiates (the layer caches
what it needs), and it overwrites ``grads``.

Backpropagation: Rumelhart, Hinton & Williams 1986, "Learning representations
by back-propagating errors" (Nature 323). Initialisations: Glorot & Bengio 2010
(Xavier, https://proceedings.mlr.press/v9/glorot10a.html) and He et al. 2015
(https://arxiv.org/abs/1502.01852, section 2.2). Dropout: Srivastava et al.
2014 (https://jmlr.org/papers/v15/srivastava14a.html).

Tests (tests/test_layers.py) hold every backward against centred finite
differences in float64 with a random upstream gradient (relative error < 1e-6)
and every forward and backward against torch autograd (nn.Linear, F.relu,
F.leaky_relu, torch.sigmoid, torch.tanh, nn.MSELoss, nn.BCEWithLogitsLoss,
nn.CrossEntropyLoss) with the same weights.
"""

from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------- initialisation

INITS = ("normal", "xavier", "he")


def init_weight(fan_in, fan_out, scheme, rng, dtype=np.float64, scale=0.01):
    """A (fan_out, fan_in) weight matrix (torch.nn.Linear's layout) drawn from N(0, std^2).

    normal: std = scale (0.01), the "small random numbers" of early nets;
            deep nets shrink the signal by about std*sqrt(fan_in) per layer.
    xavier: std = sqrt(2 / (fan_in + fan_out)), keeps Var(activations) and
            Var(gradients) about constant for tanh/linear units (Glorot 2010).
    he:     std = sqrt(2 / fan_in), ReLU zeroes half its inputs, so the
            variance needs a factor 2 to survive each layer (He 2015, eq. 10).
    """
    if scheme == "normal":
        std = scale
    elif scheme == "xavier":
        std = np.sqrt(2.0 / (fan_in + fan_out))
    elif scheme == "he":
        std = np.sqrt(2.0 / fan_in)
    else:
        raise ValueError(f"unknown init {scheme!r}; choose from {', '.join(INITS)}")
    return (rng.standard_normal((fan_out, fan_in)) * std).astype(dtype)


# ---------------------------------------------------------------- layers


class Layer:
    """Base class: no parameters, a training flag that Dropout reads."""

    def __init__(self):
        self.params, self.grads, self.training = {}, {}, True

    def __repr__(self):
        return f"{type(self).__name__}()"


class Linear(Layer):
    """y = x W^T + b, with W of shape (out_features, in_features), as torch.nn.Linear.weight.

    Row j of W holds the incoming weights of output unit j.
    """

    def __init__(self, in_features, out_features, init="he", rng=None, dtype=np.float64):
        super().__init__()
        rng = np.random.default_rng(0) if rng is None else rng
        self.params["W"] = init_weight(in_features, out_features, init, rng, dtype)
        self.params["b"] = np.zeros(out_features, dtype=dtype)

    def forward(self, x):
        # y = x W^T + b: (N, in) @ (in, out) + (out,) -> (N, out)
        self.x = x
        return x @ self.params["W"].T + self.params["b"]

    def backward(self, dout):
        # dL/dW = dout^T x: (out, N) @ (N, in) -> (out, in)
        self.grads["W"] = dout.T @ self.x
        # dL/db = sum over the batch of dout, because b is added to every row
        self.grads["b"] = dout.sum(axis=0)
        # dL/dx = dout W: (N, out) @ (out, in) -> (N, in)
        return dout @ self.params["W"]

    def __repr__(self):
        out_features, in_features = self.params["W"].shape
        return f"Linear({in_features}, {out_features})"


class ReLU(Layer):
    def forward(self, x):
        # y = max(0, x)
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        # dy/dx = 1 where x > 0 else 0 (the kink at 0 takes the subgradient 0)
        return dout * self.mask


class LeakyReLU(Layer):
    def __init__(self, alpha=0.01):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        # y = x if x > 0 else alpha x
        self.mask = x > 0
        return np.where(self.mask, x, self.alpha * x)

    def backward(self, dout):
        # dy/dx = 1 if x > 0 else alpha
        return np.where(self.mask, dout, self.alpha * dout)

    def __repr__(self):
        return f"LeakyReLU({self.alpha})"


def sigmoid(x):
    """1 / (1 + e^-x) as exp(-log(1 + e^-x)); logaddexp never overflows."""
    return np.exp(-np.logaddexp(0.0, -x))


class Sigmoid(Layer):
    def forward(self, x):
        # y = 1 / (1 + e^-x)
        self.y = sigmoid(x)
        return self.y

    def backward(self, dout):
        # dy/dx = y (1 - y); at most 1/4, so ten sigmoids shrink a gradient >= 4^10
        return dout * self.y * (1.0 - self.y)


class Tanh(Layer):
    def forward(self, x):
        # y = tanh(x)
        self.y = np.tanh(x)
        return self.y

    def backward(self, dout):
        # dy/dx = 1 - y^2
        return dout * (1.0 - self.y * self.y)


class Dropout(Layer):
    """Inverted dropout: in training keep each unit with probability 1 - p and
    scale it by 1/(1 - p), so E[y] = x and evaluation is the identity."""

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = p
        self.rng = np.random.default_rng(0) if rng is None else rng

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.mask = None
            return x
        # y = x * m / (1 - p),  m_i ~ Bernoulli(1 - p)
        keep = self.rng.random(x.shape) >= self.p
        self.mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.p)
        return x * self.mask

    def backward(self, dout):
        # dy/dx = m / (1 - p): the same units that were dropped get no gradient
        return dout if self.mask is None else dout * self.mask

    def __repr__(self):
        return f"Dropout({self.p})"


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh}

# ---------------------------------------------------------------- containers


class Sequential(Layer):
    """Layers applied in order. Chain rule: backward runs them in reverse,
    each turning dL/d(output) into dL/d(input).

    ``params``/``grads`` flatten the layers' dicts as "index.name" ("0.W"); the
    arrays are the layers' own, so an optimizer updating them in place
    updates the model.
    """

    def __init__(self, layers):  # no Layer.__init__: params/grads are derived below
        self.layers, self.training = list(layers), True

    @property
    def params(self):
        return {f"{i}.{k}": v for i, l in enumerate(self.layers) for k, v in l.params.items()}

    @property
    def grads(self):
        return {f"{i}.{k}": v for i, l in enumerate(self.layers) for k, v in l.grads.items()}

    def train(self, mode=True):
        self.training = mode
        for l in self.layers:
            l.training = mode
        return self

    def eval(self):
        return self.train(False)

    def forward(self, x):
        for l in self.layers:
            x = l.forward(x)
        return x

    def backward(self, dout):
        for l in reversed(self.layers):
            dout = l.backward(dout)
        return dout

    def __repr__(self):
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


class MLP(Sequential):
    """MLP([2, 64, 64, 3], activation="relu", init="he"): Linear layers of
    the given widths with an activation (and optional Dropout) between them;
    the last Linear outputs raw scores (logits) for the loss to interpret."""

    def __init__(
        self, sizes, activation="relu", init="he", dropout=0.0, rng=None, dtype=np.float64
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}"
            )
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose from {', '.join(INITS)}")
        rng = np.random.default_rng(0) if rng is None else rng
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(fan_in, fan_out, init, rng, dtype))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
                if dropout > 0:
                    layers.append(Dropout(dropout, rng))
        super().__init__(layers)
        self.sizes = list(sizes)


@dataclass
class ModelConfig:
    """Everything inference.py needs to rebuild the network (stored in the checkpoint)."""

    sizes: tuple = (2, 64, 64, 3)  # input features, hidden widths..., outputs
    activation: str = "relu"
    init: str = "he"
    dropout: float = 0.0
    dtype: str = "float32"
    task: str = "multiclass"  # how the outputs are read: multiclass, binary or regression


def build_model(cfg, rng=None):
    """The MLP a ModelConfig describes; rng draws its initial weights (and dropout masks)."""
    return MLP(cfg.sizes, cfg.activation, cfg.init, cfg.dropout, rng, np.dtype(cfg.dtype))


# ---------------------------------------------------------------- losses


class MSE:
    """L = mean((pred - target)^2) over every element (nn.MSELoss)."""

    def forward(self, pred, target):
        self.diff = pred - target.reshape(pred.shape)
        return float(np.mean(self.diff**2))

    def backward(self):
        # dL/dpred = 2 (pred - target) / n_elements
        return (2.0 / self.diff.size) * self.diff


class BCEWithLogits:
    """Binary cross-entropy on a logit z with target y in {0, 1}, batch mean.

    L = -[y log s(z) + (1-y) log(1 - s(z))] = max(z, 0) - z y + log(1 + e^-|z|)
    The right-hand form never takes exp of a large positive number and never
    takes log(0), where the naive form overflows or gives -inf for |z| > ~40.
    """

    def forward(self, z, target):
        self.z, self.y = z, target.reshape(z.shape).astype(z.dtype)
        loss = np.maximum(z, 0) - z * self.y + np.log1p(np.exp(-np.abs(z)))
        return float(np.mean(loss))

    def backward(self):
        # dL/dz = (sigmoid(z) - y) / N
        return (sigmoid(self.z) - self.y) / self.z.size


class SoftmaxCrossEntropy:
    """Softmax over logits z (N, C) and cross-entropy with integer labels y (N,).

    L = mean_n [ log sum_c e^{z_nc} - z_{n,y_n} ], with the log-sum-exp taken
    as m + log sum_c e^{z_nc - m}, m = max_c z_nc, so no exponent exceeds 0.
    """

    def forward(self, z, target):
        m = z.max(axis=1, keepdims=True)  # (N, 1)
        lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))  # (N, 1)
        self.p = np.exp(z - lse)  # softmax probabilities, (N, C)
        self.y = target.astype(np.int64)
        n = np.arange(len(z))
        return float(np.mean(lse[:, 0] - z[n, self.y]))

    def backward(self):
        # dL/dz = (p - onehot(y)) / N: softmax and cross-entropy differentiate together
        dz = self.p.copy()
        dz[np.arange(len(dz)), self.y] -= 1.0
        return dz / len(dz)


LOSSES = {"mse": MSE, "bce": BCEWithLogits, "softmax_ce": SoftmaxCrossEntropy}


def predict(model, X, batch=4096):
    """Eval-mode outputs in batches (logits, or values for regression); the mode is restored."""
    was_training = model.training
    model.eval()
    out = np.concatenate([model.forward(X[i : i + batch]) for i in range(0, len(X), batch)])
    model.train(was_training)
    return out


def to_labels(out, task):
    """Class labels from the outputs: the sign of one logit (binary) or the arg-max."""
    return (out[:, 0] > 0).astype(np.int64) if task == "binary" else out.argmax(1)
