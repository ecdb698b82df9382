"""Load the released Stable Diffusion v1 weights (a local diffusers-format folder) into our code.

    DIR/unet/          config.json + diffusion_pytorch_model.safetensors   -> sd_unet.SDUNet
    DIR/vae/           config.json + diffusion_pytorch_model.safetensors   -> sd_autoencoder.AutoencoderKL
    DIR/text_encoder/  config.json + model.safetensors                     -> text.TextEncoder (CLIP's settings)
    DIR/tokenizer/     vocab.json + merges.txt                              -> clip.CLIPTokenizer
    DIR/scheduler/     scheduler_config.json (optional)                     -> sample.Schedule

Conversion is renaming: the tensors are the same numbers in the same layout (nn.Linear and
nn.Conv2d on both sides), only the module paths differ. Each model has an ordered table of
(diffusers/transformers pattern -> ours) substitutions below; after it, every name must match
our state dict exactly (strict), or loading stops with one line naming what is off.

A config.json that sets something our code does not compute (`*_SUPPORTED`, or a block type
other than SD v1's) is refused in one line: its weights would load, and silently give other
images. Nothing here touches the network: the user downloads the folder themselves.

tests/test_released.py: tiny random diffusers/transformers models -> these functions -> equal
outputs in float64; the full-size configs -> equal parameter counts (on the meta device).
"""

import json
import re
from pathlib import Path

import torch
from clip import CLIPTokenizer
from harness import UserError
from pipeline import ReleasedPipeline
from sample import Schedule
from sd_autoencoder import AutoencoderKL, AutoencoderKLConfig
from sd_unet import SDUNet, SDUNetConfig
from text import TextConfig, TextEncoder

# (pattern, replacement), applied in order to every diffusers / transformers name.
UNET_RENAMES = [
    (r"^time_embedding\.linear_1\.", "time_mlp.0."),
    (r"^time_embedding\.linear_2\.", "time_mlp.2."),
    (r"^down_blocks\.", "down."),
    (r"^up_blocks\.", "up."),
    (r"^mid_block\.resnets\.0\.", "mid.res1."),
    (r"^mid_block\.resnets\.1\.", "mid.res2."),
    (r"^mid_block\.attentions\.0\.", "mid.attn."),
    (r"\.downsamplers\.0\.conv\.", ".downsample."),
    (r"\.upsamplers\.0\.conv\.", ".upsample."),
    (r"\.time_emb_proj\.", ".time."),
    (r"\.conv_shortcut\.", ".skip."),
    (r"\.transformer_blocks\.0\.", ".block."),
    (r"\.to_out\.0\.", ".to_out."),
    (r"\.ff\.net\.0\.proj\.", ".ff.proj."),
    (r"\.ff\.net\.2\.", ".ff.out."),
    (r"^conv_norm_out\.", "norm_out."),
]
VAE_RENAMES = [
    (r"^encoder\.down_blocks\.", "encoder.down."),
    (r"^decoder\.up_blocks\.", "decoder.up."),
    (r"\.mid_block\.resnets\.0\.", ".mid.res1."),
    (r"\.mid_block\.resnets\.1\.", ".mid.res2."),
    (r"\.mid_block\.attentions\.0\.group_norm\.", ".mid.attn.norm."),
    (r"\.mid_block\.attentions\.0\.(to_q|query)\.", ".mid.attn.attn.to_q."),  # older files:
    (r"\.mid_block\.attentions\.0\.(to_k|key)\.", ".mid.attn.attn.to_k."),  # query/key/value/
    (r"\.mid_block\.attentions\.0\.(to_v|value)\.", ".mid.attn.attn.to_v."),  # proj_attn
    (r"\.mid_block\.attentions\.0\.(to_out\.0|proj_attn)\.", ".mid.attn.attn.to_out."),
    (r"\.downsamplers\.0\.conv\.", ".downsample."),
    (r"\.upsamplers\.0\.conv\.", ".upsample."),
    (r"\.conv_shortcut\.", ".skip."),
    (r"\.conv_norm_out\.", ".norm_out."),
]
CLIP_RENAMES = [
    (r"^text_model\.", ""),
    (r"^embeddings\.token_embedding\.", "tok."),
    (r"^embeddings\.position_embedding\.weight$", "pos"),
    (r"^encoder\.layers\.", "layers."),
    (r"\.self_attn\.q_proj\.", ".attn.to_q."),
    (r"\.self_attn\.k_proj\.", ".attn.to_k."),
    (r"\.self_attn\.v_proj\.", ".attn.to_v."),
    (r"\.self_attn\.out_proj\.", ".attn.to_out."),
    (r"\.layer_norm1\.", ".norm1."),
    (r"\.layer_norm2\.", ".norm2."),
    (r"\.mlp\.fc1\.", ".linear1."),
    (r"\.mlp\.fc2\.", ".linear2."),
    (r"^final_layer_norm\.", "norm."),
]
DROPPED = re.compile(r"(^|\.)position_ids$")  # a buffer of 0..76, not a weight

