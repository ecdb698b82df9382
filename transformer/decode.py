"""Autoregressive decoding: greedy and beam search, with or without a key/value cache.

Without a cache, step t re-runs the decoder over all t tokens so far: O(t) work per step,
O(T^2) per sentence. With the cache (model.Transformer.decode_step) each step feeds only the
newest token; every decoder layer appends that token's keys/values to its cache, and the
cross-attention keys/values of the encoder output are projected once (init_caches).
tests/test_decode.py holds cached == uncached, token for token, for every search; sampling
with a temperature draws from softmax(logits / temperature) (0 = greedy).

Beam search with the length penalty of Wu et al. 2016 (GNMT), https://arxiv.org/abs/1609.08144:
    score(Y) = log p(Y | X) / lp(Y),   lp(Y) = ((5 + |Y|) / 6) ** alpha
"""

import torch
from model import Transformer


def output_limit(src_len: int, max_len: int) -> int:
    """Longest output to try: about twice the source (French is ~1.2x English), within max_len."""
    return min(max_len - 1, 2 * src_len + 10)


class _Stepper:
    """Gives the next-token logits (n, V) for n live hypotheses, cached or not."""

    def __init__(self, model: Transformer, memory, src_mask, use_cache: bool, banned):
        self.model, self.memory, self.src_mask = model, memory, src_mask
        self.caches = model.init_caches(memory) if use_cache else None
        self.banned = banned  # <pad> and <bos> are never outputs

    def logits(self, ys):
        """ys (n, t): all tokens so far, starting with <bos>."""
        if self.caches is None:
            out = self.model.decode(ys, self.memory, self.src_mask)[:, -1]  # (n, V)
        else:
            t = ys.shape[1]
            out = self.model.decode_step(
                ys[:, -1:], self.memory, self.src_mask, self.caches, t - 1
            )[:, -1]
        out[:, self.banned] = float("-inf")
        return out

    def reorder(self, idx):
        """Keep hypotheses idx (beam search): select the same rows of every cached tensor."""
        self.memory, self.src_mask = self.memory[idx], self.src_mask[idx]
        if self.caches is not None:
            for c in self.caches:
                c["k"], c["v"] = c["k"][idx], c["v"][idx]  # (n, h, t, d_k)
                c["mem_kv"] = (c["mem_kv"][0][idx], c["mem_kv"][1][idx])


@torch.no_grad()
def _left_to_right(model, src, bos, eos, max_len, use_cache, pick):
    """y_t = pick(logits of y | y_<t, x) for a batch src (B, S), until every row wrote <eos>.
    Returns lists of ids without bos/eos."""
    model.eval()
    memory, src_mask = model.encode(src)
    step = _Stepper(model, memory, src_mask, use_cache, [model.config.pad_id, bos])
    ys = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)  # (B, 1)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        nxt = pick(step.logits(ys))  # (B,)
        ys = torch.cat([ys, nxt[:, None]], dim=1)  # (B, t + 1)
        done |= nxt == eos
        if done.all():
            break
    out = []
    for row in ys[:, 1:].tolist():
        out.append(row[: row.index(eos)] if eos in row else row)
    return out


def greedy_decode(model, src, bos: int, eos: int, max_len: int, use_cache: bool = True):
    """y_t = argmax p(y | y_<t, x): the most likely next token, every step."""
    return _left_to_right(model, src, bos, eos, max_len, use_cache, lambda z: z.argmax(-1))


def sample_decode(model, src, bos, eos, max_len, temperature, generator=None, use_cache=True):
    """y_t ~ softmax(logits / temperature): 0 is greedy, 1 the model's own distribution,
    higher flatter. generator (a torch.Generator) makes the draw reproducible."""
    if temperature == 0:
        return greedy_decode(model, src, bos, eos, max_len, use_cache)

    def draw(logits):  # (B, V)
        probs = torch.softmax(logits.double() / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    return _left_to_right(model, src, bos, eos, max_len, use_cache, draw)


def length_penalty(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


@torch.no_grad()
def beam_search(model, src, bos, eos, max_len, beam_size=4, alpha=0.6, use_cache=True):
    """Beam search for ONE source sentence src (1, S). Returns the best ids without bos/eos."""
    model.eval()
    memory, src_mask = model.encode(src)
    step = _Stepper(model, memory, src_mask, use_cache, [model.config.pad_id, bos])
    ys = torch.full((1, 1), bos, dtype=torch.long, device=src.device)  # (n, t), n live beams
    scores = torch.zeros(1, dtype=torch.float64, device=src.device)  # sum of log p per beam
    finished = []  # (normalised score, ids)
    for t in range(1, max_len + 1):
        logp = torch.log_softmax(step.logits(ys).double(), dim=-1)  # (n, V)
        cand = (scores[:, None] + logp).view(-1)  # (n * V,)
        top_scores, top_idx = cand.topk(min(2 * beam_size, cand.numel()))
        V = logp.shape[1]
        keep_rows, keep_tok, keep_scores = [], [], []
        for s, i in zip(top_scores.tolist(), top_idx.tolist()):
            row, tok = divmod(i, V)
            if tok == eos:
                finished.append((s / length_penalty(t, alpha), ys[row, 1:].tolist()))
            else:
                keep_rows.append(row)
                keep_tok.append(tok)
                keep_scores.append(s)
            if len(keep_rows) == beam_size:
                break
        # stop when no live beam can still win: scores only fall as a beam grows, so a live
        # beam's best possible normalised score is its score now over the largest penalty
        best_done = max(f[0] for f in finished) if finished else float("-inf")
        if not keep_rows or best_done >= keep_scores[0] / length_penalty(max_len + 1, alpha):
            break
        idx = torch.tensor(keep_rows, device=src.device)
        step.reorder(idx)
        ys = torch.cat([ys[idx], torch.tensor(keep_tok, device=src.device)[:, None]], dim=1)
        scores = torch.tensor(keep_scores, dtype=torch.float64, device=src.device)
    if not finished:  # nothing ended in <eos> within max_len: return the best live beam
        return ys[0, 1:].tolist()
    return max(finished, key=lambda f: f[0])[1]
