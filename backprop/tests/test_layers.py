"""Every hand-written backward against finite differences and torch autograd.

Float64 throughout; the upstream gradient is random (an all-ones upstream
gradient lets some wrong backwards pass); relative error < 1e-6 asserted.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gradcheck import numerical_grad, rel_error
from model import (
    MLP,
    MSE,
    BCEWithLogits,
    Dropout,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
    init_weight,
)

TOL = 1e-6


def away_from_zero(rng, shape):
    """Inputs with |x| >= 0.05, so no finite difference straddles ReLU's kink."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.05 * np.sign(x) + 0.05 * (x == 0), x)


def check_layer(layer, x, rng):
    """Gradient check dL/dx and every dL/dparam with L = sum(forward(x) * dout)."""
    dout = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(dout)
    f = lambda: float(np.sum(layer.forward(x) * dout))
    assert rel_error(dx, numerical_grad(f, x)) < TOL
    for k, p in layer.params.items():
        assert layer.grads[k].shape == p.shape
        assert rel_error(layer.grads[k], numerical_grad(f, p)) < TOL, k


LAYERS = {
    "linear": lambda rng: Linear(5, 4, "xavier", rng),
    "relu": lambda rng: ReLU(),
    "leaky_relu": lambda rng: LeakyReLU(0.1),
    "sigmoid": lambda rng: Sigmoid(),
    "tanh": lambda rng: Tanh(),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_gradients(name):
    rng = np.random.default_rng(1)
    layer = LAYERS[name](rng)
    layer.params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in layer.params.items()}
    check_layer(layer, away_from_zero(rng, (3, 5)), rng)


def test_dropout_gradient_with_fixed_mask():
    rng = np.random.default_rng(2)
    layer = Dropout(0.3)
    x = rng.standard_normal((4, 6))
    dout = rng.standard_normal((4, 6))

    def f():  # re-seed so every forward draws the same mask
        layer.rng = np.random.default_rng(7)
        return float(np.sum(layer.forward(x) * dout))

    f()
    dx = layer.backward(dout)
    assert rel_error(dx, numerical_grad(f, x)) < TOL


@pytest.mark.parametrize(
    "loss, make_target",
    [
        (MSE, lambda rng, z: rng.standard_normal(z.shape)),
        (BCEWithLogits, lambda rng, z: rng.integers(0, 2, z.shape).astype(float)),
        (SoftmaxCrossEntropy, lambda rng, z: rng.integers(0, z.shape[1], len(z))),
    ],
)
def test_loss_gradients(loss, make_target):
    rng = np.random.default_rng(3)
    z = 3 * rng.standard_normal((6, 4))
    y = make_target(rng, z)
    fn, c = loss(), rng.standard_normal()  # c: a random upstream gradient dJ/dL
    fn.forward(z, y)
    dz = c * fn.backward()
    assert rel_error(dz, numerical_grad(lambda: c * fn.forward(z, y), z)) < TOL


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_whole_mlp_gradients(activation):
    rng = np.random.default_rng(4)
    model = MLP([4, 6, 5, 3], activation, "xavier", dropout=0.2, rng=rng)
    for p in model.params.values():
        p += 0.1 * rng.standard_normal(p.shape)  # non-zero biases too
    x, y = away_from_zero(rng, (5, 4)), rng.integers(0, 3, 5)
    loss = SoftmaxCrossEntropy()

    def f():
        for l in model.layers:  # the same dropout masks at every call
            if isinstance(l, Dropout):
                l.rng = np.random.default_rng(11)
        return loss.forward(model.forward(x), y)

    f()
    dx = model.backward(loss.backward())
    grads = model.grads
    assert set(grads) == set(model.params) and len(grads) == 6
    assert rel_error(dx, numerical_grad(f, x)) < TOL
    for k, p in model.params.items():
        assert rel_error(grads[k], numerical_grad(f, p)) < TOL, k


# ---------------------------------------------------------------- torch autograd


