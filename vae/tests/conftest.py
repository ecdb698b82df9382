"""Puts the vae/ folder on sys.path, one intra-op thread (the machine is shared), a smoke run."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """A 60-step digits run with a 2-D latent (so visualize.py draws the manifold): out_dir."""
    import dataclasses

    from train import TrainConfig, train

    out = tmp_path_factory.mktemp("smoke")
    config = TrainConfig(steps=60, eval_every=30, hidden=32, latent_dim=2, iwae_k=5, eval_samples=2)
    train(dataclasses.replace(config, out_dir=str(out)))
    return out
