"""What the device can do, for train.py and bench.py: mixed precision and the peak FLOP/s.

Mixed precision (Micikevicius et al. 2017, https://arxiv.org/abs/1710.03740): on CUDA the
forward runs under autocast in bfloat16 (or float16 where bf16 is missing) while the weights and
AdamW's moments stay float32; float16's narrow range needs a GradScaler, which multiplies the
loss before backward and divides the gradients after, skipping a step whose gradients overflow.
On CPU and MPS everything stays float32.

MFU (model FLOPs utilisation, PaLM appendix B, https://arxiv.org/abs/2204.02311) divides the
training FLOPs/s by the device's peak: the datasheet dense bf16 figure of known GPUs, elsewhere
the best float32 matmul rate measured here.
"""

import time
from contextlib import nullcontext

import torch
from harness import UserError

DTYPES = ("auto", "float32", "bfloat16", "float16")


def precision(name: str, device: torch.device):
    """--dtype -> (dtype name, autocast context, GradScaler); auto: bf16 on CUDA, else float32."""
    if name == "auto":
        name = "float32" if device.type != "cuda" else "bfloat16"
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            name = "float16"
    if name not in DTYPES:
        raise UserError(f"--dtype {name}: expected one of {', '.join(DTYPES)}")
    if name != "float32" and device.type != "cuda":
        raise UserError(f"--dtype {name} needs a CUDA device; use float32 on {device.type}")
    ctx = torch.autocast("cuda", dtype=getattr(torch, name)) if name != "float32" else nullcontext()
    return name, ctx, torch.amp.GradScaler("cuda", enabled=name == "float16")


def peak_flops(device: torch.device) -> float:
    """Dense bf16 peak of known GPUs; elsewhere the best measured float32 matmul rate here."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, flops in (("H100", 989e12), ("H200", 989e12), ("A100", 312e12), ("L4", 121e12)):
            if key in name:
                return flops
    a = torch.full((512, 512), 0.5, device=device)  # no random draw: leaves the RNG as it was
    best = 0.0
    for _ in range(10):  # best of 10 short windows: a busy machine deflates the peak less
        t0 = time.perf_counter()
        for _ in range(3):
            a @ a
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 3 * 2 * 512**3 / (time.perf_counter() - t0))
    return best
