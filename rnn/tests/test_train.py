"""Train smoke (a stated loss on a tiny corpus), resume == uninterrupted (bitwise), a non-finite
loss keeps the last good checkpoint, inference from that checkpoint, and one-line errors."""

import json
from pathlib import Path

import harness
import inference
import numpy as np
import pytest
import train
from harness import TrainingError, load_checkpoint
from train import TrainConfig

TEXT = "the quick brown fox jumps over the lazy dog\n" * 60  # 2,640 characters, 28 symbols


def tiny(tmp_path, **kw):
    path = tmp_path / "fox.txt"
    path.write_text(TEXT)
    args = dict(data=str(path), n_embd=8, n_hidden=32, seq_len=16, batch_size=8, steps=150,
                lr=1e-2, eval_every=50, out_dir=str(tmp_path / "run"))  # fmt: skip
    return TrainConfig(**(args | kw))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = tiny(tmp_path_factory.mktemp("fox"))
    return cfg, train.train(cfg)


def test_loss_falls_below_stated_value(trained):
    cfg, metrics = trained
    # uniform guessing over 28 characters is ln 28 = 3.33 nats/char; the sentence is learnable
    assert metrics["value"] < 0.2, metrics
    out = Path(cfg.out_dir)
    saved = json.loads((out / "metrics.json").read_text())
    assert set(harness.METRIC_KEYS) <= set(saved)
    assert saved["metric"] == "val_loss" and saved["unit"] == "nats/token"
    history = load_checkpoint(out / "checkpoint.npz")["history"]
    # the headline is the FINAL model's validation loss (the model the checkpoint holds)
    assert saved["selection"] == "final" and saved["value"] == round(history["val_loss"][-1], 4)
    assert history["eval_step"] == [50, 100, 150] and len(history["train_loss"]) == 150
    assert (out / "loss.png").stat().st_size > 1000


def test_inference_continues_the_sentence(trained):
    cfg, _ = trained
    model, vocab, ckpt = inference.load_model(cfg.out_dir)
    texts = inference.generate(model, vocab, ckpt["kind"], "the quick", n=2, max_new=10,
                               temperature=0.05)  # fmt: skip
    assert texts == ["the quick brown fox"] * 2
    # temperature 0 is greedy: the argmax at every step, whatever the seed
    greedy = inference.generate(model, vocab, ckpt["kind"], "the la", n=3, max_new=6, temperature=0, seed=5)  # fmt: skip
    assert greedy == ["the lazy dog"] * 3


def counting_backward(monkeypatch):
    calls = []
    real = train.CharRNN.backward

    def backward(self, *args, **kw):
        calls.append(1)
        return real(self, *args, **kw)

    monkeypatch.setattr(train.CharRNN, "backward", backward)
    return calls


def same_checkpoints(a, b):
    a, b = load_checkpoint(a / harness.CHECKPOINT), load_checkpoint(b / harness.CHECKPOINT)
    for group in ("model", "optimizer", "state"):  # parameters, moments, carried hidden state
        assert a[group].keys() == b[group].keys()
        for k in a[group]:
            assert np.array_equal(a[group][k], b[group][k]), (group, k)
    assert a["step"] == b["step"] and a["history"] == b["history"] and a["rng"] == b["rng"]


@pytest.mark.parametrize("cell, dropout", [("rnn", 0.0), ("gru", 0.0), ("lstm", 0.0), ("gru", 0.2)])
def test_resume_inside_the_horizon_equals_uninterrupted(tmp_path, cell, dropout, monkeypatch, capsys):  # fmt: skip
    """--steps 10 --schedule-steps 20, then --resume --steps 20 == one 20-step run (cosine);
    with dropout (and the same weight drop) the masks come from the stored generator, so they
    repeat too."""
    kw = dict(cell=cell, eval_every=10, schedule="cosine", warmup_steps=3, dropout=dropout,
              weight_drop=dropout)  # fmt: skip
    train.train(tiny(tmp_path, steps=20, out_dir=str(tmp_path / "a"), **kw))
    train.train(tiny(tmp_path, steps=10, schedule_steps=20, out_dir=str(tmp_path / "b"), **kw))
    calls = counting_backward(monkeypatch)
    capsys.readouterr()
    train.train(TrainConfig(out_dir=str(tmp_path / "b"), steps=20, resume=True))
    # it really resumed: a run restarted from step 0 would also match run a bit for bit
    out = capsys.readouterr()
    assert "at step 10" in out.out and len(calls) == 10 and "horizon" not in out.err
    same_checkpoints(tmp_path / "a", tmp_path / "b")


def test_resume_past_the_horizon_warns(tmp_path, capsys):
    train.train(tiny(tmp_path, steps=10, eval_every=10, schedule="cosine"))
    capsys.readouterr()
    train.train(TrainConfig(out_dir=str(tmp_path / "run"), steps=20, resume=True))
    err = capsys.readouterr().err
    assert "past the schedule's horizon of 10" in err and "stays at the schedule's end value" in err