# config.json settings that change the maths, with the values our code computes. Absent = the
# library default, which is ours.
UNET_SUPPORTED = {
    "center_input_sample": (False,), "act_fn": ("silu",), "downsample_padding": (1,),
    "mid_block_scale_factor": (1, 1.0), "mid_block_type": ("UNetMidBlock2DCrossAttn", None),
    "only_cross_attention": (False,), "dual_cross_attention": (False,),
    "upcast_attention": (False, None), "transformer_layers_per_block": (1,),
    "class_embed_type": (None,), "addition_embed_type": (None,), "num_class_embeds": (None,),
    "encoder_hid_dim": (None,), "time_cond_proj_dim": (None,), "timestep_post_act": (None,),
    "resnet_time_scale_shift": ("default",), "resnet_skip_time_act": (False,),
    "resnet_out_scale_factor": (1, 1.0), "time_embedding_type": ("positional",),
    "time_embedding_dim": (None,), "time_embedding_act_fn": (None,), "conv_in_kernel": (3,),
    "conv_out_kernel": (3,), "attention_type": ("default",), "cross_attention_norm": (None,),
    "projection_class_embeddings_input_dim": (None,), "class_embeddings_concat": (False,),
}  # fmt: skip
VAE_SUPPORTED = {
    "act_fn": ("silu",), "use_quant_conv": (True,), "use_post_quant_conv": (True,),
    "shift_factor": (None, 0, 0.0), "latents_mean": (None,), "latents_std": (None,),
}  # fmt: skip
CLIP_SUPPORTED = {"hidden_act": ("quick_gelu", "gelu")}
SCHEDULER_SUPPORTED = {
    "beta_schedule": ("scaled_linear",), "prediction_type": ("epsilon", None),
    "steps_offset": (1,), "timestep_spacing": ("leading", None), "set_alpha_to_one": (False,),
    "trained_betas": (None,), "rescale_betas_zero_snr": (False, None),
}  # fmt: skip
# SD v1.x's released config.json files (the fields that matter), for tests and bench.py.
SD_V1_UNET = {
    "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "attention_head_dim": 8, "cross_attention_dim": 768, "norm_num_groups": 32,
    "in_channels": 4, "out_channels": 4, "sample_size": 64,
}  # fmt: skip
SD_V1_VAE = {
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "norm_num_groups": 32,
    "sample_size": 512, "scaling_factor": 0.18215,
}  # fmt: skip
SD_V1_TEXT = {
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
    "num_attention_heads": 12, "num_hidden_layers": 12, "max_position_embeddings": 77,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
}  # fmt: skip
DOWN = {"CrossAttnDownBlock2D": True, "DownBlock2D": False}
UP = {True: "CrossAttnUpBlock2D", False: "UpBlock2D"}


def refuse_unsupported(config, supported, what):
    bad = [
        f"{key}={config[key]!r} (ours: {allowed[0]!r})"
        for key, allowed in supported.items()
        if key in config and config[key] not in allowed
        and not (isinstance(config[key], list) and set(config[key]) <= set(allowed))
    ]  # fmt: skip
    if bad:
        raise UserError(f"this {what} config is not supported: {'; '.join(bad)}")


