"""The hand-written CLIP tokenizer against transformers' CLIPTokenizer, on files built here.

The vocabulary and merges are learned in conftest.py from a small corpus (no download), and the
ids are shuffled so that a tokenizer ranking merges by id instead of by merges.txt line fails.
"""

import pytest
from clip import CLIPTokenizer

TEXTS = [
    "a photograph of an astronaut riding a horse",
    "A PHOTOGRAPH   of an\tAstronaut\n\nriding a HORSE!!!",
    "  leading and trailing spaces  ",
    "",
    "it's what we're doing, isn't it? You'll see; they'd go, I'm sure, we've won",
    "room 1234 at 5:30pm, 3.14159 and 42nd street",
    "café naïve résumé",
    "cafe\u0301 (an NFD accent, composed by NFC)",
    "东京 夜景, tōkyō",
    "rocket 🚀 emoji 😀 and ümlauts",
    "punctuation...!?;:--(()) [brackets] {braces} @#$%^&*",
    "Straße, ÉCOLE, ΑΘΗΝΑ",
    "unknownwordzzzqxj and hyper-realistic_style",
    " ".join(["horse"] * 100),  # truncated to 75 tokens + 2
]


@pytest.fixture(scope="module")
def tokenizers(clip_tokenizer_dir):
    from transformers import CLIPTokenizer as HFCLIPTokenizer

    d = str(clip_tokenizer_dir)
    return CLIPTokenizer.from_dir(d), HFCLIPTokenizer.from_pretrained(d)


def test_ids_are_not_in_merge_order(tokenizers):
    ours, _ = tokenizers
    merged = [ours.vocab["".join(pair)] for pair in sorted(ours.ranks, key=ours.ranks.get)]
    assert merged != sorted(merged), "the test files must not hide a rank-by-id bug"


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_matches_transformers(tokenizers, text):
    ours, ref = tokenizers
    expected = ref(text, padding="max_length", max_length=77, truncation=True).input_ids
    ids, mask = ours.encode([text])
    assert mask is None
    assert ids[0].tolist() == expected


def test_the_batch_frames_and_pads_each_prompt(tokenizers):
    ours, _ = tokenizers
    ids, _ = ours.encode(["a horse", ""])
    assert ids.shape == (2, 77)
    assert ids[1, 0] == ours.bos and ids[1, 1] == ours.eos and (ids[1, 2:] == ours.pad).all()
    assert ours.too_long("a " * 80) == 5 and ours.too_long("a horse") == 0
