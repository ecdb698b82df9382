"""Data for the Transformer lesson: tokenisers, an English -> French grammar, 5 topics, readers.

- CharTokenizer / WordTokenizer: ids 0..3 are <pad> <bos> <eos> <unk>; a character or word
  outside the vocabulary is an error by default (encode(..., strict=True)), or <unk>.
- english_french_pair(): a template grammar written here with the French facts a learner
  meets first: adjectives follow the noun (the red cat -> le chat rouge) except a few that
  precede it (petit, grand, joli); gender and number agreement of articles, adjectives and
  verbs; irregular plurals (oiseau -> oiseaux, cheval -> chevaux); elision (l'oiseau,
  n'aime); negation wrapping the verb (ne ... pas). Held-out test pairs never appear in training.
- topic_example(): a synthetic 5-topic classification set (Technology, Sports, Science,
  Music, Food).
- read_pairs(): tab-separated sentence pairs such as Tatoeba's fra.txt (zip or text),
  read_labelled_csv(): a `text,label` CSV.
- length_batches(): batches of similar length (less padding), reshuffled each epoch.
- tatoeba_file(): DATA_DIR/fra-eng.zip, downloaded with --download.
- load_task() / encode_examples(): what train.py trains on, chosen by its flags.
"""

import csv
import io
import os
import random
import re
import urllib.request
import zipfile
from pathlib import Path

from harness import UserError

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


# ---------------------------------------------------------------- tokenisers
class CharTokenizer:
    """One id per character. Lossless: decode(encode(s)) == s."""

    kind = "char"

    def __init__(self, symbols):
        self.itos = SPECIALS + sorted(set(symbols) - set(SPECIALS))
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    @classmethod
    def build(cls, texts):
        return cls(set("".join(texts)))

    def split(self, text):
        return list(text)

    def join(self, pieces):
        return "".join(pieces)

    def encode(self, text, strict=True):
        pieces = self.split(text)
        unknown = sorted({p for p in pieces if p not in self.stoi})
        if unknown and strict:
            raise ValueError(f"outside the vocabulary: {' '.join(repr(u) for u in unknown)}")
        return [self.stoi.get(p, UNK) for p in pieces]

    def decode(self, ids):
        return self.join(self.itos[i] for i in ids if i >= len(SPECIALS) or i == UNK)

    def __len__(self):
        return len(self.itos)

    def to_dict(self):
        return {"kind": self.kind, "itos": self.itos[len(SPECIALS) :]}

    @staticmethod
    def from_dict(d):
        cls = CharTokenizer if d["kind"] == "char" else WordTokenizer
        return cls(d["itos"])


class WordTokenizer(CharTokenizer):
    """Words (case kept, hyphenated words whole) and punctuation: "Je t'aime." -> Je | t' | aime | .

    join() glues a word ending in an apostrophe to the next one (t' aime -> t'aime), so a
    translation is scored by sacreBLEU as the text a person would write.
    """

    kind = "word"
    PATTERN = re.compile(r"\w+(?:-\w+)*['’]?|[^\w\s]")

    @classmethod
    def build(cls, texts, min_count=1):
        counts = {}
        for t in texts:
            for w in cls.PATTERN.findall(t):
                counts[w] = counts.get(w, 0) + 1
        return cls({w for w, c in counts.items() if c >= min_count})

    def split(self, text):
        return self.PATTERN.findall(text)

    def join(self, pieces):
        return " ".join(pieces).replace("' ", "'").replace("’ ", "’")


