"""Pictures of why shortcuts help: training curves of plain vs residual nets, the loss surface
along two random directions, and the gradient norm of every layer.

    python visualize.py                                     # the run in runs/
    python visualize.py --runs runs/deg/plain-20 runs/deg/plain-56 runs/deg/resnet-20 runs/deg/resnet-56

Writes into --out-dir:
    curves.png        training error (solid; eval mode, fixed training images) and validation
                      error (dashed) against steps: the paper's Figure 6 (He et al. 2016,
                      https://arxiv.org/abs/1512.03385); a deeper plain net above a shallower
                      one is the degradation problem
    loss_surface.png  L(theta + a d1 + b d2) on a grid, d1 and d2 random directions scaled
                      filter by filter to the norms of the trained filters (Li et al. 2018,
                      https://arxiv.org/abs/1712.09913, Section 4); BN and bias entries of d are 0
    grad_norms.png    ||dL/dW|| of each conv/fc weight, input to output, at initialisation
                      (same seed, same config) and for the trained weights, on one batch
"""

import argparse
from pathlib import Path

import harness
import torch
import torch.nn.functional as F
from data import DataError, load
from model import ModelConfig, build_model


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--runs", nargs="*", default=[], help="run folders (default: --out-dir itself)")
    p.add_argument("--out-dir", default="runs", help="where the pictures go")
    p.add_argument("--grid", type=int, default=21, help="loss-surface points per axis")
    p.add_argument("--span", type=float, default=1.0, help="the surface covers [-span, span]^2")
    p.add_argument("--n-images", type=int, default=256, help="training images for the surface and gradients")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: half the cores)")
    p.add_argument("--smoke", action="store_true", help="a 3x3 surface on 32 images: seconds")
    return p


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def load_run(folder, n_images):
    """(name, model in eval mode, history, x, y): the checkpoint and a fixed training batch."""
    ckpt = harness.load_checkpoint(Path(folder) / harness.CHECKPOINT)
    cfg, tc, info = (
        ModelConfig(**ckpt["model_config"]),
        ckpt["train_config"],
        ckpt.get("data") or {},
    )
    model = build_model(cfg)
    model.load_state_dict(ckpt["model"])
    try:
        data = load(tc["dataset"], tc["data_dir"], False, tc["image_size"], tc["n_train"])
    except DataError as e:
        raise harness.UserError(f"{folder}: cannot load its training images: {e}") from None
    x, y = data["train"][0][:n_images], data["train"][1][:n_images]
    mean, std = torch.tensor(info["mean"])[:, None, None], torch.tensor(info["std"])[:, None, None]
    x = (x.float() / 255 - mean) / std
    return {"name": tc["arch"], "model": model.eval(), "history": ckpt["history"], "x": x, "y": y, "config": cfg, "seed": tc["seed"]}  # fmt: skip


def plot_curves(runs, path):
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(6.5, 4.2))
    for i, r in enumerate(runs):
        h, color = r["history"], f"C{i}"
        ax.plot(h["eval_step"], [100 * e for e in h["train_error"]], "-", color=color, label=f"{r['name']} train")  # fmt: skip
        ax.plot(h["eval_step"], [100 * (1 - a) for a in h["val_accuracy"]], "--", color=color, alpha=0.6, label=f"{r['name']} val")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("error (%)")
    ax.set_title("training (solid) and validation (dashed) error")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def random_direction(model, gen):
    """Li et al.'s filter-normalised direction: d_i scaled to ||theta_i|| for each filter i."""
    d = {}
    for name, p in model.named_parameters():
        if p.dim() <= 1:  # BN gamma/beta and biases stay put
            d[name] = torch.zeros_like(p)
            continue
        r = torch.randn(p.shape, generator=gen)
        norms = p.detach().flatten(1).norm(dim=1) / r.flatten(1).norm(dim=1).clamp_min(
            1e-12
        )  # (out,)
        d[name] = r * norms.view(-1, *[1] * (p.dim() - 1))
    return d


