import subprocess
import sys
from pathlib import Path

import pytest
import torch

FOLDER = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(FOLDER))
torch.set_num_threads(1)


def cli(script, *args):
    return subprocess.run(
        [sys.executable, script, *args], cwd=FOLDER, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory):
    """One `train.py --smoke` for the whole session; tests that write there copy it first."""
    out = tmp_path_factory.mktemp("smoke")
    proc = cli("train.py", "--smoke", "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out