# ---------------------------------------------------------------- English -> French grammar
# english singular, english plural, french singular, french plural, gender
NOUNS = [
    ("cat", "cats", "chat", "chats", "m"),
    ("dog", "dogs", "chien", "chiens", "m"),
    ("bird", "birds", "oiseau", "oiseaux", "m"),
    ("horse", "horses", "cheval", "chevaux", "m"),
    ("book", "books", "livre", "livres", "m"),
    ("man", "men", "homme", "hommes", "m"),
    ("boy", "boys", "garçon", "garçons", "m"),
    ("house", "houses", "maison", "maisons", "f"),
    ("apple", "apples", "pomme", "pommes", "f"),
    ("flower", "flowers", "fleur", "fleurs", "f"),
    ("mouse", "mice", "souris", "souris", "f"),
    ("girl", "girls", "fille", "filles", "f"),
    ("woman", "women", "femme", "femmes", "f"),
    ("table", "tables", "table", "tables", "f"),
]
# english, (m sg, f sg, m pl, f pl), placed before the noun in French?
ADJECTIVES = [
    ("red", ("rouge", "rouge", "rouges", "rouges"), False),
    ("black", ("noir", "noire", "noirs", "noires"), False),
    ("green", ("vert", "verte", "verts", "vertes"), False),
    ("white", ("blanc", "blanche", "blancs", "blanches"), False),
    ("happy", ("heureux", "heureuse", "heureux", "heureuses"), False),
    ("small", ("petit", "petite", "petits", "petites"), True),
    ("big", ("grand", "grande", "grands", "grandes"), True),
    ("pretty", ("joli", "jolie", "jolis", "jolies"), True),
]
# english 3rd sg, 3rd pl, french 3rd sg, 3rd pl
VERBS = [
    ("sees", "see", "voit", "voient"),
    ("likes", "like", "aime", "aiment"),
    ("eats", "eat", "mange", "mangent"),
    ("follows", "follow", "suit", "suivent"),
    ("finds", "find", "trouve", "trouvent"),
    ("has", "have", "a", "ont"),
]
# english, number (1 = singular), french masculine, french feminine
DETERMINERS = [
    ("the", 1, "le", "la"),
    ("the", 2, "les", "les"),
    ("a", 1, "un", "une"),
    ("my", 1, "mon", "ma"),
    ("my", 2, "mes", "mes"),
    ("two", 2, "deux", "deux"),
    ("three", 2, "trois", "trois"),
    ("four", 2, "quatre", "quatre"),
]
VOWELS = "aeiouhé"  # French elides before a vowel or a mute h: le oiseau -> l'oiseau


def _elide(words):
    """le/la + vowel -> l', ne + vowel -> n' (French); a + vowel -> an (English handled apart)."""
    out = []
    for w in words:
        if out and out[-1] in ("le", "la", "ne") and w[0] in VOWELS:
            out[-1] = out[-1][0] + "'" + w
        else:
            out.append(w)
    return " ".join(out).replace("' ", "'")


def _noun_phrase(rng):
    det_en, number, det_m, det_f = rng.choice(DETERMINERS)
    en_sg, en_pl, fr_sg, fr_pl, gender = rng.choice(NOUNS)
    plural = number == 2
    det_fr = det_m if gender == "m" else det_f
    if det_en == "my" and not plural and fr_sg[0] in VOWELS:
        det_fr = "mon"  # mon amie: French uses mon before a vowel, whatever the gender
    en, fr = [det_en], [det_fr]
    noun_en, noun_fr = (en_pl, fr_pl) if plural else (en_sg, fr_sg)
    if rng.random() < 0.5:
        adj_en, forms, before = rng.choice(ADJECTIVES)
        adj_fr = forms[(gender == "f") + 2 * plural]
        en += [adj_en, noun_en]
        fr += [adj_fr, noun_fr] if before else [noun_fr, adj_fr]
    else:
        en.append(noun_en)
        fr.append(noun_fr)
    if en[0] == "a" and en[1][0] in "aeiou":
        en[0] = "an"
    return en, fr, plural


def english_french_pair(rng: random.Random):
    """(english, french) for: subject [does not] verb object."""
    s_en, s_fr, plural = _noun_phrase(rng)
    o_en, o_fr, _ = _noun_phrase(rng)
    v_sg, v_pl, f_sg, f_pl = rng.choice(VERBS)
    if rng.random() < 0.25:  # negation: ne + verb + pas; English needs do-support
        v_en = ["do" if plural else "does", "not", v_pl]
        v_fr = ["ne", f_pl if plural else f_sg, "pas"]
    else:
        v_en = [v_pl if plural else v_sg]
        v_fr = [f_pl if plural else f_sg]
    return " ".join(s_en + v_en + o_en), _elide(s_fr + v_fr + o_fr)


