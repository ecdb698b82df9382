"""Units: the hand-written layers against torch's own, in float64, outputs and gradients;
parameter counts; KV-cache generation against generation without it; sampling."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from model import GPT, CausalSelfAttention, GPTConfig, KVCache, LayerNorm, gelu, sample

torch.set_num_threads(1)
TOL = dict(rtol=1e-10, atol=1e-12)


def _grads(*tensors):
    return [t.grad.clone() for t in tensors]


def test_layernorm_matches_torch_outputs_and_grads():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16, dtype=torch.float64) * 3 + 1
    ours, ref = LayerNorm(16).double(), nn.LayerNorm(16, eps=1e-5).double()
    with torch.no_grad():
        ours.weight.copy_(torch.randn(16))
        ours.bias.copy_(torch.randn(16))
        ref.weight.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), ref(x2)
    torch.testing.assert_close(y1, y2, **TOL)
    g = torch.randn_like(y1)  # random upstream gradient: all-ones would make the true dx zero
    y1.backward(g)
    y2.backward(g)
    for a, b in zip(_grads(x1, ours.weight, ours.bias), _grads(x2, ref.weight, ref.bias)):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_backward_passes_gradcheck_and_matches_torch_without_bias(bias):
    """gradcheck: the written-out backward against central finite differences, float64."""
    from model import LayerNormFunction

    torch.manual_seed(0)
    x = (torch.randn(2, 3, 8, dtype=torch.float64) * 2 + 0.5).requires_grad_()
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, dtype=torch.float64, requires_grad=True) if bias else None
    assert torch.autograd.gradcheck(LayerNormFunction.apply, (x, w, b, 1e-5))
    ref = nn.LayerNorm(8, bias=bias).double()
    with torch.no_grad():
        ref.weight.copy_(w)
        if bias:
            ref.bias.copy_(b)
    x2 = x.detach().clone().requires_grad_()
    y1, y2 = LayerNormFunction.apply(x, w, b, 1e-5), ref(x2)
    torch.testing.assert_close(y1, y2, **TOL)
    g = torch.randn_like(y1)
    got = torch.autograd.grad(y1, [x, w] + ([b] if bias else []), g)
    want = torch.autograd.grad(y2, [x2, ref.weight] + ([ref.bias] if bias else []), g)
    for a, c in zip(got, want):
        torch.testing.assert_close(a, c, **TOL)


def test_gelu_backward_passes_gradcheck():
    from model import GELUFunction

    x = (torch.randn(4, 7, dtype=torch.float64) * 3).requires_grad_()
    assert torch.autograd.gradcheck(GELUFunction.apply, (x,))


def test_gelu_matches_torch_tanh_gelu():
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = gelu(x1), F.gelu(x2, approximate="tanh")
    torch.testing.assert_close(y1, y2, **TOL)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, **TOL)
    assert not torch.allclose(gelu(x), F.gelu(x)), "must be the tanh approximation, not erf"


def _attention(fused=False, dropout=0.0):
    torch.manual_seed(0)
    cfg = GPTConfig(n_head=4, n_embd=32, block_size=16, dropout=dropout, fused_attention=fused)
    attn = CausalSelfAttention(cfg).double()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.3)  # non-zero biases, so a dropped bias would show
    return attn


def test_attention_matches_nn_multiheadattention():
    attn = _attention()
    ref = nn.MultiheadAttention(32, 4, bias=True, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_weight.copy_(attn.c_attn.weight)  # [W_Q; W_K; W_V], (3C, C)
        ref.in_proj_bias.copy_(attn.c_attn.bias)
        ref.out_proj.weight.copy_(attn.c_proj.weight)
        ref.out_proj.bias.copy_(attn.c_proj.bias)
    x = torch.randn(2, 11, 32, dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    future = torch.triu(torch.ones(11, 11, dtype=torch.bool), diagonal=1)  # True = masked
    y1 = attn(x1)
    y2, _ = ref(x2, x2, x2, attn_mask=future, need_weights=False)
    torch.testing.assert_close(y1, y2, **TOL)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    ours = _grads(x1, attn.c_attn.weight, attn.c_attn.bias, attn.c_proj.weight, attn.c_proj.bias)
    theirs = _grads(
        x2, ref.in_proj_weight, ref.in_proj_bias, ref.out_proj.weight, ref.out_proj.bias
    )
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **TOL)


def test_handwritten_attention_matches_fused_sdpa_path():
    ours, fused = _attention(fused=False), _attention(fused=True)
    x = torch.randn(3, 16, 32, dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), fused(x2)
    torch.testing.assert_close(y1, y2, **TOL)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    for a, b in zip(_grads(x1, *ours.parameters()), _grads(x2, *fused.parameters())):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("fused", [False, True])
def test_kept_attention_weights_match_nn_multiheadattention(fused):
    attn = _attention(fused=fused)
    ref = nn.MultiheadAttention(32, 4, bias=True, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_weight.copy_(attn.c_attn.weight)
        ref.in_proj_bias.copy_(attn.c_attn.bias)
    x = torch.randn(2, 11, 32, dtype=torch.float64)
    attn(x)
    assert attn.weights is None  # off by default: the usual forward keeps nothing
    attn.keep_weights = True
    y = attn(x)
    future = torch.triu(torch.ones(11, 11, dtype=torch.bool), diagonal=1)
    _, w = ref(x, x, x, attn_mask=future, need_weights=True, average_attn_weights=False)
    assert attn.weights.shape == (2, 4, 11, 11)  # (B, nh, T, T)
    torch.testing.assert_close(attn.weights, w, **TOL)
    attn.keep_weights = False
    torch.testing.assert_close(attn(x), y, **TOL)  # keeping them does not change the output


def test_attention_is_causal():
    attn = _attention()
    x = torch.randn(1, 10, 32, dtype=torch.float64)
    y = attn(x)
    x2 = x.clone()
    x2[:, 6:] = torch.randn(1, 4, 32, dtype=torch.float64)  # change only the future of t <= 5
    torch.testing.assert_close(attn(x2)[:, :6], y[:, :6], **TOL)
    assert not torch.allclose(attn(x2)[:, 6:], y[:, 6:])


def test_gpt2_small_has_124439808_parameters_and_ties_the_head():
    with torch.device("meta"):
        model = GPT(GPTConfig.from_preset("gpt2"))
    assert model.num_params() == 124_439_808
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.num_params(non_embedding=True) == 124_439_808 - 1024 * 768


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown preset 'gpt5'"):
        GPTConfig.from_preset("gpt5")


def test_init_scales_residual_projections():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=8, n_head=4, n_embd=256, vocab_size=64, block_size=8))
    h = model.transformer.h
    std_proj = torch.cat([b.attn.c_proj.weight.flatten() for b in h]).std().item()
    std_fc = torch.cat([b.mlp.c_fc.weight.flatten() for b in h]).std().item()
    assert abs(std_fc - 0.02) < 0.0005
    assert abs(std_proj - 0.02 / math.sqrt(2 * 8)) < 0.0002
    assert torch.all(h[0].attn.c_attn.bias == 0)


def _tiny(seed=0, block_size=16, dtype=torch.float64):
    torch.manual_seed(seed)
    cfg = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=block_size, vocab_size=23)
    model = GPT(cfg).to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # sharper distributions than the 0.02 init
    return model


def test_forward_shapes_and_loss_is_cross_entropy():
    model = _tiny()
    idx = torch.randint(0, 23, (3, 16))
    tgt = torch.randint(0, 23, (3, 16))
    logits, loss = model(idx, tgt)
    assert logits.shape == (3, 16, 23)
    logp = torch.log_softmax(logits, dim=-1)
    manual = -logp.gather(-1, tgt.unsqueeze(-1)).mean()
    torch.testing.assert_close(loss, manual.float(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_initial_loss_is_log_vocab():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=50))
    idx, tgt = torch.randint(0, 50, (2, 8, 16))  # targets independent of the inputs
    assert abs(model(idx, tgt)[1].item() - math.log(50)) < 0.05


def test_kv_cache_logits_equal_full_forward():
    model = _tiny()
    idx = torch.randint(0, 23, (2, 12))
    full, _ = model(idx)
    cache = KVCache(2)
    parts = [model(idx[:, :5], cache=cache)[0]]  # prefill 5, then one token at a time
    for t in range(5, 12):
        parts.append(model(idx[:, t : t + 1], cache=cache)[0])
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-10, atol=1e-10)
    assert cache.length == 12


@pytest.mark.parametrize(
    "temperature,top_k,top_p", [(0.0, None, None), (1.0, None, None), (0.9, 5, 0.9)]
)
def test_generation_with_cache_equals_without_token_for_token(temperature, top_k, top_p):
    model = _tiny(block_size=16)
    prompt = torch.randint(0, 23, (2, 3))
    out = []
    for use_cache in (True, False):
        gen = torch.Generator().manual_seed(7)
        out.append(model.generate(prompt, 30, temperature=temperature, top_k=top_k, top_p=top_p,
                                  use_cache=use_cache, generator=gen))  # fmt: skip
    assert out[0].shape == (2, 33)  # 33 > block_size 16: the context was cropped on the way
    assert torch.equal(out[0], out[1])


def test_generation_past_the_context_crops_like_gpt2():
    model = _tiny(block_size=8)
    idx = torch.randint(0, 23, (1, 5))
    got = model.generate(idx, 12, temperature=0.0)
    for _ in range(12):  # the reference loop: argmax of the last block_size tokens
        logits, _ = model(idx[:, -8:])
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(got, idx)


def test_sampling_filters():
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    greedy = logits.argmax(-1, keepdim=True)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(sample(logits, 1.0, top_k=1, generator=gen), greedy)
    assert torch.equal(sample(logits, 1.0, top_p=1e-6, generator=gen), greedy)
    top5 = torch.topk(logits, 5, dim=-1).indices
    for _ in range(50):
        s = sample(logits, 2.0, top_k=5, generator=gen)
        assert (top5 == s).any(-1).all()
    # top-p keeps the smallest set of tokens whose mass reaches p: here exactly the two largest
    two = torch.tensor([[3.0, 2.9, -5.0, -5.0, -6.0]])
    draws = torch.cat([sample(two, 1.0, top_p=0.9, generator=gen) for _ in range(200)])
    assert set(draws.flatten().tolist()) == {0, 1}


def test_show_params_groups_add_up_to_each_total(capsys):
    import show_params

    show_params.main([])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:-2]]
    assert [r[0] for r in rows] == list(show_params.PRESETS)
    for r in rows:
        wte, wpe, attn, mlp, ln, total = (int(v.replace(",", "")) for v in r[5:])
        assert wte + wpe + attn + mlp + ln == total, r[0]
    assert rows[3][0] == "gpt2" and rows[3][-1] == "124,439,808"
    show_params.main(["gpt2"])  # per module: block 0 shown, blocks 1..11 as one line
    counts = [
        int(line.split()[-1].replace(",", "")) for line in capsys.readouterr().out.splitlines()[1:]
    ]
    assert sum(counts[:-1]) == counts[-1] == 124_439_808
