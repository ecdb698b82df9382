"""GANs in torch: spectral norm and batch norm by hand, MLP and DCGAN players, five losses.

Read top to bottom: the two hand-written layers (SpectralNorm, BatchNorm2d), the 2-D MLP
players, the DCGAN players, the GAN that holds both, then the losses.

- GAN, minimax and non-saturating: Goodfellow et al. 2014, https://arxiv.org/abs/1406.2661
- LSGAN: Mao et al. 2017, https://arxiv.org/abs/1611.04076 (eq. 2, a-b-c = 0-1-1)
- WGAN-GP: Gulrajani et al. 2017, https://arxiv.org/abs/1704.00028 (Algorithm 1)
- hinge loss: Lim & Ye 2017 (arXiv 1705.02894), as used by Miyato et al. 2018
- spectral normalisation: Miyato et al. 2018, https://arxiv.org/abs/1802.05957 (Algorithm 1)
- DCGAN: Radford et al. 2016, https://arxiv.org/abs/1511.06434 (section 3)
- batch norm: Ioffe & Szegedy 2015, https://arxiv.org/abs/1502.03167 (Algorithm 1)

Tests (tests/test_model.py): SpectralNorm against torch.nn.utils.parametrizations.spectral_norm
with the same u and v (weight, sigma, gradients, float64; sigma -> matrix_norm(ord=2); eval does
not iterate); BatchNorm2d against nn.BatchNorm2d in train and eval mode; the gradient penalty
against finite differences of the critic; each loss against its torch.nn.functional form.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("gan", "ns", "lsgan", "wgan-gp", "hinge")

# ----------------------------------------------------------------------------- layers


class SpectralNorm(nn.Module):
    """W_SN = W / sigma(W), sigma the largest singular value, by one power iteration per forward.

    W is viewed as a matrix (out, in * kh * kw) (for ConvTranspose: (out, in * kh * kw) after
    swapping dims 0 and 1). Power iteration (Miyato et al., Algorithm 1), run in training only:
        v <- W^T u / ||W^T u||,  u <- W v / ||W v||;    sigma = u^T W v.
    u and v are buffers carried from step to step, so one iteration per step suffices; the
    gradient flows through sigma with u and v held constant.
    """

    def __init__(self, module, n_power_iterations=1, eps=1e-12):
        super().__init__()
        weight = getattr(module, "weight", None)
        if not isinstance(weight, nn.Parameter) or weight.dim() < 2:
            raise ValueError(
                f"spectral norm needs a layer with a weight matrix, not {type(module).__name__}"
            )
        self.module, self.n_power_iterations, self.eps = module, n_power_iterations, eps
        self.dim = 1 if isinstance(module, nn.ConvTranspose2d) else 0
        w = self.weight_matrix().detach()  # (h, w)
        u = F.normalize(torch.randn(w.shape[0], dtype=w.dtype), dim=0, eps=eps)
        v = F.normalize(torch.randn(w.shape[1], dtype=w.dtype), dim=0, eps=eps)
        self.register_buffer("u", u)
        self.register_buffer("v", v)
        self.power_iteration(15)  # start near the top singular vectors, as torch does

    def weight_matrix(self):
        w = self.module.weight
        return (w.transpose(0, 1) if self.dim else w).flatten(1)  # (out, in * kh * kw)

    @torch.no_grad()
    def power_iteration(self, n):
        w = self.weight_matrix()
        for _ in range(n):
            # u = W v / ||W v||, then v = W^T u / ||W^T u|| (torch's order)
            self.u.copy_(F.normalize(w @ self.v, dim=0, eps=self.eps))
            self.v.copy_(F.normalize(w.T @ self.u, dim=0, eps=self.eps))

    def sigma(self):
        # sigma = u^T W v, differentiable in W only; u, v are cloned buffers
        return torch.dot(self.u.clone(), self.weight_matrix() @ self.v.clone())

    def normalized_weight(self):
        if self.training:
            self.power_iteration(self.n_power_iterations)
        return self.module.weight / self.sigma()

    def forward(self, x):
        w, m = self.normalized_weight(), self.module
        if isinstance(m, nn.Linear):
            return F.linear(x, w, m.bias)
        if isinstance(m, nn.Conv2d):
            return m._conv_forward(x, w, m.bias)
        return torch.func.functional_call(m, {"weight": w}, (x,))  # any other layer


class BatchNorm2d(nn.Module):
    """y = gamma (x - mu_B) / sqrt(var_B + eps) + beta over (N, H, W) per channel.

    Training uses the batch's mean and biased variance and updates running estimates with
    momentum 0.1 (the running variance takes the unbiased n/(n-1) form, as torch does);
    evaluation uses the running estimates.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):  # x (N, C, H, W)
        if self.training:
            mean = x.mean(dim=(0, 2, 3))  # (C,)
            var = x.var(dim=(0, 2, 3), unbiased=False)  # (C,)
            n = x.numel() / x.shape[1]
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + self.eps)
        return self.weight[:, None, None] * x_hat + self.bias[:, None, None]


