"""Proof tests for tokenizer.py: round trips, a hand-worked BPE example, the trainer against a
naive reference, save/load, and equality with Hugging Face's GPT-2 tokenizer on GPT-2-format
files written into tmp_path (no download: the merges are learned here)."""

import copy
import json
import random

import pytest
from tokenizer import (
    ENDOFTEXT,
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    CharTokenizer,
    bytes_to_unicode,
    load_tokenizer,
)

# Text that exercises every branch of the pre-tokenisation pattern.
VARIED = [
    "Hello world! It's 2019; GPT-2 has 124,439,808 parameters.",
    "I'll say it: we're sure they've done what you'd've done. I'm not. DON'T SHOUT, it's rude",
    "a  b   c    d\t\te\n\nf\r\n  g   \n  ",
    "   leading and trailing spaces   ",
    "numbers 3.14159 1e-10 0x1F 1,000,000 ٣٤٥ ½ and 12345678901234567890",
    "punctuation!?... --- (brackets) [x] {y} <z> @#$%^&*_+=|\\/~`\"'",
    "def f(x):\n    return x ** 2  # square\n\n\nclass A:\n\tpass\n",
    "unicode: naïve café résumé, 你好，世界, こんにちは, 안녕하세요, مرحبا, Ελληνικά",
    "emoji 👩‍👩‍👧‍👦 🇫🇷 👍🏽 and combining e\u0301 a\u0308 \u00a0nbsp\u2003em-space\u200bzw",
    "end of one document" + ENDOFTEXT + "start of the next",
    "",
    " ",
    "\n",
]


def pydoc_text(n_chars):
    """The gpt2 folder's offline default corpus (Python's own documentation topics)."""
    from pydoc_data.topics import topics

    return "".join(topics[k] for k in sorted(topics))[:n_chars]


@pytest.fixture(scope="module")
def trained():
    tok = BPETokenizer()
    tok.train(pydoc_text(60_000) + "".join(VARIED), vocab_size=600)
    return tok


