"""Truncated BPTT: a forward pass in chunks with the state carried equals one unchunked pass, and
the batches line up so that carrying the state is right."""

import numpy as np
import pytest
from data import Streams, Vocab, split
from model import CharRNN


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_chunked_forward_equals_unchunked(cell):
    rng = np.random.default_rng(0)
    model = CharRNN(7, cell, n_embd=3, n_hidden=5, n_layer=2, dtype=np.float64)
    ids = rng.integers(0, 7, (12, 4))  # (T, B)
    full, full_states = model.forward(ids)
    states, parts = None, []
    for s in range(0, 12, 4):  # three chunks of 4 steps
        logits, states = model.forward(ids[s : s + 4], states)
        parts.append(logits)
    np.testing.assert_allclose(np.concatenate(parts), full, rtol=1e-12, atol=1e-12)
    for a, b in zip(states, full_states):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    # and the carried state matters: restarting each chunk from zero gives different logits
    assert not np.allclose(model.forward(ids[4:8])[0], full[4:8])


def test_streams_continue_across_chunks():
    ids = np.arange(1000)
    s = Streams(ids, batch_size=4, seq_len=10)
    x0, y0 = s.chunk(0)
    x1, _ = s.chunk(1)
    assert x0.shape == (10, 4)
    np.testing.assert_array_equal(y0[:-1], x0[1:])  # targets are the next character
    np.testing.assert_array_equal(x1[0], y0[-1])  # chunk 1 starts where chunk 0 stopped
    np.testing.assert_array_equal(x0[0], [0, 249, 498, 747])  # 4 streams of 249 characters


def test_vocab_and_line_split():
    text = "".join(f"name{i}\n" for i in range(50))
    train, val = split(text, "lines", 0.1, seed=0)
    tr, va = set(train.split()), set(val.split())
    assert len(va) == 5 and len(tr) == 45 and not tr & va  # 90/10 by line, disjoint
    v = Vocab(text)
    assert v.chars[0] == "\n" and v.decode(v.encode("name7\n")) == "name7\n"


def test_list_or_prose(tmp_path):
    from data import load_text

    names, prose = tmp_path / "names.txt", tmp_path / "play.txt"
    names.write_text("emma\nolivia\nava\n")
    prose.write_text(
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak.\n"
    )
    assert load_text(data=str(names))[1] == "lines"
    assert load_text(data=str(prose))[1] == "prose"  # short lines, but blank ones between speeches
