"""SD v1's released architecture, ours vs diffusers / transformers, random weights, float64.

Tiny random UNet2DConditionModel, AutoencoderKL and CLIPTextModel (conftest.py) go through
convert.py's tables into our classes: the noise prediction (and every gradient), the encoder's
Gaussian and the decoder's image, CLIP's last hidden state, and a whole DDIM + guidance
generation through StableDiffusionPipeline are the same. The full-size configurations have the
same parameters, name for name and shape for shape, built on the meta device (no memory).
"""

import json
import shutil

import pytest
import torch
from conftest import TINY_TEXT, TINY_UNET, TINY_VAE, sd_scheduler, tiny_parts
from convert import (
    SD_V1_TEXT,
    SD_V1_UNET,
    SD_V1_VAE,
    UNET_RENAMES,
    clip_config,
    clip_to_ours,
    load_into,
    load_released,
    new_name,
    unet_config,
    unet_to_ours,
    vae_config,
    vae_to_ours,
)  # fmt: skip
from harness import UserError
from model import Attention
from sd_autoencoder import AutoencoderKL
from sd_unet import SDUNet
from text import TextEncoder


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def ours_from(cls, config, state):
    with torch.device("meta"):
        model = cls(config)
    return load_into(model, state, "test").double().eval()


@pytest.mark.parametrize(
    "overrides,size",
    [({}, (8, 8)), ({"use_linear_projection": True, "flip_sin_to_cos": False, "freq_shift": 1}, (6, 10))],
)  # fmt: skip
def test_unet_noise_prediction_and_gradients_match_diffusers(overrides, size):
    ref = tiny_parts(64, **overrides)[0].double()
    ours = ours_from(SDUNet, unet_config(dict(ref.config)), unet_to_ours(ref.state_dict()))
    torch.manual_seed(1)
    z = torch.randn(2, 4, *size, dtype=torch.float64)
    t = torch.tensor([10, 981])
    context = torch.randn(2, 5, TINY_UNET["cross_attention_dim"], dtype=torch.float64)
    y_ref = ref(z, t, encoder_hidden_states=context).sample
    y = ours(z, t, context)
    torch.testing.assert_close(y, y_ref)
    up = torch.randn_like(y)
    (y * up).sum().backward(), (y_ref * up).sum().backward()
    mine = dict(ours.named_parameters())
    for name, p in ref.named_parameters():
        ours_p = mine[new_name(name, UNET_RENAMES)]
        torch.testing.assert_close(ours_p.grad, p.grad, msg=f"gradient of {name}")


def test_unet_text_changes_the_prediction():
    ref = tiny_parts(64)[0]
    ours = ours_from(SDUNet, unet_config(dict(ref.config)), unet_to_ours(ref.state_dict()))
    z, t = torch.randn(1, 4, 8, 8, dtype=torch.float64), torch.tensor([500])
    c1, c2 = torch.randn(2, 1, 3, 16, dtype=torch.float64)
    assert not torch.allclose(ours(z, t, c1), ours(z, t, c2))


@pytest.mark.parametrize("mid_attention", [True, False])
def test_autoencoder_encode_decode_match_diffusers(mid_attention):
    from diffusers import AutoencoderKL as Ref

    torch.manual_seed(0)
    ref = Ref(**{**TINY_VAE, "mid_block_add_attention": mid_attention}).double().eval()
    for p in ref.parameters():
        if p.dim() == 1:
            p.data.add_(0.2 * torch.randn_like(p))
    ours = ours_from(AutoencoderKL, vae_config(dict(ref.config)), vae_to_ours(ref.state_dict()))
    x = torch.rand(2, 3, 32, 24, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        dist = ref.encode(x).latent_dist
        mean, logvar = ours.encode(x)
        torch.testing.assert_close(mean, dist.mean)
        torch.testing.assert_close(logvar, dist.logvar)
        torch.testing.assert_close(ours.decode(mean), ref.decode(dist.mean).sample)


def test_autoencoder_reads_the_older_attention_names():
    """Older diffusers files call the mid attention query/key/value/proj_attn."""
    ref = tiny_parts(64)[1].double()
    old = {}
    for k, v in ref.state_dict().items():
        for a, b in (
            ("to_q", "query"),
            ("to_k", "key"),
            ("to_v", "value"),
            ("to_out.0", "proj_attn"),
        ):
            k = k.replace(f"attentions.0.{a}.", f"attentions.0.{b}.")
        old[k] = v
    assert any("proj_attn" in k for k in old)
    config = vae_config(dict(ref.config))
    a = ours_from(AutoencoderKL, config, vae_to_ours(old))
    b = ours_from(AutoencoderKL, config, vae_to_ours(ref.state_dict()))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_clip_text_encoder_matches_transformers(act):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    ref = CLIPTextModel(CLIPTextConfig(vocab_size=50, **{**TINY_TEXT, "hidden_act": act}))
    ref = ref.double().eval()
    for p in ref.parameters():
        if p.dim() == 1:
            p.data.add_(0.2 * torch.randn_like(p))
    ours = ours_from(TextEncoder, clip_config(ref.config.to_dict()), clip_to_ours(ref.state_dict()))
    ids = torch.randint(0, 50, (3, 77))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), ref(input_ids=ids).last_hidden_state)


