"""Puts the alexnet/ folder on sys.path; one intra-op thread (tiny shapes, a shared CPU)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def gate_run(tmp_path_factory):
    """The gate, trained once and shared with test_inference.py: (out_dir, metrics)."""
    from train import TrainConfig, train

    out = tmp_path_factory.mktemp("gate")
    cfg = TrainConfig(
        steps=200, batch_size=32, lr=0.05, warmup_steps=20, eval_every=100, dropout=0.0,
        fancy_pca=0.0, threads=1, out_dir=str(out),
    )  # fmt: skip
    return out, train(cfg)
