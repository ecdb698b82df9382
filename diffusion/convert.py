"""diffusers UNet2DModel weights -> our UNet (model.py), from a local directory, no network.

A directory as diffusers saves a UNet2DModel (the DDPM authors' CIFAR-10 model
google/ddpm-cifar10-32, downloaded once by the user) holds `config.json` and
`diffusion_pytorch_model.safetensors`. The config becomes a UNetConfig (or one clear line saying
what ours cannot express), and each tensor is renamed onto ours; nothing is reshaped.

    python inference.py --init-from ~/models/ddpm-cifar10-32 --ddim-steps 50

Tests (tests/test_convert.py): a small random UNet2DModel with attention, down- and up-sampling
on three levels, saved and converted, predicts the same noise as diffusers in float64.
"""

import json
from pathlib import Path

from model import UNet, UNetConfig, check_config

# UNet2DModel's defaults for the keys a config.json may leave out
DEFAULTS = dict(
    sample_size=None, in_channels=3, out_channels=3, center_input_sample=False,
    time_embedding_type="positional", time_embedding_dim=None, freq_shift=0, flip_sin_to_cos=True,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    mid_block_type="UNetMidBlock2D",
    up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(224, 448, 672, 896), layers_per_block=2, mid_block_scale_factor=1,
    downsample_padding=1, downsample_type="conv", upsample_type="conv", dropout=0.0, act_fn="silu",
    attention_head_dim=8, norm_num_groups=32, attn_norm_num_groups=None, norm_eps=1e-5,
    resnet_time_scale_shift="default", add_attention=True, class_embed_type=None, num_class_embeds=None,
)  # fmt: skip

RENAMES = [  # diffusers name piece -> ours (model.py)
    ("down_blocks.", "down."), (".downsamplers.0.", ".downsample."),
    ("up_blocks.", "up."), (".upsamplers.0.", ".upsample."),
    ("mid_block.resnets.0.", "mid.res1."), ("mid_block.resnets.1.", "mid.res2."),
    ("mid_block.attentions.0.", "mid.attn."), (".group_norm.", ".norm."), (".to_out.0.", ".to_out."),
    (".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out."),
    ("time_embedding.", "time_embed."), ("class_embedding.", "class_embed."), ("conv_norm_out.", "norm_out."),
]  # fmt: skip


def config_from_diffusers(cfg):
    """A diffusers UNet2DModel config dict -> UNetConfig; ValueError naming what ours lacks."""
    c = {**DEFAULTS, **cfg}
    fixed = dict(time_embedding_type="positional", center_input_sample=False, act_fn="silu",
                 mid_block_type="UNetMidBlock2D", mid_block_scale_factor=1, downsample_type="conv",
                 upsample_type="conv", resnet_time_scale_shift="default", class_embed_type=None,
                 attn_norm_num_groups=None)  # fmt: skip
    for key, want in fixed.items():
        if c[key] != want:
            raise ValueError(f"config.json has {key}={c[key]!r}: our U-Net only has {want!r}")
    ch = list(c["block_out_channels"])
    if c["time_embedding_dim"] not in (None, 4 * ch[0]):
        raise ValueError(
            f"config.json has time_embedding_dim={c['time_embedding_dim']}: ours is 4 x {ch[0]}"
        )
    down, up = list(c["down_block_types"]), list(c["up_block_types"])
    known_down, known_up = (
        {"DownBlock2D": False, "AttnDownBlock2D": True},
        {"UpBlock2D": False, "AttnUpBlock2D": True},
    )
    for name in down + up:
        if name not in known_down and name not in known_up:
            raise ValueError(
                f"config.json has a {name}: our U-Net has only {sorted(known_down | known_up)}"
            )
    attention = [known_down.get(b) for b in down]
    if None in attention or [known_up.get(b) for b in reversed(up)] != attention:
        raise ValueError(
            f"config.json's up blocks {up} do not mirror its down blocks {down}: ours must"
        )
    if len(ch) != len(down):
        raise ValueError(
            f"config.json has {len(ch)} block_out_channels for {len(down)} down blocks"
        )
    size = c["sample_size"]
    if not isinstance(size, int):
        raise ValueError(f"config.json has sample_size={size!r}: ours needs one square size")
    n_cls = c["num_class_embeds"]
    config = UNetConfig(
        image_size=size, in_channels=c["in_channels"], out_channels=c["out_channels"], channels=tuple(ch),
        layers_per_block=c["layers_per_block"], attention=tuple(attention), mid_attention=bool(c["add_attention"]),
        head_dim=c["attention_head_dim"] or 0, groups=c["norm_num_groups"], eps=c["norm_eps"],
        dropout=c["dropout"], flip_sin_to_cos=bool(c["flip_sin_to_cos"]), freq_shift=c["freq_shift"],
        downsample_padding=c["downsample_padding"], num_classes=(n_cls - 1) if n_cls else 0,
    )  # fmt: skip
    if config.downsample_padding not in (0, 1):
        raise ValueError(
            f"config.json has downsample_padding={config.downsample_padding}: ours has 0 or 1"
        )
    check_config(config)
    return config


def rename(key):
    for old, new in RENAMES:
        key = key.replace(old, new)
    return key


def convert_state_dict(theirs):
    return {rename(k): v for k, v in theirs.items()}


def load_diffusers_dir(path):
    """(UNet with the weights, UNetConfig) from a diffusers UNet2DModel directory."""
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    cfg_file, weights = path / "config.json", path / "diffusion_pytorch_model.safetensors"
    if not cfg_file.exists():
        raise ValueError(f"{path} has no config.json: expected a diffusers UNet2DModel directory")
    if not weights.exists():
        raise ValueError(f"{path} has no diffusion_pytorch_model.safetensors")
    try:
        cfg = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_file} is not JSON ({e.msg})") from None
    config = config_from_diffusers(cfg)
    model = UNet(config)
    state = convert_state_dict(load_file(str(weights)))
    missing, unexpected = (
        model.state_dict().keys() - state.keys(),
        state.keys() - model.state_dict().keys(),
    )
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not fit the config: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model, config


def schedule_from_dir(path):
    """(T, kind) from a scheduler_config.json beside the weights, DDPM's (1000, linear) if none."""
    for name in ("scheduler_config.json", "scheduler/scheduler_config.json"):
        f = Path(path).expanduser() / name
        if f.exists():
            s = json.loads(f.read_text())
            kinds = {"linear": "linear", "squaredcos_cap_v2": "cosine"}
            kind = kinds.get(s.get("beta_schedule", "linear"))
            linear_ok = (s.get("beta_start", 1e-4), s.get("beta_end", 0.02)) == (1e-4, 0.02)
            if kind is None or (kind == "linear" and not linear_ok):
                raise ValueError(
                    f"{f}: schedule {s.get('beta_schedule')} {s.get('beta_start')}..{s.get('beta_end')} is not one of ours"
                )
            return int(s.get("num_train_timesteps", 1000)), kind
    return 1000, "linear"


if __name__ == "__main__":
    import sys

    model, config = load_diffusers_dir(sys.argv[1])
    print(config)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
