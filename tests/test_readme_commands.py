"""Every runnable command in every folder README works from a fresh clone.

A README code block fenced as ```bash run is runnable (CONTRIBUTING.md, "README
sections"): each `python ...` line in it is run, in order, in a fresh copy of the folder
(no runs/, no data/), as written, with `--smoke` added where the script has that flag, so
a README that names a file the folder does not ship, or a flag that no longer exists,
fails here. Commands that need a real dataset are fenced as plain ```bash.

The Quick start's bare `python train.py` is the folder's smoke run: what it leaves in runs/
is held to the run contract here (tests/test_run_contract.py's check_run_artefacts), so no
folder is trained twice by the root tests.
"""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from monorepo import existing_projects  # noqa: E402
from test_run_contract import check_run_artefacts  # noqa: E402

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


def run_with_smoke(argv, cwd, refused=None):
    """Run one README command with --smoke added; a script without that flag runs as written.

    argparse refuses an unknown flag before the script does any work, so trying --smoke
    first costs a script without it one quick refusal, where asking each script's --help
    cost every script a start-up. refused: a set of the scripts that refused it already.
    """
    refused = set() if refused is None else refused

    def run(args):
        return subprocess.run(
            [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300
        )

    if "--smoke" in argv or argv[1] in refused:
        return run(argv[1:])
    proc = run([*argv[1:], "--smoke"])
    if proc.returncode == 2 and re.search(r"unrecognized arguments:.*--smoke", proc.stderr):
        refused.add(argv[1])
        proc = run(argv[1:])
    return proc


def test_run_with_smoke_falls_back_only_for_a_refused_smoke_flag(tmp_path):
    script = "import argparse, sys\np = argparse.ArgumentParser()\n{}p.parse_args()\n"
    (tmp_path / "has.py").write_text(
        script.format('p.add_argument("--smoke", action="store_true")\n')
    )
    (tmp_path / "lacks.py").write_text(script.format(""))
    assert run_with_smoke(["python", "has.py"], tmp_path).args[-1] == "--smoke"
    refused = set()
    proc = run_with_smoke(["python", "lacks.py"], tmp_path, refused)
    assert proc.returncode == 0 and proc.args[-1] == "lacks.py" and refused == {"lacks.py"}
    proc = run_with_smoke(["python", "lacks.py", "--gone"], tmp_path)  # a retired flag still fails
    assert proc.returncode == 2 and "--gone" in proc.stderr


@pytest.mark.parametrize("folder", FOLDERS)
def test_readme_commands_run_as_written(folder, tmp_path):
    commands = runnable_commands((ROOT / folder / "README.md").read_text())
    assert commands, f"{folder}/README.md has no ```bash run block (its Quick start)"
    assert ["python", "train.py"] in commands, (
        f"{folder}/README.md: its Quick start does not run `python train.py`"
    )
    work = tmp_path / folder
    shutil.copytree(
        ROOT / folder, work, ignore=shutil.ignore_patterns("runs", "data", "__pycache__", ".*")
    )
    refused = set()  # the scripts without --smoke, each found out once
    for argv in commands:
        proc = run_with_smoke(argv, work, refused)
        assert proc.returncode == 0, (
            f"{folder}: `{shlex.join(argv)}` failed:\n{proc.stderr[-3000:]}"
        )
        if argv == ["python", "train.py"]:
            check_run_artefacts(folder, work / "runs")
