"""train.py: a short run on the shapes reaches a stated accuracy, a resumed run equals an
uninterrupted one bitwise, the schedule's horizon is kept on resume, the paper's plateau
schedule, and bad flags or a non-finite loss are one line."""

import json

import pytest
import torch
import train as T
from train import TrainConfig, train

TINY = dict(
    smoke=True, steps=6, batch_size=16, warmup_steps=0, threads=1
)  # smoke: 256 images, eval every 3


def test_gate_shapes_accuracy(gate_run):
    """200 steps of 32 images: twice the 10% of chance on 2,000 held-out shapes.

    The run ends in the middle of the network's jump (0.70 at step 250 of the default run, 0.98
    at 750), so a correct model's figure depends on the seed and on float rounding: seeds 0, 1, 2
    gave 0.372, 0.253, 0.442 with autograd's LRN backward and 0.287, 0.275, 0.419 with the
    written-out one (the same function to 1e-16). A model that does not learn (lr 1e-6) gives
    0.108. The bar sits between the two; it was 0.35, which seed 1 of the unchanged earlier
    code already failed. What LRN's gradient must be is held by test_model.py, not here: with
    the paper's alpha its sign flipped still scores 0.258 / 0.381 at this budget.
    """
    out, metrics = gate_run
    assert metrics["value"] >= 0.2, metrics
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["value"] == metrics["value"] and saved["steps"] == 200


def state(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)


def assert_same_run(a, b):
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for i, s in a["optimizer"]["state"].items():
        assert torch.equal(s["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
    assert a["history"] == b["history"] and a["step"] == b["step"]


def test_resume_equals_uninterrupted(tmp_path):
    full = train(TrainConfig(**TINY, out_dir=str(tmp_path / "full")))
    half = TrainConfig(**{**TINY, "steps": 3}, schedule_steps=6, out_dir=str(tmp_path / "half"))
    train(half)
    resumed = train(TrainConfig(**{**TINY, "steps": 6}, resume=True, out_dir=str(tmp_path / "half")), given={"steps", "resume", "out_dir"})  # fmt: skip
    assert_same_run(state(tmp_path / "full"), state(tmp_path / "half"))
    assert resumed["value"] == full["value"]


def test_resume_past_the_horizon_warns_and_other_flags_are_refused(tmp_path, capsys):
    out = str(tmp_path / "run")
    train(TrainConfig(**{**TINY, "steps": 3}, out_dir=out))
    train(TrainConfig(**{**TINY, "steps": 5}, resume=True, out_dir=out), given={"steps", "resume"})
    assert "learning rate stays at the schedule's end value" in capsys.readouterr().out
    ckpt = state(tmp_path / "run")
    assert ckpt["train_config"]["schedule_steps"] == 3 and ckpt["step"] == 5
    with pytest.raises(T.harness.UserError, match="--lr 0.1 differs"):
        train(TrainConfig(**{**TINY, "steps": 6}, lr=0.1, resume=True, out_dir=out), given={"lr", "resume"})  # fmt: skip


def test_schedules():
    cfg = TrainConfig(lr=0.1, warmup_steps=10, schedule_steps=110)
    assert T.lr_at(0, cfg) == pytest.approx(0.01) and T.lr_at(9, cfg) == pytest.approx(0.1)
    assert T.lr_at(60, cfg) == pytest.approx(0.1 * (0.01 + 0.99 * 0.5))
    assert T.lr_at(110, cfg) == T.lr_at(500, cfg) == pytest.approx(0.001)
    step = TrainConfig(lr=0.1, warmup_steps=0, schedule="step")
    assert T.lr_at(5, step, [0.5, 0.6, 0.7]) == pytest.approx(0.1)
    assert T.lr_at(5, step, [0.5, 0.6, 0.6, 0.55]) == pytest.approx(0.01)  # 2 evals, no new best
    assert T.lr_at(5, step, [0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]) == pytest.approx(1e-4)  # at most 3 drops  # fmt: skip


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dataset", "mnist"], "--dataset mnist: expected one of"),
        (["--preset", "vgg"], "--preset vgg"),
        (["--lr", "nan"], "--lr nan"),
        (["--dropout", "1.5"], "--dropout 1.5"),
        (["--num-classes", "3"], "--num-classes applies to --dataset imagefolder only"),
        (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent"], "no Fashion-MNIST in"),
        (["--dataset", "imagefolder", "--data-dir", "/nonexistent"], "no ImageFolder tree"),
    ],
)
def test_bad_flags_are_one_line(flags, message, tmp_path, capsys):
    code = T.main([*flags, "--smoke", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("error: ") and message in err[-1], err


def test_non_finite_loss_stops_keeping_the_last_checkpoint(tmp_path, capsys):
    code = T.main(["--smoke", "--lr", "1e30", "--warmup-steps", "0", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("error: loss is"), err
