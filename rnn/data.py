"""Corpora, the character vocabulary, the train/val split and truncated-BPTT batches.

Built-in corpora need no download: `unicode` is every named character of Python's `unicodedata`
(about 30,000 names such as "LATIN SMALL LETTER A WITH GRAVE", one per line, hex-numbered series
left out) and `pydoc` is the English text of Python's `pydoc_data.topics`. `names` and
`shakespeare` read `DATA_DIR/text/names.txt` / `tinyshakespeare.txt` (fetched with --download);
`--data PATH` reads any UTF-8 text file. "\n" is the end-of-line terminator: a name generator
learns to end a name by predicting it, and starts one after it.
"""

import re
import sys
import unicodedata
import urllib.request
from pathlib import Path

import numpy as np
from harness import UserError

URLS = {
    "names.txt": "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
    "tinyshakespeare.txt": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
}
DATASETS = ("unicode", "pydoc", "names", "shakespeare")


class DataError(UserError):
    """Bad input from the user: the message is printed as one line."""


def unicode_names():
    names = []
    for cp in range(sys.maxunicode + 1):
        name = unicodedata.name(chr(cp), "")
        # leave out the numbered series: "CJK UNIFIED IDEOGRAPH-4E00", "HANGUL SYLLABLE GA", ...
        if name and not re.search(r"[0-9A-F]{4,}$", name) and "HANGUL SYLLABLE" not in name:
            names.append(name)
    return "\n".join(names) + "\n"


def pydoc_text():
    from pydoc_data import topics

    return "\n".join(topics.topics[k] for k in sorted(topics.topics))


def load_text(dataset="unicode", data=None, data_dir="data", download=False):
    """-> (text, kind): kind 'lines' (one item per line: shuffled by line) or 'prose'."""
    if data is not None:
        path = Path(data)
        if not path.is_file():
            raise DataError(f"no such file: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{path} is not UTF-8 text") from None
        # a list (names.txt) has short lines and no blank ones; prose (Shakespeare) has blank lines
        lines = text.strip("\n").splitlines()
        is_list = lines and all(lines) and sum(map(len, lines)) / len(lines) < 40
        return text, "lines" if is_list else "prose"
    if dataset == "unicode":
        return unicode_names(), "lines"
    if dataset == "pydoc":
        return pydoc_text(), "prose"
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    fname = "names.txt" if dataset == "names" else "tinyshakespeare.txt"
    path = Path(data_dir) / "text" / fname
    if not path.is_file():
        if not download:
            raise DataError(
                f"{path} not found: pass --data-dir DIR (DIR/text/{fname}) or --download"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"downloading {URLS[fname]} -> {path}")
        urllib.request.urlretrieve(URLS[fname], path)
    return path.read_text(encoding="utf-8"), ("lines" if dataset == "names" else "prose")


def split(text, kind, val_frac=0.1, seed=0):
    """90/10 split. Lines (names) are shuffled first so val is not just the end of the alphabet;
    prose is cut at one point so val is unseen running text."""
    if kind == "lines":
        lines = [l for l in text.splitlines() if l.strip()]
        order = np.random.default_rng(seed).permutation(len(lines))
        n_val = max(1, int(round(len(lines) * val_frac)))
        val = [lines[i] for i in order[:n_val]]
        train = [lines[i] for i in order[n_val:]]
        return "\n" + "\n".join(train) + "\n", "\n" + "\n".join(val) + "\n"
    cut = int(len(text) * (1 - val_frac))
    return text[:cut], text[cut:]


class Vocab:
    """Characters <-> ids; "\n" (the terminator) is always in, at id 0."""

    def __init__(self, chars):
        self.chars = sorted(set(chars) | {"\n"})
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        missing = sorted(set(text) - set(self.index))
        if missing:
            raise DataError(
                f"characters not in the vocabulary: {' '.join(repr(c) for c in missing)} "
                f"(the vocabulary is {''.join(self.chars)!r})"
            )
        return np.array([self.index[c] for c in text], np.int64)

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


class Streams:
    """Truncated-BPTT batches: the text is cut into B parallel streams read left to right in
    chunks of T characters, so the hidden state at the end of chunk k is the right start for
    chunk k + 1 of the same stream. x, y = chunk(k): (T, B) inputs and next-character targets."""

    def __init__(self, ids, batch_size, seq_len):
        L = (len(ids) - 1) // batch_size  # characters per stream
        if L < seq_len:
            raise DataError(
                f"corpus too short: {len(ids)} characters, need more than batch-size x seq-len "
                f"= {batch_size * seq_len} (lower --batch-size or --seq-len)"
            )
        idx = np.arange(batch_size)[:, None] * L + np.arange(L + 1)  # (B, L+1)
        self.data = ids[idx]
        self.seq_len, self.n_chunks = seq_len, L // seq_len

    def chunk(self, k):
        s = k * self.seq_len
        block = self.data[:, s : s + self.seq_len + 1].T  # (T+1, B), time-major
        return np.ascontiguousarray(block[:-1]), np.ascontiguousarray(block[1:])
