"""Pictures of the pipeline: samples per prompt, guidance, reconstructions, latents, attention.

    python visualize.py            # every figure below for runs/, into runs/

prompt_grid        one row per class prompt ("zero" ... "nine")
guidance_grid      one prompt, columns = guidance scale s (the same starting noise)
reconstructions    real images, autoencoder reconstructions, and the 4 latent channels
denoising_strip    z_T -> z_0 decoded at several steps, for one prompt
cross_attention    which latent positions attend to which word
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from data import class_words, load_images  # noqa: E402
from harness import run_main, set_threads  # noqa: E402


def show(images):
    """(B, 1, H, W) in [-1, 1] -> (B, H, W) in [0, 1] for imshow."""
    return ((images[:, 0].float() + 1) / 2).clamp(0, 1).cpu().numpy()


def save_grid(rows, row_labels, path, title, col_labels=None):
    n_rows, n_cols = len(rows), len(rows[0])
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(n_cols * 0.9 + 1.2, n_rows * 0.9 + 0.6), squeeze=False
    )
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            ax = axes[i, j]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=8)
            if col_labels and i == 0:
                ax.set_title(col_labels[j], fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def prompt_grid(pipe, path, *, guidance, steps, per_prompt=8, dataset="digits", seed=0):
    words = class_words(dataset)
    prompts = [w for w in words for _ in range(per_prompt)]
    images = show(
        pipe.generate(
            prompts, steps=steps, guidance=guidance, generator=torch.Generator().manual_seed(seed)
        )
    )
    rows = [images[i * per_prompt : (i + 1) * per_prompt] for i in range(len(words))]
    save_grid(rows, words, path, f"one prompt per row, guidance s = {guidance}, DDIM {steps} steps")


def guidance_grid(pipe, path, *, prompt, scales=(0, 1, 2, 3, 5, 7), steps=50, n=4, seed=0):
    cols = []
    for s in scales:
        g = torch.Generator().manual_seed(seed)  # the same z_T in every column
        cols.append(show(pipe.generate([prompt] * n, steps=steps, guidance=s, generator=g)))
    rows = [[cols[j][i] for j in range(len(scales))] for i in range(n)]
    save_grid(
        rows, [""] * n, path, f"'{prompt}': guidance scale per column", [f"s={s}" for s in scales]
    )


@torch.no_grad()
def reconstructions(pipe, x, path, n=8):
    mean, _ = pipe.autoencoder.encode(x[:n])
    recon = pipe.autoencoder.decode(mean).clamp(-1, 1)
    z = mean * pipe.scale_factor  # (n, 4, H/4, W/4), what the diffusion model sees
    z = (z.clamp(-3, 3) + 3) / 6
    rows = [show(x[:n]), show(recon)] + [z[:, c].cpu().numpy() for c in range(z.shape[1])]
    labels = ["real", "reconstructed"] + [f"latent {c}" for c in range(z.shape[1])]
    side, zs = x.shape[-1], z.shape[-1]
    save_grid(
        [list(r) for r in rows],
        labels,
        path,
        f"autoencoder: {side}x{side} image <-> 4x{zs}x{zs} latent",
    )


def denoising_strip(pipe, path, *, prompt, steps=50, guidance=3.0, shown=8, seed=0):
    _, path_z = pipe.generate(
        [prompt],
        steps=steps,
        guidance=guidance,
        generator=torch.Generator().manual_seed(seed),
        keep=True,
    )
    picks = torch.linspace(0, len(path_z) - 1, shown).round().long().tolist()
    with torch.no_grad():
        images = show(
            torch.cat(
                [pipe.autoencoder.decode(path_z[i] / pipe.scale_factor).clamp(-1, 1) for i in picks]
            )
        )
    save_grid(
        [list(images)],
        [""],
        path,
        f"'{prompt}': z_T -> z_0, decoded",
        [f"{i}/{steps}" for i in picks],
    )


@torch.no_grad()
def cross_attention(pipe, path, *, prompt, steps=50, guidance=3.0, seed=0):
    """Mean over heads and over the DDIM steps of the first level's cross-attention weights."""
    attn = pipe.diffusion.unet.down[0].attn
    if attn is None:
        return
    attn.block.attn2.keep_weights = True
    maps = []
    orig = attn.block.attn2.forward

    def hook(*args, **kwargs):
        out = orig(*args, **kwargs)
        maps.append(attn.block.attn2.last_weights[:1])  # the conditional half of the batch
        return out

    attn.block.attn2.forward = hook
    image = pipe.generate(
        [prompt], steps=steps, guidance=guidance, generator=torch.Generator().manual_seed(seed)
    )
    attn.block.attn2.forward, attn.block.attn2.keep_weights = orig, False
    w = torch.cat(maps).mean(dim=(0, 1))  # (64 positions, L tokens)
    words = ["<bos>", *pipe.tokenizer.split(prompt)]
    fig, axes = plt.subplots(1, len(words) + 1, figsize=(1.6 * (len(words) + 1), 1.9))
    axes[0].imshow(show(image)[0], cmap="gray")
    axes[0].set_title("sample", fontsize=8)
    for k, word in enumerate(words):
        side = pipe.diffusion.config.latent_size
        im = axes[k + 1].imshow(w[:, k].reshape(side, side).cpu(), cmap="viridis")
        axes[k + 1].set_title(word, fontsize=8)
        fig.colorbar(im, ax=axes[k + 1], fraction=0.046)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"cross-attention of the latent positions to each word: '{prompt}'", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: half the cores)")
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--prompt", default="a bold seven")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--smoke", action="store_true", help="5 DDIM steps: checks it runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps = 5

    def run():
        set_threads(args.threads)
        from pipeline import load_pipeline

        pipe, ckpt = load_pipeline(args.out_dir)
        out = Path(args.out_dir)
        data = load_images(ckpt["train_config"]["dataset"], ckpt["train_config"]["data_dir"])
        reconstructions(pipe, data[2], out / "reconstructions.png")
        pipe.tokenizer.encode([args.prompt])  # an unknown word is one line, before any work
        guidance_grid(pipe, out / "guidance_grid.png", prompt=args.prompt, steps=args.steps)
        denoising_strip(pipe, out / "denoising.png", prompt=args.prompt, steps=args.steps)
        cross_attention(pipe, out / "cross_attention.png", prompt=args.prompt, steps=args.steps)
        print(
            f"wrote reconstructions.png, guidance_grid.png, denoising.png, cross_attention.png in {out}"
        )

    return run_main(run, lambda: None)


if __name__ == "__main__":
    raise SystemExit(main())
