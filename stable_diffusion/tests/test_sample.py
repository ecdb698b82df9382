"""The schedule, the DDIM step and guidance against diffusers' DDIMScheduler (float64 buffers)."""

import pytest
import torch
from diffusers import DDIMScheduler
from sample import Schedule, guided_eps


def reference(n_steps):
    """SD v1's scheduler settings, buffers in float64, no clipping."""
    s = DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
    )  # fmt: skip
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    s.alphas_cumprod = torch.cumprod(1 - betas, 0)
    s.final_alpha_cumprod = s.alphas_cumprod[0]
    s.set_timesteps(n_steps)
    return s


def test_alpha_bar_matches_diffusers_scaled_linear():
    ours = Schedule()
    s = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    torch.testing.assert_close(ours.alpha_bar.float(), s.alphas_cumprod, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [1, 10, 50, 333, 1000])
def test_ddim_timesteps_match_leading_spacing_with_offset_one(n):
    assert Schedule().ddim_timesteps(n) == reference(n).timesteps.tolist()


def test_q_sample_matches_add_noise():
    torch.manual_seed(0)
    z0, noise = (
        torch.randn(4, 4, 8, 8, dtype=torch.float64),
        torch.randn(4, 4, 8, 8, dtype=torch.float64),
    )
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(
        Schedule().q_sample(z0, t, noise), reference(10).add_noise(z0, noise, t)
    )


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_steps_match_diffusers_along_a_whole_trajectory(eta):
    torch.manual_seed(0)
    ours, ref = Schedule(), reference(20)
    z = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    z_ref = z.clone()
    for t in ref.timesteps.tolist():
        eps = torch.sin(3 * z) + 0.1 * t / 1000  # any function of z and t stands in for the U-Net
        eps_ref = torch.sin(3 * z_ref) + 0.1 * t / 1000
        noise = torch.randn_like(z)
        z = ours.ddim_step(eps, t, t - 1000 // 20, z, eta, noise)
        z_ref = ref.step(eps_ref, t, z_ref, eta=eta, variance_noise=noise).prev_sample
    torch.testing.assert_close(z, z_ref)


def test_guidance_scale_one_is_conditional_and_zero_unconditional():
    torch.manual_seed(0)

    class Toy(torch.nn.Module):  # eps depends on the text through its mean
        def forward(self, z, t, c, mask):
            return z * 0.5 + c.mean(dim=(1, 2))[:, None, None, None]

    z = torch.randn(3, 4, 8, 8)
    cond = (torch.randn(3, 2, 5), torch.zeros(3, 2, dtype=torch.bool))
    uncond = (torch.randn(3, 2, 5), torch.zeros(3, 2, dtype=torch.bool))
    unet = Toy()
    eps_c, eps_u = unet(z, 0, cond[0], None), unet(z, 0, uncond[0], None)
    torch.testing.assert_close(guided_eps(unet, z, 5, cond, uncond, 1.0), eps_c)
    torch.testing.assert_close(guided_eps(unet, z, 5, cond, uncond, 0.0), eps_u)
    torch.testing.assert_close(
        guided_eps(unet, z, 5, cond, uncond, 3.0), eps_u + 3 * (eps_c - eps_u)
    )


def test_more_ddim_steps_than_training_steps_is_refused():
    with pytest.raises(ValueError, match="1..1000"):
        Schedule().ddim_timesteps(1001)
