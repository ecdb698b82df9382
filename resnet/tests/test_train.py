"""train.py: a short run on digits reaches a stated accuracy, a resumed run equals an
uninterrupted one bitwise, the schedule's horizon is kept on resume, both schedules, the
augmentation, and bad flags (unknown arch, too-small images, weights of another arch, a
non-finite loss) are one line."""

import json

import pytest
import torch
import train as T
from data import pad_crop_flip
from train import TrainConfig, train

TINY = dict(
    smoke=True, arch="resnet-8", width=4, steps=6, batch_size=16, threads=1
)  # smoke: 256 images


def test_gate_digits_accuracy(gate_run):
    """100 steps of 32 digits with a 4-block ResNet-8: far above the 10% of chance on 300 test digits."""
    out, metrics = gate_run
    assert metrics["value"] >= 0.7, metrics
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["value"] == metrics["value"] and saved["steps"] == 100
    assert saved["train_error"] < 0.4 and len(saved) > 13


def state(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)


def assert_same_run(a, b):
    for k in a["model"]:  # weights and BN running statistics, num_batches_tracked too
        assert torch.equal(a["model"][k], b["model"][k]), k
    for i, s in a["optimizer"]["state"].items():
        assert torch.equal(s["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
    assert a["history"] == b["history"] and a["step"] == b["step"]


def test_resume_equals_uninterrupted(tmp_path):
    full = train(TrainConfig(**TINY, nesterov=True, out_dir=str(tmp_path / "full")))
    half = TrainConfig(**{**TINY, "steps": 3}, nesterov=True, schedule_steps=6, out_dir=str(tmp_path / "half"))  # fmt: skip
    train(half)
    resumed = train(TrainConfig(**{**TINY, "steps": 6}, resume=True, out_dir=str(tmp_path / "half")), given={"steps", "resume", "out_dir"})  # fmt: skip
    assert_same_run(state(tmp_path / "full"), state(tmp_path / "half"))
    assert resumed["value"] == full["value"]


def test_resume_past_the_horizon_warns_and_other_flags_are_refused(tmp_path, capsys):
    out = str(tmp_path / "run")
    train(TrainConfig(**{**TINY, "steps": 3}, out_dir=out))
    train(TrainConfig(**{**TINY, "steps": 4}, resume=True, out_dir=out), given={"steps", "resume"})
    assert "learning rate stays at the schedule's end value" in capsys.readouterr().out
    ckpt = state(tmp_path / "run")
    assert ckpt["train_config"]["schedule_steps"] == 3 and ckpt["step"] == 4
    with pytest.raises(T.harness.UserError, match="--arch plain-8 differs"):
        train(TrainConfig(**{**TINY, "arch": "plain-8"}, resume=True, out_dir=out), given={"arch", "resume"})  # fmt: skip


def test_schedules():
    cos = TrainConfig(lr=0.1, warmup_steps=10, schedule_steps=110)
    assert T.lr_at(0, cos) == pytest.approx(0.01) and T.lr_at(9, cos) == pytest.approx(0.1)
    assert T.lr_at(60, cos) == pytest.approx(0.05) and T.lr_at(110, cos) == T.lr_at(500, cos) == 0
    step = TrainConfig(lr=0.1, schedule="step", schedule_steps=64000)  # the paper's 32k / 48k
    assert [T.lr_at(s, step) for s in (0, 31999, 32000, 47999, 48000, 63999)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])  # fmt: skip


def test_pad_crop_flip_shifts_by_at_most_the_padding():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(200, 1, 1, 1) + 1  # no zeros inside
    y = pad_crop_flip(x, flip=False)  # S = 4: pad 1
    assert y.shape == x.shape
    rows_kept = {(y[b] > 0).sum().item() for b in range(200)}
    assert rows_kept == {16, 12, 9}  # no shift, a shift along one axis, along both
    ramp = torch.arange(8.0).reshape(1, 1, 1, 8).repeat(400, 1, 8, 1) + 1  # S = 8: pad 1
    flipped = pad_crop_flip(ramp, flip=True)  # columns 3, 4 stay inside the image after any shift
    frac = (flipped[:, 0, 4, 3] > flipped[:, 0, 4, 4]).float().mean().item()  # decreasing: mirrored
    assert 0.35 < frac < 0.65


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--arch", "resnet-21"], "unknown --arch 'resnet-21'"),
        (["--arch", "vgg16"], "unknown --arch 'vgg16'"),
        (["--arch", "resnet18"], "imagenet stem needs images of at least 32x32, got 16x16"),
        (["--dataset", "mnist"], "--dataset mnist: expected one of"),
        (["--lr", "nan"], "--lr nan"),
        (["--schedule", "poly"], "--schedule poly"),
        (["--weights", "x.pth"], "--init-from torchvision and --weights PATH go together"),
        (["--dataset", "cifar100", "--data-dir", "/nonexistent"], "no CIFAR-100 in /nonexistent"),
        (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent"], "no Fashion-MNIST in"),
    ],
)
def test_bad_flags_are_one_line(flags, message, tmp_path, capsys):
    code = T.main([*flags, "--smoke", "--threads", "1", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("error: ") and message in err[-1], err


def test_weights_of_another_architecture_are_one_line(torchvision_file, tmp_path, capsys):
    path, _ = torchvision_file  # a torchvision resnet18 file offered to a resnet34 and a resnet-20
    for arch, message in (("resnet34", "not a torchvision resnet34 state dict (lacks layer1.2"),
                          ("resnet-20", "not a torchvision resnet-20 state dict")):  # fmt: skip
        code = T.main(["--smoke", "--arch", arch, "--image-size", "32", "--init-from", "torchvision", "--weights", str(path), "--threads", "1", "--out-dir", str(tmp_path)])  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and err[-1].startswith("error: --weights") and message in err[-1], err


def test_non_finite_loss_stops_keeping_the_last_checkpoint(tmp_path, capsys):
    code = T.main(["--smoke", "--arch", "mlp", "--lr", "1e30", "--threads", "1", "--out-dir", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("error: loss is"), err
