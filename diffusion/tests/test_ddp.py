"""DDP: train.py under torchrun, 2 CPU processes (gloo) x 4 images = 1 process x 8 images."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parents[1]
FLAGS = ["--smoke", "--steps", "4", "--eval-every", "4", "--threads", "1", "--lr", "3e-3"]


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if sys.platform == "linux":  # gloo on the loopback: containers whose hostname does not resolve
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "train.py", *FLAGS, "--batch-size", "4", "--out-dir", str(tmp_path / "ddp")]  # fmt: skip
    one = [
        sys.executable,
        "train.py",
        *FLAGS,
        "--batch-size",
        "8",
        "--out-dir",
        str(tmp_path / "one"),
    ]
    for cmd in (ddp, one):
        proc = subprocess.run(cmd, cwd=HERE, env=env, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True) for d in ("ddp", "one"))
    for k in a["model"]:
        # the same sums in a different order (all-reduce of two halves): equal to rounding
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6, msg=k)
    torch.testing.assert_close(
        torch.tensor(a["history"]["train_loss"]),
        torch.tensor(b["history"]["train_loss"]),
        rtol=1e-5,
        atol=1e-6,
    )
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["world_size"] == 2
