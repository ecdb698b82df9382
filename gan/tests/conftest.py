"""Put the gan folder (and this tests folder, for gradcheck.py) on sys.path; one thread.

Every tensor in these tests is tiny: on a busy 2-core machine extra intra-op or BLAS threads
only spin, so torch and BLAS are held to one thread.
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
