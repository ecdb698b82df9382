"""Hand-written layers vs the torch modules that do the same job, float64, outputs AND gradients.

Oracles: F.scaled_dot_product_attention, nn.MultiheadAttention, nn.LayerNorm,
nn.TransformerEncoderLayer, nn.TransformerDecoderLayer (relu, dropout 0, batch_first), and the
whole model: nn.Embedding x sqrt(d_model) + the sinusoidal table written from the formula, then
nn.TransformerEncoder / nn.TransformerDecoder (with their final LayerNorm when pre-norm) and a
linear output layer, against model.Transformer: logits and every parameter gradient.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from model import (
    DecoderLayer,
    EncoderLayer,
    LayerNorm,
    MultiHeadAttention,
    Transformer,
    TransformerConfig,
    causal_mask,
    scaled_dot_product_attention,
    sinusoidal_table,
)
from torch import nn

D_MODEL, N_HEAD, D_FF = 16, 4, 24


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def _rand(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


def _assert_grads(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def _copy_mha(ours: MultiHeadAttention, ref: nn.MultiheadAttention):
    """nn.MultiheadAttention packs W_q, W_k, W_v into in_proj_weight (3D, D), in that order."""
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.w_q.weight, ours.w_k.weight, ours.w_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.w_q.bias, ours.w_k.bias, ours.w_v.bias]))
        ref.out_proj.weight.copy_(ours.w_o.weight)
        ref.out_proj.bias.copy_(ours.w_o.bias)


def _torch_name(name: str) -> str:
    """Our parameter name -> the torch module's: ff.linear* -> linear*, cross_attn ->
    multihead_attn, w_o -> out_proj, embeddings and final norms by their torch names."""
    name = name.replace("ff.", "").replace("cross_attn.", "multihead_attn.")
    name = name.replace("w_o.", "out_proj.").replace("final_norm.", "norm.")
    return name.replace("encoder.embed.", "src_embed.").replace("decoder.embed.", "tgt_embed.")


def _as_torch(named) -> dict:
    """{torch name: tensor} from our (name, tensor) pairs; W_q, W_k, W_v (and their biases)
    are concatenated into in_proj_*, in that order, as nn.MultiheadAttention packs them."""
    out = {}
    for name, t in named:
        name = _torch_name(name)
        for w in ("w_q", "w_k", "w_v"):
            if f"{w}." in name:
                prefix, kind = name.split(f"{w}.")
                out.setdefault(f"{prefix}in_proj_{kind}", []).append(t)
                break
        else:
            out[name] = t
    return {k: torch.cat(v) if isinstance(v, list) else v for k, v in out.items()}


def _ref_grads(ours: nn.Module) -> dict:
    """Every parameter gradient of ours (biases included) under the torch module's names."""
    return _as_torch((n, p.grad) for n, p in ours.named_parameters())


def _check_vs_ref(ours, ref, out, out_ref, inputs, tol):
    """Outputs, input gradients and EVERY parameter gradient under a random upstream gradient."""
    torch.testing.assert_close(out, out_ref, rtol=tol, atol=tol)
    g = torch.randn_like(out)  # an all-ones gradient would make LayerNorm's true dx zero
    gi = torch.autograd.grad(out, inputs, g, retain_graph=True)
    gi_ref = torch.autograd.grad(out_ref, inputs, g, retain_graph=True)
    _assert_grads(gi, gi_ref)
    (out * g).sum().backward()
    (out_ref * g).sum().backward()
    ours_grads, ref_grads = _ref_grads(ours), {n: p.grad for n, p in ref.named_parameters()}
    assert ours_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        assert ref_grads[name] is not None, name
        torch.testing.assert_close(ours_grads[name], ref_grads[name], rtol=1e-10, atol=1e-10)


def test_sinusoidal_table_matches_formula():
    table = sinusoidal_table(50, 8).double()
    pos, i = 37, 3  # dims 6 and 7
    angle = pos / 10000 ** (2 * i / 8)
    assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)
    assert torch.equal(table[0, 1::2], torch.ones(4))  # cos(0) = 1


