"""model.py against torch: spectral norm, batch norm, the gradient penalty, the losses."""

import copy

import pytest
import torch
import torch.nn.functional as F
from gradcheck import numerical_grad, rel_error
from model import (
    GAN,
    BatchNorm2d,
    ModelConfig,
    SpectralNorm,
    d_loss_gan,
    d_loss_hinge,
    d_loss_lsgan,
    d_loss_wgan,
    g_loss_lsgan,
    g_loss_minimax,
    g_loss_ns,
    g_loss_wgan,
    gradient_penalty,
)
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

LAYERS = {
    "linear": (lambda: nn.Linear(6, 5), (4, 6)),
    "conv": (lambda: nn.Conv2d(3, 4, 3, padding=1), (2, 3, 5, 5)),
    "conv_transpose": (lambda: nn.ConvTranspose2d(3, 4, 4, 2, 1), (2, 3, 3, 3)),
}


def pair(kind, seed=0):
    """(ours, torch's) spectral-normalised copies of one float64 layer, sharing u and v."""
    torch.manual_seed(seed)
    make, shape = LAYERS[kind]
    layer = make().double()
    ref = spectral_norm(copy.deepcopy(layer))
    ours = SpectralNorm(copy.deepcopy(layer))
    p = ref.parametrizations.weight[0]
    ours.u.copy_(p._u)
    ours.v.copy_(p._v)
    return ours, ref, torch.randn(shape, dtype=torch.float64)


def ref_sigma(ref):
    """torch's sigma = ||W|| / ||W / sigma||, read in eval mode so that it does not iterate."""
    ref.eval()
    w = ref.weight
    ref.train()
    return ref.parametrizations.weight.original.norm() / w.norm()


@pytest.mark.parametrize("kind", LAYERS)
def test_spectral_norm_equals_torch(kind):
    ours, ref, x = pair(kind)
    for _ in range(3):  # three training forwards: three power iterations each side
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_ours, y_ref = ours(x1), ref(x2)
        dy = torch.randn_like(y_ref)
        (y_ours * dy).sum().backward()
        (y_ref * dy).sum().backward()
        assert torch.allclose(y_ours, y_ref, rtol=1e-10, atol=1e-12)
        assert torch.allclose(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)
        g_ref = ref.parametrizations.weight.original.grad
        assert torch.allclose(ours.module.weight.grad, g_ref, rtol=1e-9, atol=1e-12)
        assert torch.allclose(ours.module.bias.grad, ref.bias.grad, rtol=1e-10, atol=1e-12)
        assert torch.allclose(ours.sigma(), ref_sigma(ref), rtol=1e-10)
        assert torch.allclose(ours.u, ref.parametrizations.weight[0]._u, rtol=1e-10, atol=1e-12)
        ours.zero_grad()
        ref.zero_grad()


@pytest.mark.parametrize("kind", LAYERS)
def test_sigma_converges_to_the_spectral_norm(kind):
    ours, _, _ = pair(kind, seed=1)
    ours.power_iteration(500)
    exact = torch.linalg.matrix_norm(ours.weight_matrix().detach(), ord=2)
    assert torch.allclose(ours.sigma().detach(), exact, rtol=1e-8)
    w_sn = ours.normalized_weight().detach()
    assert torch.allclose(
        torch.linalg.matrix_norm(w_sn.transpose(0, ours.dim).flatten(1), ord=2),
        torch.tensor(1.0).double(),
        rtol=1e-6,
    )


def test_eval_mode_does_not_iterate():
    ours, _, x = pair("linear")
    ours.eval()
    u, v = ours.u.clone(), ours.v.clone()
    ours(x)
    ours(x)
    assert torch.equal(u, ours.u) and torch.equal(v, ours.v)
    ours.train()
    ours(x)
    assert not torch.equal(u, ours.u)