def grammar_splits(n_train: int, n_test: int, seed: int):
    """Held-out test pairs first; training pairs are drawn from the rest of the language."""
    rng = random.Random(seed)
    test = {}
    while len(test) < n_test:
        en, fr = english_french_pair(rng)
        test[en] = fr
    train = []
    while len(train) < n_train:
        en, fr = english_french_pair(rng)
        if en not in test:
            train.append((en, fr))
    return train, list(test.items())


# ---------------------------------------------------------------- 5-topic classification
TOPICS = ["Technology", "Sports", "Science", "Music", "Food"]
TOPIC_WORDS = [
    "computer software robot phone internet chip laptop code app network data screen".split(),
    "football match goal team player coach tennis race stadium score league ball".split(),
    "experiment atom cell physics chemistry theory molecule planet lab biology energy gene".split(),
    "guitar song album concert band piano melody singer drum rhythm orchestra jazz".split(),
    "pizza bread recipe cheese soup chef kitchen pasta salad dessert spice restaurant".split(),
]
FILLER = "the a new this my our we they saw about with and today really great old in on of very people talk".split()


def topic_example(rng: random.Random):
    """(text, label): 2-4 words of the topic, at most 1 from another topic, 2-5 fillers, shuffled."""
    label = rng.randrange(len(TOPICS))
    words = rng.choices(TOPIC_WORDS[label], k=rng.randint(2, 4))
    if rng.random() < 0.5:
        other = rng.choice([t for t in range(len(TOPICS)) if t != label])
        words.append(rng.choice(TOPIC_WORDS[other]))
    words += rng.choices(FILLER, k=rng.randint(2, 5))
    rng.shuffle(words)
    return " ".join(words), label


def topic_splits(n_train: int, n_test: int, seed: int):
    rng = random.Random(seed)
    return [topic_example(rng) for _ in range(n_train)], [topic_example(rng) for _ in range(n_test)]


# ---------------------------------------------------------------- readers for real files
def read_pairs(path, max_words: int = 10):
    """First two tab-separated fields of each line (Tatoeba fra.txt, or a .zip holding it),
    keeping pairs where both sides have at most max_words words. Duplicate sources are dropped."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file: {path}")
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith(".txt") and "_about" not in n]
                if not names:
                    raise UserError(f"{path} holds no sentence-pair .txt file")
                text = z.read(names[0]).decode("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
    except (zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    pairs, seen = [], set()
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            continue
        src, tgt = fields[0].strip(), fields[1].strip()
        if len(src.split()) <= max_words and len(tgt.split()) <= max_words and src not in seen:
            seen.add(src)
            pairs.append((src, tgt))
    if not pairs:
        raise UserError(f"{path}: no tab-separated sentence pairs of at most {max_words} words")
    return pairs


def read_labelled_csv(path):
    """Rows of a CSV with a header naming `text` and `label` columns -> (texts, labels, names)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file: {path}")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows or "text" not in rows[0] or "label" not in rows[0]:
        raise UserError(f"{path}: expected a CSV with a header holding 'text' and 'label'")
    names = sorted({r["label"] for r in rows})
    return [(r["text"], names.index(r["label"])) for r in rows], names


# ---------------------------------------------------------------- batches grouped by length
def length_batches(lengths, batch_size: int, seed: int):
    """Sort by length, cut into batches, shuffle the batch order: each batch has little padding.
    The order depends only on (seed, epoch) so a resumed run sees the same batches."""
    rng = random.Random(seed)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def pad_batch(seqs, pad=PAD):
    """List of id lists -> (B, L_max) nested list padded with <pad>."""
    L = max(len(s) for s in seqs)
    return [s + [pad] * (L - len(s)) for s in seqs]


