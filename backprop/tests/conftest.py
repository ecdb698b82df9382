"""Put the project folder (and this tests folder, for gradcheck.py) on sys.path.

BLAS is held to one thread: every matrix here is tiny, and on a busy 2-core
machine OpenBLAS's worker threads cost far more than they save (30x measured).
"""

import sys
from pathlib import Path

import numpy as np  # noqa: F401  (loads BLAS so that threadpoolctl can find it)
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
threadpool_limits(1)
torch.set_num_threads(1)
