"""Equality with torch in float64 with copied weights: torch.nn.RNN/LSTM/GRU (outputs, final
states and every gradient, one and two layers), the whole CharRNN against nn.Embedding + cells +
nn.Linear, F.cross_entropy, torch.optim and clip_grad_norm_."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bench import TORCH  # name -> torch.nn.RNN / LSTM / GRU
from model import CELLS, CharRNN, softmax_cross_entropy
from optim import OPTIMIZERS, clip_grad_norm

NAMES = {
    "W_ih": "weight_ih_l{}",
    "W_hh": "weight_hh_l{}",
    "b_ih": "bias_ih_l{}",
    "b_hh": "bias_hh_l{}",
}


def close(a, b):
    np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_layer", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_matches_torch(cell, n_layer):
    rng = np.random.default_rng(3)
    T, B, D, H = 7, 3, 4, 5
    layers = [CELLS[cell](D if l == 0 else H, H, rng, np.float64) for l in range(n_layer)]
    ref = TORCH[cell](D, H, num_layers=n_layer).double()
    with torch.no_grad():
        for l, layer in enumerate(layers):
            for k, v in layer.params.items():
                getattr(ref, NAMES[k].format(l)).copy_(torch.from_numpy(v))
    n_states = layers[0].n_states
    x = rng.standard_normal((T, B, D))
    s0 = [[rng.standard_normal((B, H)) for _ in range(n_states)] for _ in range(n_layer)]
    gy = rng.standard_normal((T, B, H))
    gs = [[rng.standard_normal((B, H)) for _ in range(n_states)] for _ in range(n_layer)]

    # ours: forward through the stack, backward with the same upstream gradients
    y, states = x, []
    for layer, s in zip(layers, s0):
        y, s = layer.forward(y, tuple(s))
        states.append(s)
    dx = gy
    ds0 = [None] * n_layer
    for l in reversed(range(n_layer)):
        dx, ds0[l] = layers[l].backward(dx, tuple(gs[l]))

    # torch: states are (num_layers, B, H); LSTM takes (h0, c0)
    xt = torch.tensor(x, requires_grad=True)
    s0t = [torch.tensor(np.stack([s[i] for s in s0]), requires_grad=True) for i in range(n_states)]
    yt, st = ref(xt, tuple(s0t) if cell == "lstm" else s0t[0])
    st = st if cell == "lstm" else (st,)
    gst = [torch.tensor(np.stack([g[i] for g in gs])) for i in range(n_states)]
    loss = (yt * torch.tensor(gy)).sum() + sum((s * g).sum() for s, g in zip(st, gst))
    loss.backward()

    close(y, yt)
    for i in range(n_states):
        close(np.stack([s[i] for s in states]), st[i])
        close(np.stack([d[i] for d in ds0]), s0t[i].grad)
    close(dx, xt.grad)
    for l, layer in enumerate(layers):
        for k in layer.params:
            close(layer.grads[k], getattr(ref, NAMES[k].format(l)).grad)


def test_cross_entropy_matches_torch():
    rng = np.random.default_rng(4)
    logits, targets = rng.standard_normal((6, 4, 9)) * 3, rng.integers(0, 9, (6, 4))
    loss, d = softmax_cross_entropy(logits, targets)
    lt = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(lt.reshape(-1, 9), torch.tensor(targets).reshape(-1))
    ref.backward()
    assert abs(loss - ref.item()) < 1e-12
    close(d, lt.grad)


TORCH_OPT = {
    "adam": lambda p, lr: torch.optim.Adam(p, lr=lr),
    "adagrad": lambda p, lr: torch.optim.Adagrad(p, lr=lr),
    "rmsprop": lambda p, lr: torch.optim.RMSprop(p, lr=lr),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_and_clipping_match_torch(name):
    """Five steps of clip-by-global-norm then an update, on a CharRNN's real parameters."""
    rng = np.random.default_rng(5)
    model = CharRNN(5, "lstm", n_embd=3, n_hidden=4, dtype=np.float64)
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in model.params.items()}
    opt = OPTIMIZERS[name](model.params, lr=0.05)
    topt = TORCH_OPT[name](list(tparams.values()), 0.05)
    for _ in range(5):
        for k, g in model.grads.items():
            g[...] = rng.standard_normal(g.shape) * 3
            tparams[k].grad = torch.tensor(g.copy())
        norm = clip_grad_norm(model.grads, 1.0)
        tnorm = torch.nn.utils.clip_grad_norm_(list(tparams.values()), 1.0)
        assert abs(norm - tnorm.item()) < 1e-10 and norm > 1.0  # clipping really happened
        opt.step(model.grads)
        topt.step()
    for k, v in model.params.items():
        close(v, tparams[k])


