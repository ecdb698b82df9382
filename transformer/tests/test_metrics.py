"""BLEU, CER and exact match against values worked out by hand; the reported BLEU and its
13a tokeniser against the sacrebleu package (the dev requirement that defines the figure)."""

import math
import random

import pytest
import sacrebleu
from metrics import bleu, char_error_rate, corpus_bleu, edit_distance, exact_match, tokenize_13a
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

HYPS = ["the cat sat on the mat", "there is a dog here", "a dog"]
REFS = ["the cat is on the mat", "there is a dog in the garden", "a dog ran"]


def test_corpus_bleu_hand_computed():
    # n-gram matches / totals summed over the three sentences; "a dog" has one bigram and
    # no trigram or 4-gram at all (its count is 0, never negative):
    # p1 = (5 + 4 + 2) / (6 + 5 + 2), p2 = (3 + 3 + 1) / (5 + 4 + 1),
    # p3 = (1 + 2 + 0) / (4 + 3 + 0), p4 = (0 + 1 + 0) / (3 + 2 + 0)
    # c = 13 hypothesis words < r = 16 reference words: BP = exp(1 - 16 / 13)
    expected = math.exp(1 - 16 / 13) * (11 / 13 * 7 / 10 * 3 / 7 * 1 / 5) ** 0.25
    got = corpus_bleu([h.split() for h in HYPS], [r.split() for r in REFS])
    assert got == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.3769, abs=1e-4)  # 0.7939 * (0.05077)^(1/4)
    assert corpus_bleu([h.split() for h in HYPS], [r.split() for r in REFS], smooth=True) == got


def test_bleu_edge_cases():
    assert corpus_bleu([["a", "b", "c", "d"]], [["a", "b", "c", "d"]]) == pytest.approx(1.0)
    assert corpus_bleu([["a", "b", "c"]], [["a", "b", "c"]]) == 0.0  # no 4-gram at all: p4 = 0/0
    assert corpus_bleu([[]], [["a"]]) == 0.0
    # clipping: "the the the the" gets credit for "the" only as often as the reference has it
    assert corpus_bleu([["the"] * 4], [["the", "cat"]], max_n=1) == pytest.approx(1 / 4)
    # no 4-gram match: the paper's BLEU is 0; exp smoothing counts it as 1 / (2 * 2)
    h, r = [["a", "b", "c", "d", "e"]], [["a", "b", "c", "x", "d", "e"]]
    assert corpus_bleu(h, r) == 0.0
    p = [5 / 5, 3 / 4, 1 / 3, 1 / (2 * 2)]
    want = math.exp(1 - 6 / 5) * math.prod(p) ** 0.25
    assert corpus_bleu(h, r, smooth=True) == pytest.approx(want, rel=1e-12)


def test_13a_tokeniser_equals_sacrebleu():
    lines = ["N'oublie pas ton maillot !", "Il a 3,5 ans, et toi ?", "1990-2000: 5.5% (env.)",
             "Tom a dit \"non\"; c'est l'heure...", "a &amp; b &lt;c&gt; &quot;d&quot;",
             "e-mail, x/y [z] {w} ~ ^ ` @ #", "Va-t'en !  Vite.", "  ", "It costs $10.50."]  # fmt: skip
    ref = Tokenizer13a()
    for line in lines:
        assert tokenize_13a(line) == ref(line.rstrip()).split(), line


def _random_corpus(seed):
    """Sentences of 0 to 7 words from a small vocabulary, so every n-gram order, short
    hypotheses, empty ones and orders with no match all occur."""
    rng = random.Random(seed)
    vocab = ["le", "chat", "Le", "chien", "mange", "l'oiseau", ",", ".", "!", "3.5", "a-t-il"]
    sent = lambda: " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 7)))
    refs = [sent() or "vide" for _ in range(rng.randint(1, 12))]
    hyps = [r if rng.random() < 0.3 else sent() for r in refs]
    return hyps, refs


CORPORA = [
    (HYPS, REFS),
    (["N'oublie pas votre costume.", "Votre français est mieux que moi."],
     ["N'oublie pas ton maillot !", "Ton français est meilleur que le mien."]),
    (["Va !", "Cours !", "Au feu !"], ["Va-t'en !", "Courez !", "Au feu !"]),  # no 4-gram match
    (["le chat mange un chat", "les chiens voient"], ["le chat mange", "les chiens voient la fleur"]),
    (["", "un"], ["une pomme", "un"]),
]  # fmt: skip


@pytest.mark.parametrize("hyps, refs", CORPORA + [_random_corpus(s) for s in range(40)])
def test_bleu_equals_sacrebleu(hyps, refs):
    want = sacrebleu.corpus_bleu(hyps, [refs]).score  # 13a, case kept, exp smoothing
    assert bleu(hyps, refs) == pytest.approx(want, rel=1e-9, abs=1e-9), (hyps, refs)


def test_cer_and_exact_match():
    assert edit_distance("kitten", "sitting") == 3
    assert char_error_rate(["kitten", "abc"], ["sitting", "abc"]) == pytest.approx(3 / 10)
    assert exact_match(["a", "b", "c"], ["a", "x", "c"]) == pytest.approx(2 / 3)


def test_unknown_reference_word_is_never_a_free_match(monkeypatch):
    """A reference word outside the vocabulary must not match an <unk> output."""
    import data as D
    import metrics as M

    tok = D.WordTokenizer.build(["Le chat"])

    class Stub:
        config = type("C", (), {"max_len": 20})()

        def eval(self):
            pass

        def train(self):
            pass

    monkeypatch.setattr(M, "greedy_decode", lambda *a, **k: [[tok.stoi["Le"], D.UNK]])
    ev = M.evaluate(Stub(), {"src_tok": tok, "tgt_tok": tok}, [("the dog", "Le chien")], "cpu")
    assert ev["exact_match"] == 0.0 and ev["cer"] > 0 and ev["bleu"] < 100
    monkeypatch.setattr(M, "greedy_decode", lambda *a, **k: [[tok.stoi["Le"], tok.stoi["chat"]]])
    ev = M.evaluate(Stub(), {"src_tok": tok, "tgt_tok": tok}, [("the cat", "Le chat")], "cpu")
    assert ev["exact_match"] == 1.0 and ev["bleu"] == 0.0  # two words: no 4-gram, BLEU 0
