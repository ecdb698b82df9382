"""GPT-2, written from its parts: LayerNorm, GELU, causal self-attention, MLP, block, model.

Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"
(https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf),
which is the GPT-1 decoder (Radford et al. 2018) with LayerNorm moved to the input of each
sub-block ("pre-norm"), a final LayerNorm, and residual projections initialised with a
1/sqrt(2 n_layer) scale (section 2.3). Attention is Vaswani et al. 2017
(https://arxiv.org/abs/1706.03762), section 3.2; GELU is Hendrycks & Gimpel 2016
(https://arxiv.org/abs/1606.08415) in its tanh approximation, as GPT-2 used it.

The file reads upward: LayerNormFunction -> LayerNorm -> GELUFunction -> gelu -> KVCache ->
CausalSelfAttention -> MLP -> Block -> GPTConfig -> GPT. Module names match Hugging Face's GPT2LMHeadModel (`transformer.h.0.attn.c_attn`,
...), so loading the official weights is a rename-free copy (see convert.py).

Tests (tests/test_model.py, tests/test_hf.py) hold LayerNorm against nn.LayerNorm, gelu against
F.gelu(approximate="tanh"), both written-out backwards against torch.autograd.gradcheck,
attention against nn.MultiheadAttention and F.scaled_dot_product_attention (float64, outputs and gradients), the whole model against
transformers' GPT2LMHeadModel with 3 heads of 32 (float64 logits, loss and the gradient of every
parameter; same greedy text), and KV-cache generation against generation without the cache,
token for token.
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNormFunction(torch.autograd.Function):
    """LayerNorm with its backward written out (autograd would keep six intermediate tensors).

    Forward, over the last axis of size C:
        mu = mean(x), rstd = 1 / sqrt(mean((x - mu)^2) + eps), xhat = (x - mu) rstd,
        y = gamma * xhat + beta.
    Backward, g = dL/dy, means over the C features of one row:
        dbeta = sum_rows g, dgamma = sum_rows g * xhat, dxhat = g * gamma,
        dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat * xhat)).
    (mu and rstd depend on every x of the row: the two mean terms are their share of dx.)
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        xc = x - x.mean(dim=-1, keepdim=True)  # centred, (..., C)
        rstd = torch.rsqrt((xc * xc).mean(dim=-1, keepdim=True) + eps)  # (..., 1)
        xhat = xc.mul_(rstd)  # in place: the forward of a Function is not recorded
        ctx.save_for_backward(xhat, weight, rstd)
        ctx.has_bias = bias is not None
        return torch.addcmul(bias, xhat, weight) if bias is not None else xhat * weight

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        xhat, weight, rstd = ctx.saved_tensors
        C = g.size(-1)
        rows, xhat = g.reshape(-1, C), xhat.reshape(-1, C)  # (N, C): every position is a row
        gx = rows * xhat  # g xhat, (N, C)
        dweight = gx.sum(0) if ctx.needs_input_grad[1] else None
        dbias = rows.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        # the two row means as matrix-vector products, since dxhat = g * gamma:
        # mean(dxhat) = (g @ gamma) / C and mean(dxhat * xhat) = ((g xhat) @ gamma) / C, (N, 1)
        m1 = (rows @ weight).div_(C).unsqueeze(1)
        m2 = (gx @ weight).div_(C).unsqueeze(1)
        dx = torch.mul(rows, weight, out=gx)  # dxhat, written over g xhat (no longer needed)
        dx.sub_(m1).addcmul_(xhat, m2, value=-1.0).mul_(rstd.reshape(-1, 1))
        return dx.view(g.shape), dweight, dbias, None


