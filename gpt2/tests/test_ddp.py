"""DDP: 2 CPU processes (gloo, launched by torchrun) against 1 process with the same global batch."""

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from conftest import GATE_TEXT, assert_params_close
from train import TrainConfig, train

HERE = Path(__file__).resolve().parent


def test_two_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(GATE_TEXT * 4)
    base = dict(data=str(text), preset="cpu-tiny", n_layer=1, n_embd=32, steps=5, warmup_steps=2,
                eval_interval=100, eval_iters=1, lr=3e-3, progress=False)  # fmt: skip
    ddp = TrainConfig(**base, batch_size=4, out_dir=str(tmp_path / "ddp"))  # 2 x 4 rows
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if sys.platform == "linux":  # gloo on the loopback: containers whose hostname does not resolve
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "ddp_worker.py"), json.dumps(asdict(ddp)), str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]

    torch.set_num_threads(1)
    single = TrainConfig(**base, batch_size=8, out_dir=str(tmp_path / "single"))  # 1 x 8 rows
    train(single)

    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    one = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks differ in {k}"  # all-reduced gradients: identical
    assert_params_close(r0, one["model"])
    ddp_ckpt = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)
    torch.testing.assert_close(
        torch.tensor(ddp_ckpt["history"]["loss"]),
        torch.tensor(one["history"]["loss"]),
        rtol=1e-5,
        atol=1e-6,
    )
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["world_size"] == 2
