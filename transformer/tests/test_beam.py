"""Beam search keeps searching until no live hypothesis can still win (regression test).

A hand-built "model" whose next-token distribution is a table over prefixes makes every
hypothesis's score computable by hand, so beam search is checked against exhaustive search.
The bugs this guards against: stopping as soon as beam_size hypotheses had finished, which
returned a short, early hypothesis and dropped the words of a better, longer one; and an
early stop that bounds a live beam with the current step's length penalty instead of the
largest one it can still reach. Beam search that stops early must return exactly what the
same search run to max_len returns (full_length_beam, written here without early stop).
"""

import itertools
import math

import pytest
import torch
from decode import beam_search, greedy_decode, length_penalty

PAD, BOS, EOS, A, B, C = 0, 1, 2, 3, 4, 5
V = 6


class TableModel:
    """Stands in for model.Transformer: p(next | prefix) read from a table (uncached decoding)."""

    class config:
        pad_id = PAD

    def __init__(self, table, default=None):
        self.table, self.default = table, default

    def eval(self):
        return self

    def encode(self, src):
        n = src.shape[0]
        return torch.zeros(n, 1, 1), torch.ones(n, 1, 1, 1, dtype=torch.bool)

    def probs(self, prefix):
        """Next-token probabilities after `prefix` (tuple of ids, without <bos>)."""
        p = self.table.get(prefix) or self.default(prefix)
        return [p.get(tok, 1e-9) for tok in range(V)]

    def decode(self, ys, memory, src_mask):
        """ys (n, t) -> logits (n, t, V); only the last position is read by the decoders."""
        last = [[math.log(p) for p in self.probs(tuple(row[1:]))] for row in ys.tolist()]
        out = torch.zeros(ys.shape[0], ys.shape[1], V, dtype=torch.float64)
        out[:, -1] = torch.tensor(last, dtype=torch.float64)
        return out


def score(model, ids, alpha):
    """log p(ids + <eos>) / lp(|ids| + 1), with <pad> and <bos> banned as the decoders do."""
    total, prefix = 0.0, ()
    for tok in list(ids) + [EOS]:
        p = model.probs(prefix)
        total += math.log(p[tok] / (sum(p) - p[PAD] - p[BOS]))
        prefix += (tok,)
    return total / length_penalty(len(ids) + 1, alpha)


def exhaustive_best(model, max_len, alpha):
    """Best finished hypothesis over every output of at most max_len - 1 words plus <eos>."""
    outputs = (list(ids) for n in range(max_len) for ids in itertools.product([A, B, C], repeat=n))
    return max(outputs, key=lambda ids: score(model, ids, alpha))


# step 1: <eos> at once (score log .35 = -1.05) or "a" (.40) or "b" (.25); after "b" the
# sentence ends (finished "b": -1.73); after "a" comes "c", then <eos>: "a c" scores -0.83.
# With beam_size 2, two hypotheses ("" and "b") have finished by step 2, before "a c" has.
EARLY_FINISH = {
    (): {EOS: 0.35, A: 0.40, B: 0.25},
    (A,): {C: 0.95, EOS: 0.05},
    (B,): {EOS: 0.6, C: 0.4},
    (A, C): {EOS: 0.99, B: 0.01},
}


