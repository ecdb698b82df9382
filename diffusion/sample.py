"""The reverse process: DDPM's ancestral sampler, DDIM, and classifier-free guidance.

DDPM (Ho et al. 2020, arXiv 2006.11239, Algorithm 2) walks all T steps back, each a Gaussian
p(x_{t-1} | x_t) whose mean is the posterior mean with x_0 replaced by the network's guess.
DDIM (Song, Meng, Ermon 2021, arXiv 2010.02502, eq. 12) uses the same network on a short
sub-sequence of timesteps; eta = 0 makes it deterministic, eta = 1 is DDPM's variance.
Classifier-free guidance is Ho and Salimans 2022 (arXiv 2207.12598, eq. 6).

Tests (tests/test_sample.py) hold ddpm_step against diffusers' DDPMScheduler.step and ddim_step
against DDIMScheduler.step (eta 0 and 1, the same noise), and ddim_timesteps against
DDIMScheduler.set_timesteps with timestep_spacing="leading", in float64; and, with no library
at all, DDIM with the analytic optimal predictor for Gaussian data maps N(0, 1) onto N(m, s^2).
"""

import torch


def ddim_timesteps(T, n):
    """The sub-sequence tau of n timesteps, "leading" spacing: T//n * [n-1, ..., 1, 0].

    The same set as diffusers' DDIMScheduler(timestep_spacing="leading", steps_offset=0); the
    step after tau_i goes to tau_i - T//n (and below 0 means "the data", alpha_bar = 1).
    """
    if not 1 <= n <= T:
        raise ValueError(f"{n} sampling steps: expected 1 to the {T} training steps")
    return [i * (T // n) for i in reversed(range(n))]


def ddpm_step(schedule, out, t, x_t, noise, prediction="eps", clip=False):
    """x_{t-1} = coef_x0_t x0_hat + coef_xt_t x_t + sigma_t z,  sigma_t^2 = beta_tilde_t, z = 0 at t = 0.

    DDPM eq. 7 with x_0 replaced by the network's guess (eq. 15 for eps-prediction); sigma_t^2 =
    beta_tilde_t is the "fixed_small" variance, the lower of the two bounds in Sec. 3.2.
    """
    tt = torch.full((x_t.shape[0],), t, dtype=torch.long)
    _, x0 = schedule.to_eps_x0(prediction, out, x_t, tt)
    if clip:
        x0 = x0.clamp(-1, 1)
    mean = (
        schedule.at(schedule.coef_x0, tt, x_t) * x0 + schedule.at(schedule.coef_xt, tt, x_t) * x_t
    )
    if t == 0:
        return mean
    return mean + schedule.at(schedule.beta_tilde, tt, x_t).sqrt() * noise


def ddim_step(schedule, out, t, t_prev, x_t, eta=0.0, noise=None, prediction="eps", clip=False):
    """DDIM eq. 12, from timestep t to t_prev (< 0: to the data, alpha_bar = 1):

        x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps_hat + sigma z
        sigma  = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev)

    x0_hat is "the predicted x_0" and the middle term "the direction pointing to x_t"; neither
    needs the steps in between, which is why DDIM can skip them.
    """
    tt = torch.full((x_t.shape[0],), t, dtype=torch.long)
    eps, x0 = schedule.to_eps_x0(prediction, out, x_t, tt)
    if clip:
        x0 = x0.clamp(-1, 1)
    ab_t = schedule.alpha_bar[t].item()
    ab_prev = schedule.alpha_bar[t_prev].item() if t_prev >= 0 else 1.0
    sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)) ** 0.5
    x_prev = ab_prev**0.5 * x0 + (1 - ab_prev - sigma**2) ** 0.5 * eps
    if eta > 0:
        x_prev = x_prev + sigma * noise
    return x_prev


