"""Attention heat maps: what each head of the trained Transformer looks at.

For one source sentence: decode greedily, then run the model once more with teacher forcing
on its own output, keeping the attention weights softmax(QK^T / sqrt(d_k)) of every head
(model.MultiHeadAttention.keep_weights). Two figures:
- encoder self-attention, last encoder layer, one panel per head (source x source);
- decoder cross-attention, one panel per decoder layer and head (target x source): which
  source characters each output character reads. On the grammar task the reordered
  adjective ("red cat" -> "chat rouge") shows as a crossing in the diagonal.
Paper: Vaswani et al. 2017, https://arxiv.org/abs/1706.03762, figures 3-5.
"""

from pathlib import Path

import data as D
import torch
from decode import greedy_decode, output_limit


def _labels(tok, ids):
    return ["·" if t == " " else t for t in (tok.itos[i] for i in ids)]


@torch.no_grad()
def attention_weights(model, src_tok, tgt_tok, sentence, device="cpu"):
    """Returns (src labels, tgt labels, encoder weights [L][h, S, S], cross weights [L][h, T, S], output)."""
    src_ids = [D.BOS] + src_tok.encode(sentence)
    src = torch.tensor([src_ids], device=device)  # (1, S)
    out = greedy_decode(model, src, D.BOS, D.EOS, output_limit(len(src_ids), model.config.max_len))[
        0
    ]
    tgt_in = torch.tensor([[D.BOS] + out], device=device)  # (1, T)
    mhas = [layer.self_attn for layer in model.encoder.layers] + [
        layer.cross_attn for layer in model.decoder.layers
    ]
    for m in mhas:
        m.keep_weights = True
    model.eval()
    model(src, tgt_in)
    enc = [layer.self_attn.weights[0].float().cpu() for layer in model.encoder.layers]
    cross = [layer.cross_attn.weights[0].float().cpu() for layer in model.decoder.layers]
    for m in mhas:
        m.keep_weights, m.weights = False, None
    tgt_labels = _labels(tgt_tok, [D.BOS] + out)  # query i reads source when predicting token i+1
    return _labels(src_tok, src_ids), tgt_labels, enc, cross, tgt_tok.decode(out)


def _grid(weights, rows, cols, xlabels, ylabels, titles, path, suptitle):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(weights)
    # each tick label gets at least 0.11 inch, so 45 target characters never overlap
    panel_w = max(3.2, 0.11 * len(xlabels) + 0.9)
    panel_h = max(3.2, 0.11 * len(ylabels) + 0.9)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_w * cols, panel_h * rows), squeeze=False)
    small = 7
    for ax, w, title in zip(axes.flat, weights, titles):
        ax.imshow(w.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(xlabels)), xlabels, fontsize=small)
        ax.set_yticks(range(len(ylabels)), ylabels, fontsize=small)
        ax.set_title(title, fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (panel_h * rows)))  # room for the two-line title
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_attention_maps(model, src_tok, tgt_tok, sentence, out_dir, device="cpu"):
    """Writes encoder_attention.png and cross_attention.png into out_dir; returns their paths."""
    src_l, tgt_l, enc, cross, text = attention_weights(model, src_tok, tgt_tok, sentence, device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    h = enc[-1].shape[0]
    p1 = out_dir / "encoder_attention.png"
    _grid(list(enc[-1]), 1, h, src_l, src_l, [f"head {i}" for i in range(h)], p1,
          f"encoder self-attention, last layer: rows = queries, columns = keys\n{sentence!r}")  # fmt: skip
    p2 = out_dir / "cross_attention.png"
    weights = [w for layer in cross for w in layer]
    titles = [f"decoder layer {layer} head {i}" for layer in range(len(cross)) for i in range(h)]
    _grid(weights, len(cross), h, src_l, tgt_l, titles, p2,
          f"cross-attention: rows = target (input side), columns = source\n{sentence!r} -> {text!r}")  # fmt: skip
    return p1, p2
