"""Each layer's backward against centred finite differences and against torch autograd.

Gradient checks: float64, centred differences, a random upstream gradient G (the checked scalar
is sum(layer(x) * G)), relative error ||num - ours|| / (||num|| + ||ours||) < 1e-6.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gradcheck import numerical_grad, rel_error
from model import (
    AvgPool2D,
    Conv2D,
    Flatten,
    Linear,
    MaxPool2D,
    ReLU,
    Tanh,
    conv2d_naive,
    maxpool2d_naive,
    softmax_cross_entropy,
)

TOL = 1e-6


def check_layer(layer, x, rng):
    """Gradient-check dx and every parameter gradient of `layer` at x."""
    out = layer.forward(x)
    G = rng.standard_normal(out.shape)
    dx = layer.backward(G)
    loss = lambda: float(np.sum(layer.forward(x) * G))
    assert rel_error(numerical_grad(loss, x), dx) < TOL
    for k, p in layer.params.items():
        assert rel_error(numerical_grad(loss, p), layer.grads[k]) < TOL, k


def conv_layer(W, b, stride, pad):
    layer = Conv2D(W.shape[1], W.shape[0], W.shape[2], stride=stride, pad=pad, dtype=np.float64)
    layer.params = {"W": W.copy(), "b": b.copy()}
    return layer


# (x shape, W shape, stride, pad): square and non-square inputs and kernels, strides 1-3, pads 0-2
CONV_CASES = [
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 0),
    ((2, 3, 7, 9), (4, 3, 3, 2), 1, 1),
    ((1, 2, 8, 6), (3, 2, 3, 3), 2, 1),
    ((2, 1, 9, 7), (2, 1, 4, 3), 3, 2),
    ((1, 2, 6, 10), (5, 2, 2, 5), 2, 0),
]


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", CONV_CASES)
def test_conv_gradcheck(x_shape, w_shape, stride, pad):
    rng = np.random.default_rng(0)
    layer = conv_layer(rng.standard_normal(w_shape), rng.standard_normal(w_shape[0]), stride, pad)
    check_layer(layer, rng.standard_normal(x_shape), rng)


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", CONV_CASES)
def test_conv_matches_torch_and_naive(x_shape, w_shape, stride, pad):
    rng = np.random.default_rng(1)
    x, W, b = (
        rng.standard_normal(x_shape),
        rng.standard_normal(w_shape),
        rng.standard_normal(w_shape[0]),
    )
    layer = conv_layer(W, b, stride, pad)
    out = layer.forward(x)
    np.testing.assert_allclose(out, conv2d_naive(x, W, b, stride, pad), rtol=1e-12, atol=1e-12)
    xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    ref = F.conv2d(xt, Wt, bt, stride=stride, padding=pad)
    G = rng.standard_normal(ref.shape)
    ref.backward(torch.tensor(G))
    dx = layer.backward(G)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], Wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], bt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_conv_input_gradient_is_full_convolution_with_flipped_kernel():
    """README equation: for stride 1, dx = conv(pad(dout, k-1), flip(W) with in/out swapped)."""
    rng = np.random.default_rng(2)
    x, W, b = rng.standard_normal((2, 3, 8, 7)), rng.standard_normal((4, 3, 3, 2)), np.zeros(4)
    layer = conv_layer(W, b, 1, 0)
    G = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(G)
    kh, kw = W.shape[2:]
    Gp = np.pad(G, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    W_flip = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, F, kh, kw)
    np.testing.assert_allclose(dx, conv2d_naive(Gp, W_flip, np.zeros(3)), rtol=1e-12, atol=1e-12)
    # and dW is the correlation of the input with the upstream gradient
    dW = np.stack(
        [
            conv2d_naive(
                x[:, c : c + 1].transpose(1, 0, 2, 3), G.transpose(1, 0, 2, 3), np.zeros(4)
            )[0]
            for c in range(3)
        ],
        axis=1,
    )
    np.testing.assert_allclose(layer.grads["W"], dW, rtol=1e-12, atol=1e-12)


POOL_CASES = [
    ((2, 3, 8, 8), 2, 2),
    ((2, 2, 7, 9), 3, 2),
    ((1, 2, 6, 5), 2, 1),
    ((2, 1, 9, 6), 3, 3),
]


@pytest.mark.parametrize("pool", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("x_shape, kernel, stride", POOL_CASES)
def test_pool_gradcheck(pool, x_shape, kernel, stride):
    rng = np.random.default_rng(3)
    check_layer(pool(kernel, stride), rng.standard_normal(x_shape), rng)


@pytest.mark.parametrize("pool, ref", [(MaxPool2D, F.max_pool2d), (AvgPool2D, F.avg_pool2d)])
@pytest.mark.parametrize("x_shape, kernel, stride", POOL_CASES)
def test_pool_matches_torch(pool, ref, x_shape, kernel, stride):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_shape)
    layer = pool(kernel, stride)
    out = layer.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    out_t = ref(xt, kernel, stride)
    G = rng.standard_normal(out_t.shape)
    out_t.backward(torch.tensor(G))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(G), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    if pool is MaxPool2D:
        np.testing.assert_array_equal(out, maxpool2d_naive(x, kernel, stride))


def test_maxpool_large_kernel_like_torch():
    """A 12x12 window has 144 offsets, the winner at the last one (an arg-max index stored in int8,
    at most 127, would overflow; the first-winner mask must look at every offset)."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 13, 13))
    x[0, 0, 11, 11] = 9.0  # the winner of window (0, 0) at offset 11*12 + 11 = 143
    layer = MaxPool2D(12, 1)
    xt = torch.tensor(x, requires_grad=True)
    out_t = F.max_pool2d(xt, 12, 1)
    G = rng.standard_normal(out_t.shape)
    out_t.backward(torch.tensor(G))
    np.testing.assert_array_equal(layer.forward(x), out_t.detach().numpy())
    # overlapping windows (stride 1) add their gradients in another order than torch does
    np.testing.assert_allclose(layer.backward(G), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_maxpool_propagates_nan_like_torch():
    """A NaN anywhere in a window makes that window's output NaN, and it takes the gradient."""
    x = np.arange(32, dtype=np.float64).reshape(1, 2, 4, 4)
    x[0, 0, 1, 1] = np.nan  # last offset of window (0, 0): a running max with `>` drops it
    x[0, 1, 2, 3] = np.nan  # a middle offset of window (1, 1)
    layer = MaxPool2D(2)
    xt = torch.tensor(x, requires_grad=True)
    out_t = F.max_pool2d(xt, 2)
    G = np.random.default_rng(11).standard_normal(out_t.shape)
    out_t.backward(torch.tensor(G))
    out = layer.forward(x)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(out_t.detach().numpy()))
    assert np.isnan(out[0, 0, 0, 0]) and np.isnan(out[0, 1, 1, 1])
    np.testing.assert_array_equal(layer.backward(G), xt.grad.numpy())


