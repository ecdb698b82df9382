"""The first lesson: a GAN in NumPy, every gradient written by hand, on a ring of 8 Gaussians.

Goodfellow et al. 2014, "Generative Adversarial Nets" (https://arxiv.org/abs/1406.2661),
Algorithm 1 and section 3: the discriminator D ascends
    V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))],
and the generator G descends the non-saturating loss -E_z[log D(G(z))], whose gradient does
not vanish when D rejects G's samples early on. G's gradient has to travel THROUGH D:
    dL_G/dtheta_G = dL_G/dD(G(z)) . dD/dx at x = G(z) . dG(z)/dtheta_G,
so D's backward is run only for its input gradient dL/dx (its own parameter gradients from
that pass are thrown away: D's weights stay fixed during G's step).

Layers follow the project's NumPy API (CONTRIBUTING.md section 9): `forward(x)`,
`backward(dout) -> dx`, `params`/`grads` dicts with the same keys, `Linear.W` of shape
(out, in) as torch's nn.Linear.weight, `Adam(params).step(grads)` in place.

    python numpy_gan.py                 # ~20 s: trains on ring8, prints modes covered

Tests (tests/test_numpy_gan.py) check every layer, the D loss and G's gradient through D by
centred finite differences in float64 with random upstream gradients, and the whole G step
against torch autograd with the same weights; Adam against torch.optim.Adam.
"""

import argparse
import math

import numpy as np
from data import MODE_STD, mixture_centers, sample_mixture
from metrics import mode_stats

# ----------------------------------------------------------------------------- layers


class Linear:
    """y = x W^T + b, W (out, in) drawn from U(-1/sqrt(in), 1/sqrt(in)) as torch does."""

    def __init__(self, in_features, out_features, rng):
        bound = 1.0 / math.sqrt(in_features)
        self.params = {
            "W": rng.uniform(-bound, bound, (out_features, in_features)),
            "b": rng.uniform(-bound, bound, out_features),
        }
        self.grads = {}

    def forward(self, x):
        # (N, in) @ (in, out) + (out,) -> (N, out)
        self.x = x
        return x @ self.params["W"].T + self.params["b"]

    def backward(self, dout):
        # dL/dW = dout^T x: (out, N) @ (N, in) -> (out, in); dL/db = sum_n dout
        self.grads = {"W": dout.T @ self.x, "b": dout.sum(0)}
        # dL/dx = dout W: (N, out) @ (out, in) -> (N, in)
        return dout @ self.params["W"]


class LeakyReLU:
    """y = x if x > 0 else alpha x (alpha = 0 is the ReLU)."""

    def __init__(self, alpha=0.2):
        self.alpha, self.params, self.grads = alpha, {}, {}

    def forward(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, self.alpha * x)

    def backward(self, dout):
        # dy/dx = 1 where x > 0, alpha elsewhere
        return np.where(self.mask, dout, self.alpha * dout)


class MLP:
    """Linear -> act -> ... -> Linear. params/grads collect the layers' dicts as "0.W"."""

    def __init__(self, sizes, rng, alpha):
        self.layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.layers.append(Linear(a, b, rng))
            if i < len(sizes) - 2:
                self.layers.append(LeakyReLU(alpha))

    @property
    def params(self):
        return {f"{i}.{k}": v for i, l in enumerate(self.layers) for k, v in l.params.items()}

    @property
    def grads(self):
        return {f"{i}.{k}": v for i, l in enumerate(self.layers) for k, v in l.grads.items()}

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        # chain rule, last layer first
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


# ----------------------------------------------------------------------------- losses


def bce_with_logits(logits, target):
    """L = mean_n [softplus(l) - t l] = -mean[t log s(l) + (1 - t) log(1 - s(l))]; dL/dl.

    softplus(l) = log(1 + e^l) via logaddexp never overflows; dL/dl = (sigmoid(l) - t) / N.
    """
    n = logits.size
    loss = np.mean(np.logaddexp(0.0, logits) - target * logits)
    sigmoid = np.exp(-np.logaddexp(0.0, -logits))
    return loss, (sigmoid - target) / n


def d_loss_and_grads(D, x_real, x_fake):
    """D's step: L_D = BCE(D(x), 1) + BCE(D(G(z)), 0), both halves in one batch.

    Real and fake rows are stacked, so one forward and one backward give D's gradients; the
    mean over 2N rows is half the sum of the two means, (L_real + L_fake) / 2.
    """
    x = np.concatenate([x_real, x_fake])  # (2N, 2)
    target = np.concatenate([np.ones((len(x_real), 1)), np.zeros((len(x_fake), 1))])
    loss, dlogits = bce_with_logits(D.forward(x), target)
    D.backward(dlogits)
    return loss, D.grads


