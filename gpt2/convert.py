"""Load OpenAI's released GPT-2 weights, in the Hugging Face format, into model.GPT.

Hugging Face's GPT2LMHeadModel keeps the original TensorFlow layout: its projections are
`Conv1D` modules whose weight is (in_features, out_features), the transpose of nn.Linear's
(out, in). Module names are otherwise the ones model.py uses, so conversion is: drop the attention
mask buffers, transpose the four Conv1D weights per block, and tie lm_head to wte.

Tests (tests/test_hf.py) copy a randomly initialised GPT2LMHeadModel through `hf_to_ours` and
compare logits (max abs difference <= 1e-5 in float32) and greedy generations, and check that every
name and shape of the full 124M model maps.
"""

import json
from pathlib import Path

import torch
from model import GPT, PRESETS, GPTConfig

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
HUB_NAMES = [name for name in PRESETS if name.startswith("gpt2")]


def config_from_hf(hf: dict) -> GPTConfig:
    """A GPTConfig from the fields of a Hugging Face GPT-2 config.json."""
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
    raise FileNotFoundError(f"{directory} has neither model.safetensors nor pytorch_model.bin")


def resolve(name_or_path: str) -> Path:
    """A local directory holding config.json and weights: the path itself, or the hub snapshot.

    Raises RuntimeError with one line that says what is needed when neither is reachable.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if name_or_path not in HUB_NAMES:
        raise RuntimeError(
            f"--init-from {name_or_path!r}: not a directory and not one of {', '.join(HUB_NAMES)}"
        )
    try:
        from huggingface_hub import snapshot_download

        patterns = ["config.json", "model.safetensors", "vocab.json", "merges.txt"]
        return Path(snapshot_download(f"openai-community/{name_or_path}", allow_patterns=patterns))
    except Exception as e:  # offline, no huggingface_hub, rate limit...
        raise RuntimeError(
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
        raise RuntimeError(f"{directory} has no config.json (a Hugging Face GPT-2 directory)")
    model = GPT(config_from_hf(json.loads(config_file.read_text())))
    try:
        model.load_state_dict(hf_to_ours(load_state_dict_file(directory)), strict=True)
    except (FileNotFoundError, RuntimeError, KeyError) as e:
        raise RuntimeError(f"cannot load GPT-2 weights from {directory}: {e}") from None
    return model, directory
