"""Equivalence with Hugging Face's GPT2LMHeadModel (random weights, built locally: no download).

The oracle has 3 heads of 32 (an odd head count: a head split that only works for even counts
fails) and is compared in float64: logits, loss and the gradient of every parameter under a
random upstream gradient, to 1e-9. A config that sets what model.py does not implement is
refused in one line (convert.SUPPORTED).
"""

import json

import inference
import pytest
import torch
import transformers  # a test dependency (requirements-dev.txt): these tests must run, not skip
from convert import config_from_hf, hf_to_ours, load_pretrained
from harness import UserError
from model import GPT, GPTConfig

F64 = dict(rtol=1e-9, atol=1e-10)


def _hf_config(**kw):
    cfg = transformers.GPT2Config(
        n_layer=2, n_head=3, n_embd=96, n_positions=16, vocab_size=97, resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None, **kw,
    )  # fmt: skip
    cfg._attn_implementation = "eager"
    return cfg


def _hf_pair(seed=0, dtype=torch.float64):
    """A small random GPT2LMHeadModel and our GPT holding the same weights, both in eval mode."""
    torch.manual_seed(seed)
    hf_cfg = _hf_config()
    hf = transformers.GPT2LMHeadModel(hf_cfg).to(dtype).eval()
    with torch.no_grad():  # beyond the init (zero biases, unit norms): every weight must matter
        for name, p in hf.named_parameters():
            p.add_(torch.randn_like(p) * (0.2 if "ln_" in name or name.endswith("bias") else 0.1))
    ours = GPT(config_from_hf(hf_cfg.to_dict())).to(dtype).eval()
    ours.load_state_dict(hf_to_ours(hf.state_dict()), strict=True)
    return hf, ours


def test_logits_and_every_gradient_equal_huggingface_in_float64():
    hf, ours = _hf_pair()
    assert ours.config.n_head == 3 and ours.config.n_embd // ours.config.n_head == 32
    idx = torch.randint(0, 97, (3, 16))
    ref, (got, _) = hf(idx).logits, ours(idx)
    assert ref.dtype == got.dtype == torch.float64 and ref.abs().max() > 2.0
    torch.testing.assert_close(got, ref, **F64)
    g = torch.randn_like(ref)  # a random upstream gradient, not the mean loss's uniform one
    (ref * g).sum().backward()
    (got * g).sum().backward()
    want = hf_to_ours({n: p.grad for n, p in hf.named_parameters()})  # Conv1D grads transposed
    names = [n for n, _ in ours.named_parameters()]
    assert len(names) == len(list(hf.parameters())) == 2 + 12 * 2 + 2  # wte (= lm_head), wpe, ...
    for name, p in ours.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name
        torch.testing.assert_close(p.grad, want[name], **F64, msg=lambda m, n=name: f"{n}: {m}")


def test_loss_equals_huggingface_in_float64():
    hf, ours = _hf_pair(seed=1)
    idx = torch.randint(0, 97, (2, 16))
    ref = hf(idx, labels=idx).loss  # HF shifts the labels inside
    _, got = ours(idx[:, :-1], idx[:, 1:])
    torch.testing.assert_close(got, ref, **F64)


def test_float32_logits_equal_huggingface():
    hf, ours = _hf_pair(dtype=torch.float32)
    idx = torch.randint(0, 97, (3, 16))
    with torch.no_grad():
        assert (ours(idx)[0] - hf(idx).logits).abs().max().item() <= 1e-5


def test_greedy_generation_equals_huggingface():
    hf, ours = _hf_pair(seed=2, dtype=torch.float32)
    prompt = torch.randint(0, 97, (2, 4))
    with torch.no_grad():
        ref = hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False,
            pad_token_id=0, eos_token_id=None,
        )  # fmt: skip
    got = ours.generate(prompt, 12, temperature=0.0)  # 16 tokens: the whole context
    assert ref.shape == got.shape == (2, 16)
    assert torch.equal(got, ref)


def test_every_gpt2_small_name_and_shape_maps():
    with torch.device("meta"):
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config())
        ours = GPT(GPTConfig.from_preset("gpt2"))
    want = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    for sd in (hf.state_dict(), hf.transformer.state_dict()):  # model and hub-file naming
        got = {k: tuple(v.shape) for k, v in hf_to_ours(sd).items()}
        assert got == want
    assert config_from_hf(transformers.GPT2Config().to_dict()) == GPTConfig.from_preset("gpt2")


def test_conv1d_weights_are_transposed():
    hf, ours = _hf_pair()
    w_hf = hf.transformer.h[0].attn.c_attn.weight  # Conv1D: (in, out) = (96, 288)
    assert w_hf.shape == (96, 288)
    assert torch.equal(ours.transformer.h[0].attn.c_attn.weight, w_hf.t())


def test_mask_buffers_of_older_checkpoints_are_dropped():
    hf, ours = _hf_pair()
    sd = dict(hf.transformer.state_dict())  # hub-file naming: no "transformer." prefix, no lm_head
    sd["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 16, 16))  # as in OpenAI's converted files
    sd["h.0.attn.masked_bias"] = torch.tensor(-1e4)
    mapped = hf_to_ours(sd)
    assert set(mapped) == set(ours.state_dict())
    assert torch.equal(
        mapped["transformer.h.0.attn.c_attn.bias"], hf.transformer.h[0].attn.c_attn.bias
    )


@pytest.mark.parametrize(
    "setting",
    [
        {"layer_norm_epsilon": 1e-6},
        {"activation_function": "relu"},
        {"scale_attn_by_inverse_layer_idx": True},
        {"scale_attn_weights": False},
        {"n_inner": 200},
    ],
)
def test_a_config_that_model_py_does_not_implement_is_refused(setting):
    with pytest.raises(UserError, match=f"not supported: {next(iter(setting))}="):
        config_from_hf(_hf_config(**setting).to_dict())


def test_what_model_py_implements_is_accepted():
    for ok in ({"activation_function": "gelu_pytorch_tanh"}, {"n_inner": 4 * 96}, {}):
        assert config_from_hf(_hf_config(**ok).to_dict()).n_embd == 96


def test_a_refused_directory_is_one_line_in_the_cli(tmp_path, capsys):
    hf = transformers.GPT2LMHeadModel(_hf_config(scale_attn_by_inverse_layer_idx=True))
    hf.save_pretrained(tmp_path)  # config.json + model.safetensors, as on the hub
    assert json.loads((tmp_path / "config.json").read_text())["scale_attn_by_inverse_layer_idx"]
    with pytest.raises(UserError, match="scale_attn_by_inverse_layer_idx=True"):
        load_pretrained(str(tmp_path))
    capsys.readouterr()  # save_pretrained's progress bar
    assert inference.main(["--init-from", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: this GPT-2 config is not supported")
