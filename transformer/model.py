"""The encoder-decoder Transformer, layer by layer, in PyTorch tensors.

Paper: Vaswani et al. 2017, "Attention Is All You Need", https://arxiv.org/abs/1706.03762
(section 3: the architecture; 3.2 attention; 3.3 feed-forward; 3.4 embeddings; 3.5
positional encoding). Pre-norm option: Xiong et al. 2020, https://arxiv.org/abs/2002.04745.

Read top to bottom: positional encodings -> scaled dot-product attention -> multi-head
attention -> LayerNorm -> feed-forward -> encoder layer -> decoder layer -> config ->
Transformer -> ClassifierEncoder. Nothing here uses nn.MultiheadAttention, nn.Transformer*,
nn.LayerNorm or F.scaled_dot_product_attention: tests/test_reference.py holds each piece
against exactly those modules in float64 (outputs and gradients).

Masks are boolean and mean "may attend" (True = keep), the convention of
F.scaled_dot_product_attention. Shapes: B batch, S source length, T target length,
D = d_model, h = n_head, d_k = D / h.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------- positional encodings (3.5)
def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/D)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/D))."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (L, 1)
    inv_freq = torch.exp(
        -math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model
    )  # (D/2,)
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * inv_freq)  # (L, D/2)
    table[:, 1::2] = torch.cos(pos * inv_freq)[:, : d_model // 2]
    return table.to(torch.get_default_dtype())  # float32 unless a test asks for float64


class PositionalEncoding(nn.Module):
    """x + PE[start : start + T], then dropout (3.4/5.4). Sinusoidal (fixed) or learned."""

    def __init__(self, d_model: int, max_len: int, dropout: float, learned: bool = False):
        super().__init__()
        if learned:
            self.table = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        else:
            self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        T = x.shape[1]
        if start + T > self.max_len:
            raise ValueError(f"sequence of length {start + T} exceeds max_len={self.max_len}")
        return self.dropout(x + self.table[start : start + T].to(x.dtype))  # (B, T, D)


# ---------------------------------------------------------------- attention (3.2.1)
def scaled_dot_product_attention(q, k, v, mask=None, dropout: nn.Module | None = None):
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V, with M = -inf where mask is False.

    q (..., Tq, d_k), k (..., Tk, d_k), v (..., Tk, d_v), mask broadcastable to (..., Tq, Tk).
    Returns the output (..., Tq, d_v) and the attention weights (..., Tq, Tk).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1 over the keys
    if dropout is not None:
        weights = dropout(weights)
    return weights @ v, weights  # (..., Tq, d_v)


def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T) lower triangle: position i may attend to positions j <= i."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B, 1, 1, L): True at real tokens, so padded keys receive zero weight."""
    return (tokens != pad_id)[:, None, None, :]


# ---------------------------------------------------------------- multi-head attention (3.2.2)
class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O,  head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

    The h heads are computed at once: one (D, D) projection, then a reshape to (B, h, T, d_k).
    project_kv() is split out so a decoder can cache keys/values (its own past tokens) or compute
    the encoder's keys/values once for cross-attention.
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        assert d_model % n_head == 0, "d_model must be divisible by n_head"
        self.n_head, self.d_k = n_head, d_model // n_head
        self.w_q = nn.Linear(d_model, d_model)
        self.w_k = nn.Linear(d_model, d_model)
        self.w_v = nn.Linear(d_model, d_model)
        self.w_o = nn.Linear(d_model, d_model)
        self.attn_dropout = nn.Dropout(dropout)
        self.keep_weights = False  # inference.py sets this to draw heat maps
        self.weights = None

    def split_heads(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.n_head, self.d_k).transpose(1, 2)  # (B, h, T, d_k)

    def project_kv(self, x_kv):
        return self.split_heads(self.w_k(x_kv)), self.split_heads(self.w_v(x_kv))

    def forward(self, x_q, x_kv=None, mask=None, kv=None):
        """x_q (B, Tq, D); keys/values from x_kv (B, Tk, D) or precomputed kv=(k, v) (B, h, Tk, d_k)."""
        k, v = kv if kv is not None else self.project_kv(x_kv)
        q = self.split_heads(self.w_q(x_q))  # (B, h, Tq, d_k)
        out, weights = scaled_dot_product_attention(q, k, v, mask, self.attn_dropout)
        if self.keep_weights:
            self.weights = weights.detach()
        B, _, Tq, _ = out.shape
        out = out.transpose(1, 2).reshape(B, Tq, self.n_head * self.d_k)  # (B, Tq, D)
        return self.w_o(out)


