"""The distillation loss of model.py against torch's own KL and cross-entropy, in float64.

Oracles: F.kl_div(log_softmax(s/T), log_softmax(t/T), reduction="batchmean", log_target=True)
* T^2; torch.distributions.kl_divergence of two Categoricals; F.cross_entropy with soft
targets; the paper's high-temperature limit (Section 2.1).
"""

import pytest
import torch
import torch.nn.functional as F
from model import (
    distillation_loss,
    hard_label_loss,
    log_softmax_t,
    soft_target_loss,
    softmax_t,
)
from torch.distributions import Categorical, kl_divergence

N, K = 6, 10


def logits(seed, scale=3.0, n=N):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, K, generator=g, dtype=torch.float64)).requires_grad_()


def grads(loss, *tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("T", [1.0, 2.5, 20.0])
def test_softmax_t_matches_torch(T):
    z = logits(0, scale=50.0)  # large logits: exp would overflow without the max shift
    torch.testing.assert_close(softmax_t(z, T), F.softmax(z / T, dim=-1), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(
        log_softmax_t(z, T), F.log_softmax(z / T, dim=-1), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("T", [1.0, 2.5, 20.0])
def test_soft_loss_equals_kl_div_batchmean_times_T2(T):
    s, t = logits(1), logits(2)
    ours = soft_target_loss(s, t, T)
    ref = (
        F.kl_div(
            F.log_softmax(s / T, -1),
            F.log_softmax(t / T, -1),
            reduction="batchmean",
            log_target=True,
        )
        * T**2
    )
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    for a, b in zip(grads(ours, s, t), grads(ref, s, t)):  # the student's and the teacher's
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_soft_loss_equals_distributions_kl_divergence(T):
    s, t = logits(3), logits(4)
    ours = soft_target_loss(s, t, T)
    ref = kl_divergence(Categorical(logits=t / T), Categorical(logits=s / T)).mean() * T**2
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    for a, b in zip(grads(ours, s, t), grads(ref, s, t)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


def test_batch_mean_is_over_examples_not_classes():
    """Averaging over N*K instead of N divides the loss by K: the commonest published bug."""
    s, t = logits(5), logits(6)
    per_example = torch.stack([soft_target_loss(s[i : i + 1], t[i : i + 1], 3.0) for i in range(N)])
    torch.testing.assert_close(soft_target_loss(s, t, 3.0), per_example.mean(), rtol=1e-12, atol=0)
    twice = soft_target_loss(torch.cat([s, s]), torch.cat([t, t]), 3.0)
    torch.testing.assert_close(twice, soft_target_loss(s, t, 3.0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("T", [1.0, 3.0, 10.0])
def test_student_gradient_equals_soft_cross_entropy(T):
    """KL = CE(p, q) - H(p): the teacher's entropy H(p) does not depend on the student."""
    s, t = logits(7), logits(8)
    p = F.softmax(t.detach() / T, -1)
    ce = F.cross_entropy(s / T, p) * T**2
    (ours,), (ref,) = grads(soft_target_loss(s, t.detach(), T), s), grads(ce, s)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-14)
    entropy = -(p * p.log()).sum(-1).mean() * T**2
    torch.testing.assert_close(soft_target_loss(s, t, T), ce - entropy, rtol=1e-10, atol=1e-12)


def test_high_temperature_limit_is_logit_matching():
    """Section 2.1: for zero-mean logits, T^2 dC/dz_i -> (z_i - v_i) / K as T grows.

    C is the KL of one example; soft_target_loss already carries the T^2 and averages over
    the batch, so its gradient should approach (z - v) / (K * N). The error shrinks like 1/T.
    """
    z, v = logits(9), logits(10).detach()
    with torch.no_grad():
        z -= z.mean(-1, keepdim=True)
        v -= v.mean(-1, keepdim=True)
    target = (z - v).detach() / (K * N)
    errors = []
    for T in [10.0, 100.0, 1000.0, 10000.0]:
        (g,) = grads(soft_target_loss(z, v, T), z)
        errors.append(((g - target).abs().max() / target.abs().max()).item())
    assert all(b < a / 5 for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-3, errors


def test_alpha_zero_is_exactly_the_hard_label_loss():
    s, t = logits(11), logits(12)
    y = torch.randint(0, K, (N,), generator=torch.Generator().manual_seed(0))
    loss = distillation_loss(s, t, y, T=4.0, alpha=0.0)
    assert torch.equal(loss, hard_label_loss(s, y))
    torch.testing.assert_close(loss, F.cross_entropy(s, y), rtol=1e-12, atol=1e-14)
    (gs,) = grads(loss, s)
    (ref,) = grads(F.cross_entropy(s, y), s)
    torch.testing.assert_close(gs, ref, rtol=1e-10, atol=1e-14)
    assert torch.autograd.grad(loss, t, allow_unused=True)[0] is None  # the teacher is not read


def test_alpha_one_ignores_the_labels():
    s, t = logits(13), logits(14)
    y1 = torch.zeros(N, dtype=torch.long)
    y2 = torch.arange(N) % K
    a, b = distillation_loss(s, t, y1, 4.0, 1.0), distillation_loss(s, t, y2, 4.0, 1.0)
    assert torch.equal(a, b) and torch.equal(a, distillation_loss(s, t, None, 4.0, 1.0))
    for ga, gb in zip(grads(a, s, t), grads(b, s, t)):
        assert torch.equal(ga, gb)


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.9])
def test_mixture_matches_torch(alpha):
    T = 4.0
    s, t = logits(15), logits(16)
    y = torch.randint(0, K, (N,), generator=torch.Generator().manual_seed(1))
    ours = distillation_loss(s, t, y, T, alpha)
    kl = F.kl_div(
        F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean", log_target=True
    )
    ref = alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(s, y)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    for a, b in zip(grads(ours, s, t), grads(ref, s, t)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
