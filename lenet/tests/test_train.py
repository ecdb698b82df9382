"""Train-smoke gates: overfit one batch, a short digits run reaches 90%, resume is bitwise equal
to an uninterrupted run, a non-finite loss stops cleanly, bad flags give one clear line."""

import json

import numpy as np
import pytest
from data import load_dataset
from model import LeNet5, softmax_cross_entropy
from optim import Adam
from train import TrainConfig, TrainingError, load_checkpoint, main, normalize, train


def test_overfit_one_batch_of_64():
    x, y = load_dataset("digits")["train"]
    x, y = normalize(x[:64], x.mean(), x.std()), y[:64]
    model = LeNet5(seed=0)
    opt = Adam(model.params(), lr=2e-3)
    for _ in range(60):
        loss, dlogits = softmax_cross_entropy(model.forward(x), y)
        model.backward(dlogits, need_dx=False)
        opt.step(model.params(), model.grads())
    assert np.mean(model.forward(x).argmax(axis=1) == y) == 1.0
    assert softmax_cross_entropy(model.forward(x), y)[0] < 0.05


def test_short_digits_run_reaches_90_percent(trained_run):
    out, metrics = trained_run
    assert metrics["value"] >= 0.90  # held-out test split, after 3 epochs (60 steps)
    saved = json.loads((out / "metrics.json").read_text())
    for key in (
        "project",
        "dataset",
        "metric",
        "value",
        "higher_is_better",
        "seconds",
        "steps",
        "device",
        "seed",
    ):
        assert key in saved
    assert saved["steps"] == 60 and saved["metric"] == "test_accuracy"
    for png in ("curves.png", "confusion.png", "misclassified.png"):
        assert (out / png).stat().st_size > 1000


def small(tmp_path, **kw):
    return TrainConfig(out_dir=str(tmp_path), epochs=2, limit_train=256, **kw)


def test_resume_equals_uninterrupted_run(tmp_path):
    full = train(small(tmp_path / "full"))
    assert train(small(tmp_path / "cut", stop_after=3))["stopped"]  # mid-epoch 1 of 2
    resumed = train(small(tmp_path / "cut", resume=True))
    a = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    for i in (0, 1):  # model parameters, optimizer state: bitwise
        assert a[i].keys() == b[i].keys()
        for k in a[i]:
            np.testing.assert_array_equal(a[i][k], b[i][k], err_msg=k)
    assert a[3]["rng"] == b[3]["rng"] and a[3]["history"] == b[3]["history"]
    assert full["value"] == resumed["value"] and full["steps"] == resumed["steps"] == 8


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = TrainConfig(out_dir=str(tmp_path), epochs=1, limit_train=128, optimizer="sgd", lr=0.01)
    train(cfg)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    cfg = TrainConfig(
        out_dir=str(tmp_path), epochs=2, limit_train=128, optimizer="sgd", lr=1e30, resume=True
    )
    with np.errstate(all="ignore"), pytest.raises(TrainingError, match="loss became"):
        train(cfg)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_non_finite_update_at_epoch_end_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    """The last step of an epoch has a finite loss but an update that overflows: the epoch-end
    checkpoint must not overwrite the good one with non-finite weights."""
    import optim

    cfg = TrainConfig(out_dir=str(tmp_path), epochs=1, limit_train=64, optimizer="sgd")
    train(cfg)
    before = (tmp_path / "checkpoint.npz").read_bytes()

    def overflow(self, params, grads):
        for p in params.values():
            p[...] = np.inf

    monkeypatch.setattr(optim.SGD, "step", overflow)
    cfg = TrainConfig(out_dir=str(tmp_path), epochs=2, limit_train=64, optimizer="sgd", resume=True)
    with np.errstate(all="ignore"), pytest.raises(TrainingError, match="non-finite at step 2"):
        train(cfg)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_resume_with_another_batch_size_is_refused(tmp_path):
    train(small(tmp_path, stop_after=1))
    with pytest.raises(TrainingError, match="batch_size=64"):
        train(small(tmp_path, resume=True, batch_size=32))


def test_resume_without_checkpoint_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--resume", "--out-dir", str(tmp_path)])
    assert str(e.value.code).startswith("error: no checkpoint") and "\n" not in str(e.value.code)


@pytest.mark.parametrize(
    "argv, text",
    [
        (["--dataset", "cifar10"], "unknown dataset"),
        (["--epochs", "0"], "--epochs must be positive"),
        (["--shift", "-1"], "--shift must not be negative"),
        (["--limit-train", "-5"], "--limit-train must not be negative"),
    ],
)
def test_bad_flags_exit_2(argv, text, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and text in capsys.readouterr().err


def test_missing_idx_files_without_download(tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "o")])
    msg = str(e.value.code)
    assert (
        msg.startswith("error: mnist train files not found")
        and "MNIST/raw" in msg
        and "--download" in msg
    )
