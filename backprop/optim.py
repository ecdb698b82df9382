"""Optimizers and learning-rate schedules, written with NumPy and matching torch.optim.

The same API as lenet/ and rnn/: an optimizer is built on the model's
``params`` dict (arrays it updates in place), ``optimizer = Adam(model.params,
lr=...)``, and ``optimizer.step(model.grads)`` applies one update from a dict
of gradients with the same keys. L2 weight decay adds wd * theta to the gradient first, exactly as
torch.optim.SGD/RMSprop/Adam do with ``weight_decay`` (coupled L2, not AdamW).

- SGD with momentum and Nesterov momentum: Sutskever et al. 2013,
  "On the importance of initialization and momentum in deep learning"
  (https://proceedings.mlr.press/v28/sutskever13.html).
- RMSProp: Tieleman & Hinton 2012, Coursera lecture 6.5.
- Adam: Kingma & Ba 2014, https://arxiv.org/abs/1412.6980 (Algorithm 1).
- Cosine schedule: Loshchilov & Hutter 2016, https://arxiv.org/abs/1608.03983 (eq. 5,
  without restarts).

Tests (tests/test_optim.py) feed ours and torch.optim the same gradients for 20
steps in float64, with weight decay, and assert equal parameters; the schedules
are held against torch.optim.lr_scheduler.StepLR and CosineAnnealingLR.
"""

import math

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "cosine")


class Optimizer:
    slots = ()  # names of the per-parameter state arrays

    def __init__(self, params, *, lr, weight_decay=0.0):
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.t = 0  # number of steps taken
        self.state = {s: {k: np.zeros_like(p) for k, p in params.items()} for s in self.slots}

    def step(self, grads):
        self.t += 1
        for k, p in self.params.items():
            g = grads[k]
            if self.weight_decay:
                # L2 penalty (wd/2)||theta||^2 adds wd * theta to the gradient
                g = g + self.weight_decay * p
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
    """theta <- theta - lr * g                                  (plain)
    v <- mu v + g;  theta <- theta - lr * v                     (momentum)
    v <- mu v + g;  theta <- theta - lr * (g + mu v)            (Nesterov, torch's form)
    """

    def __init__(self, params, *, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        if nesterov and momentum <= 0:  # torch.optim.SGD refuses it too
            raise ValueError("Nesterov momentum requires a momentum > 0")
        self.slots = ("velocity",) if momentum else ()
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.momentum, self.nesterov = momentum, nesterov

    def update(self, k, p, g):
        if self.momentum:
            v = self.state["velocity"][k]
            v *= self.momentum
            v += g
            g = g + self.momentum * v if self.nesterov else v
        p -= self.lr * g


class RMSProp(Optimizer):
    """s <- alpha s + (1 - alpha) g^2;  theta <- theta - lr * g / (sqrt(s) + eps)

    Each parameter gets its own step size: large where gradients are large.
    """

    slots = ("square_avg",)

    def __init__(self, params, *, lr, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.alpha, self.eps = alpha, eps

    def update(self, k, p, g):
        s = self.state["square_avg"][k]
        s *= self.alpha
        s += (1.0 - self.alpha) * g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    """m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2            (moments)
    m_hat = m / (1 - b1^t);  v_hat = v / (1 - b2^t)               (bias correction)
    theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)

    m and v start at 0, so early on they are biased towards 0 by the factors
    (1 - b^t); dividing them out makes the first steps the intended size.
    """

    slots = ("m", "v")

    def __init__(self, params, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.b1, self.b2, self.eps = betas[0], betas[1], eps

    def update(self, k, p, g):
        m, v = self.state["m"][k], self.state["v"][k]
        m *= self.b1
        m += (1.0 - self.b1) * g
        v *= self.b2
        v += (1.0 - self.b2) * g * g
        # the same arithmetic order as torch: lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
        step_size = self.lr / (1.0 - self.b1**self.t)
        denom = np.sqrt(v) / math.sqrt(1.0 - self.b2**self.t) + self.eps
        p -= step_size * (m / denom)


def make_optimizer(name, params, *, lr, weight_decay=0.0, momentum=0.9):
    if name == "sgd":
        return SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "nesterov":
        return SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    if name == "rmsprop":
        return RMSProp(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def lr_at(
    step, *, lr, warmup_steps=0, schedule_steps=1, schedule="constant", step_size=1000, gamma=0.1,
    min_lr=0.0,
):  # fmt: skip
    """Learning rate for the update number ``step`` (0-based); the same signature in lenet/, rnn/.

    warm-up: lr * (step + 1) / warmup_steps for the first warmup_steps updates, then
    step:    lr * gamma^floor(t / step_size)
    cosine:  min_lr + (lr - min_lr) * (1 + cos(pi * t / T)) / 2, T = schedule_steps - warmup_steps
    with t the updates since the warm-up, held at T past the horizon (the end value stays).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    t = step - warmup_steps
    if schedule == "step":
        return lr * gamma ** (min(t, schedule_steps) // step_size)
    if schedule == "cosine":
        T = max(schedule_steps - warmup_steps, 1)
        return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(t, T) / T))
    return lr
