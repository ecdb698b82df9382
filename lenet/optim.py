"""Optimizers and the learning-rate schedule, in NumPy, for the LeNet-5 lesson.

SGD with momentum (Polyak 1964; the form used by torch.optim.SGD), Adam (Kingma & Ba 2014,
https://arxiv.org/abs/1412.6980, Algorithm 1), L2 weight decay added to the gradient of the
weights (not the biases), and a cosine schedule with linear warm-up (Loshchilov & Hutter 2016,
https://arxiv.org/abs/1608.03983). tests/test_network.py holds five steps of each against
torch.optim and the schedule against torch's LinearLR + CosineAnnealingLR.

The same API as backprop/ and rnn/: `optimizer = Adam(model.params, lr=...)` holds the arrays the
layers own, `optimizer.step(model.grads)` updates them in place, and `state_dict()` /
`load_state_dict()` give the momentum buffers, moments and step count as plain arrays.
"""

import math

import numpy as np

SCHEDULES = ("cosine", "constant")


def decays(name):
    """L2 weight decay applies to weight matrices/kernels ("*.W"), not to biases."""
    return name.endswith(".W")


class Optimizer:
    slots = ()  # names of the per-parameter state arrays

    def __init__(self, params, *, lr, weight_decay=0.0):
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.t = 0  # steps taken
        self.state = {s: {k: np.zeros_like(p) for k, p in params.items()} for s in self.slots}

    def step(self, grads):
        self.t += 1
        for k, p in self.params.items():
            g = grads[k] + self.weight_decay * p if decays(k) and self.weight_decay else grads[k]
            self.update(k, p, g)

    def state_dict(self):
        out = {f"{s}.{k}": v for s, d in self.state.items() for k, v in d.items()}
        out["t"] = np.array(self.t)
        return out

    def load_state_dict(self, arrays):
        self.t = int(arrays["t"])
        for s, d in self.state.items():
            for k, v in d.items():
                v[...] = arrays[f"{s}.{k}"]


class SGD(Optimizer):
    """v <- mu v + (g + wd w);  w <- w - lr v."""

    slots = ("velocity",)

    def __init__(self, params, *, lr=0.01, momentum=0.9, weight_decay=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.momentum = momentum

    def update(self, k, p, g):
        v = self.state["velocity"][k]
        v *= self.momentum
        v += g
        p -= self.lr * v


class Adam(Optimizer):
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  w <- w - lr m_hat / (sqrt(v_hat) + eps)."""

    slots = ("m", "v")

    def __init__(self, params, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.betas, self.eps = betas, eps

    def update(self, k, p, g):
        b1, b2 = self.betas
        m, v = self.state["m"][k], self.state["v"][k]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        m_hat = m / (1 - b1**self.t)  # bias correction: the moments start at zero
        v_hat = v / (1 - b2**self.t)
        p -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.dtype)


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def make_optimizer(name, params, *, lr, weight_decay=0.0, momentum=0.9):
    if name == "sgd":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd or adam")


def lr_at(step, *, lr, warmup_steps=0, schedule_steps=1, schedule="cosine"):
    """Learning rate for update number `step` (0-based); the same signature in backprop/, rnn/.

    cosine: linear warm-up over warmup_steps, then lr * (1 + cos(pi * progress)) / 2 with
    progress = (step - warmup_steps) / (schedule_steps - warmup_steps), held at 1 past the
    horizon (the rate stays at its end value, 0). constant: lr throughout.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    if schedule == "constant":
        return lr
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, schedule_steps - warmup_steps)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
