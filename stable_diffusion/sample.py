"""The noise schedule, DDIM in latent space, and classifier-free guidance.

Forward process (Ho et al. 2020, https://arxiv.org/abs/2006.11239):
    z_t = sqrt(alpha_bar_t) z_0 + sqrt(1 - alpha_bar_t) eps,  alpha_bar_t = prod_{s<=t} (1 - beta_s)
with SD v1's "scaled linear" betas: beta_t = (linspace(sqrt(0.00085), sqrt(0.012), T)_t)^2.

DDIM step (Song, Meng, Ermon 2021, https://arxiv.org/abs/2010.02502, Eq. 12), t -> t_prev:
    z0_hat = (z_t - sqrt(1 - a_t) eps) / sqrt(a_t)
    sigma  = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev)
    z_prev = sqrt(a_prev) z0_hat + sqrt(1 - a_prev - sigma^2) eps + sigma noise
Timesteps are diffusers' "leading" spacing with steps_offset 1, as SD v1 ships:
    t_i = i * (T // n) + 1 for i = n-1 ... 0, and a_prev = alpha_bar_0 after the last step.

Classifier-free guidance (Ho and Salimans 2022, https://arxiv.org/abs/2207.12598):
    eps = eps(z, "") + s (eps(z, text) - eps(z, ""))   (s = 1: conditional, s = 0: unconditional)

tests/test_sample.py: against diffusers' DDIMScheduler (float64 buffers, clip_sample=False).
"""

import torch


class Schedule:
    def __init__(self, num_steps=1000, beta_start=0.00085, beta_end=0.012, dtype=torch.float64):
        self.num_steps = num_steps
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=dtype) ** 2
        self.alpha_bar = torch.cumprod(1.0 - betas, dim=0)  # (T,)

    def q_sample(self, z0, t, noise):
        a = self.alpha_bar.to(z0.device)[t].to(z0.dtype)[:, None, None, None]
        return a.sqrt() * z0 + (1 - a).sqrt() * noise

    def ddim_timesteps(self, n):
        if not 1 <= n <= self.num_steps:
            raise ValueError(f"DDIM steps must be in 1..{self.num_steps}, got {n}")
        ratio = self.num_steps // n
        return [i * ratio + 1 for i in reversed(range(n))]

    def ddim_step(self, eps, t, t_prev, z, eta=0.0, noise=None):
        a_t = self.alpha_bar[t].item()
        a_prev = self.alpha_bar[t_prev].item() if t_prev >= 0 else self.alpha_bar[0].item()
        z0_hat = (z - (1 - a_t) ** 0.5 * eps) / a_t**0.5
        sigma = eta * ((1 - a_prev) / (1 - a_t)) ** 0.5 * (1 - a_t / a_prev) ** 0.5
        z_prev = a_prev**0.5 * z0_hat + (1 - a_prev - sigma**2) ** 0.5 * eps
        if eta > 0:
            z_prev = z_prev + sigma * noise
        return z_prev


def guided_eps(unet, z, t, cond, uncond, scale):
    """eps_u + s (eps_c - eps_u), both predictions in one batch of 2B."""
    (c, c_mask), (u, u_mask) = cond, uncond
    tt = torch.full((2 * len(z),), t, device=z.device, dtype=torch.long)
    mask = None if c_mask is None else torch.cat([c_mask, u_mask])  # SD v1 masks no padding
    eps = unet(torch.cat([z, z]), tt, torch.cat([c, u]), mask)
    eps_c, eps_u = eps.chunk(2)
    return eps_u + scale * (eps_c - eps_u)


@torch.no_grad()
def sample_latents(
    unet,
    text_encoder,
    tokenizer,
    schedule,
    prompts,
    *,
    size,
    steps,
    guidance,
    eta=0.0,
    generator=None,
    keep=False,
    latents=None,
    progress=False,
):
    """DDIM from z_T ~ N(0, I) to z_0 for each prompt; keep=True also returns every z_t.

    latents: a given z_T (B, c, size, size) instead of drawing one; progress: a tqdm bar.
    Works for the toy (word tokenizer, padding mask) and SD v1 (clip.py: no mask, None).
    """
    param = next(unet.parameters())
    device, dtype = param.device, param.dtype

    def encode(batch):
        ids, mask = tokenizer.encode(batch)
        mask = None if mask is None else mask.to(device)
        return text_encoder(ids.to(device), mask).to(dtype), mask

    cond, uncond = encode(prompts), encode([""] * len(prompts))
    c = unet.config.latent_channels
    if latents is None:
        latents = torch.randn(len(prompts), c, size, size, generator=generator)  # z_T
    z = latents.to(device, dtype)
    timesteps = schedule.ddim_timesteps(steps)
    ratio = schedule.num_steps // steps
    path = [z]
    if progress:
        from tqdm import tqdm

        timesteps = tqdm(timesteps, desc="DDIM", unit="step")
    for t in timesteps:
        eps = guided_eps(unet, z, t, cond, uncond, guidance)
        noise = torch.randn(z.shape, generator=generator).to(device, dtype) if eta > 0 else None
        z = schedule.ddim_step(eps, t, t - ratio, z, eta, noise)
        if keep:
            path.append(z)
    return (z, path) if keep else z
