"""The forward (noising) process of DDPM in closed form, and the training losses.

Ho, Jain, Abbeel 2020, "Denoising Diffusion Probabilistic Models" (arXiv 2006.11239, Sec. 2-3):
a fixed Markov chain adds Gaussian noise, q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I),
and because a product of Gaussians is Gaussian, any x_t is one step from the data:

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),   alpha_bar_t = prod_{s<=t} (1 - beta_s)

The cosine schedule is Nichol and Dhariwal 2021 (arXiv 2102.09672, Sec. 3.2); v-prediction is
Salimans and Ho 2022 (arXiv 2202.00512, Sec. 4). Timesteps are 0-based, t = 0 .. T-1, as in
diffusers. Tests (tests/test_schedule.py) hold the betas against diffusers' "linear" and
"squaredcos_cap_v2" schedules and q_sample against DDPMScheduler.add_noise, in float64.
"""

import math

import torch
import torch.nn.functional as F

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "x0", "v")


def linear_betas(T, beta_1=1e-4, beta_T=0.02):
    """DDPM's schedule: beta_t rises linearly from 1e-4 to 0.02 over T = 1000 steps (Sec. 4)."""
    return torch.linspace(beta_1, beta_T, T, dtype=torch.float64)


def cosine_betas(T, s=0.008, max_beta=0.999):
    """alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2); beta_t = 1 - alpha_bar(t+1) / alpha_bar(t).

    Clipped at 0.999 so that the last steps near t = T do not divide by ~0 (Nichol & Dhariwal).
    """
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    return torch.tensor([min(1 - f(i + 1) / f(i), max_beta) for i in range(T)], dtype=torch.float64)


class Schedule:
    """Every coefficient of the forward process and of its posterior, precomputed in float64.

    alpha_t = 1 - beta_t; alpha_bar_t = prod_{s<=t} alpha_s; alpha_bar_prev_t = alpha_bar_{t-1}
    (1 at t = 0). The posterior of one step back given x_0 is Gaussian (DDPM eq. 6-7):

        q(x_{t-1} | x_t, x_0) = N(coef_x0_t x_0 + coef_xt_t x_t, beta_tilde_t I)
        coef_x0_t = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t)
        coef_xt_t = (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t)
        beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
    """

    def __init__(self, T=1000, kind="linear"):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}: expected one of {', '.join(SCHEDULES)}")
        if T < 2:
            raise ValueError(f"a schedule needs at least 2 timesteps, got {T}")
        self.T, self.kind = T, kind
        self.betas = linear_betas(T) if kind == "linear" else cosine_betas(T)
        self.alphas = 1 - self.betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)
        self.alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        self.coef_x0 = self.betas * self.alpha_bar_prev.sqrt() / (1 - self.alpha_bar)
        self.coef_xt = (1 - self.alpha_bar_prev) * self.alphas.sqrt() / (1 - self.alpha_bar)
        self.beta_tilde = (1 - self.alpha_bar_prev) / (1 - self.alpha_bar) * self.betas

    def at(self, values, t, like):
        """values[t] as a (B, 1, 1, 1) tensor in like's dtype and device, ready to broadcast."""
        return values.to(like.device)[t.to(like.device)].to(like.dtype).view(-1, 1, 1, 1)

    # ------------------------------------------------------------------ forward process

    def q_sample(self, x0, t, noise):
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps   (DDPM eq. 4, reparametrised)."""
        ab = self.at(self.alpha_bar, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    # ------------------------------------------------------------------ what the network predicts

    def target(self, prediction, x0, noise, t):
        """The regression target: eps (DDPM's L_simple), x_0 itself, or v = sqrt(ab) eps - sqrt(1-ab) x_0."""
        if prediction == "eps":
            return noise
        if prediction == "x0":
            return x0
        if prediction == "v":
            ab = self.at(self.alpha_bar, t, x0)
            return ab.sqrt() * noise - (1 - ab).sqrt() * x0
        raise ValueError(f"unknown prediction {prediction!r}: expected one of {PREDICTIONS}")

    def to_eps_x0(self, prediction, out, x_t, t):
        """The network's output as (eps_hat, x0_hat), whatever it was trained to predict.

        From x_t = sqrt(ab) x_0 + sqrt(1-ab) eps:  x_0 = (x_t - sqrt(1-ab) eps) / sqrt(ab);
        from v: x_0 = sqrt(ab) x_t - sqrt(1-ab) v and eps = sqrt(1-ab) x_t + sqrt(ab) v.
        """
        ab = self.at(self.alpha_bar, t, x_t)
        if prediction == "eps":
            return out, (x_t - (1 - ab).sqrt() * out) / ab.sqrt()
        if prediction == "x0":
            return (x_t - ab.sqrt() * out) / (1 - ab).sqrt(), out
        if prediction == "v":
            return (1 - ab).sqrt() * x_t + ab.sqrt() * out, ab.sqrt() * x_t - (1 - ab).sqrt() * out
        raise ValueError(f"unknown prediction {prediction!r}: expected one of {PREDICTIONS}")

    def loss(self, model, x0, t, noise, y=None, prediction="eps"):
        """L_simple = E_{t, x_0, eps} || target - net(x_t, t) ||^2   (DDPM eq. 14 for target = eps).

        The variational bound weights each t by beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t));
        DDPM drops the weight, which spends the model's effort on the harder, noisier t and
        gave better samples (Sec. 3.4).
        """
        x_t = self.q_sample(x0, t, noise)
        return F.mse_loss(model(x_t, t, y), self.target(prediction, x0, noise, t))