def t(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def test_linear_matches_torch():
    rng = np.random.default_rng(5)
    layer = Linear(5, 3, "he", rng)
    layer.params["b"][:] = rng.standard_normal(3)
    ref = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.params["W"]))  # both (out, in)
        ref.bias.copy_(torch.from_numpy(layer.params["b"]))
    x, dout = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))
    xt = t(x)
    out = ref(xt)
    out.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(layer.forward(x), out.detach().numpy(), rtol=1e-12, atol=1e-12)
    dx = layer.backward(dout)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], ref.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], ref.bias.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (ReLU(), F.relu),
        (LeakyReLU(0.01), lambda x: F.leaky_relu(x, 0.01)),
        (Sigmoid(), torch.sigmoid),
        (Tanh(), torch.tanh),
    ],
)
def test_activations_match_torch(ours, theirs):
    rng = np.random.default_rng(6)
    x, dout = 4 * rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    xt = t(x)
    out = theirs(xt)
    out.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(ours.forward(x), out.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours.backward(dout), xt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "ours, theirs, make_target",
    [
        (MSE(), torch.nn.MSELoss(), lambda rng: rng.standard_normal((6, 4))),
        (
            BCEWithLogits(),
            torch.nn.BCEWithLogitsLoss(),
            lambda rng: rng.integers(0, 2, (6, 4)).astype(float),
        ),
        (SoftmaxCrossEntropy(), torch.nn.CrossEntropyLoss(), lambda rng: rng.integers(0, 4, 6)),
    ],
)
def test_losses_match_torch(ours, theirs, make_target):
    rng = np.random.default_rng(7)
    z, y = 5 * rng.standard_normal((6, 4)), make_target(rng)
    zt = t(z)
    loss = theirs(zt, torch.from_numpy(y))
    loss.backward()
    assert ours.forward(z, y) == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(ours.backward(), zt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "ours, theirs",
    [(ReLU(), F.relu), (LeakyReLU(0.1), lambda x: F.leaky_relu(x, 0.1))],
)
def test_subgradient_at_exactly_zero_matches_torch(ours, theirs):
    """The kink: torch takes dReLU/dx(0) = 0 and dLeakyReLU/dx(0) = slope; so must we.

    The gradient checks above keep away from 0 (a finite difference straddles the kink),
    so this is the only test that sees a mask written as x >= 0 instead of x > 0.
    """
    x = np.array([[-1.0, 0.0, 2.0], [0.0, -0.0, 3.0]])
    dout = np.array([[0.7, -1.3, 0.4], [2.1, 0.9, -0.5]])
    xt = t(x)
    theirs(xt).backward(torch.from_numpy(dout))
    ours.forward(x)
    np.testing.assert_array_equal(ours.backward(dout), xt.grad.numpy())


def test_stable_losses_at_extreme_logits():
    """log-sum-exp and the |z| form keep the loss finite where the naive forms overflow."""
    z = np.array([[1000.0, -1000.0, 0.0], [-800.0, 800.0, 1.0]])
    ce = SoftmaxCrossEntropy()
    assert ce.forward(z, np.array([1, 1])) == pytest.approx(1000.0)
    assert np.all(np.isfinite(ce.backward()))
    bce = BCEWithLogits()
    zz = np.array([[800.0], [-800.0]])
    assert bce.forward(zz, np.array([[0.0], [0.0]])) == pytest.approx(400.0)
    ref = torch.nn.BCEWithLogitsLoss()(torch.tensor(zz), torch.zeros(2, 1, dtype=torch.float64))
    assert bce.forward(zz, np.zeros((2, 1))) == pytest.approx(ref.item())