def sn(layer, on):
    return SpectralNorm(layer) if on else layer


# ----------------------------------------------------------------------------- players


@dataclass
class ModelConfig:
    kind: str = "mlp"  # mlp (2-D points) | dcgan (images)
    z_dim: int = 2
    hidden: int = 128  # mlp: width; dcgan: channels of D's first / G's last hidden layer
    depth: int = 3  # mlp: linear layers per player
    channels: int = 1  # image channels
    image_size: int = 16  # dcgan: a power of two >= 8
    spectral_norm: bool = False  # on every D layer


class MLPGenerator(nn.Module):
    """G: z (N, z_dim) -> x (N, 2), ReLU hidden layers, a linear output."""

    def __init__(self, c):
        super().__init__()
        sizes = [c.z_dim] + [c.hidden] * (c.depth - 1) + [2]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, z):
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """D: x (N, 2) -> score (N,), leaky ReLU 0.2; a logit for gan/ns, a critic value for WGAN."""

    def __init__(self, c):
        super().__init__()
        sizes = [2] + [c.hidden] * (c.depth - 1) + [1]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [sn(nn.Linear(a, b), c.spectral_norm), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, x):
        return self.net(x).squeeze(1)


def n_upsamplings(image_size):
    n = int(math.log2(image_size)) - 2
    if image_size < 8 or 2 ** (n + 2) != image_size:
        raise ValueError(f"image size {image_size}: the DCGAN players need a power of two >= 8")
    return n


class DCGANGenerator(nn.Module):
    """z (N, z_dim) -> 4x4 by a 4x4 transposed conv, then x2 per block up to image_size.

    Each block: ConvTranspose2d(k4, s2, p1) -> BatchNorm2d -> ReLU; the last one outputs
    `channels` maps through tanh (Radford et al., section 3). Channels halve as size doubles.
    """

    def __init__(self, c):
        super().__init__()
        n = n_upsamplings(c.image_size)
        width = [c.hidden * 2 ** (n - 1 - i) for i in range(n)]  # e.g. [4h, 2h, h]
        layers = [nn.ConvTranspose2d(c.z_dim, width[0], 4, 1, 0, bias=False)]  # (N, w0, 4, 4)
        layers += [BatchNorm2d(width[0]), nn.ReLU()]
        for a, b in zip(width[:-1], width[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), BatchNorm2d(b), nn.ReLU()]
        layers += [nn.ConvTranspose2d(width[-1], c.channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z[:, :, None, None])  # (N, z_dim, 1, 1) -> (N, C, S, S)


class DCGANDiscriminator(nn.Module):
    """x (N, C, S, S) -> score (N,): Conv2d(k4, s2, p1) + leaky ReLU 0.2 halving to 4x4, then
    a 4x4 conv to one number. No batch norm: the WGAN-GP penalty is per sample, and SN
    replaces it."""

    def __init__(self, c):
        super().__init__()
        n = n_upsamplings(c.image_size)
        width = [c.hidden * 2**i for i in range(n)]  # e.g. [h, 2h, 4h]
        layers, prev = [], c.channels
        for w in width:
            layers += [sn(nn.Conv2d(prev, w, 4, 2, 1), c.spectral_norm), nn.LeakyReLU(0.2)]
            prev = w
        layers.append(sn(nn.Conv2d(prev, 1, 4, 1, 0), c.spectral_norm))  # (N, 1, 1, 1)
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).flatten()


