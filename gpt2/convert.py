"""Load OpenAI's released GPT-2 weights, in the Hugging Face format, into model.GPT.

Hugging Face's GPT2LMHeadModel keeps the original TensorFlow layout: its projections are
`Conv1D` modules whose weight is (in_features, out_features), the transpose of nn.Linear's
(out, in). Module names are otherwise the ones model.py uses, so conversion is: drop the attention
mask buffers, transpose the four Conv1D weights per block, and tie lm_head to wte.

Tests (tests/test_hf.py) copy a randomly initialised GPT2LMHeadModel (3 heads of 32) through
`hf_to_ours` and compare, in float64, the logits, the loss and the gradient of every parameter,
then greedy generations; they check that every name and shape of the full 124M model maps, and
that a config setting what model.py does not implement (`SUPPORTED`) is refused in one line.
"""

import json
from pathlib import Path

import torch
from harness import UserError
from model import GPT, PRESETS, GPTConfig
from tokenizer import BPETokenizer

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
HUB_NAMES = [name for name in PRESETS if name.startswith("gpt2")]


# The settings of a Hugging Face GPT-2 config.json that change the maths, with the value that
# model.py implements. A config that sets any of them otherwise is refused: loading its weights
# into this model would give other logits without a word.
SUPPORTED = {
    "layer_norm_epsilon": (1e-5, "LayerNorm's eps"),
    "activation_function": (("gelu_new", "gelu_pytorch_tanh"), "GELU, tanh approximation"),
    "scale_attn_by_inverse_layer_idx": (False, "scores / sqrt(hs) only, not also / (layer + 1)"),
    "scale_attn_weights": (True, "scores scaled by 1 / sqrt(hs)"),
    "n_inner": ((None,), "MLP width 4 n_embd"),
    "add_cross_attention": (False, "a decoder without cross-attention"),
}


def config_from_hf(hf: dict) -> GPTConfig:
    """A GPTConfig from the fields of a Hugging Face GPT-2 config.json; refuses what model.py
    does not implement (one line, UserError)."""
    unsupported = []
    for key, (ok, what) in SUPPORTED.items():
        if key not in hf:
            continue
        value, allowed = hf[key], ok if isinstance(ok, tuple) else (ok,)
        if key == "n_inner" and value == 4 * hf.get("n_embd", 0):
            continue
        if value not in allowed:
            unsupported.append(f"{key}={value!r} (model.py: {what})")
    if unsupported:
        raise UserError(f"this GPT-2 config is not supported: {'; '.join(unsupported)}")
    return GPTConfig(
        n_layer=hf["n_layer"],
        n_head=hf["n_head"],
        n_embd=hf["n_embd"],
        block_size=hf["n_positions"],
        vocab_size=hf["vocab_size"],
        dropout=0.0,
        bias=True,
    )


def hf_to_ours(sd_hf: dict) -> dict:
    """Map a GPT2LMHeadModel (or GPT2Model / hub file) state dict onto GPT's names and layout."""
    out = {}
    for name, w in sd_hf.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):  # causal-mask buffers, not weights
            continue
        if not name.startswith(("transformer.", "lm_head.")):
            name = "transformer." + name  # hub files store GPT2Model names: "h.0.attn...", "wte..."
        out[name] = w.t().contiguous() if name.endswith(CONV1D) else w  # (in, out) -> (out, in)
    out.setdefault("lm_head.weight", out["transformer.wte.weight"])  # tied
    return out


def load_state_dict_file(directory: Path) -> dict:
    """The weights of a Hugging Face model directory, read as plain tensors."""
    st, pt = directory / "model.safetensors", directory / "pytorch_model.bin"
    if st.exists():
        from safetensors.torch import load_file

        return load_file(str(st))
    if pt.exists():
        return torch.load(pt, map_location="cpu", weights_only=True)
    raise UserError(f"{directory} has neither model.safetensors nor pytorch_model.bin")


def resolve(name_or_path: str) -> Path:
    """A local directory holding config.json and weights: the path itself, or the hub snapshot.

    Raises UserError with one line that says what is needed when neither is reachable.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if name_or_path not in HUB_NAMES:
        raise UserError(
            f"--init-from {name_or_path!r}: not a directory and not one of {', '.join(HUB_NAMES)}"
        )
    try:
        from huggingface_hub import snapshot_download

        patterns = ["config.json", "model.safetensors", "vocab.json", "merges.txt"]
        return Path(snapshot_download(f"openai-community/{name_or_path}", allow_patterns=patterns))
    except Exception as e:  # offline, no huggingface_hub, rate limit...
        raise UserError(
            f"--init-from {name_or_path}: could not download the weights ({type(e).__name__}); "
            f"needed: internet access to huggingface.co, or a local directory with config.json, "
            f"model.safetensors (or pytorch_model.bin), vocab.json and merges.txt "
            f"(pass its path to --init-from)"
        ) from None


def load_pretrained(name_or_path: str) -> tuple[GPT, Path]:
    """GPT with the official weights, and the directory (for vocab.json / merges.txt)."""
    directory = resolve(name_or_path)
    config_file = directory / "config.json"
    if not config_file.exists():
        raise UserError(f"{directory} has no config.json (a Hugging Face GPT-2 directory)")
    try:
        hf = json.loads(config_file.read_text())
        model = GPT(config_from_hf(hf))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{config_file} is not a GPT-2 config ({type(e).__name__}: {e})") from None
    try:
        model.load_state_dict(hf_to_ours(load_state_dict_file(directory)), strict=True)
    except Exception as e:  # a damaged file raises many kinds
        first = str(e).strip().splitlines()[0]
        raise UserError(f"cannot load GPT-2 weights from {directory}: {first}") from None
    return model, directory


def pretrained_tokenizer(directory: Path) -> BPETokenizer:
    """GPT-2's own tokenizer from the vocab.json + merges.txt of a Hugging Face directory."""
    try:
        return BPETokenizer.from_gpt2_files(
            str(directory / "vocab.json"), str(directory / "merges.txt")
        )
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
