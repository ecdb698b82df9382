"""DDP: `torchrun train.py --sync-bn` with 2 CPU processes (gloo) against 1 process with the
same global batch: a ResNet-8 whose BatchNorm statistics are all-reduced across processes
(model.py BatchNorm2d.global_stats) is the same function of the global batch, so 2 x 4 rows
must equal 1 x 8 rows in weights, running statistics and losses, up to summation order.
train.py itself checks at the end that every process holds rank 0's parameters exactly.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from train import TrainConfig, train

FOLDER = Path(__file__).resolve().parents[1]
RUN = dict(smoke=True, arch="resnet-8", width=4, steps=4, n_eval_train=64, nesterov=True, threads=1)  # fmt: skip


def test_two_ranks_with_sync_bn_match_one_process_with_the_same_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if sys.platform == "linux":  # gloo on the loopback: containers whose hostname does not resolve
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}") for k, v in RUN.items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "train.py", *flags, "--sync-bn", "--batch-size=4", f"--out-dir={tmp_path / 'ddp'}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=FOLDER, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]  # includes: every rank holds rank 0's weights

    train(TrainConfig(**RUN, batch_size=8, out_dir=str(tmp_path / "one")))  # 1 x 8 rows
    ddp = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)
    one = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)
    for k, v in one["model"].items():  # weights, running means and variances, batch counts
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")  # fmt: skip
    torch.testing.assert_close(torch.tensor(ddp["history"]["train_loss"]), torch.tensor(one["history"]["train_loss"]), rtol=1e-5, atol=1e-6)  # fmt: skip
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 4
