"""Run by tests/test_ddp.py under torchrun: train(config) on this rank, save its final weights."""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train import TrainConfig, train  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    cfg, save_dir = TrainConfig(**json.loads(sys.argv[1])), Path(sys.argv[2])
    train(
        cfg, on_end=lambda model, rank: torch.save(model.state_dict(), save_dir / f"rank{rank}.pt")
    )
