"""DDP: `torchrun train.py` with 2 CPU processes (gloo) against 1 process with the same global batch.

The two processes run the command a user types; train.py itself checks at the end that every
process holds rank 0's weights exactly (distributed.check_replicas) and fails otherwise.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import GATE_TEXT, assert_params_close
from train import TrainConfig, train

FOLDER = Path(__file__).resolve().parents[1]


def test_two_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(GATE_TEXT * 4)
    base = dict(data=str(text), preset="cpu-tiny", n_layer=1, n_embd=32, steps=5, warmup_steps=2,
                eval_every=100, eval_iters=1, lr=3e-3, threads=1, progress=False)  # fmt: skip
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in base.items() if k != "progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if sys.platform == "linux":  # gloo on the loopback: containers whose hostname does not resolve
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "train.py", *flags, "--no-progress", "--batch-size=4", f"--out-dir={tmp_path / 'ddp'}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=FOLDER, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]  # includes: every rank holds rank 0's weights

    train(TrainConfig(**base, batch_size=8, out_dir=str(tmp_path / "single")))  # 1 x 8 rows
    ddp = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)
    one = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)
    assert_params_close(ddp["model"], one["model"])
    torch.testing.assert_close(
        torch.tensor(ddp["history"]["train_loss"]),
        torch.tensor(one["history"]["train_loss"]),
        rtol=1e-5,
        atol=1e-6,
    )
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 5
