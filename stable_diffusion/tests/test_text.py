"""The text encoder's layer against nn.TransformerEncoderLayer(norm_first=True), float64; the tokenizer."""

import pytest
import torch
import torch.nn as nn
from harness import UserError
from text import TextConfig, TextEncoder, TextLayer, Tokenizer


@pytest.fixture(autouse=True)
def float64():
    """Every comparison here in float64, restored afterwards for the other test files."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def test_text_layer_matches_torch_pre_norm_encoder_layer_with_padding():
    torch.manual_seed(0)
    d, heads = 12, 3
    ours = TextLayer(d, heads)
    for p in ours.parameters():
        nn.init.normal_(p, std=0.3)
    ref = nn.TransformerEncoderLayer(
        d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    )
    with torch.no_grad():
        a = ours.attn
        ref.self_attn.in_proj_weight.copy_(torch.cat([a.to_q.weight, a.to_k.weight, a.to_v.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([a.to_q.bias, a.to_k.bias, a.to_v.bias]))
        (
            ref.self_attn.out_proj.weight.copy_(a.to_out.weight),
            ref.self_attn.out_proj.bias.copy_(a.to_out.bias),
        )
        for ours_name, ref_name in [
            ("norm1", "norm1"),
            ("norm2", "norm2"),
            ("linear1", "linear1"),
            ("linear2", "linear2"),
        ]:
            getattr(ref, ref_name).weight.copy_(getattr(ours, ours_name).weight)
            getattr(ref, ref_name).bias.copy_(getattr(ours, ours_name).bias)
    x = torch.randn(2, 5, d, requires_grad=True)
    pad = torch.tensor([[False, False, False, True, True], [False] * 5])
    up = torch.randn(2, 5, d)
    y1, y2 = ours(x, pad), ref(x, src_key_padding_mask=pad)
    real = ~pad  # torch's fast path may zero padded rows; compare the real tokens
    torch.testing.assert_close(y1[real], y2[real])
    g1 = torch.autograd.grad(
        (y1[real] * up[real]).sum(), [x, ours.linear1.weight, ours.attn.to_q.weight]
    )
    g2 = torch.autograd.grad(
        (y2[real] * up[real]).sum(), [x, ref.linear1.weight, ref.self_attn.in_proj_weight]
    )
    torch.testing.assert_close(g1[0], g2[0])
    torch.testing.assert_close(g1[1], g2[1])
    torch.testing.assert_close(g1[2], g2[2][:d])


def test_tokenizer_pads_starts_with_bos_and_refuses_unknown_or_long_prompts():
    tok = Tokenizer(["a", "bold", "seven"], context=4)
    ids, mask = tok.encode(["a bold seven", ""])
    assert ids[0].tolist() == [1, tok.ids["a"], tok.ids["bold"], tok.ids["seven"]]
    assert ids[1].tolist() == [1, 0, 0, 0] and mask[1].tolist() == [False, True, True, True]
    with pytest.raises(
        UserError, match="unknown words \\['purple'\\].*vocabulary is: a bold seven"
    ):
        tok.encode(["a purple seven"])
    with pytest.raises(UserError, match="at most 3"):
        tok.encode(["a bold bold seven"])


def test_the_empty_prompt_is_encoded_from_bos_alone():
    torch.manual_seed(0)
    tok = Tokenizer(["seven"], context=4)
    enc = TextEncoder(
        TextConfig(vocab_size=len(tok.vocab), context=4, d_model=8, n_head=2, n_layer=1)
    )
    ids, mask = tok.encode([""])
    out = enc(ids, mask)
    assert torch.isfinite(out).all()
    ids2 = ids.clone()
    ids2[0, 1:] = tok.ids["seven"]  # what stands in padded slots must not matter to the BOS token
    torch.testing.assert_close(enc(ids2, mask)[0, 0], out[0, 0])