def test_non_finite_loss_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real = train.softmax_cross_entropy
    calls = []

    def poisoned(logits, y):
        calls.append(1)
        loss, d = real(logits, y)
        # calls 1-10: steps 0-9; 11: the eval (one val chunk); 12: step 10; 13: step 11
        return (float("nan") if len(calls) == 13 else loss), d

    monkeypatch.setattr(train, "softmax_cross_entropy", poisoned)
    cfg = tiny(tmp_path, steps=40, eval_every=10, batch_size=2, seq_len=200)
    with pytest.raises(TrainingError, match="loss is nan at step 12"):
        train.train(cfg)
    assert load_checkpoint(tmp_path / "run" / harness.CHECKPOINT)["step"] == 10


def one_line(main, argv, capsys):
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_input_gets_one_clear_line(tmp_path, capsys, trained):
    cfg, _ = trained
    msg = one_line(inference.main, ["--out-dir", cfg.out_dir, "--prompt", "Thé"], capsys)
    assert "not in the vocabulary" in msg and "'T'" in msg and "'é'" in msg
    assert "run train.py first" in one_line(inference.main, ["--out-dir", str(tmp_path / "nothing")], capsys)  # fmt: skip
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.npz").write_bytes(b"not a zip file")
    assert "corrupt" in one_line(inference.main, ["--out-dir", str(tmp_path / "bad")], capsys)
    for flag, value in (("--num-samples", "0"), ("--temperature", "-1"), ("--top-k", "-2")):
        assert flag in one_line(inference.main, ["--out-dir", cfg.out_dir, flag, value], capsys)
    resume_back = ["--out-dir", cfg.out_dir, "--resume", "--steps", "100"]
    assert "already at step 150" in one_line(train.main, resume_back, capsys)
    changed = ["--out-dir", cfg.out_dir, "--resume", "--steps", "300", "--lr", "0.5"]
    assert "--lr 0.5 differs" in one_line(train.main, changed, capsys)
    out = ["--out-dir", str(tmp_path / "o")]
    (tmp_path / "empty.txt").write_text("")
    assert "empty" in one_line(train.main, ["--data", str(tmp_path / "empty.txt"), *out], capsys)
    (tmp_path / "short.txt").write_text("a few words\n" * 10)
    assert "too short" in one_line(train.main, ["--data", str(tmp_path / "short.txt"), *out], capsys)  # fmt: skip
    assert "--n-layer must be at least 1" in one_line(train.main, ["--n-layer", "0", *out], capsys)
    assert "--dropout must be in [0, 1)" in one_line(train.main, ["--dropout", "1", *out], capsys)
    assert "--weight-drop must be in [0, 1)" in one_line(train.main, ["--weight-drop", "1", *out], capsys)  # fmt: skip
    assert "--weight-decay must be >= 0" in one_line(train.main, ["--weight-decay", "-1", *out], capsys)  # fmt: skip
    assert "below 1" in one_line(train.main, ["--lr", "0.1", "--weight-decay", "10", *out], capsys)
    assert "cannot write" in one_line(train.main, ["--out-dir", "/dev/null/x"], capsys)


def test_unknown_cell_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        train.main(["--cell", "cnn"])
    assert e.value.code == 2 and "invalid choice: 'cnn'" in capsys.readouterr().err


def test_checkpoint_without_its_keys_gets_one_line(tmp_path, capsys):
    """A readable .npz that lacks the contract's keys is "not a checkpoint", not a KeyError."""
    (tmp_path / "odd").mkdir()
    np.savez(tmp_path / "odd" / "checkpoint.npz", step=np.array("3"))
    assert "not a checkpoint" in one_line(inference.main, ["--out-dir", str(tmp_path / "odd")], capsys)  # fmt: skip


def test_ctrl_c_names_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    real = harness.save_checkpoint

    def save_then_interrupt(path, **kw):
        real(path, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(harness, "save_checkpoint", save_then_interrupt)
    cfg = tiny(tmp_path, steps=20, eval_every=10)
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in vars(cfg).items() if k in ("data", "out_dir", "steps", "eval_every", "n_hidden", "batch_size", "seq_len")]  # fmt: skip
    capsys.readouterr()
    assert train.main(argv) == 130
    err = capsys.readouterr().err
    assert (
        f"the last checkpoint is {tmp_path / 'run' / 'checkpoint.npz'}" in err and "--resume" in err
    )


def test_resume_refuses_a_flag_newer_than_the_checkpoint():
    """A checkpoint written before --weight-drop existed holds no weight_drop: its run had the
    default, so typing another value on --resume is refused, not silently dropped."""
    from dataclasses import asdict

    stored = asdict(TrainConfig())
    del stored["weight_drop"]
    with pytest.raises(harness.UserError, match="--weight-drop 0.3: the checkpoint predates"):
        harness.resume_train_config(stored, TrainConfig(weight_drop=0.3), {"weight_drop"})
    assert harness.resume_train_config(stored, TrainConfig(), {"weight_drop"}).weight_drop == 0.0
