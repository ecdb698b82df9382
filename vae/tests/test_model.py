"""The VAE's formulas against torch.distributions, and elbo()/iwae_bound() against an exact oracle.

Oracle: a linear-Gaussian VAE (probabilistic PCA, Tipping and Bishop 1999). With
p(z) = N(0, I) and p(x|z) = N(W z + b, s^2 I), log p(x) = log N(x; b, W W^T + s^2 I) in
closed form, and the posterior p(z|x) is Gaussian. With orthogonal columns in W it is also
diagonal, so the VAE's own encoder family holds it exactly.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from model import (
    VAE,
    VAEConfig,
    bernoulli_log_prob,
    gaussian_kl,
    gaussian_log_prob,
    log_mean_exp,
    reparameterize,
)
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

f64 = torch.float64


def leaf(*shape, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=f64)).requires_grad_()


def grads(value, *inputs, seed=7):
    """Gradients of <value, R> for a random upstream R (never all ones)."""
    R = torch.randn(value.shape, generator=torch.Generator().manual_seed(seed), dtype=f64)
    return torch.autograd.grad((value * R).sum(), inputs)


def assert_same(ours, ref, inputs):
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    for g_ours, g_ref in zip(grads(ours, *inputs), grads(ref, *inputs)):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- formulas


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = leaf(6, 5, scale=2.0, seed=1), leaf(6, 5, scale=1.5, seed=2)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))
    assert_same(gaussian_kl(mu, logvar), ref, (mu, logvar))


def test_bernoulli_log_prob_matches_torch_distributions_even_for_large_logits():
    logits = leaf(4, 64, scale=8.0, seed=3)
    with torch.no_grad():
        logits[0, :4] = torch.tensor([60.0, -60.0, 800.0, -800.0], dtype=f64)
    x = (torch.rand(4, 64, generator=torch.Generator().manual_seed(4)) > 0.5).to(f64)
    ours = bernoulli_log_prob(x, logits)
    assert torch.isfinite(ours).all()
    assert_same(ours, Bernoulli(logits=logits).log_prob(x), (logits,))


def test_gaussian_log_prob_matches_torch_distributions():
    x, mean, logvar = leaf(5, 7, seed=5), leaf(5, 7, seed=6), leaf(5, 7, seed=8)
    ref = Normal(mean, torch.exp(0.5 * logvar)).log_prob(x)
    assert_same(gaussian_log_prob(x, mean, logvar), ref, (x, mean, logvar))


def test_log_mean_exp_matches_logsumexp_and_does_not_overflow():
    a = leaf(3, 50, scale=5.0, seed=9)
    ref = torch.logsumexp(a, dim=1) - math.log(50)
    assert_same(log_mean_exp(a, dim=1), ref, (a,))
    big = torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0]], dtype=f64)
    torch.testing.assert_close(log_mean_exp(big, 1), torch.tensor([1000.0, -1000.0], dtype=f64))


def test_reparameterize_equals_rsample_with_the_same_gradients():
    mu, logvar = leaf(8, 3, seed=10), leaf(8, 3, seed=11)
    torch.manual_seed(123)
    ref = Normal(mu, torch.exp(0.5 * logvar)).rsample()
    ours = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(123))
    assert_same(ours, ref, (mu, logvar))


# ----------------------------------------------------------------------------- the networks


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("shape,likelihood", [((1, 8, 8), "bernoulli"), ((3, 12, 8), "gaussian")])
def test_shapes_of_every_method(arch, shape, likelihood):
    C, H, W = shape
    c = VAEConfig(C, H, W, likelihood, arch, latent_dim=3, hidden=16, conv_channels=4)
    vae = VAE(c)
    x = torch.rand(5, *shape)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (5, 3)
    out = vae.elbo(x)
    assert out["elbo"].shape == out["kl"].shape == out["recon"].shape == (5,)
    assert out["loss"].shape == ()
    assert vae.iwae_bound(x, 7, chunk=3).shape == (5,)
    assert vae.log_weights(x, 7, chunk=3).shape == (5, 7)
    for images in (vae.sample(4), vae.reconstruct(x[:4]), vae.interpolate(x[0], x[1], steps=4)):
        assert images.shape == (4, *shape) and images.min() >= 0 and images.max() <= 1


def test_elbo_sums_over_pixels_and_averages_over_the_batch():
    """loss = BCE summed over an image's pixels, averaged over images, plus the mean KL."""
    torch.manual_seed(0)
    vae = VAE(VAEConfig(latent_dim=4, hidden=32)).double()
    x = (torch.rand(6, 1, 8, 8) > 0.5).double()
    eps = torch.randn(1, 6, 4, dtype=f64)
    out = vae.elbo(x, eps=eps)
    mu, logvar = vae.encode(x)
    logits = vae.decode(mu + torch.exp(0.5 * logvar) * eps[0])
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 6
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum() / 6
    torch.testing.assert_close(out["loss"], bce + kl, rtol=1e-12, atol=1e-12)
    beta0 = vae.elbo(x, beta=0.0, eps=eps)["loss"]
    torch.testing.assert_close(beta0, bce, rtol=1e-12, atol=1e-12)
    # free bits: a floor above every unit's KL makes the KL part a constant latent_dim * floor
    fb = vae.elbo(x, free_bits=100.0, eps=eps)["loss"]
    torch.testing.assert_close(fb, bce + 400.0, rtol=1e-12, atol=1e-12)


