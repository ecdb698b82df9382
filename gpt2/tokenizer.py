"""Tokenizers for GPT-2: a character-level one and GPT-2's byte-level BPE.

Byte-pair encoding (Sennrich et al. 2015, https://arxiv.org/abs/1508.07909) starts from
a small alphabet and repeatedly merges the most frequent adjacent pair of symbols into a
new symbol. GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask
Learners", section 2.2) runs it on BYTES: the base alphabet is the 256 byte values, so any
string (emoji, CJK, combining marks) encodes without an unknown token, and decode is the
exact inverse of encode. Before BPE, a regular expression cuts the text into chunks
(letters, digits, punctuation, whitespace, contractions) and merges never cross a chunk
boundary, so " dog", " dog." and " dog!" share the token " dog".

Worked example (the test `test_hand_worked_bpe_example` asserts every line of it).
Train on "aaabdaaabac" with vocab_size=259, i.e. 256 byte tokens + 3 merges
(bytes: a=97, b=98, c=99, d=100; ties go to the smaller (first id, second id) pair):

    ids                                   most frequent pair     new token
    [97 97 97 98 100 97 97 97 98 97 99]   (97, 97) "aa"   x4  -> 256
    [256 97 98 100 256 97 98 97 99]       (97, 98) "ab"   x2  -> 257  (ties (256, 97) x2)
    [256 257 100 256 257 97 99]           (256, 257) "aaab" x2 -> 258
    [258 100 258 97 99]                   encode("aaabdaaabac") gives these 5 ids

    >>> tok = BPETokenizer()
    >>> tok.train("aaabdaaabac", vocab_size=259)
    >>> tok.encode("aaabdaaabac")
    [258, 100, 258, 97, 99]
    >>> tok.decode([258, 97, 99])
    'aaabac'

GPT-2's published files (encoder.json: token string -> id; vocab.bpe: the merges in rank
order) spell every byte as a printable unicode character (`bytes_to_unicode`, so a space is
"Ġ"); `BPETokenizer.from_gpt2_files` reads them, and the tests hold its encodings equal to
Hugging Face's GPT2Tokenizer on the same files.
"""

import heapq
import json
import operator
import os
from collections import Counter
from pathlib import Path

import regex
from tqdm import tqdm

# GPT-2's pre-tokenisation pattern (the openai/gpt-2 encoder, verbatim): contractions,
# an optional space + letters, an optional space + digits, an optional space + other
# symbols, whitespace not followed by a non-space (so "a   b" -> "a", "  ", " b"), whitespace.
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
ENDOFTEXT = "<|endoftext|>"


def _read_json(path, kind):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{kind} file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{kind} file {path} is not valid JSON ({e})") from None