@pytest.mark.parametrize("alpha", [0.6, 1.0])
def test_early_short_finished_hypotheses_do_not_end_the_search(alpha):
    model = TableModel(EARLY_FINISH, default=lambda prefix: {EOS: 0.9, B: 0.1})
    src = torch.zeros(1, 3, dtype=torch.long)
    best = beam_search(model, src, BOS, EOS, max_len=6, beam_size=2, alpha=alpha, use_cache=False)
    assert score(model, [], alpha) > score(model, [B], alpha)  # "" finished first and led
    assert best == [A, C] == exhaustive_best(model, 6, alpha)
    greedy = greedy_decode(model, src, BOS, EOS, max_len=6, use_cache=False)[0]
    assert score(model, best, alpha) >= score(model, greedy, alpha)


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_equals_exhaustive_search(seed):
    """A beam wider than every set of live prefixes is exact: it must find the best output."""
    gen = torch.Generator().manual_seed(seed)
    table = {}

    def random_next(prefix):
        if prefix not in table:
            p = torch.rand(4, generator=gen, dtype=torch.float64) ** 3 + 1e-3
            table[prefix] = dict(zip([EOS, A, B, C], (p / p.sum()).tolist()))
        return table[prefix]

    model = TableModel({}, default=random_next)
    src = torch.zeros(1, 3, dtype=torch.long)
    max_len = 4  # outputs of 0..3 words; 81 = 3^4 keeps every prefix and every <eos>
    best = beam_search(model, src, BOS, EOS, max_len, beam_size=81, alpha=0.6, use_cache=False)
    want = exhaustive_best(model, max_len, 0.6)
    assert math.isclose(score(model, best, 0.6), score(model, want, 0.6), rel_tol=1e-12)
    greedy = greedy_decode(model, src, BOS, EOS, max_len, use_cache=False)[0]
    assert score(model, best, 0.6) >= score(model, greedy, 0.6)


# step 1: <eos> (.45) finishes "" with -0.80; "a" (.44) lives with -0.82. With alpha = 1, a
# bound using lp(1) = 1 says "a" cannot win and stops; but "a c" finishes at step 3 with
# log(.44 * .99 * .99) / lp(3) = -0.84 / (8 / 6) = -0.63, which beats "".
LATE_WINNER = {(): {EOS: 0.45, A: 0.44, B: 0.11}, (A,): {C: 0.99, EOS: 0.01}, (A, C): {EOS: 0.99}}


def test_early_stop_bounds_a_live_beam_by_the_largest_penalty():
    model = TableModel(LATE_WINNER, default=lambda prefix: {EOS: 0.9, B: 0.1})
    src = torch.zeros(1, 3, dtype=torch.long)
    best = beam_search(model, src, BOS, EOS, max_len=6, beam_size=2, alpha=1.0, use_cache=False)
    assert score(model, [A, C], 1.0) > score(model, [], 1.0)
    assert best == [A, C] == exhaustive_best(model, 6, 1.0)


def full_length_beam(model, max_len, beam_size, alpha):
    """The same search (best 2k candidates, k live beams) run to max_len, no early stop."""
    live, finished = [((), 0.0)], []
    for t in range(1, max_len + 1):
        cands = []
        for prefix, s in live:
            p = model.probs(prefix)
            z = sum(p) - p[PAD] - p[BOS]
            cands += [(s + math.log(p[tok] / z), prefix, tok) for tok in (EOS, A, B, C)]
        cands.sort(key=lambda c: -c[0])
        live = []
        for s, prefix, tok in cands[: 2 * beam_size]:
            if tok == EOS:
                finished.append((s / length_penalty(t, alpha), list(prefix)))
            else:
                live.append((prefix + (tok,), s))
            if len(live) == beam_size:
                break
    return max(finished, key=lambda f: f[0])[1] if finished else list(live[0][0])


@pytest.mark.parametrize("seed", range(20))
def test_early_stop_changes_nothing(seed):
    """On random tables, stopping early returns what the full search does. Half the prefixes
    have one near-certain next token: a live beam then keeps almost all of its score for a
    few more steps while its length penalty grows, the case a loose stopping bound gets wrong."""
    gen = torch.Generator().manual_seed(seed)
    table = {}

    def random_next(prefix):
        if prefix not in table:
            p = torch.rand(4, generator=gen, dtype=torch.float64) + 1e-3
            if torch.rand(1, generator=gen).item() < 0.5:
                p[torch.randint(4, (1,), generator=gen)] += 30
            table[prefix] = dict(zip([EOS, A, B, C], (p / p.sum()).tolist()))
        return table[prefix]

    model = TableModel({}, default=random_next)
    src = torch.zeros(1, 3, dtype=torch.long)
    for beam_size in (2, 3):
        for alpha in (0.6, 1.0, 2.0):
            got = beam_search(model, src, BOS, EOS, 7, beam_size, alpha, use_cache=False)
            assert got == full_length_beam(model, 7, beam_size, alpha), (beam_size, alpha)