def test_iwae_refuses_k_below_one():
    vae = VAE(VAEConfig(latent_dim=2, hidden=8))
    with pytest.raises(ValueError, match="at least one"):
        vae.iwae_bound(torch.zeros(2, 1, 8, 8), 0)


# ----------------------------------------------------------------------------- the PPCA oracle

D, d, S2 = 6, 2, 0.3


class LinearDecoder(torch.nn.Module):
    """p(x|z) = N(W z + b, s^2 I), returned as the Gaussian decoder's (mean, log sigma^2)."""

    def __init__(self, W, b):
        super().__init__()
        self.W, self.b = W, b

    def forward(self, z):
        mean = (z @ self.W.T + self.b).view(len(z), 1, 1, D)  # (B, d) -> (B, 1, 1, D)
        return mean, torch.full_like(mean, math.log(S2))


class ExactPosterior(torch.nn.Module):
    """p(z|x) = N(M^-1 W^T (x - b), s^2 M^-1), M = W^T W + s^2 I (diagonal here); shift/scale spoil it."""

    def __init__(self, W, b, shift=0.0, scale=1.0):
        super().__init__()
        self.W, self.b, self.shift, self.scale = W, b, shift, scale

    def forward(self, x):
        m = (self.W * self.W).sum(0) + S2  # diag of M: (d,)
        mu = (x.flatten(1) - self.b) @ self.W / m + self.shift
        logvar = torch.log(S2 / m).expand_as(mu) + math.log(self.scale)
        return mu, logvar


def ppca(shift=0.0, scale=1.0):
    g = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(D, d, generator=g, dtype=f64))  # orthonormal columns
    W = U * torch.tensor([2.0, 0.7], dtype=f64)  # W^T W = diag(4, 0.49)
    b = torch.randn(D, generator=g, dtype=f64)
    vae = VAE(VAEConfig(1, 1, D, "gaussian", latent_dim=d, hidden=4)).double()
    vae.encoder, vae.decoder = ExactPosterior(W, b, shift, scale), LinearDecoder(W, b)
    z = torch.randn(5, d, generator=g, dtype=f64)
    x = z @ W.T + b + math.sqrt(S2) * torch.randn(5, D, generator=g, dtype=f64)
    log_px = MultivariateNormal(b, W @ W.T + S2 * torch.eye(D, dtype=f64)).log_prob(x)
    return vae, x.view(5, 1, 1, D), log_px


def exact_elbo(vae, x):
    """E_q[log p(x|z)] is quadratic in z, so the 2d points +-sqrt(d) e_i give it exactly."""
    points = math.sqrt(d) * torch.cat([torch.eye(d), -torch.eye(d)]).to(f64)  # (2d, d)
    eps = points[:, None, :].expand(2 * d, len(x), d)  # (S, B, d)
    return vae.elbo(x, eps=eps)["elbo"]


def test_ppca_exact_posterior_makes_elbo_and_every_iwae_bound_equal_log_px():
    vae, x, log_px = ppca()
    torch.testing.assert_close(exact_elbo(vae, x), log_px, rtol=1e-12, atol=1e-10)
    g = torch.Generator().manual_seed(1)
    for k in (1, 10):  # every importance weight is p(x): zero variance
        torch.testing.assert_close(
            vae.iwae_bound(x, k, generator=g), log_px, rtol=1e-12, atol=1e-10
        )


def test_ppca_with_a_wrong_posterior_elbo_below_iwae_k_rising_with_k_below_log_px():
    vae, x, log_px = ppca(shift=0.8, scale=3.0)
    elbo = exact_elbo(vae, x)
    gap = log_px - elbo
    assert (gap > 0.5).all(), gap  # a posterior wrong enough for the bounds to separate
    R = 400  # independent estimates of each L_k averaged: E[L_k], up to Monte Carlo error
    x_rep = x.repeat(R, 1, 1, 1)
    g = torch.Generator().manual_seed(2)
    bounds = {k: vae.iwae_bound(x_rep, k, generator=g).view(R, 5).mean(0) for k in (1, 10, 100)}
    torch.testing.assert_close(bounds[1], elbo, rtol=0, atol=0.1 * gap.min().item())  # L_1 = ELBO
    assert (elbo < bounds[10]).all() and (bounds[10] < bounds[100]).all()
    assert (bounds[100] < log_px).all()
    assert (log_px - bounds[100] < 0.5 * gap).all()  # and the gap closes as k grows
