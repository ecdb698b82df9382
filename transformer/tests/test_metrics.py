"""BLEU, CER and exact match against values worked out by hand."""

import math

import pytest
from metrics import bleu_from_text, char_error_rate, corpus_bleu, edit_distance, exact_match


def test_corpus_bleu_hand_computed():
    hyps = ["the cat sat on the mat", "there is a dog here"]
    refs = ["the cat is on the mat", "there is a dog in the garden"]
    # n-gram matches / totals summed over both sentences:
    # p1 = (5 + 4) / (6 + 5), p2 = (3 + 3) / (5 + 4), p3 = (1 + 2) / (4 + 3), p4 = (0 + 1) / (3 + 2)
    # c = 11 hypothesis words < r = 13 reference words: BP = exp(1 - 13 / 11)
    expected = math.exp(1 - 13 / 11) * (9 / 11 * 6 / 9 * 3 / 7 * 1 / 5) ** 0.25
    assert bleu_from_text(hyps, refs) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.3877, abs=1e-4)  # 0.8338 * (18/385)^(1/4)


def test_bleu_edge_cases():
    assert corpus_bleu([["a", "b", "c", "d"]], [["a", "b", "c", "d"]]) == pytest.approx(1.0)
    assert corpus_bleu([["a", "b", "c"]], [["a", "b", "c"]]) == 0.0  # no 4-gram at all: p4 = 0/0
    # clipping: "the the the the" gets credit for "the" only as often as the reference has it
    assert corpus_bleu([["the"] * 4], [["the", "cat"]], max_n=1) == pytest.approx(1 / 4)


def test_cer_and_exact_match():
    assert edit_distance("kitten", "sitting") == 3
    assert char_error_rate(["kitten", "abc"], ["sitting", "abc"]) == pytest.approx(3 / 10)
    assert exact_match(["a", "b", "c"], ["a", "x", "c"]) == pytest.approx(2 / 3)


def test_unknown_reference_word_is_never_a_free_match(monkeypatch):
    """A reference word outside the vocabulary must not match an <unk> output."""
    import data as D
    import metrics as M

    tok = D.WordTokenizer.build(["le chat"])

    class Stub:
        config = type("C", (), {"max_len": 20})()

        def eval(self):
            pass

        def train(self):
            pass

    monkeypatch.setattr(M, "greedy_decode", lambda *a, **k: [[tok.stoi["le"], D.UNK]])
    ev = M.evaluate(Stub(), {"src_tok": tok, "tgt_tok": tok}, [("the dog", "Le chien")], "cpu")
    assert ev["exact_match"] == 0.0 and ev["cer"] > 0
    monkeypatch.setattr(M, "greedy_decode", lambda *a, **k: [[tok.stoi["le"], tok.stoi["chat"]]])
    ev = M.evaluate(Stub(), {"src_tok": tok, "tgt_tok": tok}, [("the cat", "Le chat")], "cpu")
    assert ev["exact_match"] == 1.0  # word level compares lower-cased, split text
