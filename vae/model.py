"""The variational autoencoder, from the Gaussian KL up to the importance-weighted bound.

Kingma and Welling, "Auto-Encoding Variational Bayes", https://arxiv.org/abs/1312.6114
(Sections 2.3-2.4: the reparameterisation trick and the SGVB estimator; Appendix B: the KL
in closed form). Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders",
https://arxiv.org/abs/1509.00519 (Section 3: the k-sample bound; Section 5.2: active units).

Read top to bottom: the four formulas (reparameterize, gaussian_kl, bernoulli_log_prob,
gaussian_log_prob) and log_mean_exp, then the encoders q(z|x) and decoders p(x|z), then the
VAE that puts them together into elbo(), iwae_bound(), sample(), reconstruct(), interpolate().

tests/test_model.py holds the formulas against torch.distributions (values and gradients,
float64), and the whole of elbo() and iwae_bound() against an exact oracle: a linear-Gaussian
VAE (probabilistic PCA), whose log p(x) MultivariateNormal computes in closed form.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

LOG_2PI = math.log(2 * math.pi)
LOGVAR_MIN = -12.0  # the Gaussian decoder's floor on log sigma^2 (data step 1/256: log var ~ -13.5)


# ----------------------------------------------------------------------------- the formulas


def reparameterize(mu, logvar, eps=None, generator=None):
    """z = mu + sigma * eps, eps ~ N(0, I), sigma = exp(logvar / 2)  (Kingma and Welling eq. 10).

    Sampling z ~ N(mu, sigma^2) directly is a dead end for backprop: the sample has no
    derivative with respect to mu or sigma. Written as a fixed noise eps pushed through a
    differentiable map, dz/dmu = 1 and dz/dsigma = eps, so the gradient of any f(z) reaches
    the encoder. eps may be given (any leading sample dims broadcast against mu).
    """
    std = torch.exp(0.5 * logvar)
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + std * eps


def gaussian_kl(mu, logvar):
    """KL(N(mu, sigma^2) || N(0, 1)) per latent unit, in closed form (Appendix B):

    KL = 1/2 (mu^2 + sigma^2 - 1 - log sigma^2)
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def bernoulli_log_prob(x, logits):
    """log Bernoulli(x; p = sigmoid(l)) = x l - log(1 + e^l), per pixel.

    log(1 + e^l) is written as max(l, 0) + log(1 + e^-|l|) so that it never overflows.
    """
    softplus = logits.clamp(min=0) + torch.log1p(torch.exp(-logits.abs()))
    return x * logits - softplus


def gaussian_log_prob(x, mean, logvar):
    """log N(x; mean, sigma^2) = -1/2 (log 2 pi + log sigma^2 + (x - mean)^2 / sigma^2), per element."""
    return -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar))


def full_precision(t):
    """Sums over pixels and samples lose digits in half precision: bf16/fp16 -> float32."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def log_mean_exp(a, dim):
    """log (1/k) sum_i exp(a_i) without overflow: m + log mean exp(a - m), m = max a."""
    m = a.max(dim=dim, keepdim=True).values.detach()
    return (m + torch.log(torch.exp(a - m).mean(dim=dim, keepdim=True))).squeeze(dim)


# ----------------------------------------------------------------------------- encoders, decoders


@dataclass
class VAEConfig:
    channels: int = 1  # image shape (channels, height, width) of the data
    height: int = 8
    width: int = 8
    likelihood: str = "bernoulli"  # bernoulli (binary pixels) | gaussian (grey or colour levels)
    arch: str = "mlp"  # mlp | conv
    latent_dim: int = 16
    hidden: int = 256  # width of the MLP's hidden layers (and of the conv nets' dense layer)
    n_layer: int = 2  # hidden layers of the MLP encoder and decoder
    conv_channels: int = 32  # channels of the first conv layer (the second has twice as many)


def gaussian_head(out):
    """The Gaussian decoder's two outputs: mean, and log sigma^2 softly kept above LOGVAR_MIN."""
    mean, raw = out.chunk(2, dim=1)
    return mean, LOGVAR_MIN + nn.functional.softplus(raw - LOGVAR_MIN)


def mlp(sizes):
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no activation after the last layer


