"""Equivalence with Hugging Face's GPT2LMHeadModel (random weights, built locally: no download)."""

import torch
import transformers  # a test dependency (requirements-dev.txt): these tests must run, not skip
from convert import config_from_hf, hf_to_ours
from model import GPT, GPTConfig

torch.set_num_threads(1)


def _hf_pair(seed=0):
    """A small random GPT2LMHeadModel and our GPT holding the same weights, both in eval mode."""
    torch.manual_seed(seed)
    hf_cfg = transformers.GPT2Config(
        n_layer=2, n_head=4, n_embd=64, n_positions=32, vocab_size=97,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    hf_cfg._attn_implementation = "eager"
    hf = transformers.GPT2LMHeadModel(hf_cfg).eval()
    with torch.no_grad():  # beyond the init (zero biases, unit norms): every weight must matter
        for name, p in hf.named_parameters():
            p.add_(torch.randn_like(p) * (0.2 if "ln_" in name or name.endswith("bias") else 0.1))
    ours = GPT(config_from_hf(hf_cfg.to_dict())).eval()
    ours.load_state_dict(hf_to_ours(hf.state_dict()), strict=True)
    return hf, ours


def test_logits_equal_huggingface():
    hf, ours = _hf_pair()
    idx = torch.randint(0, 97, (3, 32))
    with torch.no_grad():
        ref = hf(idx).logits
        got, _ = ours(idx)
    assert ref.abs().max() > 2.0  # not a trivially small comparison
    assert (got - ref).abs().max().item() <= 1e-5


def test_loss_equals_huggingface():
    hf, ours = _hf_pair(seed=1)
    idx = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        ref = hf(idx, labels=idx).loss  # HF shifts the labels inside
        _, got = ours(idx[:, :-1], idx[:, 1:])
    assert abs(ref.item() - got.item()) < 1e-5


def test_greedy_generation_equals_huggingface():
    hf, ours = _hf_pair(seed=2)
    prompt = torch.randint(0, 97, (2, 4))
    with torch.no_grad():
        ref = hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=24, do_sample=False,
            pad_token_id=0, eos_token_id=None,
        )  # fmt: skip
    got = ours.generate(prompt, 24, temperature=0.0)
    assert ref.shape == got.shape == (2, 28)
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
    w_hf = hf.transformer.h[0].attn.c_attn.weight  # Conv1D: (in, out) = (64, 192)
    assert w_hf.shape == (64, 192)
    assert torch.equal(ours.transformer.h[0].attn.c_attn.weight, w_hf.t())


def test_mask_buffers_of_older_checkpoints_are_dropped():
    hf, ours = _hf_pair()
    sd = dict(hf.transformer.state_dict())  # hub-file naming: no "transformer." prefix, no lm_head
    sd["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 32, 32))  # as in OpenAI's converted files
    sd["h.0.attn.masked_bias"] = torch.tensor(-1e4)
    mapped = hf_to_ours(sd)
    assert set(mapped) == set(ours.state_dict())
    assert torch.equal(
        mapped["transformer.h.0.attn.c_attn.bias"], hf.transformer.h[0].attn.c_attn.bias
    )
