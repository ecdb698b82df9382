"""Inference smoke: the gate checkpoint continues its memorised text (from the checkpoint file
alone); official-format weights load from a local directory; bad input gets one clear line and
exit 1, never a traceback."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import inference
import pytest
import torch
from convert import load_pretrained

FOLDER = Path(__file__).resolve().parents[1]


def _run(argv, capsys):
    assert inference.main([*argv, "--threads", "1"]) == 0
    return capsys.readouterr().out


def test_greedy_continuation_of_the_memorised_text(gate_run, tmp_path, capsys):
    only = tmp_path / "elsewhere.pt"  # the checkpoint alone: no tokenizer.json beside it
    shutil.copy(gate_run[0] / "checkpoint.pt", only)
    args = ["--checkpoint", str(only), "--prompt", "To be, or not to be", "--temperature", "0",
            "--max-new-tokens", "40"]  # fmt: skip
    text = _run(args, capsys)
    assert "that is the question" in text
    assert _run(args + ["--no-kv-cache"], capsys) == text
    assert _run(args + ["--seed", "7"], capsys) == text  # greedy: no randomness
    two = _run(args + ["--num-samples", "2"], capsys)
    assert two.count("--- sample") == 2 and two.count("that is the question") == 2


def test_sampling_is_seeded(gate_run, capsys):
    out_dir, _ = gate_run
    args = [
        "--out-dir",
        str(out_dir),
        "--max-new-tokens",
        "30",
        "--temperature",
        "1.5",
        "--top-k",
        "10",
    ]
    a, b = _run(args + ["--seed", "1"], capsys), _run(args + ["--seed", "1"], capsys)
    assert a == b and len(a) > 30
    assert _run(args + ["--seed", "2"], capsys) != a


@pytest.mark.parametrize(
    "setup,argv,message",
    [
        (None, ["--prompt", "日本"], "--prompt: characters not in the vocabulary: '日', '本'"),
        ("missing", [], "no checkpoint at"),
        ("corrupt", [], "is corrupt or not a checkpoint"),
        (None, ["--init-from", "no/such/dir"], "not a directory and not one of gpt2"),
        (None, ["--num-samples", "0"], "--num-samples must be at least 1, got 0"),
        (None, ["--num-samples", "-1"], "--num-samples must be at least 1, got -1"),
        (None, ["--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
        (None, ["--temperature", "-1"], "--temperature must be >= 0 (0 = greedy)"),
        (None, ["--temperature", "nan"], "--temperature must be >= 0"),
        (None, ["--top-k", "0"], "--top-k must be at least 1"),
        (None, ["--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (None, ["--temperature", "0", "--top-k", "5"], "do not apply to greedy decoding"),
        (None, ["--device", "foo"], "--device foo: expected auto, cpu, cuda or mps"),
        (None, ["--prompt", ""], "the prompt is empty"),
    ],
)
def test_bad_input_is_one_clear_error(gate_run, tmp_path, capsys, setup, argv, message):
    out_dir = gate_run[0]
    if setup:
        out_dir = tmp_path / setup
        out_dir.mkdir()
        if setup == "corrupt":
            (out_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert inference.main(["--out-dir", str(out_dir), *argv]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert captured.out == ""  # nothing was generated


def test_cli_without_weights_or_internet_says_what_is_needed(tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
    }  # never the network
    proc = subprocess.run([sys.executable, "inference.py", "--init-from", "gpt2"], cwd=FOLDER,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.safetensors" in lines[0] and "internet" in lines[0]


def _write_hf_directory(path: Path):
    """A tiny GPT-2 in Hugging Face's on-disk format, with a 256-byte GPT-2 style vocabulary."""
    import transformers
    from tokenizer import bytes_to_unicode

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=32, vocab_size=256)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(path)  # config.json + model.safetensors
    b2u = bytes_to_unicode()
    (path / "vocab.json").write_text(json.dumps({b2u[b]: b for b in range(256)}))
    (path / "merges.txt").write_text("#version: 0.2\n")
    return hf


def test_init_from_a_local_huggingface_directory(tmp_path, capsys):
    hf = _write_hf_directory(tmp_path)
    model, _ = load_pretrained(str(tmp_path))
    idx = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        assert (model(idx)[0] - hf(idx).logits).abs().max() <= 1e-5
    text = _run(
        ["--init-from", str(tmp_path), "--prompt", "héllo", "--max-new-tokens", "40"], capsys
    )
    assert text.startswith("--- sample 1 ---\nhéllo")  # 40 tokens: past the 32-token context


def test_train_init_from_a_local_huggingface_directory(tmp_path):
    from conftest import GATE_TEXT
    from train import TrainConfig, train

    hf = _write_hf_directory(tmp_path / "hf")
    (tmp_path / "text.txt").write_text(GATE_TEXT * 4)
    cfg = TrainConfig(init_from=str(tmp_path / "hf"), data=str(tmp_path / "text.txt"), steps=3,
                      batch_size=2, eval_iters=1, lr=1e-4, threads=1, out_dir=str(tmp_path / "run"), progress=False)  # fmt: skip
    m = train(cfg)
    assert m["tokenizer"] == "BPETokenizer" and m["vocab_size"] == 256 and m["steps"] == 3
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["model_config"]["n_embd"] == 32  # the pretrained shape, not the preset's
    start = hf.transformer.h[0].mlp.c_fc.weight.t()
    moved = (ckpt["model"]["transformer.h.0.mlp.c_fc.weight"] - start).abs().max()
    assert 0 < moved < 1e-2  # fine-tuned from the official weights, a few small steps
    m = train(replace(cfg, steps=4, resume=True))  # GPT-2's tokenizer again, not --tokenizer's
    assert m["tokenizer"] == "BPETokenizer" and m["vocab_size"] == 256 and m["steps"] == 4


def test_attention_maps_are_causal_distributions(gate_run, tmp_path):
    import visualize
    from inference import load_model

    model, tok = load_model(str(gate_run[0] / "checkpoint.pt"), None, torch.device("cpu"))
    ids = torch.tensor([tok.encode("To be, or not to be")])
    maps = visualize.attention_maps(model, ids)  # (L, H, T, T)
    T = ids.size(1)
    assert maps.shape == (model.config.n_layer, model.config.n_head, T, T)
    torch.testing.assert_close(maps.sum(-1), torch.ones(maps.shape[:-1]))
    assert torch.all(maps.triu(diagonal=1) == 0)
    assert not any(b.attn.keep_weights or b.attn.weights is not None for b in model.transformer.h)
    png = tmp_path / "new_dir" / "att.png"  # a directory that does not exist yet
    assert (
        visualize.main(["--out-dir", str(gate_run[0]), "--prompt", "To be", "--out", str(png)]) == 0
    )
    assert png.stat().st_size > 1000
    assert visualize.token_labels(tok, tok.encode("To be\n")) == [
        "T",
        "o",
        "\u2423",
        "b",
        "e",
        "\\n",
    ]
