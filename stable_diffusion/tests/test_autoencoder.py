"""The autoencoder's KL against diffusers and torch.distributions; a tiny one learns to reconstruct."""

import torch
from autoencoder import Autoencoder, AutoencoderConfig, gaussian_kl
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch.distributions import Normal, kl_divergence


def test_kl_matches_diffusers_and_torch_distributions():
    torch.manual_seed(0)
    mean = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    ours = gaussian_kl(mean, logvar)
    ref = DiagonalGaussianDistribution(torch.cat([mean, logvar], 1)).kl()
    torch.testing.assert_close(ours, ref)
    ref2 = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum((1, 2, 3))
    torch.testing.assert_close(ours, ref2)
    up = torch.randn(3, dtype=torch.float64)
    g1 = torch.autograd.grad((ours * up).sum(), [mean, logvar])
    g2 = torch.autograd.grad((ref2 * up).sum(), [mean, logvar])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_shapes_downsample_by_four():
    ae = Autoencoder(AutoencoderConfig(channels=8, groups=4))
    mean, logvar = ae.encode(torch.randn(2, 1, 32, 32))
    assert mean.shape == logvar.shape == (2, 4, 8, 8)
    assert ae.decode(mean).shape == (2, 1, 32, 32)


def test_a_tiny_autoencoder_learns_to_reconstruct_digits():
    """Gate: 100 steps bring the test MSE (range [-1, 1]) below 0.05; the untrained one is ~0.5."""
    from data import load_images
    from train import TrainConfig, reconstruction_error

    torch.manual_seed(0)
    x_train, _, x_test, _ = load_images("digits")
    ae = Autoencoder(AutoencoderConfig(channels=8, groups=4))
    before, _ = reconstruction_error(ae, x_test)
    opt = torch.optim.Adam(ae.parameters(), lr=TrainConfig.ae_lr * 3)
    for _ in range(100):
        xb = x_train[torch.randint(len(x_train), (16,))]
        recon, kl = ae(xb)
        loss = (
            torch.nn.functional.l1_loss(recon, xb)
            + torch.nn.functional.mse_loss(recon, xb)
            + 1e-6 * kl.mean()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    after, psnr = reconstruction_error(ae, x_test)
    assert before > 0.2, before
    assert after < 0.05, f"test MSE {after:.4f} after 100 steps (PSNR {psnr:.1f} dB)"
