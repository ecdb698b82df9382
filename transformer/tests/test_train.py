"""Training pieces: label smoothing by hand, the schedule, a reverse task learned in seconds,
train() reaching a stated number, resume == uninterrupted (also when it extends the run),
resume refusing changed flags, a non-finite loss stopping cleanly, the command line."""

import json
import math
import random
import re

import harness
import pytest
import torch
import torch.nn.functional as F
import train as T
from decode import greedy_decode
from model import Transformer, TransformerConfig


def test_label_smoothed_loss_hand_computed():
    p = torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]])
    logits = p.log()
    target = torch.tensor([0])  # row 0 only, class 0; ignore_index=-1 so class 0 counts
    # row 0, y = 0, eps = 0.1, V = 3: -(0.9) ln 0.5 - (0.1 / 3)(ln 0.5 + 2 ln 0.25) = ln 2 (0.9 + 0.5 / 3)
    loss = T.label_smoothed_loss(logits[:1], target, eps=0.1, ignore_index=-1)
    assert loss.item() == pytest.approx(math.log(2) * (0.9 + 0.5 / 3), rel=1e-6)
    # padding is ignored: a <pad> target (id 0 here) does not count in the mean
    tgt = torch.tensor([2, 0])
    ours = T.label_smoothed_loss(logits, tgt, eps=0.1, ignore_index=0)
    assert ours.item() == pytest.approx(
        -(0.9 * math.log(0.25) + 0.1 / 3 * math.log(0.5 * 0.25 * 0.25)), rel=1e-6
    )
    torch.manual_seed(0)
    z, y = torch.randn(7, 5), torch.tensor([1, 2, 0, 4, 0, 3, 1])
    ref = F.cross_entropy(z, y, label_smoothing=0.1, ignore_index=0)
    assert T.label_smoothed_loss(z, y, eps=0.1, ignore_index=0).item() == pytest.approx(
        ref.item(), rel=1e-6
    )


def test_learning_rate_schedule_is_the_papers_up_to_scale():
    d_model, warmup, peak = 512, 4000, 7e-4
    paper = lambda s: d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)
    for s in (1, 100, 4000, 10000, 100000):
        assert T.learning_rate(s, peak, warmup) / paper(s) == pytest.approx(peak / paper(warmup))
    assert T.learning_rate(warmup, peak, warmup) == pytest.approx(peak)


