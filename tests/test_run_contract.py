"""The run contract (CONTRIBUTING.md "The run contract"), on every existing folder.

check_run_artefacts holds what `train.py --smoke` leaves to the contract: the checkpoint's
keys, the keys and types of metrics.json, the history's shape, loss.png. It is called by tests/test_readme_commands.py on the README's Quick start (`python
train.py`, `python inference.py`, with --smoke, in a fresh copy of the folder), which
already runs both: checking there, instead of training every folder a second time here,
takes about a sixth off the root tests. Here: the two mistakes every user makes, a missing
checkpoint and an --out-dir that cannot be written. Each must be one `error:` line and a
non-zero exit, never a traceback.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from monorepo import existing_projects  # noqa: E402

FOLDERS = existing_projects()
CHECKPOINT_KEYS = {"model", "optimizer", "model_config", "train_config", "step", "rng", "history"}
METRIC_KEYS = {
    "project": str,
    "dataset": str,
    "metric": str,
    "value": (int, float),
    "unit": str,
    "higher_is_better": bool,
    "selection": str,
    "n_params": int,
    "steps": int,
    "seconds": (int, float),
    "device": str,
    "device_name": str,
    "seed": int,
}


def run(folder, *args, timeout=300):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT / folder, capture_output=True, text=True, timeout=timeout
    )


def load_checkpoint(out):
    """The folder's main checkpoint as {key: plain value}, loaded the safe way."""
    if (out / "checkpoint.pt").exists():
        return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert (out / "checkpoint.npz").exists(), f"no checkpoint.pt or checkpoint.npz in {out}"
    with np.load(out / "checkpoint.npz", allow_pickle=False) as z:
        keys = set(z.files)
        ckpt = {k: json.loads(str(z[k])) for k in keys if "." not in k}
        for group in ("model", "optimizer"):
            ckpt[group] = {k.split(".", 1)[1]: z[k] for k in keys if k.startswith(group + ".")}
    return ckpt


def check_checkpoint(folder, ckpt):
    missing = CHECKPOINT_KEYS - set(ckpt)
    assert not missing, f"{folder}: checkpoint lacks {sorted(missing)}"
    assert ckpt["model"], f"{folder}: checkpoint holds no model weights"
    assert isinstance(ckpt["model_config"], dict) and isinstance(ckpt["train_config"], dict)
    assert isinstance(ckpt["step"], int) and ckpt["step"] > 0
    assert ckpt["train_config"].get("smoke") is True, (
        f"{folder}: train_config does not record --smoke"
    )


def check_history(folder, history):
    for key in ("step", "train_loss", "eval_step", "val_loss"):
        assert key in history, f"{folder}: history lacks {key!r}"
        assert isinstance(history[key], list), f"{folder}: history[{key!r}] is not a list"
    assert history["step"], f"{folder}: history has no training steps"
    assert len(history["step"]) == len(history["train_loss"])
    assert history["eval_step"], f"{folder}: history has no evaluation"
    n_eval = len(history["eval_step"])
    for key, column in history.items():
        if key not in ("step", "train_loss"):
            assert len(column) == n_eval, (
                f"{folder}: history[{key!r}] does not line up with eval_step"
            )


def check_metrics(folder, metrics):
    for key, kind in METRIC_KEYS.items():
        assert key in metrics, f"{folder}: metrics.json lacks {key!r}"
        assert isinstance(metrics[key], kind), f"{folder}: metrics[{key!r}] = {metrics[key]!r}"
    assert metrics["project"] == folder
    assert metrics["device"] in ("cpu", "cuda", "mps")
    assert metrics["selection"] in ("final", "best")
    assert metrics["n_params"] > 0 and metrics["steps"] > 0
    assert np.isfinite(metrics["value"]), f"{folder}: headline value {metrics['value']}"


def check_run_artefacts(folder, out):
    """What a `train.py --smoke` run left in out: checkpoint, history, metrics.json, loss.png."""
    ckpt = load_checkpoint(out)
    check_checkpoint(folder, ckpt)
    check_history(folder, ckpt["history"])
    check_metrics(folder, json.loads((out / "metrics.json").read_text()))
    assert (out / "loss.png").stat().st_size > 1000, f"{folder}: no loss.png"


def assert_one_line_error(folder, proc, what):
    assert proc.returncode != 0, f"{folder}: {what} exited 0"
    assert "Traceback" not in proc.stderr, (
        f"{folder}: {what} gave a traceback:\n{proc.stderr[-3000:]}"
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:"), f"{folder}: {what}: stderr {proc.stderr!r}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_missing_checkpoint_is_one_line(folder, tmp_path):
    proc = run(folder, "inference.py", "--out-dir", str(tmp_path / "empty"))
    assert_one_line_error(folder, proc, "inference.py with no checkpoint")


@pytest.mark.parametrize("folder", FOLDERS)
def test_unwritable_out_dir_is_one_line(folder):
    proc = run(folder, "train.py", "--smoke", "--out-dir", "/dev/null/x")
    assert_one_line_error(folder, proc, "train.py --out-dir /dev/null/x")
