"""The text side: a word-level tokenizer over the caption vocabulary and a small transformer.

Rombach et al. 2022 (https://arxiv.org/abs/2112.10752), Section 3.3 and Appendix E.2: the
text-to-image LDM trained its transformer tau_theta jointly with the U-Net
(`cond_stage_trainable`); SD v1 later froze CLIP's instead. tau_theta(y) gives one vector
per token, (B, L, d); the U-Net's cross-attention reads all of them.

Every prompt starts with <bos>, so even the empty prompt (the unconditional case that
classifier-free guidance needs) has one token to attend to; the rest is <pad>, masked out.

tests/test_text.py: TextLayer against nn.TransformerEncoderLayer(norm_first=True), float64.

With causal attention, quick-GELU and CLIP's sizes (clip.py:clip_text_config) this same
TextEncoder is SD v1's frozen CLIP text transformer: tests/test_released.py loads a
transformers CLIPTextModel into it and gets the same last hidden state.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from harness import UserError
from model import Attention, LayerNorm

PAD, BOS = "<pad>", "<bos>"


class Tokenizer:
    """Words -> ids over a fixed vocabulary; a word outside it is an error, never <unk>."""

    def __init__(self, words, context=8):
        self.vocab = [PAD, BOS, *sorted(set(words) - {PAD, BOS})]
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.context = context

    def split(self, prompt):
        return prompt.lower().replace(",", " ").split()

    def unknown(self, prompt):
        return [w for w in self.split(prompt) if w not in self.ids]

    def encode(self, prompts):
        """prompts -> (ids (B, context) long, padding mask (B, context) bool, True = padding)."""
        ids = torch.zeros(len(prompts), self.context, dtype=torch.long)
        for i, prompt in enumerate(prompts):
            words = self.split(prompt)
            bad = self.unknown(prompt)
            if bad:
                raise UserError(
                    f"unknown words {bad}; the vocabulary is: {' '.join(self.vocab[2:])}"
                )
            if len(words) > self.context - 1:
                raise UserError(
                    f"'{prompt}' has {len(words)} words; at most {self.context - 1} fit"
                )
            ids[i, : len(words) + 1] = torch.tensor([self.ids[BOS]] + [self.ids[w] for w in words])
        return ids, ids == self.ids[PAD]


@dataclass
class TextConfig:
    vocab_size: int = 64
    context: int = 8
    d_model: int = 64
    n_head: int = 4
    n_layer: int = 2
    # The settings that make this same encoder CLIP's (clip.py: SD v1's frozen text encoder):
    causal: bool = False  # token i attends to tokens <= i only
    activation: str = "gelu"  # or "quick_gelu": x sigmoid(1.702 x)
    d_ff: int = 0  # the MLP's hidden width; 0: 4 d_model
    eps: float = 1e-5  # LayerNorm's eps


def quick_gelu(x):
    """CLIP's cheap GELU: x sigmoid(1.702 x) (Radford et al. 2021, the released code)."""
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"gelu": F.gelu, "quick_gelu": quick_gelu}


class TextLayer(nn.Module):
    """Pre-norm transformer layer: x += SelfAttn(LN(x)); x += W_2 GELU(W_1 LN(x))."""

    def __init__(self, d, n_head, causal=False, activation="gelu", d_ff=0, eps=1e-5):
        super().__init__()
        d_ff = d_ff or 4 * d
        self.act = ACTIVATIONS[activation]
        self.norm1, self.attn = LayerNorm(d, eps), Attention(d, n_head, bias=True, causal=causal)
        self.norm2 = LayerNorm(d, eps)
        self.linear1, self.linear2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)

    def forward(self, x, key_padding_mask=None):
        x = x + self.attn(self.norm1(x), key_padding_mask=key_padding_mask)
        return x + self.linear2(self.act(self.linear1(self.norm2(x))))


class TextEncoder(nn.Module):
    """tau_theta: token ids (B, L) -> (B, L, d_model), token plus learned position embeddings."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Parameter(torch.zeros(config.context, config.d_model))
        nn.init.normal_(self.pos, std=0.02)
        c = config
        self.layers = nn.ModuleList(
            TextLayer(c.d_model, c.n_head, c.causal, c.activation, c.d_ff, c.eps)
            for _ in range(c.n_layer)
        )
        self.norm = LayerNorm(config.d_model, config.eps)

    def forward(self, ids, key_padding_mask=None):
        x = self.tok(ids) + self.pos[: ids.shape[1]]  # (B, L, d)
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.norm(x)