class GAN(nn.Module):
    """The two players in one module, so one state_dict holds both (keys G.* and D.*)."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        if c.kind == "mlp":
            self.G, self.D = MLPGenerator(c), MLPDiscriminator(c)
        elif c.kind == "dcgan":
            self.G, self.D = DCGANGenerator(c), DCGANDiscriminator(c)
        else:
            raise ValueError(f"unknown model kind {c.kind!r}: mlp or dcgan")

    def sample(self, n, generator=None, device="cpu"):
        z = torch.randn(n, self.config.z_dim, generator=generator, device=device)
        return self.G(z)


# ----------------------------------------------------------------------------- losses
# d_* and g_* take D's raw scores on real (d_real) and generated (d_fake) batches.


def d_loss_gan(d_real, d_fake):
    """-E[log D(x)] - E[log(1 - D(G(z)))], D = sigmoid(score): softplus(-s_r) + softplus(s_f)."""
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def g_loss_minimax(d_fake):
    """Goodfellow's minimax G: minimise E[log(1 - D(G(z)))] = -E[softplus(s_f)].

    Saturates: when D confidently rejects fakes (s_f << 0), d/ds_f = -sigmoid(s_f) ~ 0.
    """
    return -F.softplus(d_fake).mean()


def g_loss_ns(d_fake):
    """Non-saturating G: minimise -E[log D(G(z))] = E[softplus(-s_f)]; gradient ~ -1 there."""
    return F.softplus(-d_fake).mean()


def d_loss_lsgan(d_real, d_fake):
    """LSGAN (Mao et al. eq. 2, b = 1, a = 0): 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]."""
    return 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake**2).mean()


def g_loss_lsgan(d_fake):
    """1/2 E[(D(G(z)) - 1)^2] (c = 1): fakes are pulled onto the real targets' value."""
    return 0.5 * ((d_fake - 1) ** 2).mean()


def d_loss_wgan(d_real, d_fake):
    """The Wasserstein critic: maximise E[f(x)] - E[f(G(z))], i.e. minimise the negative."""
    return d_fake.mean() - d_real.mean()


def g_loss_wgan(d_fake):
    """G minimises -E[f(G(z))] (also the hinge loss's generator)."""
    return -d_fake.mean()


def d_loss_hinge(d_real, d_fake):
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def gradient_penalty(D, real, fake, alpha=None):
    """WGAN-GP: E[(||grad_x_hat f(x_hat)||_2 - 1)^2], x_hat = alpha x + (1 - alpha) G(z).

    alpha ~ U[0, 1] per sample. create_graph=True keeps the graph of the gradient, so the
    penalty itself is differentiated with respect to the critic's weights.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    alpha = alpha.view(-1, *[1] * (real.dim() - 1))  # (N, 1, ...) broadcasts over x
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


D_LOSSES = {
    "gan": d_loss_gan,
    "ns": d_loss_gan,
    "lsgan": d_loss_lsgan,
    "wgan-gp": d_loss_wgan,
    "hinge": d_loss_hinge,
}
G_LOSSES = {
    "gan": g_loss_minimax,
    "ns": g_loss_ns,
    "lsgan": g_loss_lsgan,
    "wgan-gp": g_loss_wgan,
    "hinge": g_loss_wgan,
}
