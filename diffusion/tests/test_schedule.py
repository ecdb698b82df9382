"""The forward process and the samplers against diffusers' schedulers, in float64.

diffusers keeps its schedule buffers in float32: each test overwrites alphas_cumprod (and
the constants "one" / final_alpha_cumprod) with our float64 values, so what is compared is the
update rule, not the rounding of the betas; the betas themselves are compared at float32 precision.
clip_sample=False everywhere unless the test turns clipping on in both.
"""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from sample import ddim_step, ddim_timesteps, ddpm_step
from schedule import Schedule

T = 1000


def f64(sched, ours):
    """Put our float64 schedule into a diffusers scheduler."""
    sched.betas = ours.betas.clone()
    sched.alphas = ours.alphas.clone()
    sched.alphas_cumprod = ours.alpha_bar.clone()
    sched.one = torch.tensor(1.0, dtype=torch.float64)
    sched.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return sched


@pytest.mark.parametrize("kind,theirs", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_betas_match_diffusers(kind, theirs):
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=theirs).betas  # float32
    ours = Schedule(T, kind)
    torch.testing.assert_close(ours.betas.float(), ref, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(ours.alpha_bar, torch.cumprod(1 - ours.betas, 0))


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="unknown schedule"):
        Schedule(T, "quadratic")


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_q_sample_matches_add_noise(kind):
    ours = Schedule(T, kind)
    ref = f64(DDPMScheduler(num_train_timesteps=T, clip_sample=False), ours)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 2, 4, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(6, 2, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 17, 500, 998, 999])
    torch.testing.assert_close(
        ours.q_sample(x0, t, noise), ref.add_noise(x0, noise, t), rtol=1e-12, atol=1e-12
    )


def test_posterior_is_the_gaussian_product():
    """coef_x0, coef_xt, beta_tilde from Bayes on q(x_t|x_{t-1}) q(x_{t-1}|x_0) (DDPM eq. 6-7)."""
    s = Schedule(T, "linear")
    t = 500
    a, abp, b = s.alphas[t], s.alpha_bar_prev[t], s.betas[t]
    prec = a / b + 1 / (1 - abp)  # precisions add
    torch.testing.assert_close(1 / prec, s.beta_tilde[t])
    torch.testing.assert_close((abp.sqrt() / (1 - abp)) / prec, s.coef_x0[t])
    torch.testing.assert_close((a.sqrt() / b) / prec, s.coef_xt[t])


@pytest.mark.parametrize(
    "prediction,theirs", [("eps", "epsilon"), ("x0", "sample"), ("v", "v_prediction")]
)
@pytest.mark.parametrize("t", [0, 1, 250, 999])
@pytest.mark.parametrize("clip", [False, True])
def test_one_ddpm_step_matches_diffusers(prediction, theirs, t, clip):
    ours = Schedule(T, "linear")
    ref = f64(DDPMScheduler(num_train_timesteps=T, clip_sample=clip, prediction_type=theirs), ours)
    g = torch.Generator().manual_seed(t)
    out = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    x_t = 2 * torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    want = ref.step(out, t, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    noise = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    got = ddpm_step(ours, out, t, x_t, noise, prediction, clip)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("prediction,theirs", [("eps", "epsilon"), ("v", "v_prediction")])
@pytest.mark.parametrize(
    "kind,theirs_kind", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")]
)
def test_one_ddim_step_matches_diffusers(eta, prediction, theirs, kind, theirs_kind):
    ours = Schedule(T, kind)
    ref = DDIMScheduler(num_train_timesteps=T, beta_schedule=theirs_kind, clip_sample=False,
                        prediction_type=theirs, timestep_spacing="leading")  # fmt: skip
    f64(ref, ours)
    ref.set_timesteps(20)
    g = torch.Generator().manual_seed(1)
    for t in (
        int(ref.timesteps[0]),
        int(ref.timesteps[10]),
        int(ref.timesteps[-1]),
    ):  # last: to x_0
        out = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
        x_t = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
        noise = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
        want = ref.step(out, t, x_t, eta=eta, variance_noise=noise).prev_sample
        got = ddim_step(ours, out, t, t - T // 20, x_t, eta, noise, prediction)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 10, 20, 50, 100, 333, 1000])
def test_ddim_timesteps_are_diffusers_leading_spacing(n):
    ref = DDIMScheduler(num_train_timesteps=T, timestep_spacing="leading", steps_offset=0)
    ref.set_timesteps(n)
    assert ddim_timesteps(T, n) == ref.timesteps.tolist()


def test_more_ddim_steps_than_training_steps_is_refused():
    with pytest.raises(ValueError, match="1001 sampling steps"):
        ddim_timesteps(T, 1001)


def test_ddim_with_the_optimal_predictor_maps_noise_onto_gaussian_data():
    """No library: for data x_0 ~ N(m, s^2), q(x_t) = N(sqrt(ab) m, ab s^2 + 1 - ab) and the
    optimal eps predictor is E[eps | x_t] = sqrt(1-ab) (x_t - sqrt(ab) m) / (ab s^2 + 1 - ab).
    DDIM with eta = 0 is then the probability-flow ODE, so N(0, 1) lands on N(m, s^2)."""
    m, s = 1.5, 0.3
    sched = Schedule(T, "linear")
    x = torch.randn(20000, 1, 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    n = 100
    for t in ddim_timesteps(T, n):
        ab = sched.alpha_bar[t]
        eps = (1 - ab).sqrt() * (x - ab.sqrt() * m) / (ab * s**2 + 1 - ab)
        x = ddim_step(sched, eps, t, t - T // n, x, eta=0.0)
    assert abs(x.mean().item() - m) < 0.01, x.mean()
    assert abs(x.std().item() - s) < 0.01, x.std()


def test_guidance_mixes_conditional_and_unconditional_outputs():
    """Ho & Salimans eq. 6: w = 0 is the conditional output; w extrapolates away from the null label."""
    from model import UNet, UNetConfig
    from sample import guided_output

    torch.manual_seed(0)
    net = UNet(
        UNetConfig(
            channels=(8, 16), attention=(False, True), groups=4, layers_per_block=1, num_classes=3
        )
    )
    x, y = torch.randn(2, 1, 8, 8), torch.tensor([0, 2])
    tt = torch.full((2,), 500)
    cond, uncond = net(x, tt, y), net(x, tt, torch.full((2,), 3))
    torch.testing.assert_close(guided_output(net, x, 500, y, 0.0), cond)
    torch.testing.assert_close(
        guided_output(net, x, 500, y, 2.0), cond + 2.0 * (cond - uncond), rtol=1e-5, atol=1e-5
    )