# ---------------------------------------------------------------- LayerNorm (Ba et al. 2016)
class LayerNorm(nn.Module):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta over the last dim (biased variance).

    Ba, Kiros, Hinton 2016, https://arxiv.org/abs/1607.06450.
    """

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))  # gamma
        self.bias = nn.Parameter(torch.zeros(d_model))  # beta
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)  # (..., 1)
        var = x.var(-1, keepdim=True, unbiased=False)  # (..., 1)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


# ---------------------------------------------------------------- feed-forward (3.3)
class PositionwiseFeedForward(nn.Module):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, the same two layers at every position."""

    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)  # "relu dropout" of the tensor2tensor code

    def forward(self, x):
        return self.linear2(self.dropout(F.relu(self.linear1(x))))  # (B, T, D)


# ---------------------------------------------------------------- encoder / decoder layers (3.1)
class EncoderLayer(nn.Module):
    """Post-norm (paper): x = LN(x + Dropout(Sublayer(x))). Pre-norm: x = x + Dropout(Sublayer(LN(x)))."""

    def __init__(self, d_model, n_head, d_ff, dropout, pre_norm=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_head, dropout)
        self.ff = PositionwiseFeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2 = LayerNorm(d_model), LayerNorm(d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, x, src_mask=None):
        if self.pre_norm:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, src_mask))
            return x + self.dropout2(self.ff(self.norm2(x)))
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, src_mask)))
        return self.norm2(x + self.dropout2(self.ff(x)))


class DecoderLayer(nn.Module):
    """Masked self-attention, then cross-attention over the encoder output ("memory"), then FFN.

    With cache (a dict) the layer sees only the new positions: their keys/values are appended
    to cache["k"], cache["v"], and cross-attention reads cache["mem_kv"], computed once.
    """

    def __init__(self, d_model, n_head, d_ff, dropout, pre_norm=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_head, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_head, dropout)
        self.ff = PositionwiseFeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2, self.norm3 = (
            LayerNorm(d_model),
            LayerNorm(d_model),
            LayerNorm(d_model),
        )
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))
        self.pre_norm = pre_norm

    def _self_attention(self, h, tgt_mask, cache):
        if cache is None:
            return self.self_attn(h, h, tgt_mask)
        k, v = self.self_attn.project_kv(h)  # (B, h, T_new, d_k)
        if "k" in cache:
            k = torch.cat([cache["k"], k], dim=2)  # (B, h, T_past + T_new, d_k)
            v = torch.cat([cache["v"], v], dim=2)
        cache["k"], cache["v"] = k, v
        return self.self_attn(h, mask=tgt_mask, kv=(k, v))

    def _cross_attention(self, h, memory, src_mask, cache):
        kv = cache["mem_kv"] if cache is not None else None
        return self.cross_attn(h, memory, src_mask, kv=kv)

    def forward(self, x, memory, src_mask=None, tgt_mask=None, cache=None):
        if self.pre_norm:
            x = x + self.dropout1(self._self_attention(self.norm1(x), tgt_mask, cache))
            x = x + self.dropout2(self._cross_attention(self.norm2(x), memory, src_mask, cache))
            return x + self.dropout3(self.ff(self.norm3(x)))
        x = self.norm1(x + self.dropout1(self._self_attention(x, tgt_mask, cache)))
        x = self.norm2(x + self.dropout2(self._cross_attention(x, memory, src_mask, cache)))
        return self.norm3(x + self.dropout3(self.ff(x)))


# ---------------------------------------------------------------- the whole model
@dataclass
class TransformerConfig:
    """Defaults are the small CPU model (the paper's base model: D=512, h=8, 6+6 layers, d_ff=2048,
    dropout 0.1). Dropout defaults to 0 here: the generated training sentences hardly repeat, so
    there is nothing to regularise and dropout only slows a 3-minute run (README, Results)."""

    src_vocab: int = 64
    tgt_vocab: int = 64
    d_model: int = 64
    n_head: int = 4
    n_layer: int = 2  # layers in the encoder and in the decoder, each (the paper: 6)
    d_ff: int = 256
    dropout: float = 0.0
    max_len: int = 128
    learned_pos: bool = False
    pre_norm: bool = False
    tie_embeddings: bool = False  # decoder input embedding == output projection (3.4)
    pad_id: int = 0
    n_classes: int = 5  # ClassifierEncoder only
    pooling: str = "mean"  # ClassifierEncoder only: "mean" or "cls"