def unet_config(d: dict) -> SDUNetConfig:
    """SDUNetConfig from a diffusers UNet2DConditionModel config.json; refuses what we lack."""
    refuse_unsupported(d, UNET_SUPPORTED, "UNet2DConditionModel")
    down = list(d["down_block_types"])
    if any(t not in DOWN for t in down):
        raise UserError(f"U-Net down blocks {down}: ours has {' and '.join(DOWN)} only")
    attention = [DOWN[t] for t in down]
    mirrored = [UP[a] for a in reversed(attention)]
    if list(d["up_block_types"]) != mirrored:
        raise UserError(
            f"U-Net up blocks {list(d['up_block_types'])}: ours mirrors down: {mirrored}"
        )
    if d.get("in_channels", 4) != d.get("out_channels", 4):
        raise UserError(
            "U-Net in_channels != out_channels: ours predicts noise of the input's shape"
        )
    for key in ("layers_per_block", "cross_attention_dim"):
        if isinstance(d.get(key), (list, tuple)):
            raise UserError(f"U-Net {key}={d[key]}: ours takes one value for every level")
    heads = d.get("num_attention_heads") or d.get("attention_head_dim", 8)  # diffusers' SD v1 quirk
    return SDUNetConfig(
        latent_channels=d.get("in_channels", 4), channels=tuple(d["block_out_channels"]),
        attention_levels=tuple(attention), layers_per_block=d.get("layers_per_block", 2),
        n_head=heads, context_dim=d.get("cross_attention_dim", 768),
        groups=d.get("norm_num_groups", 32), eps=d.get("norm_eps", 1e-5),
        linear_proj=bool(d.get("use_linear_projection", False)),
        flip_sin_to_cos=d.get("flip_sin_to_cos", True), freq_shift=d.get("freq_shift", 0),
        sample_size=d.get("sample_size", 64),
    )  # fmt: skip


def vae_config(d: dict) -> AutoencoderKLConfig:
    refuse_unsupported(d, VAE_SUPPORTED, "AutoencoderKL")
    types = set(d.get("down_block_types", ())) | set(d.get("up_block_types", ()))
    if not types <= {"DownEncoderBlock2D", "UpDecoderBlock2D"}:
        raise UserError(
            f"autoencoder blocks {sorted(types)}: ours has DownEncoderBlock2D/UpDecoderBlock2D"
        )
    if d.get("in_channels", 3) != d.get("out_channels", 3):
        raise UserError("autoencoder in_channels != out_channels: ours reconstructs its input")
    return AutoencoderKLConfig(
        image_channels=d.get("in_channels", 3), latent_channels=d.get("latent_channels", 4),
        channels=tuple(d["block_out_channels"]), layers_per_block=d.get("layers_per_block", 1),
        groups=d.get("norm_num_groups", 32), mid_attention=d.get("mid_block_add_attention", True),
        scale_factor=d.get("scaling_factor", 0.18215), sample_size=d.get("sample_size", 512),
    )  # fmt: skip


def clip_config(d: dict) -> TextConfig:
    refuse_unsupported(d, CLIP_SUPPORTED, "CLIPTextModel")
    if d.get("model_type", "clip_text_model") != "clip_text_model":
        raise UserError(f"text encoder model_type {d['model_type']!r}: ours is clip_text_model")
    return TextConfig(
        vocab_size=d["vocab_size"], context=d.get("max_position_embeddings", 77),
        d_model=d["hidden_size"], n_head=d["num_attention_heads"], n_layer=d["num_hidden_layers"],
        causal=True, activation=d.get("hidden_act", "quick_gelu"),
        d_ff=d["intermediate_size"], eps=d.get("layer_norm_eps", 1e-5),
    )  # fmt: skip


def schedule_from(d: dict) -> Schedule:
    refuse_unsupported(d, SCHEDULER_SUPPORTED, "scheduler")
    return Schedule(
        d.get("num_train_timesteps", 1000), d.get("beta_start", 0.00085), d.get("beta_end", 0.012)
    )


def new_name(name, renames):
    for pattern, repl in renames:
        name = re.sub(pattern, repl, name)
    return name


