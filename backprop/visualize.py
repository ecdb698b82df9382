"""Four pictures of how training behaves, each a PNG (README embeds them).

    python visualize.py                  # all five into figures/, about a minute
    python visualize.py --only b,d --out-dir runs

(a) optimizers.png: SGD, Momentum, Nesterov, RMSProp and Adam loss curves on
    the same problem, same initial weights, same mini-batches.
(b) init_stats.png: std of the activations h and of the gradients dL/dh per layer of a
    10-layer net for small-normal, Xavier and He initialisation, tanh and ReLU
    (Glorot & Bengio 2010; He et al. 2015, https://arxiv.org/abs/1502.01852).
(c) gradient_flow.png: mean |dL/dW| per layer over training, sigmoid vs ReLU
    in a 10-layer net: the vanishing gradient of sigmoid made visible.
(d) loss_landscape.png: the loss on a 2-D slice theta* + a d1 + b d2 through
    the trained weights, along two filter-normalised random directions
    (Li et al. 2018, https://arxiv.org/abs/1712.09913, section 4).
(e) decision_boundaries.png: train.py's default run on each 2-D dataset.

Tests (tests/test_visualize.py) check the filter normalisation and run each
panel at a tiny size.
"""

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import plots  # noqa: E402
from data import TOYS_2D, load_dataset  # noqa: E402
from inference import load_model  # noqa: E402
from model import MLP, Linear, SoftmaxCrossEntropy  # noqa: E402
from optim import make_optimizer  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from tqdm import tqdm  # noqa: E402
from train import TrainConfig, predict, to_labels, train  # noqa: E402


def train_curve(model, opt, X, y, epochs, batch, rng):
    """Mini-batch training; -> full-data loss after each epoch (index 0: before training)."""
    loss = SoftmaxCrossEntropy()
    curve = [loss.forward(model.forward(X), y)]
    for _ in range(epochs):
        perm = rng.permutation(len(X))
        for i in range(0, len(X), batch):
            idx = perm[i : i + batch]
            loss.forward(model.forward(X[idx]), y[idx])
            model.backward(loss.backward())
            opt.step(model.grads)
        curve.append(loss.forward(model.forward(X), y))
    return curve


STYLES = {
    "sgd": dict(ls="-", marker="o"),
    "momentum": dict(ls="-", marker="s", lw=3, alpha=0.6),
    "nesterov": dict(ls="--", marker="x"),
    "rmsprop": dict(ls="-.", marker="^"),
    "adam": dict(ls=":", marker="v"),
}


