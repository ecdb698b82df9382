"""DDP: `torchrun train.py` with 2 CPU processes (gloo) x 4 images against 1 process x 8 images.

Both stages: the autoencoder (its reparameterisation noise is part of the shared global draw)
and the text encoder + U-Net with their EMA. train.py itself checks at the end of each stage
that every process holds rank 0's weights exactly (distributed.check_replicas) and exits
non-zero otherwise.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from data import load_images
from train import TrainConfig, train_autoencoder, train_diffusion

FOLDER = Path(__file__).resolve().parents[1]
FLAGS = ["--smoke", "--ae-steps", "3", "--steps", "3", "--eval-every", "3", "--judge-steps", "2",
         "--lr", "3e-3", "--ae-lr", "3e-3", "--threads", "1"]  # fmt: skip


def assert_close(a, b, what):
    # the same sums in another order (an all-reduce of two halves): equal to float32 rounding
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=what)


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if sys.platform == "linux":  # gloo on the loopback: containers whose hostname does not resolve
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "train.py", *FLAGS, "--batch-size", "4", "--out-dir", str(tmp_path / "ddp")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=FOLDER, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]  # includes: both ranks hold rank 0's weights
    # one process x 8 images: train()'s two stages after its seed, without the judge's report
    (one := tmp_path / "one").mkdir()
    config = TrainConfig(smoke=True, ae_steps=3, steps=3, eval_every=3, lr=3e-3, ae_lr=3e-3,
                         batch_size=8, out_dir=str(one))  # fmt: skip
    data, cpu = load_images("digits"), torch.device("cpu")
    torch.manual_seed(config.seed)
    ae, ae_ckpt = train_autoencoder(config, data, cpu, one)
    train_diffusion(config, data, cpu, one, ae, ae_ckpt["scale_factor"])

    for name, parts in (("autoencoder.pt", ("model",)), ("checkpoint.pt", ("model", "ema"))):
        ddp, one = (torch.load(tmp_path / d / name, weights_only=True) for d in ("ddp", "one"))
        assert ddp["step"] == one["step"] == 3
        for part in parts:
            for k, v in one[part].items():
                assert_close(ddp[part][k], v, f"{name} {part}.{k}")
        for column in ("train_loss", "val_loss"):  # the global batch's loss, logged by rank 0
            assert_close(torch.tensor(ddp["history"][column]), torch.tensor(one["history"][column]),
                         f"{name} history {column}")  # fmt: skip
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 3
