"""Train smoke: the gate (a tiny model memorises a short text), exact resume, gradient
accumulation, the optimizer's decay groups, the learning-rate schedule, a non-finite loss."""

import json
import math
from dataclasses import replace

import pytest
import torch
from conftest import GATE_TEXT, assert_params_close
from model import GPT, GPTConfig
from train import TrainConfig, lr_at, make_optimizer, train

torch.set_num_threads(1)


def test_gate_tiny_model_memorises_a_short_text(gate_run):
    out, metrics = gate_run
    # chance is ln(vocab) ~ 3.4 nats; memorised text is far below. Typical: ~0.2 after 200 steps
    assert metrics["train_loss"] < 0.5
    assert metrics["value"] < 0.5
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
    assert saved["project"] == "gpt2" and saved["metric"] == "val_loss" and saved["steps"] == 200
    assert (out / "loss.png").stat().st_size > 1000
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 200 and {"model", "optimizer", "rng", "model_config"} <= set(ckpt)


def _cfg(tmp_path, name, **kw):
    text = tmp_path / "text.txt"
    text.write_text(GATE_TEXT * 4)
    base = dict(data=str(text), preset="cpu-tiny", n_layer=1, n_embd=32, steps=8, warmup_steps=2,
                batch_size=4, eval_interval=100, eval_iters=1, dropout=0.1, lr=3e-3,
                out_dir=str(tmp_path / name), progress=False)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    train(_cfg(tmp_path, "full"))
    half = _cfg(tmp_path, "half", steps=4, decay_steps=8)  # same schedule, stopped half way
    train(half)
    train(replace(half, steps=8, resume=True))
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "half" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 8
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:  # Adam's step count and both moments
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[i][key], sb[i][key]), (i, key)
    assert a["history"]["loss"] == b["history"]["loss"]  # dropout > 0: the RNG state matters too


def test_gradient_accumulation_equals_the_large_batch(tmp_path):
    big = _cfg(tmp_path, "big", steps=3, batch_size=8, dropout=0.0)
    acc = _cfg(tmp_path, "acc", steps=3, batch_size=4, grad_accum=2, dropout=0.0)
    ma, mb = train(big), train(acc)
    assert math.isclose(ma["last_step_loss"], mb["last_step_loss"], rel_tol=1e-5)
    a = torch.load(tmp_path / "big" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "acc" / "checkpoint.pt", weights_only=True)["model"]
    assert_params_close(a, b)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, "nan", steps=4, decay_steps=8)
    train(cfg)
    path = tmp_path / "nan" / "checkpoint.pt"
    before = path.read_bytes()
    with pytest.raises(FloatingPointError, match=r"loss is (nan|inf) at step 6"):
        train(replace(cfg, steps=8, resume=True, lr=1e30, min_lr=1e30))  # step 4 blows it up
    assert path.read_bytes() == before


def test_weight_decay_only_on_matrices():
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=11, block_size=8))
    opt = make_optimizer(model, TrainConfig(weight_decay=0.1), torch.device("cpu"))
    decay, no_decay = opt.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert sorted(names[id(p)].split(".", 3)[-1] for p in decay["params"]) == [
        "attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight",
    ]  # fmt: skip
    nd = {names[id(p)] for p in no_decay["params"]}
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight"} <= nd
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_learning_rate_warmup_then_cosine():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, steps=110)
    assert math.isclose(lr_at(0, cfg), 1e-4)
    assert math.isclose(lr_at(9, cfg), 1e-3)
    assert math.isclose(lr_at(60, cfg), 0.5 * (1e-3 + 1e-4))  # half way down the cosine
    assert math.isclose(lr_at(110, cfg), 1e-4)
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(10, 120))


def test_smoke_flag_finishes(tmp_path):
    m = train(TrainConfig(smoke=True, out_dir=str(tmp_path / "s"), progress=False))
    assert m["steps"] == 20 and m["dataset"] == "pydoc"
    assert m["value"] < math.log(m["vocab_size"])  # it learnt something


def test_bpe_text_is_tokenised_once_into_memmaps(tmp_path):
    from data import prepare

    text = GATE_TEXT * 4
    tok, tr, va = prepare(text, tmp_path, kind="bpe", vocab_size=280)
    assert tok.vocab_size == 280 and tr.dtype == "uint16"
    assert tok.decode([int(i) for i in tr] + [int(i) for i in va]) == text
    stamp = (tmp_path / "train.bin").stat().st_mtime_ns
    tok2, tr2, _ = prepare(text, tmp_path, kind="bpe", vocab_size=280)  # reused, not redone
    assert (tmp_path / "train.bin").stat().st_mtime_ns == stamp and (tr2 == tr).all()
    prepare(text, tmp_path, kind="char")  # another tokenizer: redone
    assert json.loads((tmp_path / "data.json").read_text())["tokenizer"] == "char"
