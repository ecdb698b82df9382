"""Why gating matters: a recall task across a lag, and the gradient that reaches early steps.

Task (a form of Hochreiter & Schmidhuber's 1997 long-lag experiments): the first input is one of
K symbols, then come lag - 1 random noise tokens, then a query token; at the query the model must
name the first symbol. Chance is 1/K. Only the final step is scored, so the whole learning signal
has to travel back `lag` steps through the recurrence: through repeated multiplication by
W_hh^T diag(1 - h^2) in a vanilla RNN (it shrinks geometrically: Bengio et al. 1994; Pascanu et
al., https://arxiv.org/abs/1211.5063), through the additive cell path c_t = f c_{t-1} + ... of
the LSTM and the interpolation h_t = z h_{t-1} + ... of the GRU, which can stay near 1.

    python gating.py                 # both figures into figures/ (a few minutes)
tests/test_gating.py holds the LSTM to solving the task at a lag where the vanilla RNN stays at chance.
"""

import argparse
import time
from pathlib import Path

import harness
import numpy as np
from model import CELLS, Linear, softmax_cross_entropy
from optim import Adam, clip_grad_norm
from tqdm import tqdm


def recall_batch(rng, batch, lag, n_symbols=4, n_noise=4):
    """-> x (lag+1, B, K+M+1) one-hot, target (B,): symbol at t=0, noise, query at t=lag."""
    D = n_symbols + n_noise + 1
    tokens = np.empty((lag + 1, batch), np.int64)
    target = rng.integers(0, n_symbols, batch)
    tokens[0] = target
    tokens[1:lag] = rng.integers(n_symbols, n_symbols + n_noise, (lag - 1, batch))
    tokens[lag] = D - 1  # the query
    return np.eye(D)[tokens], target  # (lag+1, B, D)


class Recaller:
    """One recurrent layer and a linear read-out of its last hidden state."""

    def __init__(self, cell, n_in, n_hidden, n_out, rng, forget_bias=5.0):
        extra = {"forget_bias": forget_bias} if cell == "lstm" else {}
        self.rnn = CELLS[cell](n_in, n_hidden, rng, np.float64, **extra)
        self.head = Linear(n_hidden, n_out, rng, np.float64)

    @property
    def params(self):
        return {f"{n}.{k}": v for n in ("rnn", "head") for k, v in getattr(self, n).params.items()}

    @property
    def grads(self):
        return {f"{n}.{k}": v for n in ("rnn", "head") for k, v in getattr(self, n).grads.items()}

    def loss(self, x, target, backward=True):
        """-> (loss, accuracy, dx); dx (T, B, D) is dL/dx_t: the signal that reached step t."""
        y, _ = self.rnn.forward(x)  # (T, B, H)
        logits = self.head.forward(y[-1])  # (B, K): read the state at the query only
        loss, dlogits = softmax_cross_entropy(logits, target)
        acc = float((logits.argmax(1) == target).mean())
        dx = None
        if backward:
            dy = np.zeros_like(y)
            dy[-1] = self.head.backward(dlogits)
            dx, _ = self.rnn.backward(dy)
        return loss, acc, dx


def train_recall(
    cell,
    lag,
    steps=300,
    n_hidden=16,
    batch=32,
    lr=1e-2,
    seed=0,
    n_symbols=4,
    n_noise=4,
    forget_bias=5.0,
):
    """Train on fresh batches; -> accuracy on 1,000 new sequences."""
    rng = np.random.default_rng(seed)
    model = Recaller(cell, n_symbols + n_noise + 1, n_hidden, n_symbols, rng, forget_bias)
    opt = Adam(model.params, lr=lr)
    for _ in range(steps):
        x, target = recall_batch(rng, batch, lag, n_symbols, n_noise)
        model.loss(x, target)
        clip_grad_norm(model.grads, 1.0)
        opt.step(model.grads)
    x, target = recall_batch(rng, 1000, lag, n_symbols, n_noise)
    return model.loss(x, target, backward=False)[1]


def gradient_reach(cell, T=100, n_hidden=16, batch=64, seed=0, forget_bias=5.0):
    """Mean ||dL/dx_t|| for t = 0..T at initialisation, loss read at the last step only."""
    rng = np.random.default_rng(seed)
    x, target = recall_batch(rng, batch, T)
    model = Recaller(cell, x.shape[2], n_hidden, 4, rng, forget_bias)
    _, _, dx = model.loss(x, target)
    return np.linalg.norm(dx, axis=2).mean(1)  # (T+1,)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--lags", default="5,10,20,30,40,60", help="comma-separated lags")
    p.add_argument("--steps", type=int, default=300, help="Adam steps per run")
    p.add_argument("--n-hidden", type=int, default=16, help="hidden units")
    p.add_argument("--seeds", type=int, default=4, help="runs per point (mean is plotted)")
    p.add_argument("--out-dir", default="figures", help="where the PNGs go")
    args = p.parse_args(argv)
    try:
        lags = [int(s) for s in args.lags.split(",")]
    except ValueError:
        p.error(f"--lags must be comma-separated integers, got {args.lags!r}")
    if min(lags) < 1 or min(args.steps, args.n_hidden, args.seeds) < 1:
        p.error("every lag and --steps, --n-hidden, --seeds must be at least 1")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    harness.blas_threads(1)  # threadpoolctl applies the limit when it is created
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    acc = {c: [] for c in CELLS}
    for cell in CELLS:
        for lag in tqdm(lags, desc=cell):
            runs = [
                train_recall(cell, lag, args.steps, args.n_hidden, seed=s)
                for s in range(args.seeds)
            ]
            acc[cell].append(float(np.mean(runs)))
            tqdm.write(f"{cell} lag {lag}: accuracy {acc[cell][-1]:.3f} ({runs})")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for cell in CELLS:
        ax.plot(lags, acc[cell], "o-", label=cell)
    ax.axhline(0.25, color="gray", ls="--", label="chance (1/4)")
    ax.set(xlabel="lag (steps between the symbol and the query)", ylabel="test accuracy",
           title=f"recall after a lag: hidden {args.n_hidden}, {args.steps} Adam steps", ylim=(0, 1.05))  # fmt: skip
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "recall_vs_lag.png", dpi=100)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for cell, fb in (("rnn", None), ("lstm", 5.0), ("lstm", 0.0), ("gru", None)):
        g = gradient_reach(cell, n_hidden=args.n_hidden, forget_bias=fb)
        label = f"{cell} (forget bias {fb:g})" if cell == "lstm" else cell
        ax.semilogy(np.arange(len(g))[::-1], g, label=label)  # x: steps before the loss
    ax.set(xlabel="steps back from the loss", ylabel="mean ||dL/dx_t||",
           title=f"gradient reaching early inputs (initialisation, hidden {args.n_hidden})")  # fmt: skip
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "gradient_reach.png", dpi=100)
    print(
        f"wrote {out}/recall_vs_lag.png and gradient_reach.png in {time.perf_counter() - t0:.0f} s"
    )
    print({c: dict(zip(lags, a)) for c, a in acc.items()})


if __name__ == "__main__":
    main()
