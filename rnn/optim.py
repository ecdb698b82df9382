"""Gradient clipping by global norm, the Adam, Adagrad and RMSProp optimisers and decoupled
weight decay, in NumPy.

The same API as backprop/ and lenet/: `optimizer = Adam(model.params, lr=...)` holds the arrays,
`optimizer.step(model.grads)` updates them in place, and the state is plain arrays
(`state_dict()` / `load_state_dict()`) so a checkpoint can hold it. `lr_at` is the schedule.
Papers: Adagrad, Duchi et al. (2011), https://jmlr.org/papers/v12/duchi11a.html; RMSProp,
Tieleman & Hinton, Coursera lecture 6.5 (2012); Adam, Kingma & Ba, https://arxiv.org/abs/1412.6980
(Algorithm 1); decoupled weight decay (AdamW), Loshchilov & Hutter, https://arxiv.org/abs/1711.05101
(Algorithm 2); clipping, Pascanu et al., https://arxiv.org/abs/1211.5063 (sec. 3.2).
tests/test_reference.py holds each against torch.optim (AdamW for the decay) and
torch.nn.utils.clip_grad_norm_ in float64.
"""

import math

import numpy as np

SCHEDULES = ("constant", "cosine")


def clip_grad_norm(grads, max_norm):
    """Scale every gradient by min(1, max_norm / ||g||) where ||g|| is the norm of all of them
    together; returns ||g|| before clipping. The direction is kept, only the step shrinks; a
    gradient already inside the limit is left exactly as it is (never scaled up)."""
    total = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))
    scale = max_norm / (total + 1e-6)  # torch's epsilon
    if scale < 1.0:
        for g in grads.values():
            g *= g.dtype.type(scale)
    return total


class Optimizer:
    """Decoupled weight decay (weight_decay > 0): before its own update, every weight matrix
    shrinks by the factor 1 - lr * weight_decay, p -= lr wd p, apart from the gradient (AdamW,
    Loshchilov & Hutter). Adding wd p to the gradient instead (L2) would let Adam divide it by
    sqrt(v): weights with large gradients would hardly decay. Biases (1-D arrays) never decay."""

    slots = ()  # names of the per-parameter state arrays

    def __init__(self, params, *, lr, weight_decay=0.0):
        self.params, self.lr, self.weight_decay, self.t = params, lr, weight_decay, 0
        self.state = {s: {k: np.zeros_like(v) for k, v in params.items()} for s in self.slots}

    def step(self, grads):
        self.t += 1
        for k, p in self.params.items():
            if self.weight_decay and p.ndim >= 2:
                p *= p.dtype.type(1 - self.lr * self.weight_decay)
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

    def __init__(self, params, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)
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

    def __init__(self, params, *, lr=1e-2, eps=1e-10, weight_decay=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.eps = eps

    def _update(self, k, p, g):
        s = self.state["sum"][k]
        s += g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


class RMSProp(Optimizer):
    """s = alpha s + (1-alpha) g^2;  p -= lr g / (sqrt(s) + eps): Adagrad with a forgetting sum."""

    slots = ("sq",)

    def __init__(self, params, *, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.alpha, self.eps = alpha, eps

    def _update(self, k, p, g):
        s = self.state["sq"][k]
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


OPTIMIZERS = {"adam": Adam, "adagrad": Adagrad, "rmsprop": RMSProp}


def lr_at(step, *, lr, warmup_steps=0, schedule_steps=1, schedule="constant"):
    """Learning rate for update number `step` (0-based); the same signature in backprop/, lenet/.

    A linear warm-up over warmup_steps, then constant: lr, or cosine: lr (1 + cos(pi p)) / 2
    with p = (step - warmup_steps) / (schedule_steps - warmup_steps), held at 1 past the horizon.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    progress = (step - warmup_steps) / max(1, schedule_steps - warmup_steps)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
