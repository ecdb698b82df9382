"""Samples from a trained GAN: scatter (2-D) or a grid (images), and a latent interpolation.

    python inference.py                          # reads runs/checkpoint.pt
    python inference.py --num-samples 2500 --seed 3

The model is rebuilt from the checkpoint's model_config alone; the EMA generator is used
when the run kept one. 2-D: prints modes covered and the high-quality share of fresh
samples, and draws G's image of a straight line in z (a path that must jump between modes,
since G is continuous). Images: a sample grid, and rows of z_t = (1 - t) z_0 + t z_1.
tests/test_train.py runs it on a trained checkpoint.
"""

import argparse
from pathlib import Path

import harness
import torch
from data import MODE_STD, mixture_centers
from metrics import mode_stats
from model import GAN, ModelConfig
from visualize import plt, save_grid


def load_generator(path, device="cpu"):
    """(G in eval mode, model_config, train_config) from a checkpoint, refusing a mismatch."""
    ckpt = harness.load_checkpoint(path, device)
    try:
        mc = ModelConfig(**ckpt["model_config"])
        model = GAN(mc).to(device)
        model.load_state_dict(ckpt["model"])
        if ckpt.get("ema") is not None:
            model.G.load_state_dict(ckpt["ema"])
    except (TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0][:160]
        raise harness.UserError(
            f"{path} does not fit its model_config (another image size?): {first}"
        ) from None
    return model.G.eval(), mc, ckpt["train_config"]


@torch.no_grad()
def interpolate(G, z0, z1, n=8):
    """G((1 - t) z0 + t z1) for t in [0, 1]: (n, ...) in t order."""
    t = torch.linspace(0, 1, n, device=z0.device)[:, None]
    return G((1 - t) * z0 + t * z1)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out-dir", default="runs", help="where the checkpoint is and the pictures go")
    p.add_argument("--checkpoint", default="", help="default: OUT_DIR/checkpoint.pt")
    p.add_argument("--num-samples", type=int, default=0, help="0: 2500 points (2-D) or 64 images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="auto|cpu|cuda|mps")
    args = p.parse_args(argv)

    def run():
        harness.check(args.num_samples >= 0, f"--num-samples {args.num_samples}: must be >= 0")
        device = harness.pick_device(args.device)
        out = Path(args.out_dir)
        G, mc, tc = load_generator(args.checkpoint or out / harness.CHECKPOINT, device)
        gen = torch.Generator().manual_seed(args.seed)
        if mc.kind == "mlp":
            n = args.num_samples or 2500
            with torch.no_grad():
                x = G(torch.randn(n, mc.z_dim, generator=gen).to(device)).cpu().double()
            centers = mixture_centers(tc["dataset"])
            s = mode_stats(x.numpy(), centers, MODE_STD)
            print(
                f"{n} samples: {s['modes_covered']}/{len(centers)} modes covered, {s['high_quality']:.1%} within 3 std of a mode"
            )
            z0, z1 = torch.randn(2, mc.z_dim, generator=gen).to(device)
            path = interpolate(G, z0, z1, 200).cpu()
            fig, ax = plt.subplots(figsize=(4.5, 4.5))
            ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, label="samples")
            ax.scatter(
                centers[:, 0], centers[:, 1], s=30, facecolors="none", edgecolors="g", label="modes"
            )
            ax.plot(path[:, 0], path[:, 1], "r-", lw=1, label="G(line in z)")
            ax.legend(fontsize=7, loc="upper right")
            ax.set_aspect("equal")
            fig.tight_layout()
            fig.savefig(out / "samples.png", dpi=100)
            plt.close(fig)
            print(f"wrote {out}/samples.png")
            return 0
        n = args.num_samples or 64
        with torch.no_grad():
            x = G(torch.randn(n, mc.z_dim, generator=gen).to(device)).cpu()
        save_grid(
            x,
            out / "samples.png",
            title=f"{tc['loss']}{' + SN' if mc.spectral_norm else ''}, {tc['dataset']}",
        )
        z = torch.randn(8, mc.z_dim, generator=gen).to(device)
        rows = torch.cat([interpolate(G, z[i], z[i + 1]).cpu() for i in range(0, 8, 2)])
        save_grid(rows, out / "interpolation.png", title="z_t = (1 - t) z_0 + t z_1, t = 0..1")
        print(f"wrote {out}/samples.png and {out}/interpolation.png ({n} samples)")
        return 0

    return harness.run_main(run)


if __name__ == "__main__":
    raise SystemExit(main())