@torch.no_grad()
def loss_surface(run, grid, span, seed):
    """(alphas, losses (grid, grid)): L(theta + a d1 + b d2) on [-span, span]^2, eval mode."""
    model = run["model"]
    gen = torch.Generator().manual_seed(seed)
    d1, d2 = random_direction(model, gen), random_direction(model, gen)
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    alphas = torch.linspace(-span, span, grid)
    losses = torch.zeros(grid, grid)
    params = dict(model.named_parameters())
    for i, a in enumerate(alphas):
        for j, b in enumerate(alphas):
            for k, p in params.items():
                p.copy_(theta[k] + a * d1[k] + b * d2[k])
            losses[j, i] = F.cross_entropy(model(run["x"]), run["y"]).item()
    for k, p in params.items():
        p.copy_(theta[k])
    return alphas, losses


def plot_surfaces(runs, surfaces, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(runs), figsize=(3.6 * len(runs), 3.4), squeeze=False)
    for ax, r, (alphas, losses) in zip(axes[0], runs, surfaces):
        clipped = losses.clamp(max=10).log()  # log loss, capped: the shape near the minimum
        cs = ax.contourf(alphas, alphas, clipped, levels=20, cmap="viridis")
        ax.contour(alphas, alphas, clipped, levels=10, colors="white", linewidths=0.4)
        ax.plot(0, 0, "r+")
        ax.set_title(f"{r['name']}: log loss", fontsize=9)
        fig.colorbar(cs, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot.close(fig)


def grad_norms(model, x, y):
    """[||dL/dW||] for every conv/fc weight in forward order, train mode (batch statistics)."""
    model.train()
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    norms = [p.grad.norm().item() for n, p in model.named_parameters() if p.dim() > 1 and "downsample" not in n]  # fmt: skip
    model.zero_grad()
    model.eval()
    return norms


def plot_grad_norms(runs, path):
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for i, r in enumerate(runs):
        torch.manual_seed(r["seed"])  # train.py's initialisation: same seed, same config
        fresh = build_model(r["config"])
        state = {k: v.clone() for k, v in r["model"].state_dict().items()}
        for ax, model, when in ((axes[0], fresh, "at initialisation"), (axes[1], r["model"], "trained")):  # fmt: skip
            norms = grad_norms(model, r["x"], r["y"])
            ax.semilogy(
                range(1, len(norms) + 1), norms, "o-", ms=2.5, color=f"C{i}", label=r["name"]
            )
            ax.set_title(f"gradient norm per layer, {when}", fontsize=9)
            ax.set_xlabel("layer (input -> output)")
        r["model"].load_state_dict(state)  # grad_norms in train mode updated the BN statistics
    axes[0].set_ylabel("||dL/dW||")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def run(args):
    harness.check(args.grid >= 2, f"--grid {args.grid}: expected at least 2")
    harness.check(args.n_images >= 2, f"--n-images {args.n_images}: expected at least 2")
    harness.set_threads(args.threads)
    if args.smoke:
        args.grid, args.n_images = 3, 32
    out = harness.prepare_out_dir(args.out_dir)
    runs = [load_run(f, args.n_images) for f in (args.runs or [args.out_dir])]
    plot_curves(runs, out / "curves.png")
    surfaces = []
    for r in runs:
        surfaces.append(loss_surface(r, args.grid, args.span, args.seed))
        print(f"{r['name']}: loss at the minimum {surfaces[-1][1][args.grid // 2, args.grid // 2]:.3f}, mean over the grid {surfaces[-1][1].mean():.3f}")  # fmt: skip
    plot_surfaces(runs, surfaces, out / "loss_surface.png")
    plot_grad_norms(runs, out / "grad_norms.png")
    print(f"wrote {out}/curves.png, loss_surface.png, grad_norms.png")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return harness.run_main(lambda: run(args), lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
