"""SD v1's text side: CLIP's byte-level BPE tokenizer by hand, and CLIP's text encoder as a setting.

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision"
(https://arxiv.org/abs/2103.00020), Section 2.4: the text encoder is a 12-layer, 512-wide
(ViT-L/14's: 768-wide) causal transformer over lower-cased byte-level BPE tokens, bracketed by
[SOS] and [EOS], at most 76 + 1 of them. SD v1 froze it and reads its last hidden state,
(B, 77, 768), in every cross-attention of the U-Net.

The tokenizer (Sennrich et al. 2016, https://arxiv.org/abs/1508.07909; GPT-2's byte level):
    1. clean:  NFC, every whitespace run -> one space, lower-case
    2. split:  words, single digits, runs of punctuation, the English contractions ('s 't ...)
    3. bytes:  each UTF-8 byte -> one printable character (bytes_to_unicode), so nothing is unknown
    4. BPE:    the last symbol of a word carries "</w>"; repeatedly merge the adjacent pair
               ranked first in merges.txt (rank = line order; ids come from vocab.json)
    5. frame:  <|startoftext|> ids[:75] <|endoftext|>, padded with the pad token to 77
tests/test_clip.py holds it against transformers' CLIPTokenizer on files built in the test.

The encoder is text.py's TextEncoder, the toy's own, with CLIP's settings (`clip_text_config`):
causal attention, quick-GELU, final LayerNorm; convert.py maps CLIPTextModel's weights onto it.
"""

import json
import unicodedata
from pathlib import Path

import regex
import torch
from harness import UserError
from text import TextConfig

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# Step 2's pattern: the special tokens, contractions, letter runs, one digit, punctuation runs.
PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


def clip_text_config(**overrides) -> TextConfig:
    """ViT-L/14's text transformer, SD v1's: 12 layers x 768 wide, 12 heads, 77 tokens."""
    config = dict(
        vocab_size=49408, context=77, d_model=768, n_head=12, n_layer=12,
        causal=True, activation="quick_gelu", d_ff=3072, eps=1e-5,
    )  # fmt: skip
    config.update(overrides)
    return TextConfig(**config)


def bytes_to_unicode():
    """byte -> printable character: the 188 printable Latin-1 bytes stand for themselves, the
    other 68 (control characters, space, ...) for chr(256), chr(257), ... in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class CLIPTokenizer:
    """Prompts -> (B, 77) token ids, from CLIP's vocab.json (token -> id) and merges.txt."""

    def __init__(self, vocab, merges, context=77, pad_token=EOS):
        self.vocab = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}  # line order, not vocab ids
        self.context = context
        self.byte_char = bytes_to_unicode()
        self.bos, self.eos, self.pad = vocab[BOS], vocab[EOS], vocab[pad_token]
        self.cache = {}

    @classmethod
    def from_dir(cls, directory):
        """A diffusers-format tokenizer/ folder: vocab.json, merges.txt, [tokenizer_config.json]."""
        directory = Path(directory)
        try:
            vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
            lines = (directory / "merges.txt").read_text(encoding="utf-8").splitlines()
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{directory}: cannot read vocab.json + merges.txt ({e})") from None
        merges = [tuple(line.split()) for line in lines if line and not line.startswith("#")]
        if any(len(m) != 2 for m in merges):
            raise UserError(f"{directory}/merges.txt: every line must be two symbols")
        config_file = directory / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.exists() else {}
        pad = config.get("pad_token", EOS)
        pad = pad["content"] if isinstance(pad, dict) else pad
        context = min(int(config.get("model_max_length", 77)), 77)
        missing = [t for t in (BOS, EOS, pad) if t not in vocab]
        if missing:
            raise UserError(f"{directory}/vocab.json lacks the special tokens {missing}")
        return cls(vocab, merges, context, pad)

    def bpe(self, word):
        """One pre-token (already bytes-as-characters) -> its BPE symbols, '</w>' on the last."""
        if word in self.cache:
            return self.cache[word]
        symbols = [*word[:-1], word[-1] + "</w>"]
        while len(symbols) > 1:
            pairs = zip(symbols, symbols[1:])
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(symbols):  # every occurrence of the pair, left to right
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self.cache[word] = symbols
        return symbols

    def tokenize(self, text):
        """Steps 1-4: text -> ids, without the frame."""
        text = regex.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).lower()
        ids = []
        for piece in PATTERN.findall(text):
            if piece in (BOS, EOS):
                ids.append(self.vocab[piece])
                continue
            chars = "".join(self.byte_char[b] for b in piece.encode("utf-8"))
            ids += [self.vocab.get(s, self.eos) for s in self.bpe(chars)]  # unknown: EOS, as CLIP
        return ids

    def encode(self, prompts):
        """prompts -> (ids (B, 77) long, None): SD's encoder and U-Net mask no padding."""
        ids = torch.full((len(prompts), self.context), self.pad, dtype=torch.long)
        for i, prompt in enumerate(prompts):
            row = [self.bos, *self.tokenize(prompt)[: self.context - 2], self.eos]
            ids[i, : len(row)] = torch.tensor(row)
        return ids, None

    def too_long(self, prompt):
        """How many tokens of the prompt fall beyond the 75 that fit (0: none)."""
        return max(0, len(self.tokenize(prompt)) - (self.context - 2))
