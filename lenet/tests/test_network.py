"""The whole LeNet-5 against finite differences and an identical torch.nn network; optimizers
against torch.optim."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from gradcheck import numerical_grad, rel_error
from model import LeNet5, softmax_cross_entropy
from optim import SGD, Adam, lr_at
from test_layers import TOL


def torch_lenet(model):
    """The same network in torch.nn, float64, with our weights copied in."""
    act, pool = (nn.ReLU, nn.MaxPool2d) if model.variant == "modern" else (nn.Tanh, nn.AvgPool2d)
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5), act(), pool(2),
        nn.Conv2d(6, 16, 5), act(), pool(2),
        nn.Conv2d(16, 120, 5), act(), nn.Flatten(),
        nn.Linear(120, 84), act(), nn.Linear(84, 10),
    ).double()  # fmt: skip
    params = model.params
    torch_layers = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    for name, m in zip(["C1", "C3", "C5", "F6", "output"], torch_layers):
        m.weight.data = torch.tensor(params[f"{name}.W"])
        m.bias.data = torch.tensor(params[f"{name}.b"])
    return net, dict(zip(["C1", "C3", "C5", "F6", "output"], torch_layers))


def test_parameter_counts():
    """Full C3 connectivity: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706 (paper: 60,000)."""
    counts = dict(LeNet5().param_counts())
    assert counts == {"C1": 156, "C3": 2416, "C5": 48120, "F6": 10164, "output": 850}


@pytest.mark.parametrize("variant", ["modern", "classic"])
def test_network_gradcheck(variant):
    """Centred differences on 12 random entries of every parameter and of the input."""
    rng = np.random.default_rng(0)
    model = LeNet5(variant, seed=1, dtype=np.float64)
    x = rng.standard_normal((2, 1, 32, 32))
    G = rng.standard_normal((2, 10))
    model.forward(x)
    dx = model.backward(G)
    grads = model.grads
    loss = lambda: float(np.sum(model.forward(x) * G))
    for name, p in list(model.params.items()) + [("x", x)]:
        ours = dx if name == "x" else grads[name]
        flat = rng.choice(p.size, size=min(12, p.size), replace=False)
        num = numerical_grad(loss, p, at=flat)
        assert rel_error(num, ours.reshape(-1)[flat]) < TOL, name


@pytest.mark.parametrize("variant", ["modern", "classic"])
def test_network_matches_torch(variant):
    rng = np.random.default_rng(2)
    model = LeNet5(variant, seed=3, dtype=np.float64)
    net, layers = torch_lenet(model)
    x, y = rng.standard_normal((4, 1, 32, 32)), rng.integers(0, 10, 4)
    logits = model.forward(x)
    loss, dlogits = softmax_cross_entropy(logits, y)
    dx = model.backward(dlogits)
    xt = torch.tensor(x, requires_grad=True)
    ref_logits = net(xt)
    ref_loss = F.cross_entropy(ref_logits, torch.tensor(y))
    ref_loss.backward()
    np.testing.assert_allclose(logits, ref_logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert abs(loss - ref_loss.item()) < 1e-12
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-14)
    grads = model.grads
    for name, m in layers.items():
        np.testing.assert_allclose(grads[f"{name}.W"], m.weight.grad.numpy(), rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(grads[f"{name}.b"], m.bias.grad.numpy(), rtol=1e-9, atol=1e-14)


def test_need_dx_false_skips_only_the_input_gradient():
    """need_dx=False returns None and leaves every parameter gradient exactly as need_dx=True."""
    rng = np.random.default_rng(4)
    model = LeNet5(dtype=np.float64)
    x, G = rng.standard_normal((2, 1, 32, 32)), rng.standard_normal((2, 10))
    model.forward(x)
    assert model.backward(G, need_dx=True).shape == x.shape
    full = {k: v.copy() for k, v in model.grads.items()}
    model.forward(x)
    assert model.backward(G, need_dx=False) is None
    for k, v in model.grads.items():
        np.testing.assert_array_equal(v, full[k], err_msg=k)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimizers_match_torch(name):
    """Five steps with weight decay on *.W only, against torch.optim with two param groups."""
    rng = np.random.default_rng(5)
    params = {"a.W": rng.standard_normal((3, 4)), "a.b": rng.standard_normal(3)}
    grads_seq = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(5)]
    tW, tb = (torch.tensor(params[k].copy(), requires_grad=True) for k in ("a.W", "a.b"))
    groups = [{"params": [tW], "weight_decay": 0.1}, {"params": [tb], "weight_decay": 0.0}]
    if name == "sgd":
        ours = SGD(params, lr=0.05, momentum=0.9, weight_decay=0.1)
        ref = torch.optim.SGD(groups, lr=0.05, momentum=0.9)
    else:
        ours = Adam(params, lr=0.01, weight_decay=0.1)
        ref = torch.optim.Adam(groups, lr=0.01)
    for grads in grads_seq:
        ours.step(grads)
        tW.grad, tb.grad = torch.tensor(grads["a.W"]), torch.tensor(grads["a.b"])
        ref.step()
    np.testing.assert_allclose(params["a.W"], tW.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(params["a.b"], tb.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_cosine_schedule_with_warmup_matches_torch():
    """Linear warm-up over 10 steps (LinearLR from 1/10), then cosine to 0 at step 100."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=9)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=90)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[10])
    for step in range(100):
        ours = lr_at(step, lr=1.0, warmup_steps=10, schedule_steps=100, schedule="cosine")
        assert ours == pytest.approx(sched.get_last_lr()[0], rel=1e-9, abs=1e-12), step
        opt.step()
        sched.step()
    # past the horizon the rate stays at the schedule's end value
    assert lr_at(130, lr=1.0, warmup_steps=10, schedule_steps=100, schedule="cosine") == 0.0
    assert lr_at(50, lr=0.3, schedule="constant") == 0.3