class Encoder(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.embed = nn.Embedding(c.src_vocab, c.d_model)
        self.pos = PositionalEncoding(c.d_model, c.max_len, c.dropout, c.learned_pos)
        args = (c.d_model, c.n_head, c.d_ff, c.dropout, c.pre_norm)
        self.layers = nn.ModuleList(EncoderLayer(*args) for _ in range(c.n_layer))
        self.final_norm = LayerNorm(c.d_model) if c.pre_norm else nn.Identity()
        self.scale = math.sqrt(c.d_model)

    def forward(self, src, src_mask):
        x = self.pos(self.embed(src) * self.scale)  # (B, S, D): embeddings times sqrt(D), 3.4
        for layer in self.layers:
            x = layer(x, src_mask)
        return self.final_norm(x)


class Decoder(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.embed = nn.Embedding(c.tgt_vocab, c.d_model)
        self.pos = PositionalEncoding(c.d_model, c.max_len, c.dropout, c.learned_pos)
        args = (c.d_model, c.n_head, c.d_ff, c.dropout, c.pre_norm)
        self.layers = nn.ModuleList(DecoderLayer(*args) for _ in range(c.n_layer))
        self.final_norm = LayerNorm(c.d_model) if c.pre_norm else nn.Identity()
        self.scale = math.sqrt(c.d_model)

    def forward(self, tgt, memory, src_mask, tgt_mask, caches=None, start=0):
        x = self.pos(self.embed(tgt) * self.scale, start)  # (B, T, D)
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, src_mask, tgt_mask, None if caches is None else caches[i])
        return self.final_norm(x)


class Transformer(nn.Module):
    """logits = Decoder(tgt_in, Encoder(src)) W_out: p(y_t | y_<t, x) for every t at once."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.out_proj = nn.Linear(config.d_model, config.tgt_vocab, bias=False)
        for p in self.parameters():  # Xavier for matrices, as in the reference implementation
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        if config.tie_embeddings:
            self.out_proj.weight = self.decoder.embed.weight

    def encode(self, src):
        src_mask = padding_mask(src, self.config.pad_id)  # (B, 1, 1, S)
        return self.encoder(src, src_mask), src_mask  # (B, S, D)

    def decode(self, tgt_in, memory, src_mask):
        """Teacher forcing: all T positions at once under the causal mask; logits (B, T, V)."""
        T = tgt_in.shape[1]
        tgt_mask = causal_mask(T, tgt_in.device) & padding_mask(tgt_in, self.config.pad_id)
        return self.out_proj(self.decoder(tgt_in, memory, src_mask, tgt_mask))  # (B, 1, T, T) mask

    def forward(self, src, tgt_in):
        memory, src_mask = self.encode(src)
        return self.decode(tgt_in, memory, src_mask)

    # -- incremental decoding with a key/value cache (used by decode.py) --
    def init_caches(self, memory):
        """One dict per decoder layer; the encoder's keys/values are projected here, once."""
        return [{"mem_kv": layer.cross_attn.project_kv(memory)} for layer in self.decoder.layers]

    def decode_step(self, tokens_new, memory, src_mask, caches, start):
        """Logits for the new positions only (B, T_new, V); caches hold positions < start."""
        T_new = tokens_new.shape[1]
        # new query i (absolute start + i) may see keys 0 .. start + i
        tgt_mask = torch.ones(T_new, start + T_new, dtype=torch.bool, device=tokens_new.device)
        tgt_mask = tgt_mask.tril(diagonal=start)  # (T_new, start + T_new)
        h = self.decoder(tokens_new, memory, src_mask, tgt_mask, caches, start)
        return self.out_proj(h)


class ClassifierEncoder(nn.Module):
    """Encoder only: pool the encoder states (mean over real tokens, or the first token, CLS),
    then a linear layer to class logits. As in BERT, Devlin et al. 2018, https://arxiv.org/abs/1810.04805."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.head = nn.Linear(config.d_model, config.n_classes)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src):
        src_mask = padding_mask(src, self.config.pad_id)  # (B, 1, 1, S)
        h = self.encoder(src, src_mask)  # (B, S, D)
        if self.config.pooling == "cls":
            pooled = h[:, 0]  # the data prepends a <cls> token
        else:
            real = src_mask[:, 0, 0, :, None].to(h.dtype)  # (B, S, 1)
            pooled = (h * real).sum(1) / real.sum(1)  # (B, D): mean over real tokens
        return self.head(pooled)  # (B, n_classes)