def test_reverse_task_is_learned():
    """Gate: a 1+1-layer model learns to reverse 5-symbol strings it has not seen, in seconds."""
    torch.manual_seed(0)
    rng = random.Random(0)
    BOS, EOS = 1, 2
    seqs = lambda n: [[rng.randrange(4, 12) for _ in range(5)] for _ in range(n)]
    test = seqs(100)
    cfg = TransformerConfig(
        src_vocab=12, tgt_vocab=12, d_model=32, n_head=2, n_layer=1, d_ff=64, max_len=10
    )
    model = Transformer(cfg)
    opt = torch.optim.Adam(model.parameters(), betas=(0.9, 0.98), eps=1e-9)
    for step in range(1, 201):
        xs = [s for s in seqs(64) if s not in test]
        src = torch.tensor([[BOS] + s for s in xs])
        tgt = torch.tensor([[BOS] + s[::-1] + [EOS] for s in xs])
        for g in opt.param_groups:
            g["lr"] = T.learning_rate(step, 3e-3, 50)
        logits = model(src, tgt[:, :-1])
        loss = T.label_smoothed_loss(logits.reshape(-1, 12), tgt[:, 1:].reshape(-1), 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = greedy_decode(model, torch.tensor([[BOS] + s for s in test]), BOS, EOS, 8)
    acc = sum(o == s[::-1] for o, s in zip(out, test)) / len(test)
    assert acc >= 0.95, f"reverse task exact match {acc:.2f}"


def tiny(out_dir, **kw):
    base = dict(d_model=32, n_head=2, n_layer=1, d_ff=64, dropout=0.1, n_train=300, n_test=40,
                steps=6, batch_size=16, eval_every=3, out_dir=str(out_dir), warmup_steps=10,
                plots=False)  # fmt: skip
    return T.TrainConfig(**{**base, **kw})


def test_classify_train_smoke_reaches_accuracy(tmp_path):
    """Gate: 5 topics (chance 0.2); a model that cannot learn stays far below 0.95."""
    cfg = tiny(tmp_path, task="classify", tokenizer="word", dropout=0.0, n_train=2000,
               n_test=200, steps=80, batch_size=32, warmup_steps=20, eval_every=80, ema=0.0)  # fmt: skip
    metrics = T.train(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key, kind in harness.METRIC_KEYS.items():
        assert isinstance(saved[key], kind), key
    assert saved["metric"] == "test_accuracy" and saved["steps"] == 80
    assert saved["unit"] == "fraction" and saved["selection"] == "final"
    assert saved["value"] == metrics["value"] >= 0.95, metrics["value"]
    history = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["history"]
    assert history["eval_step"] == [80] and len(history["val_accuracy"]) == 1


def test_translate_train_smoke_writes_outputs(tmp_path):
    cfg = tiny(tmp_path, steps=60, lr=3e-3, n_test=10, eval_every=30, plots=True)
    metrics = T.train(cfg)
    assert metrics["dataset"] == "en-fr-grammar" and metrics["metric"] == "bleu"
    for name in ("checkpoint.pt", "metrics.json", "loss.png", "encoder_attention.png",
                 "cross_attention.png"):  # fmt: skip
        assert (tmp_path / name).exists(), name
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert set(ck) >= {"model", "optimizer", "model_config", "train_config", "step", "rng",
                       "history", "ema", "tokenizers"}  # fmt: skip
    assert ck["model_config"]["d_model"] == 32 and ck["train_config"]["steps"] == 60
    h = ck["history"]
    assert h["eval_step"] == [30, 60] and len(h["val_loss"]) == len(h["val_exact_match"]) == 2
    first, last = sum(h["train_loss"][:5]) / 5, sum(h["train_loss"][-5:]) / 5
    assert last < 0.7 * first, (first, last)  # it learns something: characters' frequencies
    assert h["val_loss"][1] < h["val_loss"][0]


def _assert_same_run(a, b):
    assert a["step"] == b["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for i, state in a["optimizer"]["state"].items():  # every parameter's Adam moments and step
        for k, v in state.items():
            assert torch.equal(v, b["optimizer"]["state"][i][k]), (i, k)
    assert a["history"]["train_loss"] == b["history"]["train_loss"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert a["rng"]["python"] == b["rng"]["python"]


def test_resume_equals_uninterrupted_and_extends_exactly(tmp_path):
    """8 steps == 4 + --resume to 8 == 4 + --resume to 6 + --resume to 8. The inverse-sqrt
    schedule depends on the step alone (no horizon), so extending a run past its first
    --steps is exact, not an approximation."""
    kw = dict(n_test=5, eval_every=100)
    T.train(tiny(tmp_path / "full", steps=8, **kw))
    T.train(tiny(tmp_path / "half", steps=4, **kw))
    T.train(tiny(tmp_path / "half", steps=8, resume=True, **kw))
    T.main(["--out-dir", str(tmp_path / "thirds"), "--steps", "4", "--d-model", "32", "--n-head",
            "2", "--n-layer", "1", "--d-ff", "64", "--dropout", "0.1", "--n-train", "300",
            "--n-test", "5", "--batch-size", "16", "--eval-every", "100", "--warmup-steps", "10",
            "--no-plots"])  # fmt: skip
    for steps in ("6", "8"):  # only the length is typed: every other flag comes from the checkpoint
        T.main(["--resume", "--out-dir", str(tmp_path / "thirds"), "--steps", steps])
    load = lambda d: torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)
    full = load("full")
    assert full["step"] == 8
    _assert_same_run(full, load("half"))
    _assert_same_run(full, load("thirds"))


def test_resume_refuses_a_changed_flag_and_a_corrupt_checkpoint(tmp_path, capsys):
    T.train(tiny(tmp_path, steps=2, n_test=5))
    capsys.readouterr()
    assert T.main(["--resume", "--out-dir", str(tmp_path), "--lr", "1e-4"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --lr 0.0001 differs") and "\n" not in err
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80\x02 half a file")
    assert T.main(["--resume", "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "corrupt" in err and "\n" not in err
    assert T.main(["--resume", "--out-dir", str(tmp_path / "none")]) == 1
    assert "run train.py first" in capsys.readouterr().err


def test_non_finite_loss_stops_and_keeps_checkpoint(tmp_path, monkeypatch, capsys):
    real, calls = T.label_smoothed_loss, {"n": 0}

    def loss_that_explodes(*args, **kw):
        out = real(*args, **kw)
        if torch.is_grad_enabled():  # training steps only, not the held-out loss
            calls["n"] += 1
            return out * float("nan") if calls["n"] == 5 else out
        return out

    monkeypatch.setattr(T, "label_smoothed_loss", loss_that_explodes)
    with pytest.raises(harness.TrainingError, match="step 5.*last good checkpoint"):
        T.train(tiny(tmp_path, steps=8, eval_every=3, n_test=5))
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--d-model", "30", "--n-head", "4"], "--d-model 30 is not divisible by --n-head 4"),
        (["--n-head", "0"], "--n-head 0: must be at least 1"),
        (["--dataset", "klingon"], "--dataset klingon: unknown for --task translate"),
        (["--task", "summarise"], "--task summarise"),
        (["--lr", "nan"], "--lr nan"),
        (["--ema", "1"], "--ema 1.0: must be in [0, 1)"),
        (["--data", "missing.zip"], "no such file"),
        (["--dataset", "tatoeba", "--data-dir", "nowhere"], "add --download"),
    ],
)
def test_train_cli_bad_values_are_one_line(argv, message, tmp_path, capsys):
    assert T.main([*argv, "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not (tmp_path / "checkpoint.pt").exists()


def test_smoke_is_a_tiny_model(tmp_path):
    cfg = T.settle_config(T.TrainConfig(smoke=True), {"smoke"}, None)
    assert (cfg.steps, cfg.d_model, cfg.n_layer) == (20, 32, 1)
    cfg = T.settle_config(T.TrainConfig(smoke=True, steps=5), {"smoke", "steps"}, None)
    assert cfg.steps == 5  # a smaller value typed by hand wins
    cfg = T.settle_config(T.TrainConfig(smoke=True, steps=1500, d_model=128), {"smoke"}, None)
    assert (cfg.steps, cfg.d_model) == (20, 32)  # a README command + --smoke stays seconds


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        T.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in [("--steps", "1200"), ("--batch-size", "64"), ("--seed", "0"),
                          ("--out-dir", "runs"), ("--d-model", "64"), ("--warmup-steps", "200"),
                          ("--data-dir", "data"), ("--grad-clip", "1.0"), ("--n-layer", "2"),
                          ("--threads", "0")]:  # fmt: skip
        shown = re.search(rf"{flag} [A-Z_]+ .*?\(default: ([^)]*)\)", text)
        assert shown and shown.group(1) == default, (flag, shown and shown.group(1))


def test_ctrl_c_exits_130_and_names_the_checkpoint(tmp_path, monkeypatch, capsys):
    T.train(tiny(tmp_path, steps=2, n_test=5))
    capsys.readouterr()

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "train", interrupted)
    assert T.main(["--resume", "--out-dir", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert str(tmp_path / "checkpoint.pt") in err and "--resume" in err and "Traceback" not in err
