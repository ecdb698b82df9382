"""Translation metrics written here: exact match, character error rate, corpus BLEU.

BLEU: Papineni et al. 2002, "BLEU: a Method for Automatic Evaluation of Machine Translation"
(ACL, https://aclanthology.org/P02-1040/). Corpus level, one reference per sentence, n = 1..4:
    p_n  = sum_sentences sum_ngrams min(count_hyp, count_ref) / sum_sentences #hyp n-grams
    BP   = 1 if c >= r else exp(1 - r / c)      (c, r: total hypothesis / reference lengths)
    BLEU = BP * exp(mean_n log p_n)
The figures this folder reports are sacreBLEU's (Post 2018, https://arxiv.org/abs/1804.08771):
the same BLEU on the standard `13a` tokenisation (mteval-v13a, as WMT scores), case kept,
with its default "exp" smoothing of an order with no match. tests/test_metrics.py holds
corpus_bleu against hand-computed values and bleu() against the sacrebleu package.
evaluate() runs a model over held-out examples: greedy translations scored with the three
metrics above, or classification accuracy.
"""

import math
import re
from collections import Counter

import data as D
import torch
from decode import greedy_decode, output_limit

# mteval-v13a: split off every ASCII symbol except ' and -; . and , unless between digits;
# a dash after a digit. (The apostrophe stays inside the word: "N'oublie" is one token.)
_13A = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def tokenize_13a(line: str):
    """sacreBLEU's default tokeniser, by hand: "Va-t'en, vite!" -> Va-t'en | , | vite | !"""
    line = line.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        line = line.replace(entity, char)
    line = f" {line} "
    for pattern, repl in _13A:
        line = pattern.sub(repl, line)
    return line.split()


def exact_match(hyps, refs) -> float:
    return sum(h == r for h, r in zip(hyps, refs)) / max(len(refs), 1)


def edit_distance(a, b) -> int:
    """Levenshtein distance: fewest insertions, deletions, substitutions turning a into b."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def char_error_rate(hyps, refs) -> float:
    """CER = sum edit_distance(hyp, ref) / sum len(ref), over characters."""
    return sum(edit_distance(h, r) for h, r in zip(hyps, refs)) / max(sum(map(len, refs)), 1)


def ngrams(tokens, n):
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hyp_tokens, ref_tokens, max_n: int = 4, smooth: bool = False) -> float:
    """BLEU in [0, 1] over lists of token lists (one reference each).

    smooth=False: the paper's BLEU, 0 if some order has no match. smooth=True: sacreBLEU's
    "exp" smoothing (mteval's): the k-th order without a match counts as 1 / (2^k #n-grams).
    """
    matches, totals = [0] * max_n, [0] * max_n
    c = sum(len(h) for h in hyp_tokens)
    r = sum(len(t) for t in ref_tokens)
    for h, t in zip(hyp_tokens, ref_tokens):
        for n in range(1, max_n + 1):
            hyp_counts, ref_counts = ngrams(h, n), ngrams(t, n)
            matches[n - 1] += sum(min(k, ref_counts[g]) for g, k in hyp_counts.items())
            totals[n - 1] += max(len(h) - n + 1, 0)  # a sentence shorter than n has none
    if c == 0 or min(totals) == 0 or not any(matches) or (min(matches) == 0 and not smooth):
        return 0.0
    log_p, k = 0.0, 1
    for m, t in zip(matches, totals):
        if m == 0:
            k *= 2
        log_p += math.log(m / t if m else 1 / (k * t)) / max_n
    bp = 1.0 if c >= r else math.exp(1 - r / c)
    return bp * math.exp(log_p)


def bleu(hyps, refs) -> float:
    """The reported figure: sacreBLEU (13a tokens, case kept, exp smoothing), 0..100."""
    return 100 * corpus_bleu(
        [tokenize_13a(h) for h in hyps], [tokenize_13a(r) for r in refs], smooth=True
    )


@torch.no_grad()
def evaluate(model, task, examples, device, batch_size=250):
    """Translate: greedy decoding -> exact match, CER, sacreBLEU. Classify: accuracy."""
    model.eval()
    src_tok, tgt_tok = task["src_tok"], task["tgt_tok"]
    max_len = model.config.max_len
    if tgt_tok is None:
        correct = 0
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            src = D.pad_batch(
                [([D.BOS] + src_tok.encode(x, strict=False))[:max_len] for x, _ in chunk]
            )
            pred = model(torch.tensor(src, device=device)).argmax(-1).tolist()
            correct += sum(p == y for p, (_, y) in zip(pred, chunk))
        model.train()
        return {"accuracy": correct / len(examples)}
    hyps = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        src = D.pad_batch([([D.BOS] + src_tok.encode(x, strict=False))[:max_len] for x, _ in chunk])
        n_out = output_limit(max(map(len, src)), max_len)
        out = greedy_decode(model, torch.tensor(src, device=device), D.BOS, D.EOS, n_out)
        hyps += [tgt_tok.decode(ids) for ids in out]
    # references in the tokeniser's spelling (word level: split punctuation), but never
    # through the vocabulary: a word the model cannot write must count as an error, not as
    # a free "<unk>" match
    refs = [tgt_tok.join(tgt_tok.split(y)) for _, y in examples]
    model.train()
    return {
        "exact_match": exact_match(hyps, refs),
        "cer": char_error_rate(hyps, refs),
        "bleu": bleu(hyps, [y for _, y in examples]),  # sacreBLEU against the raw references
        "samples": list(zip([x for x, _ in examples[:5]], hyps[:5], refs[:5])),
    }
