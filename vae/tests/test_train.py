"""train.py: a short run must beat the best model without a latent; resume is bitwise; bad flags are one line."""

import dataclasses
import json

import harness
import numpy as np
import pytest
import torch
from train import TrainConfig, main, train

TINY = dict(hidden=16, latent_dim=3, eval_every=10, iwae_k=2, eval_samples=1)


def test_a_short_run_uses_its_latent_and_the_bounds_tighten(tmp_path):
    """Independent pixels (no latent: a collapsed posterior) reach 24.9 nats on this test set."""
    config = TrainConfig(
        steps=800, lr=3e-3, batch_size=50, hidden=128, latent_dim=8, eval_every=400
    )
    m = train(
        dataclasses.replace(config, iwae_k=100, out_dir=str(tmp_path))
    )  # 20.0 nats when written
    assert m["test_nelbo"] < 21.5, m
    assert m["test_iwae_nll"] < m["test_nelbo"]
    sweep = [m["iwae_sweep"][k] for k in ("1", "10", "100")]
    assert sweep[0] > sweep[1] > sweep[2], sweep
    assert m["active_units"] >= 3
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["metric"] == "test_nelbo" and metrics["value"] == m["test_nelbo"]
    assert metrics["test_iwae_nll"] == m["test_iwae_nll"] and metrics["higher_is_better"] is False


def final_state(out):
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    return ckpt["model"], ckpt["optimizer"]["state"], ckpt["history"], ckpt["step"]


def assert_same_run(a, b):
    (ma, oa, ha, sa), (mb, ob, hb, sb) = a, b
    assert sa == sb
    for k in ma:
        assert torch.equal(ma[k], mb[k]), k
    for i in oa:
        for k in oa[i]:
            assert torch.equal(oa[i][k], ob[i][k]), (i, k)
    assert ha == hb


def test_resume_equals_an_uninterrupted_run_within_the_schedule(tmp_path):
    whole, half = tmp_path / "whole", tmp_path / "half"
    train(TrainConfig(steps=30, out_dir=str(whole), **TINY))
    train(TrainConfig(steps=20, schedule_steps=30, out_dir=str(half), **TINY))
    train(TrainConfig(steps=30, resume=True, out_dir=str(half)), given={"steps", "resume", "out_dir"})  # fmt: skip
    assert_same_run(final_state(whole), final_state(half))


def test_resume_past_the_horizon_warns_and_other_flags_are_refused(tmp_path, capsys):
    train(TrainConfig(steps=10, out_dir=str(tmp_path), **TINY))
    train(TrainConfig(steps=12, resume=True, out_dir=str(tmp_path)), given={"steps", "resume"})
    assert "learning rate stays at its end value" in capsys.readouterr().out
    with pytest.raises(harness.UserError, match="--lr 0.01 differs"):
        train(TrainConfig(steps=14, lr=0.01, resume=True, out_dir=str(tmp_path)), given={"steps", "resume", "lr"})  # fmt: skip
    with pytest.raises(harness.UserError, match="--dataset mnist differs"):
        train(TrainConfig(dataset="mnist", resume=True, out_dir=str(tmp_path)), given={"dataset", "resume"})  # fmt: skip


@pytest.mark.parametrize(
    "flags,says",
    [
        (["--latent-dim", "0"], "--latent-dim 0: must be at least 1"),
        (["--iwae-k", "0"], "--iwae-k 0: must be at least 1"),
        (["--lr", "nan"], "--lr nan: must be a positive number"),
        (["--dataset", "cifar"], "--dataset 'cifar': choose from digits"),
        (["--image-size", "16"], "--image-size applies to --dataset imagefolder only"),
        (["--test-set-only"], "--test-set-only applies to mnist and fashion-mnist only"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent"], "pass --download"),
        (["--resume"], "run train.py first"),
    ],
)
def test_bad_flags_are_one_line_before_any_work(flags, says, tmp_path, capsys):
    assert main([*flags, "--out-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err


def test_conv_refuses_a_size_it_cannot_halve_twice(tmp_path, capsys):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(10):
        Image.new("RGB", (7, 7), (25 * i, 0, 0)).save(images / f"{i}.png")
    argv = ["--dataset", "imagefolder", "--data-dir", str(images), "--image-size", "10", "--arch", "conv"]  # fmt: skip
    assert main([*argv, "--batch-size", "4", "--out-dir", str(tmp_path / "run"), "--smoke"]) == 1
    assert "divisible by 4" in capsys.readouterr().err


def test_mixed_precision_runs_track_the_fp32_run(tmp_path):
    """bf16 autocast, and fp16 with its GradScaler, on the CPU (the CUDA path is the same code)."""
    fp32 = train(TrainConfig(steps=20, out_dir=str(tmp_path / "fp32"), **TINY))["test_nelbo"]
    for precision in ("bf16", "fp16"):
        config = TrainConfig(steps=20, precision=precision, out_dir=str(tmp_path / precision), **TINY)  # fmt: skip
        assert abs(train(config)["test_nelbo"] - fp32) < 0.2


def test_an_image_folder_trains_in_colour_with_bits_per_dim(tmp_path):
    import inference
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i in range(12):  # mixed sizes: every image is resized to --image-size
        size = (8 + i % 3, 8 + i % 2)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")  # fmt: skip
    out = tmp_path / "run"
    flags = [
        "--dataset",
        "imagefolder",
        "--data-dir",
        str(tmp_path / "images"),
        "--image-size",
        "8",
    ]
    assert main([*flags, "--smoke", "--out-dir", str(out)]) == 1  # batch 100 > 10 images
    assert (
        main([*flags, "--arch", "conv", "--batch-size", "5", "--smoke", "--out-dir", str(out)]) == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["likelihood"] == "gaussian" and 0 < metrics["test_iwae_bpd"] < 16
    assert inference.main(["--out-dir", str(out), "--k", "3", "--num-samples", "4"]) == 0


def test_kl_warm_up_and_the_cosine_schedule():
    from train import kl_weight, lr_at

    c = TrainConfig(beta=2.0, kl_warmup_steps=100, lr=1e-3, schedule_steps=50)
    assert [kl_weight(s, c) for s in (0, 50, 100, 500)] == [0.0, 1.0, 2.0, 2.0]
    assert kl_weight(0, TrainConfig(beta=2.0)) == 2.0  # no warm-up: beta from the first step
    assert lr_at(0, c) == 1e-3 and abs(lr_at(25, c) - 5e-4) < 1e-15 and lr_at(80, c) == 0.0