def guided_output(model, x_t, t, y, guidance):
    """eps~ = (1 + w) eps(x_t, c) - w eps(x_t, null)   (Ho & Salimans eq. 6; w = 0: plain conditional).

    The null label is the extra class index model.num_classes that training dropped labels to.
    Linear in the output, so the same mix serves x0- and v-prediction.
    """
    tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
    if guidance == 0:
        return model(x_t, tt, y)
    null = torch.full_like(y, model.num_classes)
    both = model(torch.cat([x_t, x_t]), torch.cat([tt, tt]), torch.cat([y, null]))  # (2B, C, H, W)
    cond, uncond = both.chunk(2)
    return (1 + guidance) * cond - guidance * uncond


def check_sampling(model, schedule, y, steps, guidance, method):
    """The mistakes a user can make, as ValueErrors with one clear line."""
    if method not in ("ddpm", "ddim"):
        raise ValueError(f"unknown sampler {method!r}: expected ddpm or ddim")
    if method == "ddim" and not 1 <= steps <= schedule.T:
        raise ValueError(f"--ddim-steps {steps}: expected 1 to the {schedule.T} training steps")
    if guidance != 0 and model.num_classes == 0:
        raise ValueError("--guidance needs a class-conditional model; this one is unconditional")
    if model.num_classes > 0 and y is None:
        raise ValueError("this model is class-conditional: give labels")


@torch.no_grad()
def sample(
    model,
    schedule,
    shape,
    y=None,
    method="ddim",
    steps=50,
    eta=0.0,
    guidance=0.0,
    clip=False,
    prediction="eps",
    generator=None,
    keep=0,
):
    """x_T ~ N(0, I), then the reverse steps; returns (x_0, [(t, x_t), ...] kept for a strip).

    method "ddpm" takes all T steps (Algorithm 2); "ddim" takes `steps` of them with eta.
    keep > 0 keeps about that many intermediate x_t, evenly spaced, x_T first.
    """
    check_sampling(model, schedule, y, steps, guidance, method)
    p = next(model.parameters())
    randn = lambda: torch.randn(shape, generator=generator, dtype=torch.float32).to(
        p.device, p.dtype
    )
    x = randn()
    ts = (
        list(range(schedule.T - 1, -1, -1))
        if method == "ddpm"
        else ddim_timesteps(schedule.T, steps)
    )
    every = max(1, len(ts) // keep) if keep else 0
    kept = [(ts[0], x.float().cpu())] if keep else []  # (timestep of x, x); -1 is the data
    for i, t in enumerate(ts):
        out = guided_output(model, x, t, y, guidance)
        if method == "ddpm":
            x = ddpm_step(schedule, out, t, x, randn() if t > 0 else None, prediction, clip)
        else:
            t_prev = t - schedule.T // steps
            noise = randn() if eta > 0 else None
            x = ddim_step(schedule, out, t, t_prev, x, eta, noise, prediction, clip)
        if keep and ((i + 1) % every == 0 or i == len(ts) - 1):
            kept.append(
                (max(t - (1 if method == "ddpm" else schedule.T // steps), -1), x.float().cpu())
            )
    return x, kept


def sample_labelled(
    model, schedule, n, steps=50, guidance=0.0, method="ddim", prediction="eps", seed=0, batch=500,
    clip=False,
):  # fmt: skip
    """n samples in batches, labels 0, 1, ..., 9, 0, 1, ... (None for an unconditional model)."""
    g = torch.Generator().manual_seed(seed)
    p = next(model.parameters())
    labels = torch.arange(n) % 10 if model.num_classes else None
    xs = []
    for i in range(0, n, batch):
        y = labels[i : i + batch].to(p.device) if labels is not None else None
        shape = (min(batch, n - i), *model.sample_shape)
        x, _ = sample(
            model,
            schedule,
            shape,
            y,
            method,
            steps,
            0.0,
            guidance,
            clip,
            prediction=prediction,
            generator=g,
        )
        xs.append(x.float().cpu())
    return torch.cat(xs), labels