def test_spectral_norm_refuses_a_layer_without_weights():
    with pytest.raises(ValueError, match="spectral norm needs a layer with a weight"):
        SpectralNorm(nn.ReLU())


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_equals_torch(training):
    torch.manual_seed(0)
    ours, ref = BatchNorm2d(3).double(), nn.BatchNorm2d(3).double()
    with torch.no_grad():
        for m in (ours, ref):
            m.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
            m.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    for _ in range(3):  # three training batches fill the running statistics
        x = torch.randn(4, 3, 5, 5, dtype=torch.float64) * 2 + 1
        ours(x)
        ref(x)
    assert torch.allclose(ours.running_mean, ref.running_mean, rtol=1e-12)
    assert torch.allclose(ours.running_var, ref.running_var, rtol=1e-12)
    ours.train(training)
    ref.train(training)
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64) * 3 - 1
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), ref(x2)
    dy = torch.randn_like(y1)
    (y1 * dy).sum().backward()
    (y2 * dy).sum().backward()
    assert torch.allclose(y1, y2, rtol=1e-10, atol=1e-12)
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-9, atol=1e-12)
    assert torch.allclose(ours.weight.grad, ref.weight.grad, rtol=1e-9, atol=1e-12)
    assert torch.allclose(ours.bias.grad, ref.bias.grad, rtol=1e-10, atol=1e-12)


def test_gradient_penalty_equals_finite_differences():
    """The critic's input gradient at x_hat by centred differences, and the penalty's weight
    gradient (the create_graph=True path) by differences of the penalty itself."""
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    real, fake = torch.randn(5, 2).double(), torch.randn(5, 2).double()
    alpha = torch.rand(5).double()
    gp = gradient_penalty(D, real, fake, alpha)
    x_hat = (alpha[:, None] * real + (1 - alpha[:, None]) * fake).numpy()
    with torch.no_grad():
        num = numerical_grad(lambda: float(D(torch.from_numpy(x_hat)).sum()), x_hat)
    expected = ((torch.from_numpy(num).norm(dim=1) - 1) ** 2).mean()
    assert abs(gp.item() - expected.item()) < 1e-8
    gp.backward()
    w = D[0].weight
    analytic = w.grad.clone()
    with torch.no_grad():
        w_np = w.detach().numpy()  # shares memory with the parameter

        def penalty():
            with torch.enable_grad():
                return gradient_penalty(D, real, fake, alpha).item()

        assert rel_error(analytic.numpy(), numerical_grad(penalty, w_np)) < 1e-6


def test_losses_equal_their_functional_forms():
    torch.manual_seed(0)
    r, f = torch.randn(16).double() * 3, torch.randn(16).double() * 3
    one, zero = torch.ones(16).double(), torch.zeros(16).double()
    bce = F.binary_cross_entropy_with_logits
    assert torch.allclose(d_loss_gan(r, f), bce(r, one) + bce(f, zero))
    assert torch.allclose(g_loss_minimax(f), -bce(f, zero))
    assert torch.allclose(g_loss_ns(f), bce(f, one))
    assert torch.allclose(d_loss_lsgan(r, f), 0.5 * F.mse_loss(r, one) + 0.5 * F.mse_loss(f, zero))
    assert torch.allclose(g_loss_lsgan(f), 0.5 * F.mse_loss(f, one))
    minus = -torch.ones(16).double()
    hinge = F.hinge_embedding_loss(r, minus) + F.hinge_embedding_loss(-f, minus)
    assert torch.allclose(d_loss_hinge(r, f), hinge)
    assert torch.allclose(d_loss_wgan(r, f), f.mean() - r.mean())
    assert torch.allclose(g_loss_wgan(f), -f.mean())


def test_minimax_saturates_where_non_saturating_does_not():
    """A D that rejects fakes (score -10): log(1 - D) gives G almost no gradient, -log D does."""
    s = torch.full((4,), -10.0, requires_grad=True)
    (g_mm,) = torch.autograd.grad(g_loss_minimax(s), s)
    (g_ns,) = torch.autograd.grad(g_loss_ns(s), s)
    assert g_mm.abs().max() < 1e-4 and (g_ns.abs() > 0.24).all()


@pytest.mark.parametrize("size", [8, 16, 32])
def test_dcgan_shapes(size):
    m = GAN(ModelConfig(kind="dcgan", z_dim=4, hidden=4, image_size=size, spectral_norm=True))
    x = m.sample(3)
    assert x.shape == (3, 1, size, size) and x.abs().max() <= 1
    assert m.D(x).shape == (3,)


def test_bad_image_size_is_refused():
    with pytest.raises(ValueError, match="power of two"):
        GAN(ModelConfig(kind="dcgan", image_size=28))
