"""Text for the language model: pick it, tokenise it once into a memory-mapped array, sample batches.

Datasets: `pydoc` (default, offline: the English help text that ships with Python in
`pydoc_data.topics`, about 465k characters), `tinyshakespeare` (`DATA_DIR/text/tinyshakespeare.txt`,
1.1M characters; `--download` fetches it), or any text file through `--data PATH`.
Tokens are written once as uint16 (uint32 for vocabularies over 65,535) to `.bin` files under the
run directory and read back with np.memmap, so a corpus larger than memory still trains.

A batch is B windows of block_size + 1 tokens at random offsets: x = window[:-1], y = window[1:]
(the target of every position is the next token). Offsets come from a torch.Generator whose state
is saved in the checkpoint (the "data position"), so a resumed run sees the same batches.
"""

import hashlib
import json
import urllib.request
from pathlib import Path

import numpy as np
import torch
from harness import UserError
from tokenizer import BPETokenizer, CharTokenizer, load_tokenizer

DATASETS = ("pydoc", "tinyshakespeare")
SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)


def pydoc_text() -> str:
    """Python's own help topics, joined in a fixed (sorted) order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def load_text(dataset: str, data_dir: str, data_path: str | None, download: bool) -> str:
    """The raw training text; a bad choice is one line (UserError)."""
    if data_path:
        path = Path(data_path).expanduser()
        if not path.is_file():
            raise UserError(f"--data {data_path}: no such file")
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"--data {data_path}: not UTF-8 text") from None
    if dataset == "pydoc":
        return pydoc_text()
    if dataset == "tinyshakespeare":
        path = Path(data_dir).expanduser() / "text" / "tinyshakespeare.txt"
        if not path.exists() and download:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                urllib.request.urlretrieve(SHAKESPEARE_URL, path.with_suffix(".part"))
            except OSError as e:
                raise UserError(f"could not download {SHAKESPEARE_URL} ({e})") from None
            path.with_suffix(".part").replace(path)
        if not path.exists():
            raise UserError(f"{path} not found: pass --data-dir DIR or --download")
        return path.read_text(encoding="utf-8")
    raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


def prepare(text: str, out_dir: Path, kind="char", vocab_size=512, tok=None, val_frac=0.1):
    """Tokenise `text` once; return (tokenizer, train tokens, val tokens) as read-only memmaps.

    kind "char" builds a CharTokenizer, "bpe" trains a BPETokenizer of vocab_size tokens; a ready
    `tok` (GPT-2's own, for fine-tuning official weights) is used as given.

    Files under out_dir: tokenizer.json, train.bin, val.bin and data.json (what they were made
    from). They are reused when data.json matches, so --resume and repeated runs skip this step.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "sha256": _digest(text),
        "tokenizer": kind if tok is None else "given " + _digest(json.dumps(tok.to_dict())),
        "vocab_size": vocab_size if kind == "bpe" and tok is None else None,
        "val_frac": val_frac,
    }
    meta_file, tok_file = out_dir / "data.json", out_dir / "tokenizer.json"
    old = json.loads(meta_file.read_text()) if meta_file.exists() else None
    if old is None or {k: old.get(k) for k in meta} != meta or not tok_file.exists():
        if tok is not None:
            pass
        elif kind == "char":
            tok = CharTokenizer.from_text(text)
        elif kind == "bpe":
            tok = BPETokenizer()
            tok.train(text, vocab_size)
        else:
            raise UserError(f"unknown tokenizer {kind!r}; choose char or bpe")
        ids = np.asarray(tok.encode(text), dtype=np.uint16 if tok.vocab_size < 2**16 else np.uint32)
        n_val = int(len(ids) * val_frac)
        for split, part in (("train", ids[: len(ids) - n_val]), ("val", ids[len(ids) - n_val :])):
            tmp = out_dir / f"{split}.bin.tmp"
            part.tofile(tmp)
            tmp.replace(out_dir / f"{split}.bin")
        tok.save(str(tok_file))
        meta.update(dtype=str(ids.dtype), vocab=tok.vocab_size, tokens=len(ids))
        tmp = out_dir / "data.json.tmp"  # written last and atomically: it vouches for the rest
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(meta_file)
    meta = json.loads(meta_file.read_text())
    tok = load_tokenizer(str(tok_file))
    train = np.memmap(out_dir / "train.bin", dtype=meta["dtype"], mode="r")
    val = np.memmap(out_dir / "val.bin", dtype=meta["dtype"], mode="r")
    return tok, train, val


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def get_batch(tokens: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator):
    """x, y of shape (batch_size, block_size): random windows and the same shifted by one."""
    if len(tokens) <= block_size + 1:
        raise UserError(
            f"{len(tokens)} tokens is too short for --block-size {block_size}: more text, or a smaller --block-size"
        )
    starts = torch.randint(len(tokens) - block_size - 1, (batch_size,), generator=generator)
    windows = np.stack([tokens[s : s + block_size + 1] for s in starts.tolist()])  # (B, T+1)
    w = torch.from_numpy(windows.astype(np.int64))
    return w[:, :-1], w[:, 1:]  # (B, T), (B, T)


def windows(tokens: np.ndarray, block_size: int):
    """Every token of a split once: x, y of shape (N, block_size), N = (len - 1) // block_size
    non-overlapping windows x = tokens[i T : (i+1) T] and y the same shifted by one (the few
    tokens after the last whole window are left out)."""
    n = (len(tokens) - 1) // block_size
    if n < 1:
        raise UserError(f"{len(tokens)} tokens is too short for --block-size {block_size}")
    w = torch.from_numpy(np.asarray(tokens[: n * block_size + 1]).astype(np.int64))
    return w[:-1].view(n, block_size), w[1:].view(n, block_size)