def test_mlp_matches_torch_sequential():
    rng = np.random.default_rng(8)
    model = MLP([3, 8, 8, 4], "tanh", "xavier", rng=rng)
    lins = [torch.nn.Linear(a, b).double() for a, b in [(3, 8), (8, 8), (8, 4)]]
    ref = torch.nn.Sequential(lins[0], torch.nn.Tanh(), lins[1], torch.nn.Tanh(), lins[2])
    for i, lin in zip((0, 2, 4), lins):
        model.layers[i].params["b"][:] = rng.standard_normal(lin.out_features)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(model.layers[i].params["W"]))
            lin.bias.copy_(torch.from_numpy(model.layers[i].params["b"]))
    x, y = rng.standard_normal((10, 3)), rng.integers(0, 4, 10)
    xt = t(x)
    loss_t = torch.nn.CrossEntropyLoss()(ref(xt), torch.from_numpy(y))
    loss_t.backward()
    ce = SoftmaxCrossEntropy()
    assert ce.forward(model.forward(x), y) == pytest.approx(loss_t.item(), rel=1e-12)
    dx = model.backward(ce.backward())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    for i, lin in zip((0, 2, 4), lins):
        np.testing.assert_allclose(
            model.grads[f"{i}.W"], lin.weight.grad.numpy(), rtol=1e-10, atol=1e-14
        )
        np.testing.assert_allclose(
            model.grads[f"{i}.b"], lin.bias.grad.numpy(), rtol=1e-10, atol=1e-14
        )


def test_dropout_matches_torch_dropout():
    """torch draws the mask; ours is fed the same draw, then outputs and dx must agree."""
    rng, p = np.random.default_rng(12), 0.3
    x, dout = rng.standard_normal((6, 9)), rng.standard_normal((6, 9))
    torch.manual_seed(0)
    xt = t(x)
    out = F.dropout(xt, p, training=True)
    out.backward(torch.from_numpy(dout))
    kept = out.detach().numpy() != 0
    assert 0 < kept.sum() < kept.size

    class SameDraw:  # Dropout keeps a unit where rng.random() >= p
        def random(self, shape):
            assert shape == kept.shape
            return np.where(kept, 1.0, 0.0)

    layer = Dropout(p, SameDraw())
    np.testing.assert_allclose(layer.forward(x), out.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(layer.backward(dout), xt.grad.numpy(), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- dropout, init, dtype


def test_dropout_train_mean_eval_identity_and_mask():
    rng = np.random.default_rng(9)
    layer = Dropout(0.4, np.random.default_rng(0))
    x = 1.0 + rng.random((400, 500))
    y = layer.forward(x)
    # E[y] = x: the mean ratio over 200k units is within a few standard errors of 1
    assert abs(y.mean() / x.mean() - 1.0) < 0.01
    dropped = y == 0
    assert abs(dropped.mean() - 0.4) < 0.01
    dout = rng.standard_normal(x.shape)
    dx = layer.backward(dout)
    assert np.all(dx[dropped] == 0)
    np.testing.assert_allclose(dx[~dropped], dout[~dropped] / 0.6)
    layer.training = False
    assert layer.forward(x) is x
    assert layer.backward(dout) is dout


@pytest.mark.parametrize(
    "scheme, std", [("normal", 0.01), ("xavier", np.sqrt(2 / 700)), ("he", np.sqrt(2 / 400))]
)
def test_init_std(scheme, std):
    W = init_weight(400, 300, scheme, np.random.default_rng(0))
    assert W.shape == (300, 400)  # (fan_out, fan_in), as torch.nn.Linear.weight
    # 120k draws: the sample std is within 5 standard errors (1/sqrt(2n) = 0.2%) of std,
    # the sample mean within 5 standard errors (std / sqrt(n)) of 0
    assert abs(W.std() / std - 1) < 0.01 and abs(W.mean()) < 5 * std / np.sqrt(W.size)


def test_float32_stays_float32():
    rng = np.random.default_rng(10)
    model = MLP([6, 8, 8, 3], "relu", "he", dropout=0.1, rng=rng, dtype=np.float32)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    ce = SoftmaxCrossEntropy()
    out = model.forward(x)
    ce.forward(out, np.array([0, 1, 2, 0]))
    dx = model.backward(ce.backward())
    assert out.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in model.grads.values())


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="relu, leaky_relu, sigmoid, tanh"):
        MLP([2, 3, 1], activation="swish")
    with pytest.raises(ValueError, match="normal, xavier, he"):
        MLP([2, 3, 1], init="lecun")
