"""Training gates (the issue's numbers), smoke outputs, exact resume, inference, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import harness
import inference
import numpy as np
import pytest
import train as train_mod
from harness import TrainingError, UserError, load_checkpoint
from train import TrainConfig, train

FOLDER = Path(__file__).resolve().parents[1]


def quick(tmp_path, **kw):
    return train(TrainConfig(out_dir=str(tmp_path), figures=False, **kw))


def cli(script, *args):
    return subprocess.run(
        [sys.executable, script, *args], cwd=FOLDER, capture_output=True, text=True, timeout=120
    )


def one_line_error(main, argv, words, capsys):
    """main(argv) in this process: exit code 1 and one `error:` line on stderr naming words."""
    capsys.readouterr()
    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and lines[-1].startswith("error: ") and words in lines[-1], lines


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
    m = train(TrainConfig(smoke=True, out_dir=str(tmp_path)))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(harness.METRIC_KEYS) <= set(saved) and saved["value"] == m["value"]
    assert (
        saved["selection"] == "final"
        and saved["n_params"] == 2 * 64 + 64 + 64 * 64 + 64 + 64 * 3 + 3
    )
    for name in ("checkpoint.npz", "loss.png", "decision_boundary.png"):
        assert (tmp_path / name).stat().st_size > 1000
    # 3 spiral arms: chance is 1/3, a linear model about 0.5; the smoke MLP gets 0.987 (seed 0)
    assert m["value"] >= 0.95
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert "0.W" in ckpt["model"] and "m.0.W" in ckpt["optimizer"]
    assert ckpt["model"]["0.W"].shape == (64, 2)  # (out, in), as torch.nn.Linear.weight
    assert ckpt["train_config"]["smoke"] is True and ckpt["step"] == m["steps"] == 150


def same_checkpoints(a, b):
    a, b = load_checkpoint(a / "checkpoint.npz"), load_checkpoint(b / "checkpoint.npz")
    for group in ("model", "optimizer"):
        assert a[group].keys() == b[group].keys()
        for k in a[group]:
            np.testing.assert_array_equal(a[group][k], b[group][k], err_msg=k)
    assert a["rng"] == b["rng"] and a["step"] == b["step"]
    assert a["history"] == b["history"]


# 200 points, batch 64: 4 updates per epoch; dropout and shuffling both draw from the RNG
RESUME = dict(dataset="spirals", n_train=200, dropout=0.2, warmup_steps=3)


def test_resume_inside_the_horizon_is_bitwise_identical(tmp_path):
    """--epochs 2 --schedule-steps 16, then --resume --epochs 4 == one 4-epoch (16-update) run."""
    quick(tmp_path / "full", epochs=4, **RESUME)
    quick(tmp_path / "half", epochs=2, schedule_steps=16, **RESUME)
    m = train(TrainConfig(out_dir=str(tmp_path / "half"), epochs=4, resume=True, figures=False))
    assert m["steps"] == 16
    same_checkpoints(tmp_path / "full", tmp_path / "half")


def test_resume_past_the_horizon_warns_and_keeps_the_end_rate(tmp_path, capsys):
    """--epochs 2, then --resume --epochs 4: the cosine horizon stays 8, and it says so."""
    quick(tmp_path / "a", epochs=2, **RESUME)
    capsys.readouterr()
    train(TrainConfig(out_dir=str(tmp_path / "a"), epochs=4, resume=True, figures=False))
    err = capsys.readouterr().err
    assert "past the schedule's horizon of 8" in err and "stays at the schedule's end value" in err
    ckpt = load_checkpoint(tmp_path / "a" / "checkpoint.npz")
    assert ckpt["train_config"]["schedule_steps"] == 8 and ckpt["step"] == 16
    quick(tmp_path / "b", epochs=4, **RESUME)  # horizon 16: a different model
    other = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert not np.array_equal(ckpt["model"]["0.W"], other["model"]["0.W"])


def test_interrupted_run_resumes_bitwise(tmp_path, monkeypatch):
    """Kill a 20-epoch run after its epoch-10 checkpoint (Ctrl-C); resume it to the end."""
    kw = dict(dataset="moons", n_train=200, dropout=0.1, epochs=20)
    quick(tmp_path / "full", **kw)
    real_save = harness.save_checkpoint

    def save_then_die(path, **state):
        real_save(path, **state)
        if state["step"] == 10 * 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(harness, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        quick(tmp_path / "cut", **kw)
    monkeypatch.setattr(harness, "save_checkpoint", real_save)
    train(TrainConfig(out_dir=str(tmp_path / "cut"), resume=True, figures=False))
    same_checkpoints(tmp_path / "full", tmp_path / "cut")


def test_resume_refuses_a_changed_flag(tmp_path):
    quick(tmp_path, epochs=2, **RESUME)
    with pytest.raises(UserError, match="--lr 0.5 differs from the checkpoint's 0.01"):
        train(TrainConfig(out_dir=str(tmp_path), epochs=4, lr=0.5, resume=True))
    with pytest.raises(UserError, match="pass --epochs above 2"):
        train(TrainConfig(out_dir=str(tmp_path), epochs=2, resume=True))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_non_finite_loss_stops_and_keeps_checkpoint(tmp_path):
    quick(tmp_path, dataset="sine", epochs=2, n_train=100)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(TrainingError, match="the last good checkpoint is"):
        quick(tmp_path, dataset="sine", epochs=2, n_train=100, optimizer="sgd", lr=1e6)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


# ---------------------------------------------------------------- inference


def test_inference_reloads_and_predicts(tmp_path, capsys):
    quick(tmp_path, dataset="moons", epochs=5, n_train=300)
    model, mcfg, cfg, _ = inference.load_model(tmp_path / "checkpoint.npz")
    data = train_mod.load_dataset("moons", cfg.seed, n_train=300, n_test=150)
    out = train_mod.predict(model, data.X_test.astype(np.float32))
    acc = np.mean(train_mod.to_labels(out, mcfg.task) == data.y_test)
    assert acc == pytest.approx(json.loads((tmp_path / "metrics.json").read_text())["value"])
    csv = tmp_path / "pts.csv"
    csv.write_text("x1,x2\n-1.0,0.6\n1.5,-0.4\n")
    inference.main(["--out-dir", str(tmp_path), "--csv", str(csv), "--point", "0", "0.2"])
    text = capsys.readouterr().out
    assert text.count(" -> class ") == 3 and (tmp_path / "inference_boundary.png").exists()
    # upper moon is label 0, lower moon label 1
    assert "[-1. ,  0.6] -> class 0" in text and "[ 1.5, -0.4] -> class 1" in text
    inference.main(["--out-dir", str(tmp_path), "--num-samples", "3"])  # random test samples
    text = capsys.readouterr().out
    assert text.count("(true ") == 3 and f"test accuracy {acc:.4f} on 150 points" in text


def test_inference_bad_input_is_one_line(tmp_path, capsys):
    err = lambda argv, words: one_line_error(inference.main, argv, words, capsys)
    err(["--out-dir", str(tmp_path / "missing")], "run train.py first")
    quick(tmp_path, dataset="xor", epochs=1, n_train=50)
    out = ["--out-dir", str(tmp_path)]
    err([*out, "--point", "1", "2", "3"], "expected 2 features per point (this checkpoint was trained on xor), got 3")  # fmt: skip
    err([*out, "--point", "nan", "inf"], "is not finite")
    (tmp_path / "empty.csv").write_text("")
    err([*out, "--csv", str(tmp_path / "empty.csv")], "holds no points")
    (tmp_path / "header.csv").write_text("x1,x2\n")
    err([*out, "--csv", str(tmp_path / "header.csv")], "holds no points")
    err([*out, "--num-samples", "0"], "--num-samples must be positive")


@pytest.mark.parametrize("content", [b"not a checkpoint", b"PK\x03\x04truncated zip"])
def test_corrupt_checkpoint_is_one_line(tmp_path, content, capsys):
    (tmp_path / "checkpoint.npz").write_bytes(content)
    for main, argv in ((train_mod.main, ["--resume"]), (inference.main, [])):
        one_line_error(main, [*argv, "--out-dir", str(tmp_path)], "is corrupt or not a checkpoint", capsys)  # fmt: skip


def test_cli_smoke_and_unwritable_out_dir(tmp_path, capsys):
    proc = cli("train.py", "--smoke", "--out-dir", str(tmp_path))
    assert proc.returncode == 0 and "test_accuracy" in proc.stdout, proc.stderr
    one_line_error(train_mod.main, ["--smoke", "--out-dir", "/dev/null/x"], "cannot write to --out-dir", capsys)  # fmt: skip


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--epochs", "-1"], "--epochs must be positive, got -1"),
        (["--step-size", "0"], "--step-size must be positive, got 0"),
        (["--dropout", "1"], "--dropout must be in [0, 1)"),
        (["--hidden", "8", "0"], "--hidden widths must be positive"),
        (["--lr", "nan"], "--lr must be positive, got nan"),
    ],
)
def test_bad_values_are_one_line_before_any_work(argv, words, tmp_path):
    args = train_mod.build_parser().parse_args([*argv, "--out-dir", str(tmp_path)])
    with pytest.raises(UserError) as e:
        train(harness.config_from_args(TrainConfig, args))
    assert words in str(e.value)
    assert not (tmp_path / "checkpoint.npz").exists()


@pytest.mark.parametrize(
    "flag, bad", [("--dataset", "cifar"), ("--optimizer", "adagrad"), ("--activation", "gelu")]
)
def test_bad_names_exit_2_listing_choices(flag, bad, capsys):
    with pytest.raises(SystemExit) as e:
        train_mod.build_parser().parse_args([flag, bad])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid choice: '{bad}'" in err and "choose from" in err


def test_predict_keeps_the_mode():
    mcfg = train_mod.ModelConfig(sizes=(2, 4, 3), dropout=0.5)
    model = train_mod.build_model(mcfg, np.random.default_rng(0))
    X = np.ones((3, 2), dtype=np.float32)
    for mode in (True, False):
        model.train(mode)
        train_mod.predict(model, X)
        assert model.training is mode and all(l.training is mode for l in model.layers)


def test_help_shows_each_default_once():
    text = train_mod.build_parser().format_help()
    assert "--figures, --no-figures" in text and "--device" not in text
    assert "--dataset" in text and "(default: spirals)" in text
