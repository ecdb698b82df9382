"""Pictures of a trained VAE: samples, reconstructions, the latent space, traversals, curves.

    python visualize.py                                  # reads runs/, writes runs/*.png
    python visualize.py --sweep runs/beta_0.5 runs/beta_1 runs/beta_2   # rate vs distortion

With a 2-D latent: the learned manifold, the decoder's mean over a grid of z through the
prior's inverse CDF (Kingma and Welling, https://arxiv.org/abs/1312.6114, Figure 4), and
the test set's encodings coloured by class; with more units the encodings are shown in
their first two principal components. tests/test_inference.py runs it on a smoke checkpoint.
"""

import argparse
import json
from pathlib import Path

import harness
import numpy as np
import torch


def save_grid(images, path, nrow=8, scale=4):
    """(N, C, H, W) in [0, 1] -> one PNG, nrow images a row, 1-pixel grey gaps, upscaled."""
    from PIL import Image

    images = images.detach().float().cpu().clamp(0, 1)
    N, C, H, W = images.shape
    rows = -(-N // nrow)
    grid = torch.full((C, rows * (H + 1) + 1, nrow * (W + 1) + 1), 0.5)
    for i, img in enumerate(images):
        r, c = divmod(i, nrow)
        grid[:, 1 + r * (H + 1) : 1 + r * (H + 1) + H, 1 + c * (W + 1) : 1 + c * (W + 1) + W] = img
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # (H, W, C)
    img = Image.fromarray(arr[:, :, 0] if C == 1 else arr)
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)


def samples_and_reconstructions(model, x, out, num_samples, generator):
    """samples.png (decoder means of z ~ p(z)); reconstructions.png: original, reconstruction, ..."""
    save_grid(model.sample(num_samples, generator=generator), out / "samples.png")
    pairs = torch.stack([x, model.reconstruct(x)], 1).flatten(0, 1)  # (2N, C, H, W)
    save_grid(pairs, out / "reconstructions.png", nrow=16)


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


@torch.no_grad()
def manifold(model, path, n=15):
    """Decoder means over an n x n grid of z = Phi^-1(u), u evenly spaced in (0, 1)^2."""
    u = torch.linspace(0.5 / n, 1 - 0.5 / n, n)
    z1d = torch.distributions.Normal(0.0, 1.0).icdf(u)
    z = torch.stack(torch.meshgrid(z1d, z1d.flip(0), indexing="xy"), -1).reshape(-1, 2)  # (n*n, 2)
    save_grid(model.sample(len(z), z=z.to(next(model.parameters()).device)), path, nrow=n)


@torch.no_grad()
def encodings(model, x, labels, class_names, path):
    mu = model.encode(x)[0].float().cpu()
    title = "test-set encodings mu(x)"
    if mu.shape[1] > 2:
        mu = mu - mu.mean(0)
        mu = mu @ torch.linalg.svd(mu, full_matrices=False).Vh[:2].T  # (N, d) -> (N, 2)
        title += ": first two principal components"
    p = plt()
    fig, ax = p.subplots(figsize=(5.5, 5))
    sc = ax.scatter(mu[:, 0], mu[:, 1], c=labels.cpu(), cmap="tab10", s=6, vmin=-0.5, vmax=9.5)
    if len(class_names) > 1:
        cbar = fig.colorbar(sc, ticks=range(len(class_names)))
        cbar.ax.set_yticklabels(class_names)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    p.close(fig)


@torch.no_grad()
def traversals(model, x, path, n=9, span=2.5):
    """One row per latent unit (the 8 most active): z = mu(x) with unit u set to -span..span."""
    mu = model.encode(x)[0]
    units = mu.var(0).argsort(descending=True)[:8]
    z = mu[0].repeat(len(units) * n, 1)  # (units*n, d)
    values = torch.linspace(-span, span, n, device=mu.device)
    for row, u in enumerate(units):
        z[row * n : (row + 1) * n, u] = values
    save_grid(model.sample(len(z), z=z), path, nrow=n)


def curves(history, path):
    p = plt()
    fig, ax = p.subplots(figsize=(6, 4))
    steps = history["eval_step"]
    ax.plot(steps, history["val_loss"], "o-", label="-ELBO (validation)")
    ax.plot(steps, history["val_distortion"], "s-", label="-E_q log p(x|z) (distortion)")
    ax.plot(steps, history["val_kl"], "^-", label="KL(q(z|x) || p(z)) (rate)")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per image")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    p.close(fig)


def beta_sweep(run_dirs, path):
    """Rate (test KL) against distortion (test -E_q log p(x|z)), one point per beta."""
    points = []
    for d in run_dirs:
        f = Path(d) / "metrics.json"
        if not f.exists():
            raise harness.UserError(f"--sweep {d}: no metrics.json (train it first)")
        m = json.loads(f.read_text())
        points.append((m["beta"], m["test_kl"], m["test_distortion"], m["value"]))
    points.sort()
    p = plt()
    fig, ax = p.subplots(figsize=(5.5, 4))
    ax.plot([q[1] for q in points], [q[2] for q in points], "o-")
    for beta, rate, dist, nelbo in points:
        ax.annotate(f"beta={beta:g}\n-ELBO {nelbo:.1f}", (rate, dist), fontsize=7, xytext=(4, 4), textcoords="offset points")  # fmt: skip
    ax.set_xlabel("rate: KL(q(z|x) || p(z)), nats")
    ax.set_ylabel("distortion: -E_q log p(x|z), nats")
    ax.set_title("beta sweep (test set)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    p.close(fig)
    return points


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--out-dir", default="runs", help="the run to draw (its checkpoint.pt)")
    p.add_argument("--sweep", nargs="+", default=None, help="run folders of a beta sweep: only beta_sweep.png")  # fmt: skip
    p.add_argument("--num-samples", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    return harness.run_main(lambda: draw(args), lambda: args.out_dir)


def draw(args):
    from inference import load_model, run_data

    out = harness.prepare_out_dir(args.out_dir)
    if args.sweep:
        for beta, rate, dist, _ in beta_sweep(args.sweep, out / "beta_sweep.png"):
            print(f"beta {beta:g}: rate {rate:.2f} nats, distortion {dist:.2f} nats")
        print(f"wrote {out / 'beta_sweep.png'}")
        return 0
    harness.check(args.num_samples >= 1, f"--num-samples {args.num_samples}: must be at least 1")
    model, ckpt = load_model(out / harness.CHECKPOINT)
    data, pixels = run_data(ckpt, "cpu")
    x = pixels.fixed(data.test.levels, seed=2)
    g = torch.Generator().manual_seed(args.seed)
    samples_and_reconstructions(model, x[:32], out, args.num_samples, g)
    encodings(model, x, data.test.labels, data.class_names, out / "encodings.png")
    traversals(model, x, out / "traversals.png")
    curves(ckpt["history"], out / "curves.png")
    written = ["samples", "reconstructions", "encodings", "traversals", "curves"]
    stale = out / "manifold.png"
    if model.config.latent_dim == 2:
        manifold(model, stale)
        written.append("manifold")
    elif stale.exists():
        stale.unlink()  # an earlier run's picture, not this one's
    print("wrote " + ", ".join(str(out / f"{w}.png") for w in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