@pytest.mark.parametrize("kind", ["none", "padding", "causal"])
def test_attention_vs_sdpa(kind):
    q, k, v = _rand(2, 3, 5, 4), _rand(2, 3, 6, 4), _rand(2, 3, 6, 7)
    mask = None
    if kind == "padding":
        mask = torch.ones(2, 1, 1, 6, dtype=torch.bool)
        mask[0, ..., 4:] = False
    elif kind == "causal":
        mask = torch.ones(5, 6, dtype=torch.bool).tril(diagonal=1)
    ours, weights = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))
    g = torch.randn_like(ours)  # random upstream gradient
    ours_grads = torch.autograd.grad(ours, (q, k, v), g)
    ref_grads = torch.autograd.grad(ref, (q, k, v), g)
    _assert_grads(ours_grads, ref_grads)


def test_multi_head_attention_vs_torch():
    ours = MultiHeadAttention(D_MODEL, N_HEAD).double()
    ref = nn.MultiheadAttention(D_MODEL, N_HEAD, dropout=0.0, batch_first=True).double()
    _copy_mha(ours, ref)
    xq, xkv = _rand(3, 5, D_MODEL), _rand(3, 7, D_MODEL)
    keep = torch.ones(3, 7, dtype=torch.bool)
    keep[1, 5:] = False
    keep[2, 3:] = False
    out = ours(xq, xkv, keep[:, None, None, :])
    out_ref, _ = ref(xq, xkv, xkv, key_padding_mask=~keep)  # torch: True = ignore
    _check_vs_ref(ours, ref, out, out_ref, (xq, xkv), tol=1e-12)


def test_layer_norm_vs_torch():
    ours, ref = LayerNorm(D_MODEL).double(), nn.LayerNorm(D_MODEL).double()
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
        ref.weight.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
    x = (torch.randn(4, 3, D_MODEL, dtype=torch.float64) * 3 + 1).requires_grad_()
    out, out_ref = ours(x), ref(x)
    _check_vs_ref(ours, ref, out, out_ref, (x,), tol=1e-12)


def _copy_common(ours, ref):
    with torch.no_grad():
        for name in ("linear1", "linear2"):
            getattr(ref, name).weight.copy_(getattr(ours.ff, name).weight)
            getattr(ref, name).bias.copy_(getattr(ours.ff, name).bias)
        for name in ("norm1", "norm2", "norm3"):
            if hasattr(ours, name):
                getattr(ours, name).weight.normal_()
                getattr(ours, name).bias.normal_()
                getattr(ref, name).weight.copy_(getattr(ours, name).weight)
                getattr(ref, name).bias.copy_(getattr(ours, name).bias)
    _copy_mha(ours.self_attn, ref.self_attn)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_encoder_layer_vs_torch(pre_norm):
    ours = EncoderLayer(D_MODEL, N_HEAD, D_FF, dropout=0.0, pre_norm=pre_norm).double()
    ref = nn.TransformerEncoderLayer(
        D_MODEL, N_HEAD, D_FF, dropout=0.0, activation="relu", batch_first=True, norm_first=pre_norm
    ).double()
    _copy_common(ours, ref)
    x = _rand(3, 6, D_MODEL)
    keep = torch.ones(3, 6, dtype=torch.bool)
    keep[0, 4:] = False
    out = ours(x, keep[:, None, None, :])
    out_ref = ref(x, src_key_padding_mask=~keep)
    _check_vs_ref(ours, ref, out, out_ref, (x,), tol=1e-10)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_decoder_layer_vs_torch(pre_norm):
    ours = DecoderLayer(D_MODEL, N_HEAD, D_FF, dropout=0.0, pre_norm=pre_norm).double()
    ref = nn.TransformerDecoderLayer(
        D_MODEL, N_HEAD, D_FF, dropout=0.0, activation="relu", batch_first=True, norm_first=pre_norm
    ).double()
    _copy_common(ours, ref)
    _copy_mha(ours.cross_attn, ref.multihead_attn)
    y, memory = _rand(2, 5, D_MODEL), _rand(2, 7, D_MODEL)
    keep = torch.ones(2, 7, dtype=torch.bool)
    keep[1, 4:] = False
    out = ours(y, memory, keep[:, None, None, :], causal_mask(5))
    out_ref = ref(y, memory, tgt_mask=~causal_mask(5), memory_key_padding_mask=~keep)
    _check_vs_ref(ours, ref, out, out_ref, (y, memory), tol=1e-10)


