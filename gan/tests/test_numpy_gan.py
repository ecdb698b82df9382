"""numpy_gan.py: every backward by finite differences, G's gradient through D, torch autograd."""

import numpy as np
import pytest
import torch
from gradcheck import numerical_grad, rel_error
from numpy_gan import (
    MLP,
    Adam,
    LeakyReLU,
    Linear,
    bce_with_logits,
    build,
    d_loss_and_grads,
    evaluate,
    g_loss_and_grads,
    train,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def check_layer(layer, x, rng):
    """L = sum(dout * layer(x)) with a random dout: dx and every param grad vs finite differences."""
    dout = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(dout)

    def f():
        return float((dout * layer.forward(x)).sum())

    assert rel_error(dx, numerical_grad(f, x)) < 1e-6
    for k, p in layer.params.items():
        layer.forward(x)
        layer.backward(dout)
        analytic = layer.grads[k].copy()
        assert rel_error(analytic, numerical_grad(f, p)) < 1e-6, k


def test_linear_backward(rng):
    layer = Linear(5, 3, rng)
    assert layer.params["W"].shape == (3, 5)  # (out, in) as torch's nn.Linear.weight
    check_layer(layer, rng.standard_normal((4, 5)), rng)


def test_leaky_relu_backward(rng):
    x = rng.standard_normal((6, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences off the kink
    check_layer(LeakyReLU(0.2), x, rng)


def test_mlp_backward(rng):
    check_layer(MLP([3, 8, 8, 2], rng, alpha=0.2), rng.standard_normal((5, 3)), rng)


def test_bce_with_logits_gradient(rng):
    logits = rng.standard_normal((7, 1))
    target = (rng.random((7, 1)) > 0.5).astype(float)
    _, d = bce_with_logits(logits, target)
    num = numerical_grad(lambda: float(bce_with_logits(logits, target)[0]), logits)
    assert rel_error(d, num) < 1e-6


def test_d_loss_gradients_are_the_finite_differences(rng):
    G, D = build(z_dim=2, hidden=8, seed=1)
    x_real, x_fake = rng.standard_normal((6, 2)), G.forward(rng.standard_normal((6, 2)))
    _, grads = d_loss_and_grads(D, x_real, x_fake)
    grads = {k: v.copy() for k, v in grads.items()}
    for k, p in D.params.items():
        num = numerical_grad(lambda: float(d_loss_and_grads(D, x_real, x_fake)[0]), p)
        assert rel_error(grads[k], num) < 1e-6, k


def test_g_gradient_through_d_is_the_finite_differences(rng):
    """The adversarial gradient: L_G(theta_G) = BCE(D(G(z)), 1), perturbing G's weights."""
    G, D = build(z_dim=2, hidden=8, seed=2)
    z = rng.standard_normal((6, 2))
    _, grads = g_loss_and_grads(G, D, z)
    grads = {k: v.copy() for k, v in grads.items()}
    for k, p in G.params.items():
        num = numerical_grad(lambda: float(g_loss_and_grads(G, D, z)[0]), p)
        assert rel_error(grads[k], num) < 1e-6, k


def to_torch(mlp):
    layers = []
    for layer in mlp.layers:
        if isinstance(layer, Linear):
            lin = torch.nn.Linear(*layer.params["W"].shape[::-1]).double()
            lin.weight.data = torch.tensor(layer.params["W"])
            lin.bias.data = torch.tensor(layer.params["b"])
            layers.append(lin)
        else:
            layers.append(torch.nn.LeakyReLU(layer.alpha))
    return torch.nn.Sequential(*layers)


def test_d_and_g_steps_equal_torch_autograd(rng):
    G, D = build(z_dim=2, hidden=16, seed=3)
    tG, tD = to_torch(G), to_torch(D)
    F = torch.nn.functional
    z = rng.standard_normal((10, 2))
    x_real = rng.standard_normal((10, 2))
    # D step
    fake = tG(torch.tensor(z)).detach()
    logits = tD(torch.cat([torch.tensor(x_real), fake]))
    target = torch.cat([torch.ones(10, 1), torch.zeros(10, 1)]).double()
    F.binary_cross_entropy_with_logits(logits, target).backward()
    loss, grads = d_loss_and_grads(D, x_real, G.forward(z))
    assert abs(loss - F.binary_cross_entropy_with_logits(logits, target).item()) < 1e-12
    torch_grads = [p.grad for p in tD.parameters()]
    for ours, theirs in zip(grads.values(), torch_grads):
        assert rel_error(ours, theirs.numpy()) < 1e-10
    # G step: the gradient flows through D into G
    tG.zero_grad()
    tD.zero_grad()
    loss_t = F.binary_cross_entropy_with_logits(tD(tG(torch.tensor(z))), torch.ones(10, 1).double())
    loss_t.backward()
    loss, grads = g_loss_and_grads(G, D, z)
    assert abs(loss - loss_t.item()) < 1e-12
    for ours, theirs in zip(grads.values(), [p.grad for p in tG.parameters()]):
        assert rel_error(ours, theirs.numpy()) < 1e-10


def test_adam_equals_torch_adam(rng):
    w = {"a": rng.standard_normal((3, 2))}
    tw = torch.tensor(w["a"].copy(), requires_grad=True)
    ours, theirs = (
        Adam(w, lr=1e-2, betas=(0.5, 0.999)),
        torch.optim.Adam([tw], lr=1e-2, betas=(0.5, 0.999)),
    )
    for _ in range(20):
        g = rng.standard_normal((3, 2))
        ours.step({"a": g})
        tw.grad = torch.tensor(g)
        theirs.step()
    assert np.allclose(w["a"], tw.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_numpy_gan_learns_the_ring():
    """A short run covers most modes; an untrained G (one blob) covers at most two."""
    G0, _ = build(seed=0)
    assert evaluate(G0)["modes_covered"] <= 2
    G, _, hist = train(steps=800, batch_size=128, lr=1e-3, seed=0)
    assert np.isfinite(hist["d_loss"]).all()
    assert evaluate(G)["modes_covered"] >= 6
