"""Pictures of a trained model: its attention patterns on a prompt, one panel per layer and head.

    python visualize.py --prompt "ROMEO: But soft, what light" --out runs/attention.png

Attention weights are the model's own: with `keep_weights` set on each CausalSelfAttention, one
forward pass leaves softmax(Q K^T / sqrt(hs) + causal mask) in `attn.weights` (rows: the query
position, columns: the key position it reads from). The flag is off by default, so training and
generation keep nothing.
"""

import argparse
import sys
from pathlib import Path

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


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--out-dir", default="runs", help="directory of checkpoint.pt and tokenizer.json"
    )
    p.add_argument(
        "--prompt", default="The for statement is used to iterate", help="text to look at"
    )
    p.add_argument("--out", default="runs/attention.png", help="where to write the PNG")
    args = p.parse_args(argv)
    try:
        model, tok = load_model(args.out_dir, None, torch.device("cpu"))
        ids = tok.encode(args.prompt)[-model.config.block_size :]
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
    if len(ids) < 2:
        p.error("the prompt needs at least 2 tokens")
    maps = attention_maps(model, torch.tensor([ids]))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L, H, T, _ = maps.shape
    labels = [tok.decode([i]).replace("\n", "\\n") for i in ids]
    fig, axes = plt.subplots(L, H, figsize=(2.2 * H, 2.2 * L), dpi=80, squeeze=False)
    for l in range(L):
        for h in range(H):
            ax = axes[l][h]
            ax.imshow(maps[l, h].numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if h == 0:
                ax.set_ylabel(f"layer {l}")
            if l == 0:
                ax.set_title(f"head {h}")
    fig.suptitle(f"attention on {''.join(labels)[:60]!r} (row: query, column: key)", fontsize=9)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({L} layers x {H} heads, {T} tokens)")


if __name__ == "__main__":
    main()
