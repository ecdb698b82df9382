"""The root tooling: pytest summary parsing, test-all counting, the results table, the venv stamp."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import monorepo  # noqa: E402


@pytest.mark.parametrize(
    "line, expected",
    [
        ("12 passed in 3.02s", (12, 0, 0)),
        ("1 failed, 40 passed, 2 skipped in 9.10s", (40, 1, 2)),
        ("2 passed, 1 error in 0.50s", (2, 1, 0)),
        ("3 errors in 1.00s", (0, 3, 0)),
        ("no tests ran in 0.01s", (0, 0, 0)),
        ("1 xfailed, 1 xpassed, 4 passed in 1.0s", (5, 0, 1)),
    ],
)
def test_parse_pytest_summary(line, expected):
    counts = monorepo.parse_pytest_summary(["collected 3 items", line])
    assert (counts["passed"], counts["failed"], counts["skipped"]) == expected


def test_parse_ignores_lines_that_are_not_the_summary():
    lines = ["test_x.py::test_3_passed PASSED", "5 passed in 0.1s", "trailing warning"]
    assert monorepo.parse_pytest_summary(lines)["passed"] == 5


def make_folder(root, name, test_body):
    (root / name / "tests").mkdir(parents=True)
    (root / name / "model.py").write_text("")
    if test_body is not None:
        (root / name / "tests" / "test_a.py").write_text(test_body)


@pytest.mark.parametrize("jobs", [1, 2])
def test_test_all_counts_failures_and_empty_folders(tmp_path, capsys, jobs):
    make_folder(tmp_path, "backprop", "def test_ok():\n    assert True\n")
    make_folder(tmp_path, "lenet", "def test_bad():\n    assert False\n")
    make_folder(tmp_path, "rnn", None)  # tests/ with no tests: pytest exits 5 -> a failure
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_root.py").write_text("def test_root():\n    pass\n")
    code = monorepo.test_all(root=tmp_path, jobs=jobs)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "test-all: 2 passed, 2 failed"
    assert code == 1


def test_test_all_passes_when_everything_passes(tmp_path, capsys):
    body = "import pytest\n\ndef test_ok():\n    pass\n\n@pytest.mark.skip\ndef test_skip():\n    pass\n"
    make_folder(tmp_path, "gpt2", body)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_root.py").write_text("def test_root():\n    pass\n")
    assert monorepo.test_all(root=tmp_path) == 0
    assert capsys.readouterr().out.strip().endswith("test-all: 2 passed, 0 failed, 1 skipped")


def test_results_table_reads_metrics_json(tmp_path):
    (tmp_path / "lenet" / "runs").mkdir(parents=True)
    metrics = {
        "project": "lenet",
        "dataset": "digits",
        "metric": "test_accuracy",
        "value": 0.9876,
        "unit": "fraction",
        "selection": "final",
        "higher_is_better": True,
        "seconds": 41.2,
        "steps": 100,
        "device": "cpu",
        "seed": 0,
    }
    (tmp_path / "lenet" / "runs" / "metrics.json").write_text(json.dumps(metrics))
    table = monorepo.results_table(["lenet", "rnn"], markdown=True, root=tmp_path)
    lines = table.splitlines()
    assert (
        lines[2]
        == "| lenet | digits | test_accuracy (higher is better) | 0.9876 | fraction | final | 41 | cpu |"
    )
    assert "no runs/metrics.json" in lines[3]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_venv_stamp_reinstalls_only_when_requirements_change(tmp_path):
    for f in ["Makefile", "requirements.txt", "requirements-dev.txt"]:
        shutil.copy(ROOT / f, tmp_path / f)
    (tmp_path / "fakevenv" / "bin").mkdir(parents=True)
    python = tmp_path / "fakevenv" / "bin" / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)

    def dry_run():
        cmd = ["make", "-n", "venv", "VENV=fakevenv"]
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True).stdout

    assert "pip install" in dry_run()  # no stamp yet: installs
    stamp = subprocess.run(
        ["make", "-s", "--eval=print-stamp: ; @echo $(STAMP)", "print-stamp", "VENV=fakevenv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (tmp_path / stamp).touch()
    assert "pip install" not in dry_run()  # stamp matches: nothing to do
    with open(tmp_path / "requirements.txt", "a") as f:
        f.write("# a change\n")
    assert "pip install" in dry_run()  # requirements changed: installs again
