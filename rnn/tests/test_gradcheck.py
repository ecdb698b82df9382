"""Every hand-written backward against centred finite differences in float64.

The scalar is L = sum(G_y * y) + sum(G_s * final_state) with random G (a random upstream gradient
on every output AND on every final state), so a backward that drops a term cannot pass.
Relative error ||analytic - numeric|| / (||analytic|| + ||numeric||) < 1e-6 for every tensor.
"""

import numpy as np
import pytest
from gradcheck import numerical_grad, rel_error
from model import GRU, LSTM, RNN, CharRNN, Dropout, softmax_cross_entropy


@pytest.mark.parametrize("cell", [RNN, LSTM, GRU])
def test_cell_gradients(cell):
    rng = np.random.default_rng(0)
    T, B, D, H = 6, 3, 4, 5
    layer = cell(D, H, rng, np.float64)
    x = rng.standard_normal((T, B, D))
    state0 = tuple(rng.standard_normal((B, H)) for _ in range(layer.n_states))
    gy = rng.standard_normal((T, B, H))
    gs = tuple(rng.standard_normal((B, H)) for _ in range(layer.n_states))

    def loss():
        y, state = layer.forward(x, state0)
        return np.sum(gy * y) + sum(np.sum(g * s) for g, s in zip(gs, state))

    loss()
    dx, dstate0 = layer.backward(gy, gs)
    for k, p in layer.params.items():
        err = rel_error(layer.grads[k].copy(), numerical_grad(loss, p))
        assert err < 1e-6, (cell.__name__, k, err)
    assert rel_error(dx, numerical_grad(loss, x)) < 1e-6
    for d, s in zip(dstate0, state0):  # h0 (and c0): gradients for the initial states
        assert rel_error(d, numerical_grad(loss, s)) < 1e-6
    assert np.abs(dx).max() > 0 and all(np.abs(d).max() > 0 for d in dstate0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_two_layer_stack_gradients(cell):
    """Embedding -> 2 cells -> head: every parameter, and both layers' initial states."""
    rng = np.random.default_rng(1)
    T, B, V = 5, 2, 6
    model = CharRNN(V, cell, n_embd=3, n_hidden=4, n_layer=2, seed=1, dtype=np.float64)
    ids = rng.integers(0, V, (T, B))
    states0 = [tuple(rng.standard_normal((B, 4)) for _ in s) for s in model.init_state(B)]
    glog = rng.standard_normal((T, B, V))
    gst = [tuple(rng.standard_normal((B, 4)) for _ in s) for s in states0]

    def loss():
        logits, states = model.forward(ids, states0)
        out = np.sum(glog * logits)
        for gs, ss in zip(gst, states):
            out += sum(np.sum(g * s) for g, s in zip(gs, ss))
        return out

    loss()
    dstates0 = model.backward(glog, gst)
    grads = {k: v.copy() for k, v in model.grads.items()}
    for k, p in model.params.items():
        err = rel_error(grads[k], numerical_grad(loss, p))
        assert err < 1e-6, (cell, k, err)
    for ds, ss in zip(dstates0, states0):
        for d, s in zip(ds, ss):
            assert rel_error(d, numerical_grad(loss, s)) < 1e-6


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_dropout_stack_gradients(cell):
    """The same stack with dropout 0.3 and weight drop 0.4: fixed masks (the same seed for every
    forward pass of the finite differences) must be applied forward and backward to both layers'
    outputs and to both W_hh."""
    rng = np.random.default_rng(8)
    T, B, V = 5, 2, 6
    model = CharRNN(V, cell, n_embd=3, n_hidden=4, n_layer=2, seed=8, dropout=0.3, weight_drop=0.4,
                    dtype=np.float64)  # fmt: skip
    ids = rng.integers(0, V, (T, B))
    glog = rng.standard_normal((T, B, V))

    def loss():
        return np.sum(glog * model.forward(ids, rng=np.random.default_rng(9))[0])

    loss()
    masks = [d.mask for d in model.dropouts] + [layer.drop_hh.mask for layer in model.layers]
    assert all(0 < (m == 0).mean() < 0.7 for m in masks)  # units really dropped, not all
    dstates0 = model.backward(glog)
    grads = {k: v.copy() for k, v in model.grads.items()}
    for k, p in model.params.items():
        err = rel_error(grads[k], numerical_grad(loss, p))
        assert err < 1e-6, (cell, k, err)
    states0 = model.init_state(B)
    num = numerical_grad(lambda: np.sum(glog * model.forward(ids, states0, np.random.default_rng(9))[0]), states0[1][0])  # fmt: skip
    assert rel_error(dstates0[1][0], num) < 1e-6  # the second layer's h0, behind a dropped output


def test_dropout_masks():
    """Inverted dropout: a fraction p of zeros, survivors scaled by 1/(1-p) (mean ~ 1); without a
    generator (evaluation, sampling) the identity; backward multiplies by the same mask."""
    x = np.ones((200, 500), np.float32)
    drop = Dropout(0.25)
    y = drop.forward(x, np.random.default_rng(0))
    assert y.dtype == np.float32 and set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01 and abs(y.mean() - 1) < 0.01
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(drop.backward(g), g * drop.mask)
    assert drop.forward(x) is x and drop.backward(g) is g


def test_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4, 3, 7))
    targets = rng.integers(0, 7, (4, 3))
    _, d = softmax_cross_entropy(logits, targets)
    num = numerical_grad(lambda: softmax_cross_entropy(logits, targets)[0], logits)
    assert rel_error(d, num) < 1e-6


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_second_backward_overwrites_the_gradients(cell):
    """Two forward/backward passes with different upstream gradients: the grads after the second
    are those of the second alone (a backward that accumulated with += would hold the sum)."""
    rng = np.random.default_rng(3)
    model = CharRNN(6, cell, n_embd=3, n_hidden=4, n_layer=2, seed=3, dtype=np.float64)
    ids = rng.integers(0, 6, (5, 2))
    g1, g2 = rng.standard_normal((2, 5, 2, 6))
    model.forward(ids)
    model.backward(g2)
    alone = {k: v.copy() for k, v in model.grads.items()}
    model.forward(ids)
    model.backward(g1)
    model.forward(ids)
    model.backward(g2)
    for k, v in model.grads.items():
        np.testing.assert_array_equal(v, alone[k], err_msg=k)