class LayerNorm(nn.Module):
    """y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias, over the last (feature) axis.

    var is the biased (1/n) variance, as in Ba et al. 2016 (https://arxiv.org/abs/1607.06450).
    Forward and backward are LayerNormFunction's, held to nn.LayerNorm and to gradcheck.
    """

    def __init__(self, ndim: int, bias: bool = True, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LayerNormFunction.apply(x, self.weight, self.bias, self.eps)


GELU_K, GELU_A = math.sqrt(2.0 / math.pi), 0.044715


class GELUFunction(torch.autograd.Function):
    """GELU, tanh approximation, with its backward written out.

    Forward: u = k (x + a x^3), k = sqrt(2/pi), a = 0.044715, y = x (1 + tanh(u)) / 2 = x p,
    where p = (1 + tanh(u)) / 2 = sigmoid(2 u) (the same function: tanh(u) = 2 sigmoid(2 u) - 1).
    Backward: dy/dx = p + x p' = p (1 + w (1 - p)), with w = x d(2u)/dx = x (2k + 6 k a x^2),
    since sigmoid' = sigmoid (1 - sigmoid). Each step is one pass over the tensor, in place where
    it can be: three new tensors in all (p and y forward, dy/dx backward), the least a
    backward that keeps p instead of recomputing it can make.
    """

    @staticmethod
    def forward(ctx, x):
        p = (x * x).mul_(2.0 * GELU_K * GELU_A).add_(2.0 * GELU_K).mul_(x).sigmoid_()  # sigmoid(2u)
        ctx.save_for_backward(x, p)
        return x * p

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, p = ctx.saved_tensors
        w = (x * x).mul_(6.0 * GELU_K * GELU_A).add_(2.0 * GELU_K).mul_(x)  # x (2k + 6 k a x^2)
        return w.addcmul_(w, p, value=-1.0).add_(1.0).mul_(p).mul_(g)  # p (1 + w (1 - p)) g


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return GELUFunction.apply(x)


class KVCache:
    """Keys and values of every past position, one (k, v) pair per layer.

    Generation feeds one new token at a time; attention needs the keys and values of all earlier
    positions, which do not change, so they are kept instead of recomputed: a step costs O(T)
    instead of O(T^2). `length` is the number of positions already cached.
    """

    def __init__(self, n_layer: int):
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer

    @property
    def length(self) -> int:
        return 0 if self.k[0] is None else self.k[0].size(2)

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Add this step's (B, nh, T, hs) keys/values; return all of them, (B, nh, T_past+T, hs)."""
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v


class CausalSelfAttention(nn.Module):
    """Multi-head attention where position t sees positions <= t.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V, M = -inf above the diagonal;
    heads are computed in parallel from one fused projection c_attn = [W_Q; W_K; W_V],
    concatenated, and mixed by the output projection c_proj.
    """

    def __init__(self, config: "GPTConfig", layer: int = 0):
        super().__init__()
        self.n_head, self.n_embd, self.layer = config.n_head, config.n_embd, layer
        self.fused = config.fused_attention
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout
        # visualize.py sets keep_weights: the forward then keeps its softmax weights in .weights
        self.keep_weights = False
        self.weights: torch.Tensor | None = None
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask, persistent=False)  # (block_size, block_size)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        qkv = self.c_attn(x).view(B, T, 3, nh, hs)  # [Q | K | V], each C = nh heads of hs
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, T, hs)
        if cache is not None:
            k, v = cache.append(self.layer, k, v)  # (B, nh, Tk, hs), Tk = T_past + T
        Tk = k.size(2)
        # the new queries sit at positions Tk-T .. Tk-1: each sees keys 0 .. its own position
        mask = self.mask[Tk - T : Tk, :Tk]  # (T, Tk)
        if self.fused and not self.keep_weights:
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            # M: 0 where a query may look, -inf where it may not; (T, Tk), shared by every head
            M = torch.zeros(T, Tk, dtype=q.dtype, device=q.device).masked_fill_(~mask, -math.inf)
            # M + (Q K^T) / sqrt(hs) in one call: (B nh, T, hs) @ (B nh, hs, Tk) -> (B nh, T, Tk)
            att = torch.baddbmm(
                M, q.reshape(B * nh, T, hs), k.reshape(B * nh, Tk, hs).transpose(1, 2),
                alpha=1.0 / math.sqrt(hs),
            )  # fmt: skip
            att = torch.softmax(att, dim=-1)  # each row sums to 1
            if self.keep_weights:
                self.weights = att.detach().view(B, nh, T, Tk)
            att = self.attn_dropout(att)
            y = torch.bmm(att, v.reshape(B * nh, Tk, hs)).view(B, nh, T, hs)  # weighted values
        y = y.transpose(1, 2).reshape(B, T, C)  # heads side by side: (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: c_proj(gelu(c_fc(x))), hidden width 4 n_embd."""

    def __init__(self, config: "GPTConfig"):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(gelu(self.c_fc(x))))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """Pre-norm residual block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))."""

    def __init__(self, config: "GPTConfig", layer: int = 0):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