def optimizers(path, epochs=60, n=600):
    """(a) Each optimizer at a learning rate that suits it, everything else shared."""
    d = load_dataset("spirals", seed=0, n_train=n, n_test=1)
    lrs = {"sgd": 0.1, "momentum": 0.02, "nesterov": 0.02, "rmsprop": 0.003, "adam": 0.005}
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, lr in tqdm(lrs.items(), desc="(a) optimizers"):
        model = MLP([2, 64, 64, 3], "relu", "he", rng=np.random.default_rng(0))
        curve = train_curve(
            model,
            make_optimizer(name, model.params, lr=lr),
            d.X_train,
            d.y_train,
            epochs,
            32,
            np.random.default_rng(1),
        )
        # momentum and Nesterov nearly coincide: distinct styles and markers keep both visible
        ax.plot(curve, label=f"{name} (lr {lr})", **STYLES[name], markevery=6, ms=5)
    ax.set(
        yscale="log",
        xlabel="epoch",
        ylabel="training loss",
        title="3-class spirals, MLP 2-64-64-3, batch 32",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def layer_stats(activation, init, depth=10, width=256, n=512, seed=0):
    """-> (std of each hidden activation h, std of dL/dh) for one random batch."""
    rng = np.random.default_rng(seed)
    model = MLP([width] * (depth + 1) + [10], activation, init, rng=rng)
    x = rng.standard_normal((n, width))
    loss = SoftmaxCrossEntropy()
    loss.forward(model.forward(x), rng.integers(0, 10, n))
    # backward by hand, keeping dL/dh (what each Linear passes down to the layer below)
    dout, grads = loss.backward(), []
    for l in reversed(model.layers):
        dout = l.backward(dout)
        if isinstance(l, Linear):
            grads.append(float(np.std(dout)))
    linears = [l for l in model.layers if isinstance(l, Linear)]
    # the input each Linear cached is the previous hidden layer's activation h
    fwd = [float(np.std(l.x)) for l in linears[1:]]
    return fwd, grads[::-1][1:]  # drop dL/dx of the input layer


def init_stats(path, depth=10, width=256):
    """(b) Forward signal and backward gradient per layer for 3 inits x 2 activations."""
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex=True)
    for col, act in enumerate(("tanh", "relu")):
        for init in ("normal", "xavier", "he"):
            fwd, grad = layer_stats(act, init, depth, width)
            axes[0, col].plot(range(1, depth + 1), fwd, "o-", label=init)
            axes[1, col].plot(range(1, depth + 1), grad, "o-", label=init)
        axes[0, col].set(title=f"{act}: std of activations", yscale="log")
        axes[1, col].set(
            title=f"{act}: std of dL/dh (backward signal)", yscale="log", xlabel="layer"
        )
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{depth} layers of width {width}, random N(0,1) inputs; normal = N(0, 0.01^2)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def gradient_flow(path, depth=10, steps=400, every=10):
    """(c) mean |dL/dW| of every Linear over training, sigmoid vs ReLU, plain SGD."""
    d = load_dataset("spirals", seed=0, n_train=600, n_test=1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (act, init) in zip(axes, (("sigmoid", "xavier"), ("relu", "he"))):
        rng = np.random.default_rng(0)
        model = MLP([2] + [32] * depth + [3], act, init, rng=rng)
        opt, loss = make_optimizer("sgd", model.params, lr=0.1), SoftmaxCrossEntropy()
        linears = [l for l in model.layers if isinstance(l, Linear)]
        record, losses = [], []
        for step in tqdm(range(steps), desc=f"(c) {act}"):
            idx = rng.integers(0, len(d.X_train), 64)
            losses.append(loss.forward(model.forward(d.X_train[idx]), d.y_train[idx]))
            model.backward(loss.backward())
            if step % every == 0:
                record.append([float(np.mean(np.abs(l.grads["W"]))) for l in linears])
            opt.step(model.grads)
        record = np.array(record)  # (steps/every, depth + 1)
        colours = plt.get_cmap("viridis")(np.linspace(0, 1, record.shape[1]))
        for j in range(record.shape[1]):
            ax.plot(
                np.arange(len(record)) * every,
                record[:, j],
                color=colours[j],
                label=f"layer {j + 1}",
            )
        ax.set(
            yscale="log",
            xlabel="SGD step",
            title=f"{act}, {init} init: loss {np.mean(losses[:20]):.2f} -> {np.mean(losses[-20:]):.2f}",
        )
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean |dL/dW|")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"gradient flow in a {depth}-hidden-layer MLP (width 32) on spirals, lr 0.1")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def filter_normalized_direction(params, rng):
    """A random direction with each filter (row of W: one unit's incoming
    weights) rescaled to that filter's norm in the trained weights; biases get
    no perturbation (Li et al. 2018, section 4)."""
    out = {}
    for k, p in params.items():
        if p.ndim == 1:
            out[k] = np.zeros_like(p)
            continue
        d = rng.standard_normal(p.shape)
        # row j of W (out, in) holds unit j's incoming weights
        d *= np.linalg.norm(p, axis=1, keepdims=True) / (
            np.linalg.norm(d, axis=1, keepdims=True) + 1e-12
        )
        out[k] = d
    return out


def loss_landscape(path, n_grid=41, span=1.0, epochs=100):
    """(d) Train, then evaluate the loss on theta* + a d1 + b d2, a, b in [-span, span]."""
    d = load_dataset("spirals", seed=0, n_train=600, n_test=1)
    rng = np.random.default_rng(0)
    model = MLP([2, 64, 64, 3], "relu", "he", rng=rng)
    train_curve(
        model, make_optimizer("adam", model.params, lr=0.01), d.X_train, d.y_train, epochs, 64, rng
    )
    theta = {k: v.copy() for k, v in model.params.items()}
    d1, d2 = filter_normalized_direction(theta, rng), filter_normalized_direction(theta, rng)
    a = np.linspace(-span, span, n_grid)
    Z = np.zeros((n_grid, n_grid))
    loss = SoftmaxCrossEntropy()
    for i in tqdm(range(n_grid), desc="(d) landscape"):
        for j in range(n_grid):
            for k, p in model.params.items():
                p[...] = theta[k] + a[j] * d1[k] + a[i] * d2[k]
            Z[i, j] = loss.forward(model.forward(d.X_train), d.y_train)
    for k, p in model.params.items():
        p[...] = theta[k]
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    cs = ax.contourf(a, a, np.log10(Z), levels=30, cmap="viridis")
    ax.contour(a, a, np.log10(Z), levels=15, colors="w", linewidths=0.4)
    ax.plot(0, 0, "r*", ms=12, label="trained weights")
    fig.colorbar(cs, label="log10 training loss")
    ax.set(
        xlabel="alpha (direction 1)",
        ylabel="beta (direction 2)",
        title="spirals MLP: filter-normalised slice",
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Z


def boundaries(path, datasets=TOYS_2D, epochs=None):
    """(e) train.py's default MLP on each 2-D dataset, decision boundaries side by side."""
    cols = 3
    rows = -(-len(datasets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.7 * rows), squeeze=False)
    with tempfile.TemporaryDirectory() as tmp:
        for ax, name in zip(axes.ravel(), tqdm(datasets, desc="(e) boundaries")):
            quiet = io.StringIO()
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                cfg = TrainConfig(dataset=name, out_dir=tmp, epochs=epochs or 0, figures=False)
                metrics = train(cfg)
            model, mcfg, cfg, _ = load_model(Path(tmp) / "checkpoint.npz")
            data = load_dataset(name, cfg.seed, n_train=cfg.n_train, n_test=cfg.n_train // 2)
            task, dtype = mcfg.task, np.dtype(mcfg.dtype)
            labels = lambda G, m=model, t=task, d=dtype: to_labels(predict(m, G.astype(d)), t)
            title = f"{name}: test accuracy {metrics['value']:.3f}"
            plots.decision_boundary(labels, data.X_test, data.y_test, None, title, ax=ax)
    for ax in axes.ravel()[len(datasets) :]:
        ax.axis("off")
    fig.suptitle("MLP 2-64-64-C, ReLU, He init, Adam, 200 epochs (python train.py --dataset NAME)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


PANELS = {
    "a": ("optimizers.png", optimizers),
    "b": ("init_stats.png", init_stats),
    "c": ("gradient_flow.png", gradient_flow),
    "d": ("loss_landscape.png", loss_landscape),
    "e": ("decision_boundaries.png", boundaries),
}


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Draw the training-dynamics figures.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out-dir", default="figures")
    p.add_argument("--only", default="a,b,c,d,e", help="comma-separated panels among a,b,c,d,e")
    args = p.parse_args(argv)
    wanted = args.only.split(",")
    bad = [w for w in wanted if w not in PANELS]
    if bad:
        p.error(f"unknown panel(s) {', '.join(bad)}; choose from {', '.join(PANELS)}")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with threadpool_limits(1):  # small matrices: one BLAS thread is fastest (README, Results)
        for w in wanted:
            name, fn = PANELS[w]
            fn(out / name)
            print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
