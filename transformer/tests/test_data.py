"""The English -> French grammar, tokenisers and file readers."""

import random
import zipfile

import data as D
import pytest
from harness import UserError


def test_grammar_examples_by_hand():
    assert (
        D._elide(["le", "oiseau", "ne", "aime", "pas", "la", "pomme"])
        == "l'oiseau n'aime pas la pomme"
    )
    assert D._elide(["le", "petit", "oiseau"]) == "le petit oiseau"  # the adjective blocks elision
    rng = random.Random(0)
    pairs = [D.english_french_pair(rng) for _ in range(20000)]
    checks = {  # English start -> the French start a learner would write
        "the red cat ": "le chat rouge ",
        "the small birds ": "les petits oiseaux ",
        "my happy girls ": "mes filles heureuses ",
        "a white house ": "une maison blanche ",
        "the bird does not like ": "l'oiseau n'aime pas ",
        "two horses ": "deux chevaux ",
    }
    for en_start, fr_start in checks.items():
        hits = [fr for en, fr in pairs if en.startswith(en_start)]
        assert hits, f"no sentence starting with {en_start!r} in 20000 samples"
        assert all(fr.startswith(fr_start) for fr in hits), (en_start, hits[:3])


def test_grammar_agreement_rules_hold():
    rng = random.Random(1)
    for _ in range(2000):
        en, fr = D.english_french_pair(rng)
        if en.startswith("the ") and en.split()[1] in {"cats", "dogs", "birds"}:
            assert fr.startswith("les ")
        if " does not " in en or " do not " in en:
            assert " pas " in fr and (" ne " in fr or " n'" in fr)
        assert "  " not in fr and "le o" not in fr and "la h" not in fr


def test_held_out_pairs_never_in_training():
    train, test = D.grammar_splits(3000, 300, seed=0)
    assert len({en for en, _ in test}) == 300
    assert not {en for en, _ in train} & {en for en, _ in test}


def test_tokenizers_round_trip_and_unknowns():
    tok = D.CharTokenizer.build(["le chat", "garçon"])
    assert tok.decode(tok.encode("le garçon")) == "le garçon"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.encode("le chien!")
    assert D.UNK in tok.encode("xyz", strict=False)
    again = D.CharTokenizer.from_dict(tok.to_dict())
    assert again.itos == tok.itos
    words = D.WordTokenizer.build(["Je t'aime.", "je vois", "Va-t'en !", "C’est ça."])
    assert words.split("Je t'aime.") == ["Je", "t'", "aime", "."]  # case kept
    assert words.split("Va-t'en !") == ["Va-t'", "en", "!"]  # a hyphenated word stays whole
    assert words.decode(words.encode("Je t'aime.")) == "Je t'aime ."  # the apostrophe glues
    assert words.decode(words.encode("C’est ça.")) == "C’est ça ."
    assert words.decode(words.encode("je vois.")) == "je vois ."


def test_read_pairs_zip_and_filter(tmp_path):
    lines = "Go.\tVa !\tCC-BY\nI see a very very very long sentence here.\tJe vois.\nHi.\tSalut !\n"
    z = tmp_path / "fra-eng.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("fra.txt", lines)
        f.writestr("_about.txt", "credits")
    assert D.read_pairs(z, max_words=5) == [("Go.", "Va !"), ("Hi.", "Salut !")]
    (tmp_path / "bad.txt").write_text("no tabs here\n")
    with pytest.raises(UserError, match="no tab-separated"):
        D.read_pairs(tmp_path / "bad.txt")
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    with pytest.raises(UserError, match="cannot read"):
        D.read_pairs(tmp_path / "broken.zip")


@pytest.mark.parametrize("layout", ["fra-eng.zip", "text/fra-eng.zip", "fra.txt"])
def test_tatoeba_is_found_in_the_download_layouts(tmp_path, layout):
    path = tmp_path / layout
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as f:
            f.writestr("fra.txt", "Go.\tVa !\tCC-BY\n")
    else:
        path.write_text("Go.\tVa !\n")
    assert D.tatoeba_file(tmp_path, download=False) == path
    assert D.read_pairs(path) == [("Go.", "Va !")]
    with pytest.raises(UserError, match="add --download"):
        D.tatoeba_file(tmp_path / "empty", download=False)


def test_read_labelled_csv(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('text,label\n"a goal, a match",sport\nnew chip,tech\n')
    rows, names = D.read_labelled_csv(p)
    assert names == ["sport", "tech"] and rows == [("a goal, a match", 0), ("new chip", 1)]
    p.write_text("x,y\n1,2\n")
    with pytest.raises(UserError, match="text"):
        D.read_labelled_csv(p)


def test_length_batches_group_and_cover():
    lengths = [random.Random(i).randint(1, 50) for i in range(200)]
    batches = D.length_batches(lengths, 16, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert max(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) <= 8
    assert batches == D.length_batches(lengths, 16, seed=3)