def test_relu_of_infinities_like_torch():
    """ReLU(-inf) = 0 (x * mask would give -inf * 0 = nan), ReLU(inf) = inf, ReLU(nan) = nan."""
    x = np.array([[-np.inf, np.inf, np.nan, -2.0, 0.0, 3.0]])
    ours = ReLU().forward(x)
    np.testing.assert_array_equal(ours, torch.relu(torch.tensor(x)).numpy())
    assert ours[0, 0] == 0.0


def test_maxpool_ties_go_to_one_input_like_torch():
    """After ReLU many windows are all zeros: the gradient must go to one input, not four."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = 1.0
    layer = MaxPool2D(2)
    layer.forward(x)
    G = np.random.default_rng(9).standard_normal((1, 1, 2, 2))
    xt = torch.tensor(x, requires_grad=True)
    F.max_pool2d(xt, 2).backward(torch.tensor(G))
    np.testing.assert_array_equal(layer.backward(G), xt.grad.numpy())


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: Linear(5, 3, dtype=np.float64), (4, 5)),
        (ReLU, (3, 7)),
        (Tanh, (3, 7)),
        (Flatten, (2, 3, 2, 2)),
    ],
)
def test_small_layers_gradcheck(make, shape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    layer = make()
    check_layer(layer, x, rng)


def test_linear_and_activations_match_torch():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 5))
    lin = Linear(5, 3, rng=rng, dtype=np.float64)
    xt = torch.tensor(x, requires_grad=True)
    Wt = torch.tensor(lin.params["W"], requires_grad=True)
    bt = torch.tensor(lin.params["b"], requires_grad=True)
    ref = torch.tanh(torch.relu(F.linear(xt, Wt, bt)))
    relu, tanh = ReLU(), Tanh()
    out = tanh.forward(relu.forward(lin.forward(x)))
    G = rng.standard_normal(out.shape)
    ref.backward(torch.tensor(G))
    dx = lin.backward(relu.backward(tanh.backward(G)))
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lin.grads["W"], Wt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_softmax_cross_entropy_gradcheck_and_torch():
    rng = np.random.default_rng(7)
    logits, y = rng.standard_normal((6, 10)) * 3, rng.integers(0, 10, 6)
    loss, dlogits = softmax_cross_entropy(logits, y)
    num = numerical_grad(lambda: softmax_cross_entropy(logits, y)[0], logits)
    assert rel_error(num, dlogits) < TOL
    lt = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(lt, torch.tensor(y))
    ref.backward()
    assert abs(loss - ref.item()) < 1e-10
    np.testing.assert_allclose(dlogits, lt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_layers_keep_float32():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    conv = Conv2D(1, 3, 5, rng=rng)
    for layer in (conv, ReLU(), MaxPool2D(2)):
        x = layer.forward(x)
        assert x.dtype == np.float32
    assert x.shape == (2, 3, 4, 4)
