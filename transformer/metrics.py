"""Translation metrics written here: exact match, character error rate, corpus BLEU.

BLEU: Papineni et al. 2002, "BLEU: a Method for Automatic Evaluation of Machine Translation"
(ACL, https://aclanthology.org/P02-1040/). Corpus level, one reference per sentence, n = 1..4,
no smoothing:
    p_n  = sum_sentences sum_ngrams min(count_hyp, count_ref) / sum_sentences #hyp n-grams
    BP   = 1 if c > r else exp(1 - r / c)      (c, r: total hypothesis / reference lengths)
    BLEU = BP * exp(mean_n log p_n)
tests/test_metrics.py checks it against a value computed by hand.
evaluate() runs a model over held-out examples: greedy translations scored with the three
metrics above, or classification accuracy.
"""

import math
import re
from collections import Counter

import data as D
import torch
from decode import greedy_decode, output_limit

_WORDS = re.compile(r"\w+'?|[^\w\s]")


def words(text: str):
    """Lower-cased word and punctuation tokens, the unit BLEU counts."""
    return _WORDS.findall(text.lower())


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


def corpus_bleu(hyp_tokens, ref_tokens, max_n: int = 4) -> float:
    """BLEU in [0, 1] over lists of token lists (one reference each)."""
    matches, totals = [0] * max_n, [0] * max_n
    c = sum(len(h) for h in hyp_tokens)
    r = sum(len(t) for t in ref_tokens)
    for h, t in zip(hyp_tokens, ref_tokens):
        for n in range(1, max_n + 1):
            hyp_counts, ref_counts = ngrams(h, n), ngrams(t, n)
            matches[n - 1] += sum(min(k, ref_counts[g]) for g, k in hyp_counts.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    if c == 0 or min(matches) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(log_p)


def bleu_from_text(hyps, refs) -> float:
    return corpus_bleu([words(h) for h in hyps], [words(r) for r in refs])


@torch.no_grad()
def evaluate(model, task, examples, device, batch_size=250):
    """Translate: greedy decoding -> exact match, CER, BLEU. Classify: accuracy."""
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
    # references in the tokeniser's spelling (word level: lower case, split punctuation), but
    # never through the vocabulary: a word the model cannot write must count as an error,
    # not as a free "<unk>" match
    refs = [tgt_tok.join(tgt_tok.split(y)) for _, y in examples]
    model.train()
    return {
        "exact_match": exact_match(hyps, refs),
        "cer": char_error_rate(hyps, refs),
        "bleu": 100 * bleu_from_text(hyps, [y for _, y in examples]),  # words of the raw text
        "samples": list(zip([x for x, _ in examples[:5]], hyps[:5], refs[:5])),
    }