def g_loss_and_grads(G, D, z):
    """G's step, non-saturating: L_G = -mean log D(G(z)) = BCE(D(G(z)), 1).

    Back-propagated through D (its weights held fixed) into x = G(z), then through G.
    """
    x_fake = G.forward(z)  # (N, 2)
    loss, dlogits = bce_with_logits(D.forward(x_fake), np.ones((len(z), 1)))
    dx = D.backward(dlogits)  # dL_G/dx (N, 2); D.grads of this pass are not used
    G.backward(dx)
    return loss, G.grads


# ----------------------------------------------------------------------------- optimiser


class Adam:
    """Kingma & Ba 2014 (arXiv 1412.6980, Algorithm 1), updating the arrays in place.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    theta <- theta - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    def __init__(self, params, lr, betas=(0.5, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        for k, p in self.params.items():
            g = grads[k]
            self.m[k] *= b1
            self.m[k] += (1 - b1) * g
            self.v[k] *= b2
            self.v[k] += (1 - b2) * g * g
            # torch's arithmetic order: lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
            denom = np.sqrt(self.v[k]) / math.sqrt(1 - b2**self.t) + self.eps
            p -= self.lr / (1 - b1**self.t) * self.m[k] / denom

    def state_dict(self):
        out = {f"m.{k}": v for k, v in self.m.items()} | {f"v.{k}": v for k, v in self.v.items()}
        return out | {"t": np.array(self.t)}

    def load_state_dict(self, arrays):
        self.t = int(arrays["t"])
        for k in self.params:
            self.m[k][...] = arrays[f"m.{k}"]
            self.v[k][...] = arrays[f"v.{k}"]


# ----------------------------------------------------------------------------- training


def build(z_dim=2, hidden=128, seed=0):
    """G: z (N, z_dim) -> x (N, 2), ReLU; D: x (N, 2) -> logit (N, 1), leaky ReLU 0.2."""
    rng = np.random.default_rng(seed)
    G = MLP([z_dim, hidden, hidden, 2], rng, alpha=0.0)
    D = MLP([2, hidden, hidden, 1], rng, alpha=0.2)
    return G, D


def train(steps=3000, batch_size=256, lr=5e-4, z_dim=2, hidden=128, seed=0, dataset="ring8"):
    """Algorithm 1 with k = 1: one D step, one G step. Returns (G, D, history)."""
    rng = np.random.default_rng(seed)
    G, D = build(z_dim, hidden, seed)
    opt_g, opt_d = Adam(G.params, lr), Adam(D.params, lr)
    history = {"step": [], "d_loss": [], "g_loss": []}
    for step in range(1, steps + 1):
        x_real = sample_mixture(dataset, batch_size, rng)
        x_fake = G.forward(rng.standard_normal((batch_size, z_dim)))
        d_loss, d_grads = d_loss_and_grads(D, x_real, x_fake)
        opt_d.step(d_grads)
        g_loss, g_grads = g_loss_and_grads(G, D, rng.standard_normal((batch_size, z_dim)))
        opt_g.step(g_grads)
        history["step"].append(step)
        history["d_loss"].append(float(d_loss))
        history["g_loss"].append(float(g_loss))
    return G, D, history


def evaluate(G, dataset="ring8", n=2500, seed=1):
    z = np.random.default_rng(seed).standard_normal((n, G.layers[0].params["W"].shape[1]))
    return mode_stats(G.forward(z), mixture_centers(dataset), MODE_STD)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--dataset", default="ring8", choices=["ring8", "grid25"])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="20 steps")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or not args.lr > 0:
        p.error("--steps, --batch-size and --lr must be positive")
    steps = 20 if args.smoke else args.steps
    G, _, hist = train(steps, args.batch_size, args.lr, seed=args.seed, dataset=args.dataset)
    stats = evaluate(G, args.dataset)
    print(
        f"numpy GAN, {steps} steps on {args.dataset}: D loss {np.mean(hist['d_loss'][-100:]):.3f}, "
        f"G loss {np.mean(hist['g_loss'][-100:]):.3f}, modes covered {stats['modes_covered']}"
        f"/{len(mixture_centers(args.dataset))}, high quality {stats['high_quality']:.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
