"""Puts the detection/ folder on sys.path; one intra-op thread (tiny shapes, a shared CPU)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)


GATE = dict(batch_size=8, width=16, lr=2e-3, warmup_steps=10, n_eval=20, threads=1)
GATE_STEPS = {"two-stage": 150, "one-stage": 250, "sliding": 100}


def gate(detector, out, n_test=100):
    from train import TrainConfig, train

    steps = GATE_STEPS[detector]
    cfg = TrainConfig(detector=detector, steps=steps, eval_every=steps, n_test=n_test, out_dir=str(out), **GATE)  # fmt: skip
    return train(cfg)


@pytest.fixture(scope="session")
def gate_run(tmp_path_factory):
    """The two-stage gate, trained once and shared with test_inference.py: (out_dir, metrics)."""
    out = tmp_path_factory.mktemp("gate")
    return out, gate("two-stage", out)