class MLPEncoder(nn.Module):
    """q(z|x) = N(mu(x), diag sigma^2(x)): x flattened -> hidden layers -> (mu, log sigma^2)."""

    def __init__(self, c):
        super().__init__()
        d = c.channels * c.height * c.width
        self.net = mlp([d] + [c.hidden] * c.n_layer + [2 * c.latent_dim])

    def forward(self, x):
        mu, logvar = self.net(x.flatten(1)).chunk(2, dim=1)  # (B, D) -> 2 x (B, latent_dim)
        return mu, logvar


class MLPDecoder(nn.Module):
    """p(x|z): z -> hidden layers -> Bernoulli logits, or (mean, log sigma^2), per pixel."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        k = 2 if c.likelihood == "gaussian" else 1
        d = c.channels * c.height * c.width
        self.net = mlp([c.latent_dim] + [c.hidden] * c.n_layer + [k * d])

    def forward(self, z):
        c = self.c
        out = self.net(z).view(len(z), -1, c.height, c.width)  # (B, k*C, H, W)
        return gaussian_head(out) if c.likelihood == "gaussian" else out


class ConvEncoder(nn.Module):
    """Two stride-2 convolutions (H -> H/2 -> H/4), a dense layer, then (mu, log sigma^2)."""

    def __init__(self, c):
        super().__init__()
        ch = c.conv_channels
        self.net = nn.Sequential(
            nn.Conv2d(c.channels, ch, 4, stride=2, padding=1),  # (B, ch, H/2, W/2)
            nn.ReLU(),
            nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1),  # (B, 2ch, H/4, W/4)
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * ch * (c.height // 4) * (c.width // 4), c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, 2 * c.latent_dim),
        )

    def forward(self, x):
        mu, logvar = self.net(x).chunk(2, dim=1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """The encoder mirrored: dense layers to (2ch, H/4, W/4), two stride-2 transposed convs."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        ch, h, w = c.conv_channels, c.height // 4, c.width // 4
        k = 2 if c.likelihood == "gaussian" else 1
        self.net = nn.Sequential(
            nn.Linear(c.latent_dim, c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, 2 * ch * h * w),
            nn.ReLU(),
            nn.Unflatten(1, (2 * ch, h, w)),  # (B, 2ch, H/4, W/4)
            nn.ConvTranspose2d(2 * ch, ch, 4, stride=2, padding=1),  # (B, ch, H/2, W/2)
            nn.ReLU(),
            nn.ConvTranspose2d(ch, k * c.channels, 4, stride=2, padding=1),  # (B, k*C, H, W)
        )

    def forward(self, z):
        out = self.net(z)
        return gaussian_head(out) if self.c.likelihood == "gaussian" else out


# ----------------------------------------------------------------------------- the VAE


