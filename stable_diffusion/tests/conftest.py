import json
import random
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

FOLDER = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(FOLDER))
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory):
    """One `train.py --smoke` for the whole session; tests that write there copy it first."""
    import train

    out = tmp_path_factory.mktemp("smoke")
    assert train.main(["--smoke", "--out-dir", str(out)]) == 0
    return out


# --- SD v1 at tiny sizes, random weights: the oracles of test_clip.py and test_released.py ---

from clip import BOS, EOS, bytes_to_unicode  # noqa: E402

CORPUS = """a photograph of an astronaut riding a horse on the moon, highly detailed
the quick brown fox jumps over the lazy dog; painting by an unknown artist
portrait of a cat wearing a hat, oil on canvas, trending on artstation
a castle in the mountains at sunset, 4k, cinematic lighting, photorealistic
it's a beautiful day and we're riding horses that don't stop"""


def learn_merges(text, n_merges):
    """A plain BPE learner (the test's own): the most frequent adjacent pair, n_merges times."""
    byte_char = bytes_to_unicode()
    words = Counter()
    for word in text.lower().split():
        chars = [byte_char[b] for b in word.encode("utf-8")]
        words[tuple(chars[:-1]) + (chars[-1] + "</w>",)] += 1
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for w, c in words.items():
            for pair in zip(w, w[1:]):
                pairs[pair] += c
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        new = Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    return merges


def write_tokenizer_files(directory, n_merges=120, seed=0):
    """vocab.json (ids shuffled), merges.txt, tokenizer_config.json: SD v1's tokenizer/ layout."""
    merges = learn_merges(CORPUS, n_merges)
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    tokens = list(dict.fromkeys(tokens))
    ids = list(range(len(tokens)))
    random.Random(seed).shuffle(ids)
    vocab = dict(zip(tokens, ids))
    vocab[BOS], vocab[EOS] = len(tokens), len(tokens) + 1
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {"model_max_length": 77, "pad_token": EOS, "bos_token": BOS, "eos_token": EOS}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return vocab


@pytest.fixture(scope="session")
def clip_tokenizer_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clip_tokenizer")
    write_tokenizer_files(directory)
    return directory


TINY_UNET = dict(
    block_out_channels=(8, 16, 16), layers_per_block=2, attention_head_dim=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=16, norm_num_groups=4, sample_size=8,
)  # fmt: skip
TINY_VAE = dict(
    block_out_channels=(8, 8, 16, 16), layers_per_block=2, norm_num_groups=4, latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=64,
)  # fmt: skip
TINY_TEXT = dict(
    hidden_size=16, intermediate_size=24, num_attention_heads=2, num_hidden_layers=2,
    max_position_embeddings=77, hidden_act="quick_gelu",
)  # fmt: skip


def jitter(model, seed=0):
    """Move every 1-D parameter (norm gains and biases, often 1 and 0) off its init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def tiny_parts(vocab_size, **unet_overrides):
    """(unet, vae, text_encoder): random diffusers/transformers models at tiny SD v1 sizes."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = jitter(UNet2DConditionModel(**{**TINY_UNET, **unet_overrides}))
    vae = jitter(AutoencoderKL(**TINY_VAE))
    text = jitter(CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, **TINY_TEXT)))
    return unet.eval(), vae.eval(), text.eval()


def sd_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory, clip_tokenizer_dir):
    """A diffusers-format folder as users download it, at tiny size: unet/ vae/ text_encoder/
    tokenizer/ scheduler/ (save_pretrained of random parts, the test-built tokenizer files)."""
    import shutil

    directory = tmp_path_factory.mktemp("tiny_sd")
    vocab = json.loads((clip_tokenizer_dir / "vocab.json").read_text(encoding="utf-8"))
    unet, vae, text = tiny_parts(len(vocab))
    unet.save_pretrained(directory / "unet")
    vae.save_pretrained(directory / "vae")
    text.save_pretrained(directory / "text_encoder")
    shutil.copytree(clip_tokenizer_dir, directory / "tokenizer")
    sd_scheduler().save_pretrained(directory / "scheduler")
    return directory
