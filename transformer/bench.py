"""Benchmark, in one process: our Transformer against torch's, and the key/value cache.

1. Training throughput (target tokens per second, forward + backward + Adam step) of
   model.Transformer against nn.Transformer of the same sizes (same embeddings, positional
   encoding and output layer around it, post-norm, relu, same dropout). Aim: ours at most
   1.3x slower.
2. Greedy decoding with and without the key/value cache at output lengths 64 and 128
   (no early stop: <eos> is never accepted). Aim: at least 3x faster at 128.

    python bench.py                 # ~1-2 minutes on 2 CPU cores
    python bench.py --repeats 1     # quicker, noisier
Paper: Vaswani et al. 2017, https://arxiv.org/abs/1706.03762.
"""

import argparse
import math
import os
import time
from pathlib import Path

import torch
from decode import greedy_decode
from harness import set_threads, write_json
from model import PositionalEncoding, Transformer, TransformerConfig
from torch import nn
from train import label_smoothed_loss


class TorchTransformer(nn.Module):
    """The reference: nn.Transformer inside the same embedding / output layers as ours."""

    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.c = c
        self.src_embed, self.tgt_embed = (
            nn.Embedding(c.src_vocab, c.d_model),
            nn.Embedding(c.tgt_vocab, c.d_model),
        )
        self.pos = PositionalEncoding(c.d_model, c.max_len, c.dropout)
        self.core = nn.Transformer(
            c.d_model, c.n_head, c.n_layer, c.n_layer, c.d_ff, c.dropout, batch_first=True
        )
        self.out_proj = nn.Linear(c.d_model, c.tgt_vocab, bias=False)

    def forward(self, src, tgt_in):
        s = math.sqrt(self.c.d_model)
        T = tgt_in.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)  # torch: True = masked
        h = self.core(
            self.pos(self.src_embed(src) * s),
            self.pos(self.tgt_embed(tgt_in) * s),
            tgt_mask=causal,
            src_key_padding_mask=src == 0,
            tgt_key_padding_mask=tgt_in == 0,
            memory_key_padding_mask=src == 0,
        )
        return self.out_proj(h)


def train_tokens_per_s(model, src, tgt, steps):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    model.train()

    def step():
        logits = model(src, tgt[:, :-1])
        loss = label_smoothed_loss(
            logits.reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1), 0.1
        )
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * tgt[:, 1:].numel() / (time.perf_counter() - t0)


def decode_seconds(model, src, length, use_cache, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = greedy_decode(model, src, bos=1, eos=-1, max_len=length, use_cache=use_cache)
        best = min(best, time.perf_counter() - t0)
    assert len(out[0]) == length
    return best


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=40, help="source and target length for training")
    p.add_argument("--repeats", type=int, default=3, help="timings per measurement (best kept)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads; 0 = half the cores")
    p.add_argument("--out-dir", default="runs")
    a = p.parse_args(argv)
    if a.repeats < 1 or a.batch_size < 1 or a.seq_len < 1 or a.threads < 0:
        p.error("--repeats, --batch-size and --seq-len must be at least 1, --threads at least 0")
    set_threads(a.threads)
    steps, repeats = 7 * a.repeats, a.repeats  # timed training steps per model and round
    torch.manual_seed(0)
    cfg = TransformerConfig(src_vocab=64, tgt_vocab=64, max_len=256)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}"
    )
    print(
        f"model: d_model {cfg.d_model}, n_head {cfg.n_head}, layers {cfg.n_layer}+{cfg.n_layer}, d_ff {cfg.d_ff}"
    )
    src = torch.randint(4, 64, (a.batch_size, a.seq_len))
    tgt = torch.randint(4, 64, (a.batch_size, a.seq_len + 1))
    ours, ref = Transformer(cfg), TorchTransformer(cfg)
    n_ours, n_ref = (sum(p.numel() for p in m.parameters()) for m in (ours, ref))
    tps = {}
    for name, model in (
        ("ours", ours),
        ("torch", ref),
        ("ours ", ours),
        ("torch ", ref),
    ):  # interleaved
        tps.setdefault(name.strip(), []).append(train_tokens_per_s(model, src, tgt, steps))
    t_ours, t_ref = max(tps["ours"]), max(tps["torch"])
    print(
        f"training: ours {t_ours:,.0f} tok/s ({n_ours:,} params) | nn.Transformer {t_ref:,.0f} tok/s ({n_ref:,} params)"
    )
    print(f"  ours is {t_ref / t_ours:.2f}x slower (aim <= 1.3x)")
    ours.eval()
    dsrc = torch.randint(4, 64, (8, 32))
    result = {
        "train_tok_s_ours": t_ours,
        "train_tok_s_torch": t_ref,
        "slowdown": t_ref / t_ours,
        "decode": {},
    }
    for length in (64, 128):
        slow = decode_seconds(ours, dsrc, length, False, repeats)
        fast = decode_seconds(ours, dsrc, length, True, repeats)
        result["decode"][length] = {"uncached_s": slow, "cached_s": fast, "speedup": slow / fast}
        print(
            f"greedy decoding, batch 8, {length} tokens: no cache {slow:.2f} s | cache {fast:.2f} s | {slow / fast:.1f}x"
        )
    Path(a.out_dir).mkdir(parents=True, exist_ok=True)
    write_json(result, Path(a.out_dir) / "bench.json")


if __name__ == "__main__":
    main()