def random_strings(seed, n=40):
    """Random code points from every plane (no lone surrogates: UTF-8 cannot hold them) and
    random bytes decoded leniently, mixed with spaces and newlines."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        cps = []
        for _ in range(rng.randrange(1, 40)):
            hi = rng.choice([0x7F, 0x7FF, 0xFFFF, 0x10FFFF])
            cp = rng.randrange(0, hi + 1)
            cps.append(" " if 0xD800 <= cp <= 0xDFFF else chr(cp))
        out.append("".join(cps))
        raw = rng.randbytes(rng.randrange(1, 60))
        out.append(raw.decode("utf-8", errors="replace"))
        out.append(raw.decode("latin-1"))
    return out


# ------------------------------------------------------------------ byte table and pre-tokens
def test_bytes_to_unicode_is_gpt2s_table():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    # The values GPT-2's files are known to use: '!' is id 0, space 'Ġ', newline 'Ċ', tab 'ĉ'.
    assert list(table)[0] == ord("!") and table[ord("!")] == "!"
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("\t")] == "ĉ"
    assert table[0] == "Ā" and table[0xAD] == "Ń" and table[0xFF] == "ÿ"


def test_pretokenisation_hand_example():
    import regex

    split = regex.compile(GPT2_SPLIT_PATTERN).findall
    # "  123": "\s+(?!\S)" leaves the last space to glue onto the digits; same for "\n\n  x".
    assert split("Hello world's  123!!\n\n  x") == [
        "Hello",
        " world",
        "'s",
        " ",
        " 123",
        "!!",
        "\n\n ",
        " x",
    ]
    # GPT-2's contractions are lower-case only, a known quirk.
    assert split("don't DON'T") == ["don", "'t", " DON", "'", "T"]
    assert split("a1b2 ") == ["a", "1", "b", "2", " "]


# ------------------------------------------------------------------ training
def test_hand_worked_bpe_example():
    # The module docstring works this out by hand (a=97 b=98 c=99 d=100):
    #   [97 97 97 98 100 97 97 97 98 97 99]  pairs: aa x4, ab x2, bd da ba ac x1 -> (97,97)=256
    #   [256 97 98 100 256 97 98 97 99]      (256,97) x2 and (97,98) x2 tie; the smaller pair
    #                                        (97,98) wins -> 257
    #   [256 257 100 256 257 97 99]          (256,257) x2 -> 258 = b"aaab"
    tok = BPETokenizer()
    tok.train("aaabdaaabac", vocab_size=259)
    assert tok.merges == [(97, 97, 256), (97, 98, 257), (256, 257, 258)]
    assert [tok.vocab[i] for i in (256, 257, 258)] == [b"aa", b"ab", b"aaab"]
    assert tok.vocab_size == 259
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    # A new word is segmented by replaying the merges in rank order: "aab" -> aa,b (rank 0
    # beats (97,98) at rank 1), and (256,98) is no merge; "abaab" -> ab,aa,b.
    assert tok.encode("aab") == [256, 98]
    assert tok.encode("abaab") == [257, 256, 98]
    assert tok.decode([258, 100, 258, 97, 99]) == "aaabdaaabac"


def test_module_docstring_example_runs():
    import doctest

    import tokenizer

    assert doctest.testmod(tokenizer).failed == 0


def test_merges_never_cross_chunks_and_training_stops_when_out_of_pairs():
    tok = BPETokenizer()
    tok.train("a b a b a b", vocab_size=300)
    # Chunks "a", " b", " a", " b", " a", " b": the only pairs are (32, 98) x3 and (32, 97) x2.
    assert tok.merges == [(32, 98, 256), (32, 97, 257)]
    assert tok.vocab_size == 258
    assert tok.encode("a b") == [97, 256]


def naive_train(text, n_merges):
    """Reference trainer: recount every pair of every chunk after each merge."""
    import regex

    words = [list(c.encode("utf-8")) for c in regex.findall(GPT2_SPLIT_PATTERN, text)]
    merges = []
    for new in range(256, 256 + n_merges):
        counts = {}
        for w in words:
            for p in zip(w, w[1:]):
                counts[p] = counts.get(p, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append((*best, new))
        for k, w in enumerate(words):
            out, i = [], 0
            while i < len(w):
                if w[i : i + 2] == list(best):
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[k] = out
    return merges


@pytest.mark.parametrize("source", ["pydoc", "random"])
def test_trainer_equals_naive_reference(source):
    if source == "pydoc":
        text = pydoc_text(8_000)
    else:  # a tiny alphabet makes many ties and overlapping runs ("aaaa")
        rng = random.Random(1)
        text = " ".join(
            "".join(rng.choice("aab") for _ in range(rng.randrange(1, 9))) for _ in range(800)
        )
    tok = BPETokenizer()
    tok.train(text, vocab_size=256 + 120)
    assert tok.merges == naive_train(text, 120)


def test_train_is_deterministic(tmp_path, trained):
    again = BPETokenizer()
    again.train(pydoc_text(60_000) + "".join(VARIED), vocab_size=600)
    assert again.merges == trained.merges
    trained.save(tmp_path / "a.json")
    again.save(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_trained_tokenizer_compresses(trained):
    text = pydoc_text(200_000)[100_000:]  # held-out part of the corpus
    ids = trained.encode(text)
    assert len(text.encode("utf-8")) / len(ids) > 2.0  # bytes per token
    assert max(ids) < trained.vocab_size


# ------------------------------------------------------------------ round trips
def test_bpe_round_trip_arbitrary_unicode(trained):
    for s in VARIED + random_strings(seed=0):
        ids = trained.encode(s)
        assert trained.decode(ids) == s
        assert trained.decode_bytes(ids) == s.encode("utf-8")
        assert all(0 <= i < trained.vocab_size for i in ids)


def test_bpe_round_trip_without_merges():
    tok = BPETokenizer()  # 256 byte tokens only: encode is exactly UTF-8
    for s in random_strings(seed=1, n=10):
        assert tok.encode(s) == list(s.encode("utf-8"))
        assert tok.decode(tok.encode(s)) == s


def test_decode_cut_inside_a_character_gives_replacement_char():
    tok = BPETokenizer()
    assert tok.encode("é") == [0xC3, 0xA9]
    assert tok.decode([0xC3]) == "\ufffd"
    assert tok.decode([0x41, 0xC3, 0xA9]) == "Aé"


def test_char_round_trip_and_ids():
    text = "".join(VARIED) + "".join(random_strings(seed=2, n=10))
    tok = CharTokenizer.from_text(text)
    assert tok.vocab_size == len(set(text))
    assert tok.chars == sorted(set(text))
    assert tok.encode(text) == [tok.chars.index(c) for c in text]
    assert tok.decode(tok.encode(text)) == text


def test_decode_accepts_numpy_and_torch_ids(trained):
    import numpy as np
    import torch

    ids = trained.encode("tensors of ids")
    assert trained.decode(np.array(ids)) == "tensors of ids"
    assert trained.decode(torch.tensor(ids)) == "tensors of ids"
    char = CharTokenizer.from_text("abc")
    assert char.decode(torch.tensor([2, 1, 0])) == "cba"


# ------------------------------------------------------------------ errors
def test_char_unknown_characters_are_named():
    tok = CharTokenizer.from_text("hello world")
    with pytest.raises(ValueError, match="characters not in the vocabulary: 'Z', '€'"):
        tok.encode("hello Z€Z")


def test_unknown_ids_raise():
    with pytest.raises(ValueError, match="token ids not in the vocabulary: \\[5, -1\\]"):
        CharTokenizer.from_text("abc").decode([0, 5, -1])
    with pytest.raises(ValueError, match="token ids not in the vocabulary: \\[256\\]"):
        BPETokenizer().decode([1, 256])
    with pytest.raises(ValueError, match="integers"):
        BPETokenizer().decode([1.5])
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer().train("abc", vocab_size=100)


def test_bad_tokenizer_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_tokenizer(tmp_path / "junk.json")
    (tmp_path / "other.json").write_text('{"type": "wordpiece"}')
    with pytest.raises(ValueError, match="not a tokenizer file"):
        load_tokenizer(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text('{"type": "bpe", "pattern": "x", "byte_ids": [1, 2]}')
    with pytest.raises(ValueError, match="not a valid BPE tokenizer file"):
        load_tokenizer(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="not a character tokenizer file"):
        CharTokenizer.load(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    for load in (load_tokenizer, CharTokenizer.load, BPETokenizer.load):
        with pytest.raises(ValueError, match="not a .*tokenizer file"):
            load(tmp_path / "list.json")


# ------------------------------------------------------------------ special tokens, save/load
def test_special_token():
    tok = BPETokenizer()
    tok.train(pydoc_text(5_000), vocab_size=300)
    eot = tok.add_special_token()
    assert eot == 300 and tok.vocab_size == 301 and tok.add_special_token(ENDOFTEXT) == eot
    text = "one" + ENDOFTEXT + " two" + ENDOFTEXT
    ids = tok.encode(text)
    assert ids == tok.encode("one") + [eot] + tok.encode(" two") + [eot]
    assert tok.decode(ids) == text
    assert eot not in tok.encode(text, allowed_special=False)
    assert tok.decode(tok.encode(text, allowed_special=False)) == text
    # Retraining keeps the special token, numbered after the new merges.
    tok.train(pydoc_text(5_000), vocab_size=280)
    assert tok.special_tokens == {ENDOFTEXT: 280} and tok.vocab_size == 281


def test_save_load_bpe(tmp_path, trained):
    trained = copy.deepcopy(trained)  # the fixture is shared: leave it without specials
    trained.add_special_token()
    path = tmp_path / "bpe.json"
    trained.save(path)
    saved = json.loads(path.read_text())
    assert saved["type"] == "bpe" and set(saved) >= {"merges", "byte_ids", "special_tokens"}
    for loaded in (BPETokenizer.load(path), load_tokenizer(path)):
        assert isinstance(loaded, BPETokenizer)
        assert (loaded.merges, loaded.byte_ids) == (trained.merges, trained.byte_ids)
        assert loaded.special_tokens == trained.special_tokens
        assert loaded.vocab == trained.vocab and loaded.vocab_size == trained.vocab_size
        for s in VARIED + random_strings(seed=3, n=10):
            assert loaded.encode(s) == trained.encode(s)


def test_save_load_char(tmp_path):
    tok = CharTokenizer.from_text("".join(VARIED))
    path = tmp_path / "char.json"
    tok.save(path)
    assert json.loads(path.read_text())["type"] == "char"
    for loaded in (CharTokenizer.load(path), load_tokenizer(path)):
        assert isinstance(loaded, CharTokenizer)
        assert loaded.chars == tok.chars
        assert loaded.encode("".join(VARIED)) == tok.encode("".join(VARIED))


def test_encode_runs_bpe_once_per_distinct_chunk(trained):
    trained._cache.clear()
    calls = []
    original = trained._encode_chunk
    trained._encode_chunk = lambda chunk: calls.append(chunk) or original(chunk)
    try:
        ids = trained.encode("the cat the cat the cat. the cat")
    finally:
        del trained._encode_chunk
    assert sorted(calls) == sorted(["the", " cat", " the", "."])
    assert trained.decode(ids) == "the cat the cat the cat. the cat"


# ------------------------------------------------------------------ GPT-2 files vs Hugging Face
def write_gpt2_files(tok, folder):
    """Write `tok` as GPT-2's encoder.json + vocab.bpe: ids 0..255 are the bytes in
    bytes_to_unicode order (so '!' is 0), then one id per merge, then <|endoftext|>."""
    b2u = bytes_to_unicode()

    def spell(i):
        return "".join(b2u[b] for b in tok.vocab[i])

    encoder = {c: n for n, c in enumerate(b2u.values())}
    lines = ["#version: 0.2"]
    for a, b, new in tok.merges:
        encoder[spell(new)] = len(encoder)
        lines.append(f"{spell(a)} {spell(b)}")
    encoder[ENDOFTEXT] = len(encoder)
    enc_path, bpe_path = folder / "encoder.json", folder / "vocab.bpe"
    enc_path.write_text(json.dumps(encoder), encoding="utf-8")
    bpe_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return enc_path, bpe_path


@pytest.fixture(scope="module")
def gpt2_files(trained, tmp_path_factory):
    merged = [trained.vocab[m[2]] for m in trained.merges]
    assert len(set(merged)) == len(merged)  # each merge is a new string, as in GPT-2's files
    return write_gpt2_files(trained, tmp_path_factory.mktemp("gpt2_files"))


def test_from_gpt2_files_structure(trained, gpt2_files):
    ours = BPETokenizer.from_gpt2_files(*gpt2_files)
    assert ours.vocab_size == 256 + len(trained.merges) + 1
    assert ours.special_tokens == {ENDOFTEXT: ours.vocab_size - 1}
    assert ours.byte_ids[ord("!")] == 0 and ours.byte_ids[ord(" ")] == 220  # as in GPT-2
    # Same segmentation as the tokenizer the files came from (ids differ, bytes agree).
    for s in VARIED:
        pieces = [ours.vocab.get(i, b"<special>") for i in ours.encode(s, allowed_special=False)]
        assert pieces == [trained.vocab[i] for i in trained.encode_ordinary(s)]


def test_matches_hugging_face_gpt2_tokenizer(gpt2_files):
    from transformers import GPT2Tokenizer

    hf = GPT2Tokenizer(vocab=str(gpt2_files[0]), merges=str(gpt2_files[1]))
    ours = BPETokenizer.from_gpt2_files(*gpt2_files)
    assert len(hf) == ours.vocab_size
    texts = VARIED + random_strings(seed=4, n=15) + [pydoc_text(300_000)[200_000:203_000]]
    for s in texts:
        ids = ours.encode(s)
        assert ids == hf.encode(s), repr(s)
        assert ours.decode(ids) == hf.decode(ids) == s


def _write_files(folder, encoder, lines):
    (folder / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    (folder / "vocab.bpe").write_text("\n".join(["#version: 0.2", *lines]) + "\n", encoding="utf-8")
    return folder / "encoder.json", folder / "vocab.bpe"


def test_merge_rank_decides_not_token_id(tmp_path):
    # "a b" is merge 0 but gets the larger id; "b c" is merge 1 with the smaller one. BPE applies
    # the lowest RANK first: "abc" -> "ab" + "c". Ranking by id would give "a" + "bc".
    b2u = bytes_to_unicode()
    encoder = {c: n for n, c in enumerate(b2u.values())} | {"ab": 257, "bc": 256}
    paths = _write_files(tmp_path, encoder, ["a b", "b c"])
    from transformers import GPT2Tokenizer

    hf = GPT2Tokenizer(vocab=str(paths[0]), merges=str(paths[1]))
    ours = BPETokenizer.from_gpt2_files(*paths)
    assert ours.encode("abc") == hf.encode("abc") == [257, encoder["c"]]
    assert ours.encode("bca") == [256, encoder["a"]]


def test_matches_hugging_face_on_random_merges_with_ids_against_merge_order(tmp_path):
    # Merges in random rank order (not frequency order), over an alphabet small enough that
    # every rule fires, overlaps ("aaaa") abound and ranks decide between competing pairs; the
    # merged tokens' ids run against merge order (the last merge has the smallest id).
    rng = random.Random(5)
    b2u = bytes_to_unicode()
    encoder = {c: n for n, c in enumerate(b2u.values())}
    tokens, lines = ["a", "b", "c", "Ġ"], []
    while len(lines) < 40:
        left, right = rng.choice(tokens), rng.choice(tokens)
        if left + right not in tokens:
            tokens.append(left + right)
            lines.append(f"{left} {right}")
    ids = range(256 + len(lines) - 1, 255, -1)  # ids NOT in merge order
    encoder |= {"".join(line.split(" ")): i for line, i in zip(lines, ids)}
    paths = _write_files(tmp_path, encoder, lines)

    from transformers import GPT2Tokenizer

    hf = GPT2Tokenizer(vocab=str(paths[0]), merges=str(paths[1]))
    ours = BPETokenizer.from_gpt2_files(*paths)
    assert ours.special_tokens == {} and ours.vocab_size == len(encoder)
    texts = [
        "".join(rng.choice("aabbc  ") for _ in range(rng.randrange(1, 30))) for _ in range(300)
    ]
    for s in texts + ["aaaaaaaaa", "abcabcabc", " a  b   c    "]:
        assert ours.encode(s) == hf.encode(s), repr(s)


def test_from_gpt2_files_bad_input(tmp_path, gpt2_files):
    enc_path, bpe_path = gpt2_files
    bad = tmp_path / "vocab.bpe"
    bad.write_text(bpe_path.read_text(encoding="utf-8") + "Ġ nosuchtoken\n", encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.bpe:\\d+: not a merge of two known tokens"):
        BPETokenizer.from_gpt2_files(enc_path, bad)
    encoder = json.loads(enc_path.read_text(encoding="utf-8"))
    del encoder["Ġ"]
    (tmp_path / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    with pytest.raises(ValueError, match="lacks byte tokens: 'Ġ'"):
        BPETokenizer.from_gpt2_files(tmp_path / "encoder.json", bpe_path)
    with pytest.raises(FileNotFoundError, match="vocab.bpe file not found"):
        BPETokenizer.from_gpt2_files(enc_path, tmp_path / "none.bpe")
