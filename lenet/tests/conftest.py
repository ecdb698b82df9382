"""Puts the lenet/ folder on sys.path and trains one short digits run shared by several tests."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """3 epochs of the default model on sklearn digits (about 60 steps): (out_dir, metrics)."""
    from train import TrainConfig, train

    out = tmp_path_factory.mktemp("digits_run")
    metrics = train(TrainConfig(epochs=3, out_dir=str(out), seed=0))
    return out, metrics


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """train.py's limit for the whole session: LeNet's small matmuls run best on one BLAS thread."""
    import harness

    with harness.blas_threads(1):
        yield
