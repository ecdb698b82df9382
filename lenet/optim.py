"""Optimizers and the learning-rate schedule, in NumPy, for the LeNet-5 lesson.

SGD with momentum (Polyak 1964; the form used by torch.optim.SGD), Adam (Kingma & Ba 2014,
https://arxiv.org/abs/1412.6980, Algorithm 1), L2 weight decay added to the gradient of the
weights (not the biases), and a cosine schedule with linear warm-up (Loshchilov & Hutter 2016,
https://arxiv.org/abs/1608.03983). tests/test_network.py holds five steps of each against
torch.optim.

Parameters are a dict name -> array, updated in place (the arrays the layers hold), and the
state (momentum buffers, Adam moments, step count) is plain arrays for the checkpoint.
"""

import math

import numpy as np


def decays(name):
    """L2 weight decay applies to weight matrices/kernels ("*.W"), not to biases."""
    return name.endswith(".W")


class SGD:
    """v <- mu v + (g + wd w);  w <- w - lr v."""

    def __init__(self, params, lr=0.01, momentum=0.9, weight_decay=0.0):
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.state = {f"v.{k}": np.zeros_like(p) for k, p in params.items()}

    def step(self, params, grads):
        for k, p in params.items():
            g = grads[k] + self.weight_decay * p if decays(k) else grads[k]
            v = self.state[f"v.{k}"]
            v *= self.momentum
            v += g
            p -= self.lr * v


class Adam:
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  w <- w - lr m_hat / (sqrt(v_hat) + eps)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.state = {"t": np.zeros((), dtype=np.int64)}
        for k, p in params.items():
            self.state[f"m.{k}"] = np.zeros_like(p)
            self.state[f"v.{k}"] = np.zeros_like(p)

    def step(self, params, grads):
        b1, b2 = self.betas
        self.state["t"] += 1
        t = int(self.state["t"])
        for k, p in params.items():
            g = grads[k] + self.weight_decay * p if decays(k) else grads[k]
            m, v = self.state[f"m.{k}"], self.state[f"v.{k}"]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            m_hat = m / (1 - b1**t)  # bias correction: the moments start at zero
            v_hat = v / (1 - b2**t)
            p -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.dtype)


def make_optimizer(name, params, lr, weight_decay, momentum=0.9):
    if name == "sgd":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd or adam")


def lr_at(step, total, base_lr, schedule="cosine", warmup=0):
    """Learning rate for `step` (0-based) of `total`.

    cosine: linear warm-up over `warmup` steps, then lr = base * (1 + cos(pi * progress)) / 2.
    constant: base_lr throughout.
    """
    if schedule == "constant":
        return base_lr
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
