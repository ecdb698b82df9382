"""Gradient clipping by global norm, and the Adam, Adagrad and RMSProp optimisers, in NumPy.

Each optimiser updates a `params` dict in place from a `grads` dict with the same keys, and keeps
its state as plain arrays (`state_dict()` / `load_state_dict()`) so a checkpoint can hold it.
Papers: Adagrad, Duchi et al. (2011), https://jmlr.org/papers/v12/duchi11a.html; RMSProp,
Tieleman & Hinton, Coursera lecture 6.5 (2012); Adam, Kingma & Ba, https://arxiv.org/abs/1412.6980
(Algorithm 1); clipping, Pascanu et al., https://arxiv.org/abs/1211.5063 (sec. 3.2).
tests/test_reference.py holds each against torch.optim and torch.nn.utils.clip_grad_norm_ in float64.
"""

import numpy as np


def clip_grad_norm(grads, max_norm):
    """Scale every gradient by min(1, max_norm / ||g||) where ||g|| is the norm of all of them
    together; returns ||g|| before clipping. The direction is kept, only the step shrinks."""
    total = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))
    scale = max_norm / (total + 1e-6)  # torch's epsilon
    if scale < 1.0:
        for g in grads.values():
            g *= g.dtype.type(scale)
    return total


class Optimizer:
    slots = ()  # names of the per-parameter state arrays

    def __init__(self, params, lr):
        self.params, self.lr, self.t = params, lr, 0
        self.state = {s: {k: np.zeros_like(v) for k, v in params.items()} for s in self.slots}

    def step(self, grads):
        self.t += 1
        for k, p in self.params.items():
            self._update(k, p, grads[k])

    def state_dict(self):
        out = {f"{s}.{k}": v for s in self.slots for k, v in self.state[s].items()}
        out["t"] = np.array(self.t)
        return out

    def load_state_dict(self, d):
        self.t = int(d["t"])
        for s in self.slots:
            for k in self.params:
                self.state[s][k][...] = d[f"{s}.{k}"]


class Adam(Optimizer):
    """m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)."""

    slots = ("m", "v")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.b1, self.b2, self.eps = betas[0], betas[1], eps

    def _update(self, k, p, g):
        m, v = self.state["m"][k], self.state["v"][k]
        m *= self.b1
        m += (1 - self.b1) * g
        v *= self.b2
        v += (1 - self.b2) * g * g
        bc1, bc2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        p -= (self.lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + self.eps)


class Adagrad(Optimizer):
    """s += g^2;  p -= lr g / (sqrt(s) + eps): each weight's step shrinks with its own history."""

    slots = ("sum",)

    def __init__(self, params, lr=1e-2, eps=1e-10):
        super().__init__(params, lr)
        self.eps = eps

    def _update(self, k, p, g):
        s = self.state["sum"][k]
        s += g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


class RMSProp(Optimizer):
    """s = alpha s + (1-alpha) g^2;  p -= lr g / (sqrt(s) + eps): Adagrad with a forgetting sum."""

    slots = ("sq",)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8):
        super().__init__(params, lr)
        self.alpha, self.eps = alpha, eps

    def _update(self, k, p, g):
        s = self.state["sq"][k]
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


OPTIMIZERS = {"adam": Adam, "adagrad": Adagrad, "rmsprop": RMSProp}
