"""Puts the resnet/ folder on sys.path; one intra-op thread (tiny shapes, a shared CPU)."""

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
    cfg = TrainConfig(arch="resnet-8", width=8, steps=100, batch_size=32, eval_every=50, n_eval_train=300, threads=1, out_dir=str(out))  # fmt: skip
    return out, train(cfg)


@pytest.fixture(scope="session")
def torchvision_file(tmp_path_factory):
    """A random torchvision resnet18 saved as the official file is: a plain state dict."""
    import torchvision

    path = tmp_path_factory.mktemp("tv") / "resnet18-f37072fd.pth"
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None).eval()
    torch.save(ref.state_dict(), path)
    return path, ref