def _write_json(path, obj):
    """Atomic write: a temp file beside `path`, then os.replace, so a crash leaves no half file."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(obj), encoding="utf-8")
    os.replace(tmp, path)


class CharTokenizer:
    """One token per character of the training text; ids follow sorted character order."""

    def __init__(self, chars):
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        if len(self.stoi) != len(self.chars):
            raise ValueError("character vocabulary has duplicates")

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            unknown = sorted(set(text) - self.stoi.keys())
            shown = ", ".join(repr(c) for c in unknown[:20]) + (" ..." if len(unknown) > 20 else "")
            raise ValueError(f"characters not in the vocabulary: {shown}") from None

    def decode(self, ids):
        ids = _as_ints(ids)
        bad = [i for i in ids if not 0 <= i < len(self.chars)]
        if bad:
            raise ValueError(f"token ids not in the vocabulary: {bad[:20]}")
        return "".join(self.chars[i] for i in ids)

    def to_dict(self):
        """Plain data (a checkpoint's `tokenizer` key, or JSON)."""
        return {"type": "char", "chars": self.chars}

    def save(self, path):
        _write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        return cls._from_dict(_read_json(path, "tokenizer"), path)

    @classmethod
    def _from_dict(cls, d, path="?"):
        if (
            not isinstance(d, dict)
            or d.get("type") != "char"
            or not isinstance(d.get("chars"), list)
        ):
            raise ValueError(f"{path} is not a character tokenizer file")
        return cls(d["chars"])


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character table used in encoder.json/vocab.bpe.

    The 188 bytes that are already visible characters ('!'..'~', '¡'..'¬', '®'..'ÿ') map to
    themselves; the other 68 (control codes, space, 0x7F-0xA0, 0xAD) map in byte order to
    chr(256), chr(257), ...; so space (0x20, the 33rd such byte) becomes chr(288) = 'Ġ'.
    """
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    visible += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in visible}
    for n, b in enumerate(b for b in range(256) if b not in table):
        table[b] = chr(256 + n)
    return table  # iteration order = GPT-2's ids 0..255


class BPETokenizer:
    """Byte-level BPE with GPT-2's pre-tokenisation.

    State (all plain data, saved as JSON):
      byte_ids[b]     the token id of the single byte b (b for a trained tokenizer; GPT-2's
                      files order the bytes differently, e.g. '!' is 0)
      merges          [(left id, right id, new id), ...] in rank order: earlier merges first
      special_tokens  {"<|endoftext|>": id}: matched in the text before BPE, never merged
    Derived: vocab {id: bytes}.
    """

    def __init__(self, pattern=GPT2_SPLIT_PATTERN):
        self.pattern = pattern
        self._compiled = regex.compile(pattern)
        self._set_state(list(range(256)), [], {})

    def _set_state(self, byte_ids, merges, special_tokens):
        if sorted(byte_ids) != sorted(set(byte_ids)) or len(byte_ids) != 256:
            raise ValueError("byte_ids must hold 256 distinct ids")
        self.byte_ids = list(byte_ids)
        self.merges = [tuple(m) for m in merges]
        self.special_tokens = dict(special_tokens)
        self.vocab = {i: bytes([b]) for b, i in enumerate(self.byte_ids)}
        self.ranks = {}  # (left, right) -> (rank, new id)
        for rank, (a, b, new) in enumerate(self.merges):
            if a not in self.vocab or b not in self.vocab:
                raise ValueError(f"merge {rank} uses an unknown token id: {(a, b)}")
            if (a, b) in self.ranks:
                raise ValueError(f"merge {rank} repeats the pair {(a, b)}")
            merged = self.vocab[a] + self.vocab[b]
            if self.vocab.setdefault(new, merged) != merged:
                raise ValueError(f"merge {rank} reuses id {new} for different bytes")
            self.ranks[(a, b)] = (rank, new)
        self.inverse_special = {i: s for s, i in self.special_tokens.items()}
        clash = self.vocab.keys() & self.inverse_special.keys()
        if clash:
            raise ValueError(f"special token ids clash with BPE ids: {sorted(clash)}")
        alternation = "|".join(regex.escape(s) for s in sorted(self.special_tokens, key=len)[::-1])
        self._special_re = regex.compile(f"({alternation})") if self.special_tokens else None
        self._vocab_size = max([*self.vocab, *self.inverse_special]) + 1
        self._cache = {}  # pre-token chunk -> ids; a text repeats its words, so this is the speed

    @property
    def vocab_size(self):
        """One more than the largest id (GPT-2: 50257 = 256 bytes + 50000 merges + 1)."""
        return self._vocab_size

    def add_special_token(self, token=ENDOFTEXT):
        """Give `token` the next free id (or return its id if it already has one)."""
        if token not in self.special_tokens:
            self.special_tokens[token] = self.vocab_size
            self._set_state(self.byte_ids, self.merges, self.special_tokens)
        return self.special_tokens[token]

    # ---------------------------------------------------------------------------- train
    def train(self, text, vocab_size, verbose=False):
        """Learn vocab_size - 256 merges from `text` (replaces any previous merges).

        Each step merges the most frequent adjacent pair inside the pre-token chunks; ties go
        to the smaller (first id, second id). Identical chunks are counted once with their
        frequency, and only chunks holding the merged pair are recounted (an index pair ->
        chunks and a lazy max-heap), so a 1 MB text trains in seconds rather than minutes.
        """
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be at least 256 (the byte tokens), got {vocab_size}")

        chunk_counts = Counter(self._compiled.findall(text))
        words = [list(c.encode("utf-8")) for c in chunk_counts]  # byte ids == bytes here
        freqs = list(chunk_counts.values())
        stats = Counter()  # pair -> occurrences in the text
        where = {}  # pair -> indices of words that (may) contain it
        for w, (word, f) in enumerate(zip(words, freqs)):
            for pair in zip(word, word[1:]):
                stats[pair] += f
                where.setdefault(pair, set()).add(w)
        heap = [(-n, pair) for pair, n in stats.items()]
        heapq.heapify(heap)

        merges, special = [], self.special_tokens
        self._set_state(list(range(256)), [], {})
        bar = tqdm(total=vocab_size - 256, desc="bpe merges", disable=not verbose)
        while len(merges) < vocab_size - 256 and heap:
            neg, pair = heapq.heappop(heap)
            if stats.get(pair, 0) != -neg or neg == 0:
                continue  # stale heap entry
            new = 256 + len(merges)
            merges.append((*pair, new))
            touched = set()
            for w in where.pop(pair):
                word, f = words[w], freqs[w]
                for p in zip(word, word[1:]):
                    stats[p] -= f
                    touched.add(p)
                word = words[w] = _merge(word, pair, new)
                for p in zip(word, word[1:]):
                    stats[p] += f
                    touched.add(p)
                    where.setdefault(p, set()).add(w)
            for p in touched:
                if stats[p] > 0:
                    heapq.heappush(heap, (-stats[p], p))
                else:
                    del stats[p]
            bar.update(1)
        bar.close()
        self._set_state(list(range(256)), merges, {})
        for s in special:  # keep special tokens, re-numbered after the new merges
            self.add_special_token(s)
        if verbose:
            top = ", ".join(repr(self.vocab[m[2]].decode("utf-8", "replace")) for m in merges[:8])
            print(f"learned {len(merges)} merges, vocab_size {self.vocab_size}; first: {top}")

    # ---------------------------------------------------------------------------- encode
    def _encode_chunk(self, chunk):
        """BPE on one chunk: merge the lowest-rank pair everywhere, until no pair is a merge."""
        ids = [self.byte_ids[b] for b in chunk.encode("utf-8")]
        while len(ids) > 1:
            best = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, (float("inf"),)))
            if best not in self.ranks:
                break
            ids = _merge(ids, best, self.ranks[best][1])
        return ids

    def encode_ordinary(self, text):
        """Encode ignoring special tokens: "<|endoftext|>" is just 13 characters here."""
        out, cache = [], self._cache
        for chunk in self._compiled.findall(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = cache[chunk] = self._encode_chunk(chunk)
            out.extend(ids)
        return out

    def encode(self, text, allowed_special=True):
        """Text -> ids. Registered special tokens in the text become their id (as in
        Hugging Face's GPT2Tokenizer) unless allowed_special=False."""
        if not (allowed_special and self._special_re):
            return self.encode_ordinary(text)
        out = []
        for i, part in enumerate(self._special_re.split(text)):  # odd parts are the specials
            out.extend([self.special_tokens[part]] if i % 2 else self.encode_ordinary(part))
        return out

    def decode_bytes(self, ids):
        ids = _as_ints(ids)
        try:
            return b"".join(
                self.vocab[i] if i in self.vocab else self.inverse_special[i].encode("utf-8")
                for i in ids
            )
        except KeyError:
            bad = [i for i in ids if i not in self.vocab and i not in self.inverse_special]
            raise ValueError(f"token ids not in the vocabulary: {bad[:20]}") from None

    def decode(self, ids):
        """Ids -> text. A cut inside a multi-byte character decodes to U+FFFD, as GPT-2 does."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---------------------------------------------------------------------------- files
    def to_dict(self):
        """Plain data (a checkpoint's `tokenizer` key, or JSON)."""
        state = {"type": "bpe", "pattern": self.pattern, "byte_ids": self.byte_ids}
        return state | {
            "merges": [list(m) for m in self.merges],
            "special_tokens": self.special_tokens,
        }

    def save(self, path):
        _write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        return cls._from_dict(_read_json(path, "tokenizer"), path)

    @classmethod
    def _from_dict(cls, d, path="?"):
        if not isinstance(d, dict) or d.get("type") != "bpe":
            raise ValueError(f"{path} is not a BPE tokenizer file")
        try:
            tok = cls(d["pattern"])
            tok._set_state(d["byte_ids"], d["merges"], d["special_tokens"])
        except (KeyError, TypeError, ValueError, regex.error) as e:
            raise ValueError(f"{path} is not a valid BPE tokenizer file ({e})") from None
        return tok

    @classmethod
    def from_gpt2_files(cls, encoder_json_path, vocab_bpe_path):
        """Load GPT-2's published encoder.json + vocab.bpe (both spelled with bytes_to_unicode).

        Every entry of encoder.json that is neither a single byte nor a merge result (GPT-2:
        only "<|endoftext|>" = 50256) becomes a special token.
        """
        encoder = _read_json(encoder_json_path, "encoder.json")
        try:
            lines = Path(vocab_bpe_path).read_text(encoding="utf-8").split("\n")
        except FileNotFoundError:
            raise FileNotFoundError(f"vocab.bpe file not found: {vocab_bpe_path}") from None
        if not isinstance(encoder, dict):
            raise ValueError(f"{encoder_json_path} should map token strings to ids")
        b2u = bytes_to_unicode()
        missing = [repr(c) for c in b2u.values() if c not in encoder]
        if missing:
            raise ValueError(f"{encoder_json_path} lacks byte tokens: {', '.join(missing[:10])}")
        merges, used = [], {b2u[b] for b in range(256)}
        for n, line in enumerate(lines, start=1):
            if not line or line.startswith("#version"):
                continue
            parts = line.split(" ")
            if (
                len(parts) != 2
                or any(p not in encoder for p in parts)
                or "".join(parts) not in encoder
            ):
                raise ValueError(f"{vocab_bpe_path}:{n}: not a merge of two known tokens: {line!r}")
            merges.append((encoder[parts[0]], encoder[parts[1]], encoder["".join(parts)]))
            used.add("".join(parts))
        tok = cls()
        special = {s: i for s, i in encoder.items() if s not in used}
        tok._set_state([encoder[b2u[b]] for b in range(256)], merges, special)
        return tok


def _as_ints(ids):
    """Python ints from a list, a NumPy array or a 1-D tensor of integer ids."""
    try:
        return [operator.index(i) for i in ids]
    except TypeError:
        raise ValueError("token ids must be integers") from None


def _merge(ids, pair, new):
    """Replace each non-overlapping occurrence of `pair`, left to right, by `new`."""
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def tokenizer_from_dict(d, source="?"):
    """The tokenizer that to_dict() described (dispatch on its 'type')."""
    kinds = {"char": CharTokenizer, "bpe": BPETokenizer}
    if not isinstance(d, dict) or d.get("type") not in kinds:
        raise ValueError(f"{source} is not a tokenizer file (expected 'type' char or bpe)")
    return kinds[d["type"]]._from_dict(d, source)


def load_tokenizer(path):
    """Read a tokenizer saved by CharTokenizer.save or BPETokenizer.save."""
    return tokenizer_from_dict(_read_json(path, "tokenizer"), path)
