"""A random diffusers UNet2DModel, saved and converted, predicts the same noise as ours (float64).

diffusers computes the sinusoidal time embedding in float32 (tests/test_model.py compares it
at that precision); here both networks are fed diffusers' embedding so that everything after it,
every block of the U-Net, is compared at float64 precision.
"""

import json

import model as model_module
import pytest
import torch
from convert import load_diffusers_dir
from diffusers import UNet2DModel
from diffusers.models.embeddings import get_timestep_embedding

SMALL = dict(
    sample_size=8, in_channels=2, out_channels=2, block_out_channels=(8, 16, 16), layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=4, norm_eps=1e-6, attention_head_dim=None, flip_sin_to_cos=False, freq_shift=1,
    downsample_padding=0,
)  # fmt: skip


def randomise(net, seed):
    """Default init leaves GroupNorm at (1, 0): random affine parameters test them too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3 + (p.dim() == 1) * 0.5)


@pytest.mark.parametrize(
    "extra",
    [{}, dict(attention_head_dim=4, downsample_padding=1, flip_sin_to_cos=True, freq_shift=0),
     dict(num_class_embeds=4, add_attention=False, layers_per_block=1)],
    ids=["ddpm-like", "heads-padding1", "class-conditional"],
)  # fmt: skip
def test_converted_unet_predicts_the_same_noise(tmp_path, monkeypatch, extra):
    cfg = {**SMALL, **extra}
    ref = UNet2DModel(**cfg)
    randomise(ref, 0)
    ref.save_pretrained(tmp_path)
    ours, config = load_diffusers_dir(tmp_path)
    assert config.attention == (False, True, True)
    ref, ours = ref.double().eval(), ours.double().eval()
    monkeypatch.setattr(
        model_module, "timestep_embedding",
        lambda t, dim, flip, shift: get_timestep_embedding(t, dim, flip, shift).double(),
    )  # fmt: skip
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 8, 8, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 37, 999])
    y = torch.tensor([0, 3, 1]) if "num_class_embeds" in extra else None
    want = ref(x, t, class_labels=y).sample
    got = ours(x, t, y)
    assert want.abs().mean() > 0.1  # a real output, not a vanishing one
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def write(tmp_path, **cfg):
    (tmp_path / "config.json").write_text(json.dumps({**SMALL, **cfg}))
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(
    "cfg,message",
    [(dict(down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")), "CrossAttnDownBlock2D"),
     (dict(up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")), "do not mirror"),
     (dict(resnet_time_scale_shift="scale_shift"), "resnet_time_scale_shift"),
     (dict(time_embedding_type="fourier"), "time_embedding_type")],
)  # fmt: skip
def test_architectures_ours_cannot_express_are_refused(tmp_path, cfg, message):
    with pytest.raises(ValueError, match=message):
        load_diffusers_dir(write(tmp_path, **cfg))


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_diffusers_dir(tmp_path)