class TorchTransformer(nn.Module):
    """The oracle: torch's stacks inside embeddings and an output layer built here."""

    def __init__(self, c: TransformerConfig):
        super().__init__()
        D = c.d_model
        self.src_embed = nn.Embedding(c.src_vocab, D)
        self.tgt_embed = nn.Embedding(c.tgt_vocab, D)
        kw = dict(dropout=0.0, activation="relu", batch_first=True, norm_first=c.pre_norm)
        enc = nn.TransformerEncoderLayer(D, c.n_head, c.d_ff, **kw)
        dec = nn.TransformerDecoderLayer(D, c.n_head, c.d_ff, **kw)
        final = (lambda: nn.LayerNorm(D)) if c.pre_norm else (lambda: None)  # Xiong et al.
        self.encoder = nn.TransformerEncoder(enc, c.n_layer, final(), enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dec, c.n_layer, final())
        self.out_proj = nn.Linear(D, c.tgt_vocab, bias=False)
        pos = torch.arange(c.max_len, dtype=torch.float64)[:, None]
        i = torch.arange(D, dtype=torch.float64)[None, :]
        angle = pos / 10000 ** ((i - i % 2) / D)  # PE(pos, 2i) = sin, PE(pos, 2i + 1) = cos
        self.pe = torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))  # (L, D)
        self.scale = math.sqrt(D)  # embeddings times sqrt(d_model), section 3.4

    def forward(self, src, tgt, pad=0):
        S, T = src.shape[1], tgt.shape[1]
        x = self.src_embed(src) * self.scale + self.pe[:S]
        memory = self.encoder(x, src_key_padding_mask=src == pad)  # torch: True = ignore
        y = self.tgt_embed(tgt) * self.scale + self.pe[:T]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        h = self.decoder(y, memory, tgt_mask=future, tgt_key_padding_mask=tgt == pad,
                         memory_key_padding_mask=src == pad)  # fmt: skip
        return self.out_proj(h)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_whole_model_vs_torch_transformer(pre_norm):
    cfg = TransformerConfig(src_vocab=11, tgt_vocab=13, d_model=D_MODEL, n_head=N_HEAD,
                            n_layer=2, d_ff=D_FF, max_len=20, pre_norm=pre_norm)  # fmt: skip
    torch.set_default_dtype(torch.float64)  # the sinusoid table too is built in float64
    try:
        ours = Transformer(cfg)
    finally:
        torch.set_default_dtype(torch.float32)
    with torch.no_grad():  # LayerNorm gamma = 1, beta = 0 would hide a missing or swapped norm
        for name, p in ours.named_parameters():
            if "norm" in name:
                p.normal_()
    ref = TorchTransformer(cfg).double()
    ref.load_state_dict(_as_torch((n, p.detach()) for n, p in ours.named_parameters()))
    src = torch.tensor([[1, 5, 6, 7, 8, 9, 4], [1, 9, 10, 4, 0, 0, 0]])  # (B, S), padded
    tgt = torch.tensor([[1, 4, 5, 6, 7, 12], [1, 7, 8, 0, 0, 0]])  # (B, T), padded
    out, out_ref = ours(src, tgt), ref(src, tgt)  # (B, T, V) logits
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    (out_ref * g).sum().backward()
    ours_grads, ref_grads = _ref_grads(ours), {n: p.grad for n, p in ref.named_parameters()}
    assert ours_grads.keys() == ref_grads.keys()
    assert any("norm." in k and k.startswith("decoder.norm") for k in ref_grads) == pre_norm
    for name in ref_grads:
        torch.testing.assert_close(ours_grads[name], ref_grads[name], rtol=1e-10, atol=1e-10)
