"""bench.py's plumbing: every model of a round holds the same weights, and `--nanogpt-dir`
imports a local clone's model.py (here a stand-in with nanoGPT's interface: GPTConfig fields,
GPT(config), forward(idx, targets) -> (logits, loss)). Timings are never asserted."""

import bench
import torch
from model import GPTConfig

STAND_IN = """
from dataclasses import dataclass
import torch
import model as ours

@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True

class GPT(ours.GPT):
    def __init__(self, c):
        print("number of parameters: ...")
        super().__init__(ours.GPTConfig(n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd,
                                        block_size=c.block_size, vocab_size=c.vocab_size))
        for block in self.transformer.h:  # nanoGPT's MLP holds its activation as .gelu
            block.mlp.gelu = torch.nn.GELU()
"""


def test_every_model_of_a_round_has_the_same_logits(tmp_path):
    (tmp_path / "model.py").write_text(STAND_IN)
    cfg = GPTConfig.from_preset("cpu-tiny", vocab_size=65)
    models = bench.build_models(cfg, torch.device("cpu"), str(tmp_path))
    assert set(models) == {"ours", "hf_eager", "ours_fused", "hf_sdpa", "nanogpt", "nanogpt_tanh"}
    assert models["nanogpt"].transformer.h[0].mlp.gelu.approximate == "none"
    assert all(b.mlp.gelu.approximate == "tanh" for b in models["nanogpt_tanh"].transformer.h)
    idx = torch.randint(0, 65, (2, cfg.block_size), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # nanoGPT returns every position's logits only when given targets
        logits = {
            k: m(idx).logits if k.startswith("hf") else m(idx, idx)[0] for k, m in models.items()
        }
    for name, x in logits.items():
        torch.testing.assert_close(x, logits["hf_eager"], rtol=1e-4, atol=1e-5, msg=name)


def test_nanogpt_pairs_are_printed_and_a_missing_clone_is_one_line(tmp_path, capsys):
    (tmp_path / "model.py").write_text(STAND_IN)
    assert bench.main(["--smoke", "--threads", "1", "--nanogpt-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "ours/nanogpt" in out and "ours_fused/nanogpt " in out and "ours_fused/nanogpt_tanh" in out
    )
    assert bench.main(["--smoke", "--nanogpt-dir", str(tmp_path / "nowhere")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --nanogpt-dir")


def test_compile_wraps_every_model_of_the_rounds(tmp_path, monkeypatch, capsys):
    (tmp_path / "model.py").write_text(STAND_IN)
    compiled = []
    monkeypatch.setattr(bench.torch, "compile", lambda m: compiled.append(type(m).__name__) or m)
    assert (
        bench.main(["--smoke", "--threads", "1", "--compile", "--nanogpt-dir", str(tmp_path)]) == 0
    )
    assert "torch.compile-d" in capsys.readouterr().out
    # two sizes (--smoke runs cpu-tiny twice) x six models; generation is not compiled
    assert len(compiled) == 12 and compiled.count("GPT2LMHeadModel") == 4
