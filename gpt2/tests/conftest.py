import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)  # tiny shapes: threads only add overhead (and contend on a busy CPU)

# The gate text: short, varied, memorised by a tiny model in a few hundred steps.
GATE_TEXT = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
    "And by opposing end them.\n"
)


@pytest.fixture(scope="session")
def gate_run(tmp_path_factory):
    """A tiny char-level model trained on GATE_TEXT once for the whole session: (out_dir, metrics)."""
    from train import TrainConfig, train

    root = tmp_path_factory.mktemp("gate")
    text_file = root / "gate.txt"
    text_file.write_text(GATE_TEXT * 10)
    cfg = TrainConfig(
        data=str(text_file), preset="cpu-tiny", steps=200, warmup_steps=10, lr=3e-3, min_lr=3e-4,
        batch_size=16, eval_every=200, eval_iters=4, eval_full=True, threads=1, out_dir=str(root / "run"), progress=False,
    )  # fmt: skip
    return root / "run", train(cfg)


def assert_params_close(a: dict, b: dict, rtol=1e-5, atol=1e-6):
    """Two state dicts of runs that differ only in summation order (DDP, accumulation).

    The key bias b_k adds q . b_k to every score of a row, which softmax ignores: its true
    gradient is 0, and Adam's m / (sqrt(v) + eps) turns rounding noise of different summation
    orders into steps. Its third of c_attn.bias is left out; the query and value parts stay.
    """
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if k.endswith("attn.c_attn.bias"):
            C = x.numel() // 3
            x, y = torch.cat([x[:C], x[2 * C :]]), torch.cat([y[:C], y[2 * C :]])
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol, msg=lambda m, k=k: f"{k}: {m}")
