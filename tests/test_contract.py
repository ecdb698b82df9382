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
