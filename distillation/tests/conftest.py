"""Puts distillation/ on sys.path, one torch thread, and one teacher shared by the session."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)  # tiny shapes: threads only add overhead on a shared CPU


@pytest.fixture(scope="session")
def teacher_run(tmp_path_factory):
    """The default teacher CNN, 300 steps on sklearn digits (~10 s): (out_dir, metrics)."""
    from train import TrainConfig, train

    out = tmp_path_factory.mktemp("teacher")
    metrics = train(
        TrainConfig(role="teacher", steps=300, eval_every=300, out_dir=str(out), threads=1)
    )
    return out, metrics


@pytest.fixture(scope="session")
def kd_run(tmp_path_factory, teacher_run):
    """The default kd student (10% of the labels) distilled from teacher_run: (out_dir, metrics)."""
    from train import TrainConfig, train

    out = tmp_path_factory.mktemp("kd")
    c = TrainConfig(
        steps=300, eval_every=100, out_dir=str(out), teacher_dir=str(teacher_run[0]), threads=1
    )
    return out, train(c)