def test_weight_decay_matches_torch_adamw():
    """Adam with weight_decay is torch's AdamW (decoupled) with the decay on the weight matrices
    only, also while the learning rate changes from step to step (the decay uses the current lr).
    An L2 penalty added to the gradient, or decayed biases, fail it."""
    rng = np.random.default_rng(8)
    model = CharRNN(5, "lstm", n_embd=3, n_hidden=4, dtype=np.float64)
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in model.params.items()}
    opt = OPTIMIZERS["adam"](model.params, lr=0.05, weight_decay=0.5)
    groups = [[p for p in tparams.values() if p.ndim >= 2], [p for p in tparams.values() if p.ndim < 2]]  # fmt: skip
    topt = torch.optim.AdamW([{"params": groups[0], "weight_decay": 0.5},
                              {"params": groups[1], "weight_decay": 0.0}], lr=0.05)  # fmt: skip
    nodecay = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in model.params.items()}
    adam = torch.optim.Adam(list(nodecay.values()), lr=0.05)
    for lr in (0.05, 0.03, 0.01):
        for k, g in model.grads.items():
            g[...] = rng.standard_normal(g.shape)
            tparams[k].grad, nodecay[k].grad = torch.tensor(g.copy()), torch.tensor(g.copy())
        opt.lr = lr
        for group in topt.param_groups + adam.param_groups:
            group["lr"] = lr
        opt.step(model.grads)
        topt.step()
        adam.step()
    for k, v in model.params.items():
        close(v, tparams[k])
    W = model.params["layer0.W_hh"]  # the decay mattered: far from Adam without it
    assert np.abs(W - nodecay["layer0.W_hh"].detach().numpy()).max() > 1e-3


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_weight_decay_alone_shrinks_matrices_geometrically(name):
    """With zero gradients only the decay acts: each matrix is p0 (1 - lr wd)^t, biases stay."""
    model = CharRNN(5, "gru", n_embd=3, n_hidden=4, dtype=np.float64)
    start = {k: v.copy() for k, v in model.params.items()}
    opt = OPTIMIZERS[name](model.params, lr=0.1, weight_decay=0.2)
    grads = {k: np.zeros_like(v) for k, v in model.params.items()}
    for _ in range(3):
        opt.step(grads)
    for k, v in model.params.items():
        want = start[k] * (1 - 0.1 * 0.2) ** 3 if v.ndim >= 2 else start[k]
        np.testing.assert_allclose(v, want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_char_model_matches_torch(cell):
    """The whole CharRNN (Embedding -> 2 cells -> Linear head) against nn.Embedding, the torch
    cell and nn.Linear with copied weights: logits and every gradient, embedding and head too."""
    rng = np.random.default_rng(6)
    T, B, V, E, H = 6, 3, 9, 4, 5
    model = CharRNN(V, cell, n_embd=E, n_hidden=H, n_layer=2, seed=6, dtype=np.float64)
    emb, rnn = torch.nn.Embedding(V, E).double(), TORCH[cell](E, H, num_layers=2).double()
    head = torch.nn.Linear(H, V).double()
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(model.params["embed.W"]))
        head.weight.copy_(torch.from_numpy(model.params["head.W"]))
        head.bias.copy_(torch.from_numpy(model.params["head.b"]))
        for l in range(2):
            for k in NAMES:
                getattr(rnn, NAMES[k].format(l)).copy_(
                    torch.from_numpy(model.params[f"layer{l}.{k}"])
                )
    ids = rng.integers(0, V, (T, B))
    glog = rng.standard_normal((T, B, V))  # random upstream gradient on the logits

    logits, _ = model.forward(ids)
    model.backward(glog)
    lt = head(rnn(emb(torch.from_numpy(ids)))[0])
    (lt * torch.from_numpy(glog)).sum().backward()

    close(logits, lt)
    close(model.grads["embed.W"], emb.weight.grad)
    close(model.grads["head.W"], head.weight.grad)
    close(model.grads["head.b"], head.bias.grad)
    for l in range(2):
        for k in NAMES:
            close(model.grads[f"layer{l}.{k}"], getattr(rnn, NAMES[k].format(l)).grad)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_char_model_with_dropout_matches_torch(cell):
    """Dropout 0.4 on both layers' outputs: torch, given our masks (y * m), gives the same logits
    and gradients. The embedding, the recurrent connections and the states are not dropped."""
    rng = np.random.default_rng(10)
    T, B, V, E, H = 6, 3, 9, 4, 5
    model = CharRNN(V, cell, n_embd=E, n_hidden=H, n_layer=2, seed=10, dropout=0.4, dtype=np.float64)  # fmt: skip
    emb, head = torch.nn.Embedding(V, E).double(), torch.nn.Linear(H, V).double()
    rnns = [TORCH[cell](E if l == 0 else H, H).double() for l in range(2)]
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(model.params["embed.W"]))
        head.weight.copy_(torch.from_numpy(model.params["head.W"]))
        head.bias.copy_(torch.from_numpy(model.params["head.b"]))
        for l, r in enumerate(rnns):
            for k in NAMES:
                getattr(r, NAMES[k].format(0)).copy_(torch.from_numpy(model.params[f"layer{l}.{k}"]))  # fmt: skip
    ids = rng.integers(0, V, (T, B))
    glog = rng.standard_normal((T, B, V))

    logits, _ = model.forward(ids, rng=np.random.default_rng(11))
    model.backward(glog)
    m1, m2 = (torch.from_numpy(d.mask) for d in model.dropouts)
    x = rnns[0](emb(torch.from_numpy(ids)))[0] * m1
    lt = head(rnns[1](x)[0] * m2)
    (lt * torch.from_numpy(glog)).sum().backward()

    close(logits, lt)
    close(model.grads["embed.W"], emb.weight.grad)
    close(model.grads["head.W"], head.weight.grad)
    for l, r in enumerate(rnns):
        for k in NAMES:
            close(model.grads[f"layer{l}.{k}"], getattr(r, NAMES[k].format(0)).grad)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_weight_drop_matches_torch(cell):
    """Weight drop: the torch cell run with weight_hh = W_hh * M (our mask) gives our outputs and
    gradients, and our dL/dW_hh is torch's gradient of weight_hh times M."""
    rng = np.random.default_rng(12)
    T, B, D, H = 6, 3, 4, 5
    layer = CELLS[cell](D, H, rng, np.float64, weight_drop=0.5)
    x, gy = rng.standard_normal((T, B, D)), rng.standard_normal((T, B, H))
    y, _ = layer.forward(x, rng=np.random.default_rng(13))
    dx, _ = layer.backward(gy)
    M = layer.drop_hh.mask
    assert 0.3 < (M == 0).mean() < 0.7
    ref = TORCH[cell](D, H).double()
    with torch.no_grad():
        for k, v in layer.params.items():
            getattr(ref, NAMES[k].format(0)).copy_(torch.from_numpy(v * M if k == "W_hh" else v))
    xt = torch.tensor(x, requires_grad=True)
    (ref(xt)[0] * torch.from_numpy(gy)).sum().backward()
    close(y, ref(xt)[0])
    close(dx, xt.grad)
    for k in layer.params:
        want = getattr(ref, NAMES[k].format(0)).grad
        close(layer.grads[k], want * torch.from_numpy(M) if k == "W_hh" else want)
    y_eval, _ = layer.forward(x)  # no generator: evaluation uses W_hh itself
    assert layer.W_hh is layer.params["W_hh"] and not np.allclose(y_eval, y)


def test_clipping_leaves_a_gradient_inside_the_limit_alone():
    """A global norm below max_norm: nothing changes (a clip that scaled by max_norm / norm
    would scale it UP), as torch's clip_grad_norm_, which clamps the factor at 1."""
    rng = np.random.default_rng(7)
    grads = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    norm = float(np.sqrt(sum((g**2).sum() for g in grads.values())))
    before = {k: g.copy() for k, g in grads.items()}
    tgrads = [torch.tensor(g.copy(), requires_grad=True) for g in grads.values()]
    for t, g in zip(tgrads, grads.values()):
        t.grad = torch.tensor(g.copy())
    assert clip_grad_norm(grads, 2 * norm) == pytest.approx(norm, rel=1e-12)
    torch.nn.utils.clip_grad_norm_(tgrads, 2 * norm)
    for (k, g), t in zip(grads.items(), tgrads):
        np.testing.assert_array_equal(g, before[k])
        close(g, t.grad)