@dataclass
class GPTConfig:
    """Hyper-parameters. The defaults are the small CPU model (about 0.8M parameters)."""

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64  # context length T
    vocab_size: int = 128  # set from the tokenizer when training
    dropout: float = 0.0
    bias: bool = True  # biases in Linear layers and LayerNorms, as GPT-2
    fused_attention: bool = False  # True: F.scaled_dot_product_attention instead of ours

    def __post_init__(self):
        """One clear line for a size that cannot work, before any weight is made."""
        for name in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}"
                )
        if self.n_embd % self.n_head:
            raise ValueError(
                f"--n-embd {self.n_embd} is not divisible by --n-head {self.n_head} (each head is n_embd / n_head wide)"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "GPTConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


_GPT2 = dict(vocab_size=50257, block_size=1024, dropout=0.0, bias=True)
PRESETS = {
    "cpu-tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=32),
    "cpu-small": dict(n_layer=4, n_head=4, n_embd=128, block_size=64),
    "cpu-medium": dict(n_layer=6, n_head=6, n_embd=384, block_size=256),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, **_GPT2),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024, **_GPT2),  # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280, **_GPT2),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600, **_GPT2),  # 1558M
}


class GPT(nn.Module):
    """Token + learned position embeddings -> n_layer blocks -> ln_f -> lm_head (tied to wte)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config, i) for i in range(config.n_layer)),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # weight tying (Press & Wolf 2016, https://arxiv.org/abs/1608.05859): one matrix embeds
        # tokens and scores them; the parameter is shared, so it is counted once
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2 section 2.3: scale the residual projections by 1/sqrt(N), N = 2 n_layer residual
        # additions, so the residual stream's variance does not grow with depth
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, tied ones counted once; non_embedding drops wpe (wte is the LM head)."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared one once
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache=None):
        """idx (B, T) token ids -> logits (B, T, vocab) and, with targets (B, T), the mean
        cross-entropy loss -sum log p(target) / (B T). With a KVCache, idx holds only the new
        tokens, placed after the cache.length positions already seen."""
        B, T = idx.shape
        past = 0 if cache is None else cache.length
        if past + T > self.config.block_size:
            raise ValueError(f"sequence of {past + T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(past, past + T, device=idx.device)  # (T,)
        x = self.transformer.drop(
            self.transformer.wte(idx) + self.transformer.wpe(pos)
        )  # (B, T, C)
        for block in self.transformer.h:
            x = block(x, cache)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, C) @ (C, vocab) -> (B, T, vocab)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(B * T, -1).float(), targets.reshape(B * T))
        return logits, loss

    def flops_per_token(self, T: int | None = None) -> float:
        """Training FLOPs per token, forward + backward: 6 N + 12 n_layer n_embd T
        (Kaplan et al. 2020, https://arxiv.org/abs/2001.08361, section 2.1; PaLM appendix B)."""
        c, T = self.config, T or self.config.block_size
        return 6 * self.num_params(non_embedding=True) + 12 * c.n_layer * c.n_embd * T

    @torch.no_grad()
    def generate_stream(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ):
        """Yield (B, 1) next tokens one at a time. temperature 0 is greedy (argmax).

        Past block_size tokens the context is cropped to the last block_size, as GPT-2 does.
        Positions are learned and absolute, so a cropped window shifts every position and the
        cached keys no longer apply: the cache is then rebuilt from the cropped window.
        """
        T_max = self.config.block_size
        cache, fed = (KVCache(self.config.n_layer) if use_cache else None), 0
        for _ in range(max_new_tokens):
            if cache is not None and idx.size(1) <= T_max:
                logits, _ = self(idx[:, fed:], cache=cache)  # only tokens not yet cached
                fed = idx.size(1)
            else:
                cache = KVCache(self.config.n_layer) if use_cache else None
                logits, _ = self(idx[:, -T_max:], cache=cache)  # crop the context
            nxt = sample(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
            yield nxt

    def generate(self, idx: torch.Tensor, max_new_tokens: int, **kw) -> torch.Tensor:
        """idx (B, T) -> (B, T + max_new_tokens); keyword arguments as generate_stream."""
        new = list(self.generate_stream(idx, max_new_tokens, **kw))
        return torch.cat([idx, *new], dim=1)


def sample(logits, temperature=1.0, top_k=None, top_p=None, generator=None) -> torch.Tensor:
    """Draw the next token from (B, vocab) logits: p = softmax(logits / temperature), keeping
    the top_k most likely tokens and/or the smallest set whose probability reaches top_p
    (nucleus sampling, Holtzman et al. 2019, https://arxiv.org/abs/1904.09751)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, vocab)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cum - torch.softmax(sorted_logits, dim=-1) >= top_p  # mass before it already >= p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)
