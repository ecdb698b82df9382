import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train import limit_blas_threads  # noqa: E402

# one BLAS thread, as train.py uses: the tests' matrices are tiny, and idle worker threads
# spinning on a shared 2-core machine make them several times slower
limit_blas_threads()
