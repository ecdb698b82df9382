import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

# one BLAS thread, as train.py uses: the tests' matrices are tiny, and idle worker threads
# spinning on a shared 2-core machine make them several times slower
harness.blas_threads(1)  # threadpoolctl applies the limit when it is created
torch.set_num_threads(1)
