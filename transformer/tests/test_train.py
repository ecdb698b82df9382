"""Training pieces: label smoothing by hand, the schedule, a reverse task learned in seconds,
train() reaching a stated number, resume == uninterrupted, a non-finite loss stopping cleanly."""

import json
import math
import random

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
    paper = lambda s: d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)  # noqa: E731
    for s in (1, 100, 4000, 10000, 100000):
        assert T.learning_rate(s, peak, warmup) / paper(s) == pytest.approx(peak / paper(warmup))
    assert T.learning_rate(warmup, peak, warmup) == pytest.approx(peak)


def test_reverse_task_is_learned():
    """Gate: a 1+1-layer model learns to reverse 5-symbol strings it has not seen, in seconds."""
    torch.manual_seed(0)
    rng = random.Random(0)
    BOS, EOS = 1, 2
    seqs = lambda n: [[rng.randrange(4, 12) for _ in range(5)] for _ in range(n)]  # noqa: E731
    test = seqs(100)
    cfg = TransformerConfig(
        src_vocab=12,
        tgt_vocab=12,
        d_model=32,
        n_head=2,
        n_enc_layers=1,
        n_dec_layers=1,
        d_ff=64,
        dropout=0.0,
        max_len=10,
    )
    model = Transformer(cfg)
    opt = torch.optim.Adam(model.parameters(), betas=(0.9, 0.98), eps=1e-9)
    for step in range(1, 401):
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


def tiny(tmp_path, **kw):
    m = TransformerConfig(
        d_model=32, n_head=2, n_enc_layers=1, n_dec_layers=1, d_ff=64, dropout=0.1
    )
    base = dict(
        n_train=300,
        n_test=40,
        steps=6,
        batch_size=16,
        eval_every=3,
        out_dir=str(tmp_path),
        model=m,
        warmup=10,
        plots=False,
    )
    base.update(kw)
    return T.TrainConfig(**base)


def test_classify_train_smoke_reaches_accuracy(tmp_path):
    m = TransformerConfig(d_model=32, n_head=2, n_enc_layers=1, d_ff=64, dropout=0.0)
    cfg = tiny(
        tmp_path,
        task="classify",
        tokenizer="word",
        n_train=2000,
        n_test=200,
        steps=100,
        batch_size=32,
        lr=3e-3,
        warmup=20,
        eval_every=100,
        ema=0.0,  # evaluate the raw weights: a 0.995 average of 100 steps still holds the init
        model=m,
    )
    metrics = T.train(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
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
    assert saved["metric"] == "test_accuracy" and saved["steps"] == 100
    assert metrics["value"] >= 0.95, metrics["value"]


def test_translate_train_smoke_writes_outputs(tmp_path):
    cfg = tiny(tmp_path, steps=60, lr=3e-3, n_test=20, eval_every=60, plots=True)
    metrics = T.train(cfg)
    assert metrics["dataset"] == "en-fr-grammar" and metrics["metric"] == "test_exact_match"
    for name in (
        "checkpoint.pt",
        "metrics.json",
        "loss.png",
        "encoder_attention.png",
        "cross_attention.png",
    ):
        assert (tmp_path / name).exists(), name
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    first, last = sum(ck["history"]["loss"][:5]) / 5, sum(ck["history"]["loss"][-5:]) / 5
    assert last < 0.7 * first, (
        first,
        last,
    )  # it learns something: characters' frequencies at least


def test_resume_equals_uninterrupted(tmp_path):
    kw = dict(n_test=5, eval_every=100)
    T.train(tiny(tmp_path / "full", steps=8, **kw))
    T.train(tiny(tmp_path / "half", steps=4, **kw))
    T.train(tiny(tmp_path / "half", steps=8, resume=True, **kw))
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "half" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 8
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for i, state in a["optimizer"]["state"].items():  # every parameter's Adam moments and step
        for k, v in state.items():
            assert torch.equal(v, b["optimizer"]["state"][i][k]), (i, k)
    assert a["history"]["loss"] == b["history"]["loss"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_non_finite_loss_stops_and_keeps_checkpoint(tmp_path, monkeypatch):
    real = T.label_smoothed_loss
    calls = {"n": 0}

    def loss_that_explodes(*args, **kw):
        calls["n"] += 1
        out = real(*args, **kw)
        return out * float("nan") if calls["n"] == 5 else out

    monkeypatch.setattr(T, "label_smoothed_loss", loss_that_explodes)
    with pytest.raises(T.NonFiniteLossError, match="step 5"):
        T.train(tiny(tmp_path, steps=8, eval_every=3, n_test=5))
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 3