@pytest.mark.parametrize("causal", [True, False])
def test_fast_attention_path_equals_the_hand_written_one(float64, causal):
    torch.manual_seed(0)
    attn = Attention(12, 3, context_dim=None if causal else 7, causal=causal)
    x = torch.randn(2, 5, 12)
    c = None if causal else torch.randn(2, 4, 7)
    pad = None if causal else torch.tensor([[False, False, True, True], [False] * 4])
    slow = attn(x, c, pad)
    try:
        Attention.fast = True
        fast = attn(x, c, pad)
    finally:
        Attention.fast = False
    torch.testing.assert_close(fast, slow)


def test_whole_generation_matches_stable_diffusion_pipeline(tiny_sd_dir):
    """Same tiny folder, same z_T, DDIM 4 steps, guidance 7.5: the same images."""
    from diffusers import AutoencoderKL as RefVAE
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    d = tiny_sd_dir
    scheduler = sd_scheduler()
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    scheduler.alphas_cumprod = torch.cumprod(1 - betas, 0)  # ours keeps float64 buffers
    scheduler.final_alpha_cumprod = scheduler.alphas_cumprod[0]
    ref = StableDiffusionPipeline(
        vae=RefVAE.from_pretrained(d / "vae").double(),
        text_encoder=CLIPTextModel.from_pretrained(d / "text_encoder").double(),
        tokenizer=CLIPTokenizer.from_pretrained(d / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(d / "unet").double(),
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    ref.set_progress_bar_config(disable=True)
    ours = load_released(d, dtype=torch.float64)
    prompts = ["a photograph of an astronaut riding a horse", "a castle at sunset, 4k"]
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = ref(
        prompts, height=64, width=64, num_inference_steps=4, guidance_scale=7.5, latents=z,
        output_type="pt",
    ).images  # fmt: skip
    got = ours.generate(prompts, steps=4, guidance=7.5, image_size=64, latents=z)
    assert got.shape == (2, 3, 64, 64)
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "what,config,expected",
    [("unet", SD_V1_UNET, 859_520_964), ("vae", SD_V1_VAE, 83_653_863), ("text", SD_V1_TEXT, 123_060_480)],
)  # fmt: skip
def test_full_size_configs_have_the_released_parameters(what, config, expected):
    """Built on the meta device: every name maps, every shape agrees, the counts are SD v1's."""
    from diffusers import AutoencoderKL as RefVAE
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        if what == "unet":
            ref, ours = UNet2DConditionModel(**config), SDUNet(unet_config(config))
            state = unet_to_ours(ref.state_dict())
        elif what == "vae":
            ref, ours = RefVAE(**config), AutoencoderKL(vae_config(config))
            state = vae_to_ours(ref.state_dict())
        else:
            ref = CLIPTextModel(CLIPTextConfig(**config))
            ours, state = TextEncoder(clip_config(config)), clip_to_ours(ref.state_dict())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ours) == count(ref) == expected
    load_into(ours, state, what)  # strict: names and shapes


def test_unsupported_configs_are_refused_in_one_line():
    for bad in ({"center_input_sample": True}, {"upcast_attention": True},
                {"down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["AttnDownBlock2D"]},
                {"transformer_layers_per_block": 2}):  # fmt: skip
        with pytest.raises(UserError, match="not supported|ours"):
            unet_config({**SD_V1_UNET, **bad})
    with pytest.raises(UserError, match="use_quant_conv"):
        vae_config({**SD_V1_VAE, "use_quant_conv": False})
    with pytest.raises(UserError, match="hidden_act"):
        clip_config({**SD_V1_TEXT, "hidden_act": "relu"})


def test_inference_writes_the_png_and_bad_folders_are_one_line(tiny_sd_dir, tmp_path, capsys):
    import inference
    from PIL import Image

    out = tmp_path / "out"
    rc = inference.main(
        ["--init-from", str(tiny_sd_dir), "a horse", "--steps", "2", "--image-size", "64",
         "--seed", "0", "--out-dir", str(out)]
    )  # fmt: skip
    assert rc == 0
    (png,) = out.glob("*.png")
    assert Image.open(png).size == (64, 64)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd_dir, broken)
    shutil.rmtree(broken / "vae")
    capsys.readouterr()
    assert inference.main(["--init-from", str(broken), "a horse", "--out-dir", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "vae/" in err[0]
    shutil.copytree(tiny_sd_dir / "vae", broken / "vae")
    config = json.loads((broken / "unet" / "config.json").read_text())
    (broken / "unet" / "config.json").write_text(
        json.dumps({**config, "center_input_sample": True})
    )
    assert inference.main(["--init-from", str(broken), "a horse", "--out-dir", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "center_input_sample" in err[0]
