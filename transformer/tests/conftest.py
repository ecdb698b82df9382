"""Puts the transformer/ folder on sys.path so tests import model, data, decode... directly;
one intra-op thread, so the suite does not spin on a machine shared with other work."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)
