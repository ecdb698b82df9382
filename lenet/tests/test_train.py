"""Train-smoke gates: overfit one batch, a short digits run reaches 90%, resume is bitwise equal
to an uninterrupted run, a non-finite loss stops cleanly, bad flags give one clear line."""

import json

import harness
import numpy as np
import pytest
from data import load_dataset
from harness import TrainingError, UserError, load_checkpoint
from model import LeNet5, softmax_cross_entropy
from optim import Adam
from train import TrainConfig, main, normalize, train


def test_overfit_one_batch_of_64():
    x, y = load_dataset("digits")["train"]
    x, y = normalize(x[:64], x.mean(), x.std()), y[:64]
    model = LeNet5(seed=0)
    opt = Adam(model.params, lr=2e-3)
    for _ in range(60):
        loss, dlogits = softmax_cross_entropy(model.forward(x), y)
        model.backward(dlogits, need_dx=False)
        opt.step(model.grads)
    assert np.mean(model.forward(x).argmax(axis=1) == y) == 1.0
    assert softmax_cross_entropy(model.forward(x), y)[0] < 0.05


def test_short_digits_run_reaches_90_percent(trained_run):
    out, metrics = trained_run
    assert metrics["value"] >= 0.90  # held-out test split, after 3 epochs (60 steps)
    saved = json.loads((out / "metrics.json").read_text())
    assert set(harness.METRIC_KEYS) <= set(saved) and saved["n_params"] == 61706
    assert saved["steps"] == 60 and saved["metric"] == "test_accuracy"
    for png in ("loss.png", "confusion.png", "misclassified.png"):
        assert (out / png).stat().st_size > 1000
    history = load_checkpoint(out / "checkpoint.npz")["history"]
    assert history["step"] == list(range(1, 61)) and history["eval_step"] == [20, 40, 60]


def small(tmp_path, **kw):
    # 4 steps per epoch by default
    return TrainConfig(**{"out_dir": str(tmp_path), "limit_train": 256, "figures": False, **kw})


def same_checkpoints(a, b):
    a, b = load_checkpoint(a / "checkpoint.npz"), load_checkpoint(b / "checkpoint.npz")
    for group in ("model", "optimizer"):  # parameters, optimizer state: bitwise
        assert a[group].keys() == b[group].keys()
        for k in a[group]:
            np.testing.assert_array_equal(a[group][k], b[group][k], err_msg=k)
    assert a["rng"] == b["rng"] and a["history"] == b["history"] and a["step"] == b["step"]


def test_resume_inside_the_horizon_equals_uninterrupted_run(tmp_path):
    """--epochs 1 --schedule-steps 8, then --resume --epochs 2 == one 2-epoch (8-step) run."""
    full = train(small(tmp_path / "full", epochs=2))
    train(small(tmp_path / "cut", epochs=1, schedule_steps=8))
    resumed = train(
        TrainConfig(out_dir=str(tmp_path / "cut"), epochs=2, resume=True, figures=False)
    )
    same_checkpoints(tmp_path / "full", tmp_path / "cut")
    assert full["value"] == resumed["value"] and full["steps"] == resumed["steps"] == 8


def test_resume_past_the_horizon_warns(tmp_path, capsys):
    train(small(tmp_path, epochs=1))
    capsys.readouterr()
    train(TrainConfig(out_dir=str(tmp_path), epochs=2, resume=True, figures=False))
    err = capsys.readouterr().err
    assert "past the schedule's horizon of 4" in err and "stays at the schedule's end value" in err


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    train(small(tmp_path, epochs=1, optimizer="sgd", lr=0.01))
    before = (tmp_path / "checkpoint.npz").read_bytes()
    cfg = small(tmp_path, epochs=2, optimizer="sgd", lr=1e30)
    with np.errstate(all="ignore"), pytest.raises(TrainingError, match="the last good checkpoint"):
        train(cfg)  # a fresh run into the same folder: its first loss is already non-finite
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_non_finite_update_at_epoch_end_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    """The last step of an epoch has a finite loss but an update that overflows: the epoch-end
    checkpoint must not overwrite the good one with non-finite weights."""
    import optim

    train(small(tmp_path, epochs=1, optimizer="sgd", limit_train=64))  # one step per epoch
    before = (tmp_path / "checkpoint.npz").read_bytes()

    def overflow(self, grads):
        for p in self.params.values():
            p[...] = np.inf

    monkeypatch.setattr(optim.SGD, "step", overflow)
    cfg = TrainConfig(out_dir=str(tmp_path), epochs=2, resume=True)
    with np.errstate(all="ignore"), pytest.raises(TrainingError, match="at step 2"):
        train(cfg)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_resume_with_another_batch_size_is_refused(tmp_path):
    train(small(tmp_path, epochs=1))
    with pytest.raises(UserError, match="--batch-size 32 differs from the checkpoint's 64"):
        train(small(tmp_path, epochs=2, resume=True, batch_size=32))


def one_line(argv, capsys):
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_resume_without_checkpoint_is_one_line(tmp_path, capsys):
    assert "no checkpoint" in one_line(["--resume", "--out-dir", str(tmp_path)], capsys)


@pytest.mark.parametrize(
    "argv, text",
    [
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--shift", "-1"], "--shift must not be negative"),
        (["--limit-train", "-5"], "--limit-train must not be negative"),
        (["--lr", "nan"], "--lr must be positive"),
    ],
)
def test_bad_flags_are_one_line(argv, text, capsys, tmp_path):
    assert text in one_line([*argv, "--out-dir", str(tmp_path)], capsys)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_unknown_dataset_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--dataset", "cifar10"])
    assert e.value.code == 2 and "invalid choice: 'cifar10'" in capsys.readouterr().err


def test_missing_idx_files_without_download(tmp_path, capsys):
    msg = one_line(["--dataset", "mnist", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "o")], capsys)  # fmt: skip
    assert msg.startswith("error: mnist train files not found") and "MNIST/raw" in msg
    assert "--download" in msg