def rename(state, renames, what):
    """Apply the table to every name; drop buffers that are not weights."""
    out = {}
    for name, w in state.items():
        if DROPPED.search(name):
            continue
        new = new_name(name, renames)
        if what == "vae" and w.dim() == 4 and ".mid.attn.attn." in new:
            w = w[:, :, 0, 0]  # very old files kept the attention projections as 1x1 convs
        out[new] = w
    return out


def unet_to_ours(state):
    return rename(state, UNET_RENAMES, "unet")


def vae_to_ours(state):
    return rename(state, VAE_RENAMES, "vae")


def clip_to_ours(state):
    return rename(state, CLIP_RENAMES, "clip")


def load_into(model, state, where):
    """Strict load with assign (the model may live on the meta device); one line if off."""
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    wrong = [k for k in set(ours) & set(state) if ours[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        parts = [f"{n} {kind}: {', '.join(v[:3])}{' ...' if len(v) > 3 else ''}"
                 for kind, v, n in (("missing", missing, len(missing)),
                                    ("unexpected", unexpected, len(unexpected)),
                                    ("of another shape", sorted(wrong), len(wrong))) if v]  # fmt: skip
        raise UserError(f"{where}: the weights do not fit the config ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True, assign=True)
    return model


WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors", "model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors",
    "diffusion_pytorch_model.bin", "pytorch_model.bin",
)  # fmt: skip


def read_folder(folder: Path):
    """(config.json as a dict, the state dict) of one diffusers/transformers model folder."""
    if not folder.is_dir():
        raise UserError(
            f"{folder}: missing (a diffusers folder has unet/ vae/ text_encoder/ tokenizer/)"
        )
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{folder}/config.json: cannot read it ({type(e).__name__})") from None
    for name in WEIGHT_FILES:
        path = folder / name
        if path.exists():
            try:
                if path.suffix == ".safetensors":
                    from safetensors.torch import load_file

                    return config, load_file(str(path))
                return config, torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # a damaged file raises many kinds
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise UserError(f"{path}: cannot read the weights ({first})") from None
    raise UserError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES[:2])})")


def build(cls, config, state, where, dtype):
    with torch.device("meta"):  # no random init of ~1B parameters: the file fills them
        model = cls(config)
    return load_into(model, state, where).to(dtype).eval()


def load_released(directory, dtype=torch.float32) -> ReleasedPipeline:
    """A local diffusers-format Stable Diffusion v1 folder -> our pipeline, on the CPU.

    float16: the autoencoder stays in float32 (SD v1's VAE overflows in half precision).
    """
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"--init-from {directory}: not a directory")
    for sub in ("unet", "vae", "text_encoder", "tokenizer"):
        if not (d / sub).is_dir():
            raise UserError(
                f"{d}: no {sub}/ folder (a diffusers Stable Diffusion folder has unet/ vae/ text_encoder/ tokenizer/)"
            )
    parts = {}
    for sub, make_config, cls, to_ours in (
        ("unet", unet_config, SDUNet, unet_to_ours),
        ("vae", vae_config, AutoencoderKL, vae_to_ours),
        ("text_encoder", clip_config, TextEncoder, clip_to_ours),
    ):
        config, state = read_folder(d / sub)
        try:
            cfg = make_config(config)
        except (KeyError, TypeError, ValueError, AssertionError) as e:
            raise UserError(
                f"{d / sub}/config.json: not a config ours reads ({type(e).__name__}: {e})"
            ) from None
        part_dtype = torch.float32 if sub == "vae" and dtype == torch.float16 else dtype
        parts[sub] = build(cls, cfg, to_ours(state), d / sub, part_dtype)
    sched_file = d / "scheduler" / "scheduler_config.json"
    schedule = schedule_from(json.loads(sched_file.read_text()) if sched_file.exists() else {})
    tokenizer = CLIPTokenizer.from_dir(d / "tokenizer")
    if parts["unet"].config.context_dim != parts["text_encoder"].config.d_model:
        raise UserError(
            f"{d}: the U-Net's cross_attention_dim differs from the text encoder's width"
        )
    return ReleasedPipeline(parts["unet"], parts["vae"], parts["text_encoder"], tokenizer, schedule)
