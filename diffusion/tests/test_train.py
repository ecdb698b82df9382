"""Gates on tiny runs: the loss falls below a stated value, resume equals an uninterrupted run,
the LR horizon is kept, bad flags are one line; then inference on the checkpoint."""

import json

import pytest
import torch
from inference import main as infer
from train import TrainConfig, lr_at, main, train

TINY = dict(channels="8,16", attention="0,1", groups=4, batch_size=32, warmup_steps=10, lr=3e-3,
            eval_ddim_steps=10, num_eval_samples=40, judge_steps=30, threads=1)  # fmt: skip


@pytest.fixture(scope="module")
def gate_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gate")
    metrics = train(TrainConfig(**TINY, steps=150, eval_every=75, out_dir=str(out)))
    return out, metrics


def test_tiny_run_loss_falls_below_the_gate(gate_run):
    out, metrics = gate_run
    h = torch.load(out / "checkpoint.pt", weights_only=True)["history"]
    # an untrained eps-predictor scores ~1 (the variance of eps); a model that ignores t or
    # x_t cannot go below ~0.35 on digits; 150 steps of the tiny U-Net reach about 0.2
    assert h["val_loss"][-1] < 0.25, h["val_loss"]
    assert sum(h["train_loss"][-20:]) / 20 < 0.3
    assert metrics["metric"] == "judge_fid" and metrics["judge_fid_floor"] >= 0
    for name in ("loss.png", "progress.png", "metrics.json"):
        assert (out / name).exists()


def test_resume_equals_an_uninterrupted_run(tmp_path):
    base = dict(**TINY, smoke=True, eval_every=3)  # evaluations at 3 and 6 in both runs
    train(TrainConfig(**base, steps=6, out_dir=str(tmp_path / "a")))
    train(TrainConfig(**base, steps=3, schedule_steps=6, out_dir=str(tmp_path / "b")))
    train(
        TrainConfig(**base, steps=6, resume=True, out_dir=str(tmp_path / "b")),
        given={"steps", "resume"},
    )
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True) for d in "ab")
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs"
    for s, t in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(s[k], t[k]) for k in s)
    assert a["history"] == b["history"]


def test_extending_past_the_horizon_warns(tmp_path, capsys):
    base = dict(**TINY, smoke=True, eval_every=2, out_dir=str(tmp_path))
    train(TrainConfig(**base, steps=2))
    train(TrainConfig(**base, steps=4, resume=True), given={"steps", "resume"})
    assert "learning rate stays at its end value" in capsys.readouterr().out
    assert lr_at(10**6, lr=1.0, warmup_steps=10, schedule_steps=100) == pytest.approx(0.1)


def test_resume_refuses_a_changed_flag(tmp_path, capsys):
    train(TrainConfig(**TINY, smoke=True, steps=2, out_dir=str(tmp_path)))
    assert main(["--resume", "--lr", "0.5", "--out-dir", str(tmp_path)]) == 1
    assert "differs from the checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [(["--beta-schedule", "quadratic"], "unknown schedule"),
     (["--no-conditional", "--guidance", "2"], "needs a class-conditional model"),
     (["--eval-ddim-steps", "1001"], "more DDIM steps than the 1000 training steps"),
     (["--dataset", "cifar"], "unknown dataset"),
     (["--channels", "8,12", "--attention", "0,1", "--groups", "8", "--steps", "1"], "not all divisible by 8 groups")],
)  # fmt: skip
def test_bad_flags_are_one_line(tmp_path, capsys, argv, message):
    smoke = [] if "--channels" in argv else ["--smoke"]  # --smoke sets its own tiny U-Net
    assert main([*argv, *smoke, "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err


def test_inference_samples_from_the_checkpoint(gate_run, capsys):
    out, _ = gate_run
    assert (
        infer(
            ["--out-dir", str(out), "--num-samples", "10", "--ddim-steps", "5", "--guidance", "1"]
        )
        == 0
    )
    assert "10 samples, DDIM 5 steps" in capsys.readouterr().out
    assert (out / "samples.png").stat().st_size > 1000 and (out / "strip.png").exists()
    assert infer(["--out-dir", str(out), "--ddim-steps", "1001"]) == 1
    assert "expected 1 to the 1000 training steps" in capsys.readouterr().err


def test_inference_refuses_guidance_on_an_unconditional_model(tmp_path, capsys):
    train(TrainConfig(**TINY, smoke=True, steps=2, conditional=False, out_dir=str(tmp_path)))
    assert infer(["--out-dir", str(tmp_path), "--guidance", "1"]) == 1
    assert "this model is unconditional" in capsys.readouterr().err
    assert json.loads((tmp_path / "metrics.json").read_text())["project"] == "diffusion"


def test_init_from_a_directory_without_config_is_one_line(tmp_path, capsys):
    assert infer(["--init-from", str(tmp_path), "--out-dir", str(tmp_path)]) == 1
    assert "no config.json" in capsys.readouterr().err
