"""The folder contract (CONTRIBUTING.md), checked on every project folder that exists.

Each check is one test per folder, so a failure names the folder and the rule.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from monorepo import PROJECTS, existing_projects  # noqa: E402

FOLDERS = existing_projects()
REQUIRED_FILES = ["model.py", "train.py", "inference.py", "README.md", "tests"]
NUMPY_FOLDERS = {"backprop", "lenet", "rnn"}  # CONTRIBUTING.md: --device only where it is read
TRAIN_FLAGS = [
    "--dataset",
    "--data-dir",
    "--download",
    "--batch-size",
    "--lr",
    "--seed",
    "--out-dir",
    "--resume",
    "--smoke",
]
TORCH_FLAGS = ["--device", "--threads"]
# CONTRIBUTING.md "Flags: one name per concept": the names no folder uses any more
RETIRED_FLAGS = {
    "--warmup": "--warmup-steps",
    "--clip": "--grad-clip",
    "--eval-interval": "--eval-every",
    "--n-layers": "--n-layer",
    "--stop-after": "(no test-only flags)",
}
README_SECTIONS = [
    "Quick start",
    "Map",
    "Equations",
    "Flags",
    "Results",
    "Tests",
    "References",
    "Exercises",
]


def imported_top_level_names(path):
    """Top-level module names that a Python file imports (absolute imports only)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def help_text(folder, script):
    proc = subprocess.run(
        [sys.executable, script, "--help"],
        cwd=ROOT / folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{folder}/{script} --help failed:\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.parametrize("folder", FOLDERS)
def test_has_required_files(folder):
    missing = [f for f in REQUIRED_FILES if not (ROOT / folder / f).exists()]
    assert not missing, f"{folder}/ lacks {missing}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_imports_nothing_from_a_sibling(folder):
    siblings = set(PROJECTS) - {folder}
    offenders = {}
    for path in (ROOT / folder).rglob("*.py"):
        if "runs" in path.parts:
            continue
        hits = imported_top_level_names(path) & siblings
        if hits:
            offenders[str(path.relative_to(ROOT))] = sorted(hits)
    assert not offenders, f"imports from sibling folders: {offenders}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_train_help_shows_the_house_flags_and_defaults(folder):
    text = help_text(folder, "train.py")
    missing = [flag for flag in TRAIN_FLAGS if flag not in text]
    assert not missing, f"{folder}/train.py --help lacks {missing}"
    if folder in NUMPY_FOLDERS:
        assert "--device" not in text, f"{folder}/train.py has a --device flag it cannot read"
    else:
        missing = [flag for flag in TORCH_FLAGS if flag not in text]
        assert not missing, f"{folder}/train.py --help lacks {missing}"
    for old, new in RETIRED_FLAGS.items():
        assert old not in re.findall(r"--[a-z0-9-]+", text), (
            f"{folder}/train.py has {old}: the contract's name is {new}"
        )
    assert "--epochs" in text or "--steps" in text, f"{folder}/train.py has no --epochs/--steps"
    assert "(default:" in text, f"{folder}/train.py --help does not show defaults"


@pytest.mark.parametrize("folder", FOLDERS)
def test_inference_help_works(folder):
    text = help_text(folder, "inference.py")
    assert "usage:" in text


@pytest.mark.parametrize("folder", FOLDERS)
def test_readme_has_the_agreed_sections(folder):
    headings = [
        line[3:].strip().lower()
        for line in (ROOT / folder / "README.md").read_text().splitlines()
        if line.startswith("## ")
    ]
    missing = [s for s in README_SECTIONS if not any(h.startswith(s.lower()) for h in headings)]
    assert not missing, f"{folder}/README.md lacks sections {missing}"


def test_root_readme_lists_every_folder_of_the_learning_path():
    text = (ROOT / "README.md").read_text()
    missing = [p for p in PROJECTS if f"`{p}/`" not in text]
    assert not missing, f"README.md learning path lacks {missing}"


# CONTRIBUTING.md "From scratch": the library layers that are the lesson never appear in the
# code a learner reads (docstrings may name them as the oracle); the tests, and bench.py
# which times ours against them, use them.
LESSON_LAYERS = {
    "MultiheadAttention", "Transformer", "TransformerEncoder", "TransformerDecoder",
    "TransformerEncoderLayer", "TransformerDecoderLayer", "LSTM", "GRU", "RNN", "LSTMCell",
    "GRUCell", "RNNCell", "LayerNorm", "GroupNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
    "LocalResponseNorm", "scaled_dot_product_attention",
}  # fmt: skip
LESSON_MODULES = ("torchvision.models", "diffusers")
# the opt-in, tested fast paths and metadata reads: (folder, file, name) and why
ALLOWED = {
    ("gpt2", "model.py", "scaled_dot_product_attention"),  # --fused-attention, tested equal
    ("alexnet", "inference.py", "torchvision.models"),  # ImageNet class names from its metadata
    (
        "stable_diffusion",
        "model.py",
        "scaled_dot_product_attention",
    ),  # Attention(fast=True), tested equal
}


def library_layers_used(path):
    """(line, name) for each attribute access to a lesson layer and each import of a lesson module."""
    hits = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr in LESSON_LAYERS:
            hits.append((node.lineno, node.attr))
        elif isinstance(node, ast.Attribute) and node.attr == "models":
            if isinstance(node.value, ast.Name) and node.value.id == "torchvision":
                hits.append((node.lineno, "torchvision.models"))
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            hits += [
                (node.lineno, m) for m in LESSON_MODULES if any(n.startswith(m) for n in names)
            ]
            if node.module.startswith(
                "torch"
            ):  # `from torch.nn import LayerNorm`, not our own class
                hits += [(node.lineno, a.name) for a in node.names if a.name in LESSON_LAYERS]
        elif isinstance(node, ast.Import):
            hits += [
                (node.lineno, m) for a in node.names for m in LESSON_MODULES if a.name.startswith(m)
            ]
    return hits


@pytest.mark.parametrize("folder", FOLDERS)
def test_model_code_writes_the_lesson_layers_by_hand(folder):
    offenders = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT / folder)
        if rel.parts[0] in ("tests", "runs", "data") or rel.name == "bench.py":
            continue
        for line, name in library_layers_used(path):
            if (folder, rel.name, name) not in ALLOWED:
                offenders.append(f"{folder}/{rel}:{line}: {name}")
    assert not offenders, "library layers in lesson code (tests may use them):\n" + "\n".join(
        offenders
    )


def test_the_lesson_layer_check_sees_code_but_not_docstrings(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        '"""Held against nn.LayerNorm in the tests."""\n'
        "import torch.nn as nn\nfrom torchvision.models import alexnet\nfrom model import LayerNorm\n"
        "x = nn.LayerNorm(4)\ny = torch.nn.functional.scaled_dot_product_attention\n"
    )
    names = sorted(name for _, name in library_layers_used(path))
    assert names == ["LayerNorm", "scaled_dot_product_attention", "torchvision.models"]