# ---------------------------------------------------------------- tasks for train.py
TATOEBA = "fra-eng.zip"  # manythings.org/anki: fra.txt (English TAB French TAB credits)


def tatoeba_file(data_dir, download: bool) -> Path:
    """DATA_DIR/fra-eng.zip as downloaded (or fra.txt unpacked, or either under text/)."""
    root = Path(data_dir).expanduser()
    for path in (
        root / TATOEBA,
        root / "fra.txt",
        root / "text" / TATOEBA,
        root / "text" / "fra.txt",
    ):
        if path.exists():
            return path
    if not download:
        raise UserError(f"no {TATOEBA} in {root}: add --download to fetch it, or pass --data FILE")
    download_tatoeba(root / TATOEBA)
    return root / TATOEBA


def download_tatoeba(path: Path):
    url = "https://www.manythings.org/anki/fra-eng.zip"
    print(f"downloading {url} -> {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    req = urllib.request.Request(url, headers={"User-Agent": "Mozilla/5.0"})
    tmp = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            tmp.write_bytes(r.read())
    except OSError as e:
        raise UserError(
            f"download of {url} failed ({e}); fetch it by hand into {path.parent}"
        ) from None
    os.replace(tmp, path)  # atomic: an interrupted download never leaves half a zip


def load_task(cfg):
    """What train.py trains on, chosen by its flags: train/test pairs, tokenisers, names."""
    if cfg.task == "classify":
        if cfg.data or cfg.dataset == "csv":
            if not cfg.data:
                raise UserError("--dataset csv needs --data FILE.csv")
            rows, names = read_labelled_csv(cfg.data)
            random.Random(cfg.seed).shuffle(rows)
            n_test = min(cfg.n_test, len(rows) // 5)
            train, test, name = rows[n_test:], rows[:n_test], "csv"
        else:
            train, test = topic_splits(cfg.n_train, cfg.n_test, cfg.seed)
            names, name = TOPICS, "topics"
        tok_cls = WordTokenizer if cfg.tokenizer == "word" else CharTokenizer
        tok = tok_cls.build([t for t, _ in train])
        return {"train": train, "test": test, "src_tok": tok, "tgt_tok": None,
                "dataset": name, "classes": names}  # fmt: skip
    if cfg.data or cfg.dataset == "tatoeba":
        path = Path(cfg.data) if cfg.data else tatoeba_file(cfg.data_dir, cfg.download)
        pairs = read_pairs(path, cfg.max_words)
        random.Random(cfg.seed).shuffle(pairs)
        test, train = pairs[: cfg.n_test], pairs[cfg.n_test :]
        name = "tatoeba" if "fra" in path.name else path.name
    else:
        train, test = grammar_splits(cfg.n_train, cfg.n_test, cfg.seed)
        name = "en-fr-grammar"
    tok_cls = WordTokenizer if cfg.tokenizer == "word" else CharTokenizer
    build = (lambda t: tok_cls.build(t, min_count=2)) if cfg.tokenizer == "word" else tok_cls.build
    src_tok, tgt_tok = build([s for s, _ in train]), build([t for _, t in train])
    return {"train": train, "test": test, "src_tok": src_tok, "tgt_tok": tgt_tok,
            "dataset": name, "classes": None}  # fmt: skip


def encode_examples(pairs, task, max_len):
    """Token ids, within the model's max_len: src (and tgt = [bos] y [eos]) or labels."""
    src_tok, tgt_tok = task["src_tok"], task["tgt_tok"]
    out = []
    for x, y in pairs:
        src = [BOS] + src_tok.encode(x, strict=False)  # <bos> doubles as <cls>
        if tgt_tok is None:
            out.append((src[:max_len], y))
        else:
            tgt = [BOS] + tgt_tok.encode(y, strict=False) + [EOS]
            if len(src) <= max_len and len(tgt) <= max_len:
                out.append((src, tgt))
    return out
