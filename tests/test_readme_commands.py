"""Every runnable command in every folder README works from a fresh clone.

A README code block fenced as ```bash run is runnable (CONTRIBUTING.md, "README
sections"): each `python ...` line in it is run, in order, in a fresh copy of the folder
(no runs/, no data/), as written, with `--smoke` added where the script has that flag, so
a README that names a file the folder does not ship, or a flag that no longer exists,
fails here. Commands that need a real dataset are fenced as plain ```bash.
"""

import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from monorepo import existing_projects  # noqa: E402

FOLDERS = existing_projects()
FENCE = re.compile(r"^```bash run\s*\n(.*?)^```", re.S | re.M)


def runnable_commands(readme_text):
    """The `python ...` lines of the ```bash run blocks, continuation lines joined."""
    commands = []
    for block in FENCE.findall(readme_text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("python "):
                commands.append(shlex.split(line))
    return commands


def test_runnable_commands_are_found():
    text = "x\n```bash run\npython train.py --epochs 2  # note\npython a.py \\\n  --b 1\n```\n"
    assert runnable_commands(text) == [
        ["python", "train.py", "--epochs", "2"],
        ["python", "a.py", "--b", "1"],
    ]


@cache
def has_smoke_flag(folder, script):
    proc = subprocess.run(
        [sys.executable, script, "--help"], cwd=ROOT / folder, capture_output=True, text=True
    )
    return "--smoke" in proc.stdout


@pytest.mark.parametrize("folder", FOLDERS)
def test_readme_commands_run_as_written(folder, tmp_path):
    commands = runnable_commands((ROOT / folder / "README.md").read_text())
    assert commands, f"{folder}/README.md has no ```bash run block (its Quick start)"
    work = tmp_path / folder
    shutil.copytree(
        ROOT / folder, work, ignore=shutil.ignore_patterns("runs", "data", "__pycache__", ".*")
    )
    for argv in commands:
        script = argv[1]
        extra = ["--smoke"] if has_smoke_flag(folder, script) and "--smoke" not in argv else []
        proc = subprocess.run(
            [sys.executable, *argv[1:], *extra],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, (
            f"{folder}: `{shlex.join(argv)}` failed:\n{proc.stderr[-3000:]}"
        )
