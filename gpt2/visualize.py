"""Pictures of a trained model: its attention patterns on a prompt, one panel per layer and head.

    python visualize.py                    # runs/checkpoint.pt -> runs/attention.png
    python visualize.py --prompt "ROMEO: But soft, what light" --out figures/attention.png

Attention weights are the model's own: with `keep_weights` set on each CausalSelfAttention, one
forward pass leaves softmax(Q K^T / sqrt(hs) + causal mask) in `attn.weights` (rows: the query
position, columns: the key position it reads from). The flag is off by default, so training and
generation keep nothing. Each panel is labelled with the prompt's tokens on both axes.
"""

import argparse
import sys
from pathlib import Path

import harness
import torch
from inference import load_model


@torch.no_grad()
def attention_maps(model, idx: torch.Tensor) -> torch.Tensor:
    """(n_layer, n_head, T, T) attention probabilities of the first sequence of idx (1, T)."""
    layers = [block.attn for block in model.transformer.h]
    for a in layers:
        a.keep_weights = True  # each layer keeps softmax(Q K^T / sqrt(hs) + M) of this forward
    try:
        model(idx)
        return torch.stack([a.weights[0] for a in layers])
    finally:
        for a in layers:
            a.keep_weights, a.weights = False, None


def token_labels(tok, ids) -> list[str]:
    """One printable label per token: whitespace shown as the symbols ␣ and \\n."""
    return [tok.decode([i]).replace(" ", "\u2423").replace("\n", "\\n") for i in ids]


def plot(maps: torch.Tensor, labels: list[str], prompt: str, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L, H, T, _ = maps.shape
    size = max(2.5, 0.2 * T)  # room for one label per token
    fig, axes = plt.subplots(L, H, figsize=(size * H + 1.5, size * L), dpi=70, squeeze=False)
    font = dict(fontsize=9, fontfamily="monospace")
    turn = 0 if max(map(len, labels)) <= 2 else 90  # characters upright, longer tokens turned
    for l in range(L):
        for h in range(H):
            ax = axes[l][h]
            im = ax.imshow(maps[l, h].numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_xticks(range(T), labels if l == L - 1 else [""] * T, rotation=turn, **font)
            ax.set_yticks(range(T), labels if h == 0 else [""] * T, **font)
            if h == 0:
                ax.set_ylabel(f"layer {l}: query")
            if l == L - 1:
                ax.set_xlabel("key")
            if l == 0:
                ax.set_title(f"head {h}")
    fig.colorbar(im, ax=axes, shrink=0.6, label="attention weight")
    fig.suptitle(f"attention on {prompt[:60]!r} (row: query, column: key)")
    fig.savefig(path)
    plt.close(fig)


def draw(args):
    checkpoint = str(Path(args.out_dir) / harness.CHECKPOINT)
    model, tok = load_model(checkpoint, None, torch.device("cpu"))
    try:
        ids = tok.encode(args.prompt)[-model.config.block_size :]
    except ValueError as e:
        raise harness.UserError(f"--prompt: {e}") from None
    harness.check(len(ids) >= 2, "the prompt needs at least 2 tokens")
    out = Path(args.out or Path(args.out_dir) / "attention.png")
    harness.prepare_out_dir(out.parent)
    maps = attention_maps(model, torch.tensor([ids]))
    plot(maps, token_labels(tok, ids), args.prompt, out)
    L, H, T, _ = maps.shape
    print(f"wrote {out} ({L} layers x {H} heads, {T} tokens)")


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out-dir", default="runs", help="the training run to load")
    p.add_argument(
        "--prompt", default="The for statement is used to iterate", help="text to look at"
    )
    p.add_argument(
        "--out", default=None, help="where to write the PNG (default: OUT_DIR/attention.png)"
    )
    return harness.run_main(lambda: draw(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
