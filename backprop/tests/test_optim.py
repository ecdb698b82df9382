"""Each optimizer against its torch.optim counterpart: 20 steps, same gradients, float64."""

import numpy as np
import pytest
import torch
from optim import OPTIMIZERS, SCHEDULES, SGD, Adam, lr_at, make_optimizer

TORCH = {
    "sgd": lambda p, lr, wd: torch.optim.SGD(p, lr=lr, weight_decay=wd),
    "momentum": lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd),
    "nesterov": lambda p, lr, wd: torch.optim.SGD(
        p, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd
    ),
    "rmsprop": lambda p, lr, wd: torch.optim.RMSprop(p, lr=lr, weight_decay=wd),
    "adam": lambda p, lr, wd: torch.optim.Adam(p, lr=lr, weight_decay=wd),
}


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_matches_torch(name, weight_decay):
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
    theirs = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    ours = make_optimizer(name, params, lr=0.05, weight_decay=weight_decay)
    ref = TORCH[name](list(theirs.values()), 0.05, weight_decay)
    start = {k: v.copy() for k, v in params.items()}
    for _ in range(20):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        ours.step(grads)
        for k, p in theirs.items():
            p.grad = torch.from_numpy(grads[k].copy())
        ref.step()
    for k in params:
        assert not np.allclose(params[k], start[k])  # it moved
        np.testing.assert_allclose(params[k], theirs[k].detach().numpy(), rtol=1e-12, atol=1e-13)


def test_optimizer_state_round_trip():
    rng = np.random.default_rng(1)
    p1 = {"W": rng.standard_normal((3, 2))}
    p2 = {"W": p1["W"].copy()}
    a, b = Adam(p1, lr=0.1), Adam(p2, lr=0.1)
    for _ in range(3):
        a.step({"W": rng.standard_normal((3, 2))})
    b.load_state_dict(a.state_dict())
    p2["W"][...] = p1["W"]
    g = {"W": rng.standard_normal((3, 2))}
    a.step(g)
    b.step(g)
    assert b.t == a.t == 4
    np.testing.assert_array_equal(p1["W"], p2["W"])


@pytest.mark.parametrize(
    "schedule, make_torch, kw, n_steps, rel",
    [
        (
            "step",
            lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
            dict(step_size=3, gamma=0.5, schedule_steps=100),
            12,
            1e-12,
        ),
        (
            "cosine",  # torch computes it recursively, hence the looser rel
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
            dict(schedule_steps=10, min_lr=0.001),
            11,  # torch's cosine rises again after T_max; ours stays at min_lr
            1e-9,
        ),
    ],
)
def test_schedule_matches_torch(schedule, make_torch, kw, n_steps, rel):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = make_torch(opt)
    for step in range(n_steps):
        ours = lr_at(step, lr=0.1, schedule=schedule, **kw)
        assert ours == pytest.approx(sched.get_last_lr()[0], rel=rel)
        opt.step()
        sched.step()


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match=", ".join(OPTIMIZERS)):
        make_optimizer("adagrad", {}, lr=0.1)
    with pytest.raises(ValueError, match=", ".join(SCHEDULES)):
        lr_at(0, lr=0.1, schedule="linear")


def test_nesterov_without_momentum_is_refused_like_torch():
    params = {"W": np.zeros(3)}
    with pytest.raises(ValueError):
        torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=0.1, momentum=0, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(params, lr=0.1, momentum=0.0, nesterov=True)


def test_warmup_then_cosine_matches_torch_sequential_lr():
    """Linear warm-up over 4 updates (LinearLR from 1/4) then cosine to 0 at update 20."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=3)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=16)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[4])
    for step in range(20):
        ours = lr_at(step, lr=0.1, warmup_steps=4, schedule_steps=20, schedule="cosine")
        assert ours == pytest.approx(sched.get_last_lr()[0], rel=1e-9), step
        opt.step()
        sched.step()
    # past the horizon the rate stays at the schedule's end value
    assert lr_at(25, lr=0.1, warmup_steps=4, schedule_steps=20, schedule="cosine") == 0.0
