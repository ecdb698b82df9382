import sys
from pathlib import Path

import pytest
import torch

FOLDER = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(FOLDER))
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory):
    """One `train.py --smoke` for the whole session; tests that write there copy it first."""
    import train

    out = tmp_path_factory.mktemp("smoke")
    assert train.main(["--smoke", "--out-dir", str(out)]) == 0
    return out
