"""Train smoke (a stated loss on a tiny corpus), resume == uninterrupted (bitwise), a non-finite
loss keeps the last good checkpoint, inference from that checkpoint, and one-line errors."""

import json
from pathlib import Path

import inference
import numpy as np
import pytest
import train
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
    for key in ("project", "dataset", "metric", "value", "higher_is_better", "seconds", "steps",
                "device", "seed"):  # fmt: skip
        assert key in saved
    assert (out / "loss.png").stat().st_size > 1000


def test_inference_continues_the_sentence(trained):
    cfg, _ = trained
    model, vocab, meta = inference.load_model(cfg.out_dir)
    texts = inference.generate(model, vocab, meta["kind"], "the quick", n=2, length=10,
                               temperature=0.05)  # fmt: skip
    assert texts == ["the quick brown fox"] * 2


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_resume_equals_uninterrupted(tmp_path, cell, monkeypatch, capsys):
    a = tiny(tmp_path, cell=cell, steps=20, eval_every=10, out_dir=str(tmp_path / "a"))
    train.train(a)
    b = tiny(tmp_path, cell=cell, steps=10, eval_every=10, out_dir=str(tmp_path / "b"))
    train.train(b)
    b.steps, b.resume = 20, True
    backward_calls = []
    real_backward = train.CharRNN.backward

    def counting_backward(self, *args, **kw):
        backward_calls.append(1)
        return real_backward(self, *args, **kw)

    monkeypatch.setattr(train.CharRNN, "backward", counting_backward)
    capsys.readouterr()
    train.train(b)
    # it really resumed: a run restarted from step 0 would also match run a bit for bit
    assert "at step 10" in capsys.readouterr().out and len(backward_calls) == 10
    ra, ma = train.load_checkpoint(tmp_path / "a" / train.CHECKPOINT)
    rb, mb = train.load_checkpoint(tmp_path / "b" / train.CHECKPOINT)
    assert ma["step"] == mb["step"] == 20 and ra.keys() == rb.keys()
    for k in ra:  # parameters, optimiser moments and carried hidden state, bit for bit
        assert np.array_equal(ra[k], rb[k]), k
    assert ma["history"]["train"] == mb["history"]["train"]


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
    with pytest.raises(FloatingPointError, match="non-finite loss at step"):
        train.train(cfg)
    _, meta = train.load_checkpoint(tmp_path / "run" / train.CHECKPOINT)
    assert meta["step"] == 10


def run_main(fn, argv, capsys):
    with pytest.raises(SystemExit) as e:
        fn(argv)
    err = capsys.readouterr().err
    msg = e.value.code if isinstance(e.value.code, str) else err.strip().splitlines()[-1]
    assert e.value.code != 0 and "Traceback" not in err
    return msg


def test_bad_input_gets_one_clear_line(tmp_path, capsys, trained):
    cfg, _ = trained
    msg = run_main(inference.main, ["--out-dir", cfg.out_dir, "--prime", "Thé"], capsys)
    assert "not in the vocabulary" in msg and "'T'" in msg and "'é'" in msg
    msg = run_main(inference.main, ["--out-dir", str(tmp_path / "nothing")], capsys)
    assert "run train.py first" in msg
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.npz").write_bytes(b"not a zip file")
    assert "cannot read checkpoint" in run_main(
        inference.main, ["--out-dir", str(tmp_path / "bad")], capsys
    )
    resume_back = ["--out-dir", cfg.out_dir, "--resume", "--steps", "100"]
    assert "already at step 150" in run_main(train.main, resume_back, capsys)
    assert "unknown cell type 'cnn'" in run_main(train.main, ["--cell", "cnn"], capsys)
    (tmp_path / "empty.txt").write_text("")
    assert "empty" in run_main(train.main, ["--data", str(tmp_path / "empty.txt")], capsys)
    (tmp_path / "short.txt").write_text("a few words\n" * 10)
    assert "too short" in run_main(train.main, ["--data", str(tmp_path / "short.txt")], capsys)


def test_checkpoint_without_its_config_gets_one_line(tmp_path, capsys):
    """A readable .npz that lacks the meta keys inference needs is "cannot read", not a KeyError."""
    (tmp_path / "odd").mkdir()
    np.savez(tmp_path / "odd" / "checkpoint.npz", meta=np.array('{"step": 3}'))
    msg = run_main(inference.main, ["--out-dir", str(tmp_path / "odd")], capsys)
    assert "cannot read checkpoint" in msg
