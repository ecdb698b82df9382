"""Training gates (the issue's numbers), smoke outputs, exact resume, inference, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import inference
import numpy as np
import pytest
import train as train_mod
from train import Config, NonFiniteLoss, load_checkpoint, train

FOLDER = Path(__file__).resolve().parents[1]


def quick(tmp_path, **kw):
    return train(Config(out_dir=str(tmp_path), figures=False, **kw))


# ---------------------------------------------------------------- gates


def test_gate_xor_solved(tmp_path):
    m = quick(tmp_path, dataset="xor", epochs=10, n_train=200)
    assert m["value"] == 1.0 and m["train_metric"] == 1.0


def test_gate_spirals_train_accuracy(tmp_path):
    m = quick(tmp_path, dataset="spirals", epochs=30, n_train=600)  # seeds 0-4: 0.995 to 1.0
    assert m["train_metric"] >= 0.98


def test_gate_moons_held_out(tmp_path):
    m = quick(tmp_path, dataset="moons", epochs=20, n_train=1000)  # seeds 0-4: 0.984 to 0.998
    assert m["value"] >= 0.97


def test_gate_digits_held_out(tmp_path):
    m = quick(tmp_path, dataset="digits", epochs=15, lr=2e-3, dropout=0.1)  # seeds 0-4: 0.978-0.983
    assert m["value"] >= 0.97


def test_sine_regression_fits(tmp_path):
    m = quick(tmp_path, dataset="sine", epochs=200, n_train=500)  # seeds 0-4: 0.013 to 0.035
    assert m["metric"] == "test_mse" and not m["higher_is_better"]
    assert m["value"] < 0.05  # noise variance is 0.01; predicting 0 would give about 0.5


# ---------------------------------------------------------------- outputs and resume


def test_smoke_writes_the_contract_outputs(tmp_path):
    m = train(Config(smoke=True, out_dir=str(tmp_path)))
    keys = {
        "project",
        "dataset",
        "metric",
        "value",
        "higher_is_better",
        "seconds",
        "steps",
        "device",
        "seed",
    }
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert keys <= set(saved) and saved["value"] == m["value"] and saved["project"] == "backprop"
    for name in ("checkpoint.npz", "loss_curves.png", "decision_boundary.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert m["value"] > 0.5  # 3 classes: chance is 1/3
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as z:
        assert "model.0.W" in z.files and "optim.m.0.W" in z.files


def test_resume_is_bitwise_identical(tmp_path):
    # dropout and shuffling both draw from the RNG, so its state must be restored too
    kw = dict(dataset="spirals", n_train=200, dropout=0.2, schedule="step", step_size=5)
    quick(tmp_path / "full", epochs=4, **kw)
    quick(tmp_path / "half", epochs=2, **kw)
    m = train(Config(out_dir=str(tmp_path / "half"), epochs=4, resume=True, figures=False))
    assert m["steps"] == 4 * 4
    full = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    half = load_checkpoint(tmp_path / "half" / "checkpoint.npz")
    for a, b in ((full[0], half[0]), (full[1], half[1])):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert full[2]["rng"] == half[2]["rng"]


def test_interrupted_run_resumes_bitwise_with_cosine(tmp_path, monkeypatch):
    """Kill a 4-epoch run (default cosine schedule) after its epoch-2 checkpoint; resume it."""
    kw = dict(dataset="moons", n_train=200, dropout=0.1, epochs=4)
    quick(tmp_path / "full", **kw)
    real_save = train_mod.save_checkpoint

    def save_then_die(path, model, opt, meta):
        real_save(path, model, opt, meta)
        if meta["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        quick(tmp_path / "cut", **kw)
    monkeypatch.setattr(train_mod, "save_checkpoint", real_save)
    train(Config(out_dir=str(tmp_path / "cut"), resume=True, figures=False))
    full = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    for k in full[0]:
        np.testing.assert_array_equal(full[0][k], cut[0][k], err_msg=k)
    assert full[2]["history"] == cut[2]["history"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_non_finite_loss_stops_and_keeps_checkpoint(tmp_path):
    quick(tmp_path, dataset="sine", epochs=2, n_train=100)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(NonFiniteLoss, match="Last good checkpoint"):
        quick(tmp_path, dataset="sine", epochs=2, n_train=100, optimizer="sgd", lr=1e6)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


# ---------------------------------------------------------------- inference


def test_inference_reloads_and_predicts(tmp_path, capsys):
    quick(tmp_path, dataset="moons", epochs=5, n_train=300)
    model, cfg, meta = inference.load_model(tmp_path / "checkpoint.npz")
    data = train_mod.load_dataset("moons", cfg.seed, n_train=300, n_test=150)
    out = train_mod.predict(model, data.X_test.astype(np.float32), "binary")
    acc = np.mean(train_mod.to_labels(out, "binary") == data.y_test)
    assert acc == pytest.approx(json.loads((tmp_path / "metrics.json").read_text())["value"])
    csv = tmp_path / "pts.csv"
    csv.write_text("x1,x2\n-1.0,0.6\n1.5,-0.4\n")
    inference.main(["--out-dir", str(tmp_path), "--csv", str(csv), "--point", "0", "0.2"])
    text = capsys.readouterr().out
    assert text.count(" -> class ") == 3 and (tmp_path / "inference_boundary.png").exists()
    # upper moon is label 0, lower moon label 1
    assert "[-1. ,  0.6] -> class 0" in text and "[ 1.5, -0.4] -> class 1" in text
    inference.main(["--out-dir", str(tmp_path), "--n", "3"])  # no points: random test samples
    text = capsys.readouterr().out
    assert text.count("(true ") == 3 and f"test accuracy {acc:.4f} on 150 points" in text


def test_inference_errors(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"no checkpoint at .*checkpoint.npz; run train.py first"):
        inference.main(["--out-dir", str(tmp_path / "missing")])
    quick(tmp_path, dataset="xor", epochs=1, n_train=50)
    with pytest.raises(SystemExit, match="expected 2 features per point, got 3"):
        inference.main(["--out-dir", str(tmp_path), "--point", "1", "2", "3"])


@pytest.mark.parametrize("content", [b"not a checkpoint", b"PK\x03\x04truncated zip"])
def test_corrupt_checkpoint_is_one_line(tmp_path, content):
    (tmp_path / "checkpoint.npz").write_bytes(content)
    for main, args in ((train_mod.main, ["--resume"]), (inference.main, [])):
        with pytest.raises(SystemExit, match=r"^error: checkpoint .* is unreadable .*run train.py"):
            main(["--out-dir", str(tmp_path), *args])


@pytest.mark.parametrize(
    "flag, bad",
    [
        ("--dataset", "cifar"),
        ("--optimizer", "adagrad"),
        ("--activation", "gelu"),
        ("--init", "lecun"),
    ],
)
def test_bad_names_exit_2_listing_choices(flag, bad, capsys):
    with pytest.raises(SystemExit) as e:
        train_mod.parse_args([flag, bad])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid choice: '{bad}'" in err and "choose from" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--step-size", "--epochs", "--lr"])
def test_non_positive_numbers_exit_2(flag, capsys):
    with pytest.raises(SystemExit) as e:
        train_mod.parse_args([flag, "0"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{flag} must be positive, got 0" in err and len(err.strip().splitlines()) == 1


def test_predict_keeps_the_mode(tmp_path):
    model = train_mod.build_model(Config(hidden=(4,), dropout=0.5), 2, 3, np.random.default_rng(0))
    X = np.ones((3, 2))
    for mode in (True, False):
        model.train(mode)
        train_mod.predict(model, X, "multiclass")
        assert model.training is mode and all(l.training is mode for l in model.layers)


def test_cli_smoke_subprocess(tmp_path):
    r = subprocess.run(
        [sys.executable, "train.py", "--smoke", "--no-figures", "--out-dir", str(tmp_path)],
        cwd=FOLDER,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "test_accuracy" in r.stdout and (tmp_path / "metrics.json").exists()