class VAE(nn.Module):
    """Encoder q(z|x), decoder p(x|z), prior p(z) = N(0, I); trained on the ELBO."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        Encoder, Decoder = {"mlp": (MLPEncoder, MLPDecoder), "conv": (ConvEncoder, ConvDecoder)}[
            config.arch
        ]
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def encode(self, x):
        """(mu, log sigma^2), each (B, latent_dim)."""
        return self.encoder(x)

    def decode(self, z):
        """(B, latent_dim) -> the likelihood's parameters, each (B, C, H, W)."""
        return self.decoder(z)

    def log_likelihood(self, x, params):
        """log p(x|z), summed over every pixel (and channel) of each image: (B,)."""
        if self.config.likelihood == "gaussian":
            mean, logvar = map(full_precision, params)
            return gaussian_log_prob(x, mean, logvar).flatten(1).sum(1)
        return bernoulli_log_prob(x, full_precision(params)).flatten(1).sum(1)

    def mean(self, params):
        """The decoder's mean image E[x|z], clipped to [0, 1] for display."""
        if self.config.likelihood == "gaussian":
            return params[0].clamp(0, 1)
        return torch.sigmoid(params)

    def log_px_z(self, x, z):
        """log p(x|z) for S codes per image: z (S, B, latent_dim) -> (S, B).

        The decoder runs once on all S * B codes, S folded into the batch.
        """
        S, B = z.shape[:2]
        params = self.decode(z.reshape(S * B, -1))
        x_rep = x.expand(S, *x.shape).reshape(S * B, *x.shape[1:])  # (S * B, C, H, W)
        return self.log_likelihood(x_rep, params).view(S, B)

    def elbo(self, x, beta=1.0, free_bits=0.0, eps=None, generator=None):
        """The evidence lower bound of each image, and the training loss.

        ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))  <=  log p(x)   (eq. 3, 7, 10)

        The reconstruction term is SUMMED over the pixels of an image and the ELBO is then
        AVERAGED over the batch: the loss is -ELBO in nats per image. A per-pixel mean (the
        default of F.binary_cross_entropy) shrinks the reconstruction term by the number of
        pixels against the KL, which is then over-weighted by that factor.

        eps: (S, B, latent_dim) noise for S samples of z per image (default: one, drawn);
        beta weighs the KL (beta-VAE); free_bits keeps each unit's batch-mean KL above a
        floor in the loss only (Kingma et al. 2016), never in the reported ELBO.
        Returns {elbo, recon, kl}: (B,) each, and loss: a scalar.
        """
        mu, logvar = self.encode(x)
        if eps is None:
            eps = torch.randn((1, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
        z = reparameterize(mu, logvar, eps)  # (S, B, latent_dim)
        recon = self.log_px_z(x, z).mean(0)  # (S, B) -> (B,)
        kl_unit = gaussian_kl(full_precision(mu), full_precision(logvar))  # (B, latent_dim)
        kl = kl_unit.sum(1)
        kl_loss = kl_unit.mean(0).clamp(min=free_bits).sum() if free_bits > 0 else kl.mean()
        loss = -recon.mean() + beta * kl_loss
        return {"elbo": recon - kl, "recon": recon, "kl": kl, "loss": loss}

    def log_weights(self, x, k, generator=None, chunk=None):
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x), i = 1..k: (B, k).

        chunk: samples decoded at once (default: enough to keep about 4M pixels in memory).
        """
        mu, logvar = map(full_precision, self.encode(x))
        chunk = chunk or max(1, 4_000_000 // (len(x) * x[0].numel()))
        out = []
        for start in range(0, k, chunk):
            s = min(chunk, k - start)
            eps = torch.randn((s, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
            z = reparameterize(mu, logvar, eps)  # (s, B, latent_dim)
            log_px_z = self.log_px_z(x, z)  # (s, B)
            log_pz = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z)).sum(-1)
            log_qz_x = gaussian_log_prob(z, mu, logvar).sum(-1)
            out.append((log_px_z + log_pz - log_qz_x).T)  # (B, s)
        return torch.cat(out, dim=1)

    def iwae_bound(self, x, k, generator=None, chunk=None):
        """The k-sample importance-weighted bound of each image (Burda et al. eq. 8): (B,).

        L_k(x) = E[log (1/k) sum_i w_i] with w_i = p(x, z_i) / q(z_i|x). L_1 is the ELBO,
        L_k <= L_{k+1} <= log p(x), and L_k -> log p(x) as k grows: -L_1000 is the test NLL
        papers report.
        """
        if k < 1:
            raise ValueError(f"k = {k}: the bound needs at least one sample")
        return log_mean_exp(self.log_weights(x, k, generator, chunk), dim=1)

    @torch.no_grad()
    def sample(self, n, generator=None, z=None):
        """n images from the model: z ~ p(z), then the decoder's mean E[x|z] (not a draw from it)."""
        device = next(self.parameters()).device
        if z is None:
            z = torch.randn(n, self.config.latent_dim, generator=generator, device=device)
        return self.mean(self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x):
        """x -> z = mu(x), the posterior's mean -> E[x|z]."""
        return self.mean(self.decode(self.encode(x)[0]))

    @torch.no_grad()
    def interpolate(self, x1, x2, steps=8):
        """Decoder means along the straight line between mu(x1) and mu(x2): (steps, C, H, W)."""
        mu1, mu2 = self.encode(torch.stack([x1, x2]))[0]
        t = torch.linspace(0, 1, steps, device=mu1.device)[:, None]
        return self.mean(self.decode((1 - t) * mu1 + t * mu2))  # (steps, latent_dim) -> images
