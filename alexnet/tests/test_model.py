"""model.py against its references: LocalResponseNorm vs torch.nn.LocalResponseNorm and gradcheck, the
torchvision preset vs torchvision.models.alexnet (same weights, float64, logits and every
gradient, at 224x224 and at the 63x63 minimum), parameter counts, and one-line shape errors."""

import pytest
import torch
import torchvision
from model import PRESETS, AlexNet, AlexNetConfig, LocalResponseNorm, count_params, min_input_size


@pytest.mark.parametrize(
    "shape, size, alpha, beta, k",
    [
        ((2, 7, 5, 4), 5, 1e-4, 0.75, 2.0),  # the paper's constants, odd channel count
        ((3, 5, 3, 3), 5, 0.5, 0.75, 1.0),  # as many channels as the window: every row an edge
        ((2, 6, 4, 4), 4, 0.3, 0.6, 1.5),  # even window: n//2 before, (n-1)//2 after
        ((2, 3, 4, 5), 7, 1.0, 1.1, 0.5),  # window wider than the channels
        ((2, 9, 6), 3, 0.8, 0.5, 1.0),  # one spatial axis
    ],
)
def test_lrn_matches_torch_outputs_and_gradients(shape, size, alpha, beta, k):
    torch.manual_seed(0)
    x = (torch.randn(shape, dtype=torch.float64) * 3).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    ours = LocalResponseNorm(size, alpha, beta, k)(x)
    ref = torch.nn.LocalResponseNorm(size, alpha, beta, k)(x_ref)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(ours)
    ours.backward(upstream)
    ref.backward(upstream)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [5, 4, 3])  # odd and even windows: the mirrored backward sum
def test_lrn_backward_passes_gradcheck(size):
    torch.manual_seed(0)
    x = torch.randn(2, 6, 2, 3, dtype=torch.float64, requires_grad=True)
    lrn = LocalResponseNorm(size, alpha=0.5, beta=0.75, k=1.0)  # large alpha: the sum matters
    assert torch.autograd.gradcheck(lrn, (x,))


def test_lrn_edges_by_hand():
    """Channel 0 and C-1 see only the neighbours that exist (the paper's clipped sum)."""
    x = torch.arange(1.0, 6.0, dtype=torch.float64).reshape(1, 5, 1, 1)  # channels 1..5
    n, alpha, beta, k = 5, 0.1, 0.75, 2.0
    y = LocalResponseNorm(n, alpha, beta, k)(x).flatten()
    a = x.flatten()
    for c, window in [(0, [0, 1, 2]), (1, [0, 1, 2, 3]), (2, [0, 1, 2, 3, 4]), (4, [2, 3, 4])]:
        expected = a[c] / (k + alpha / n * (a[window] ** 2).sum()) ** beta
        assert y[c].item() == pytest.approx(expected.item(), rel=1e-14)


def copy_of_torchvision(num_classes, seed=0):
    torch.manual_seed(seed)
    ref = torchvision.models.alexnet(weights=None, num_classes=num_classes).double()
    ours = AlexNet(AlexNetConfig(preset="torchvision", num_classes=num_classes)).double()
    ours.load_state_dict(ref.state_dict(), strict=True)  # no renaming
    return ours, ref


@pytest.mark.parametrize("size, num_classes", [(224, 7), (63, 1000)])
def test_torchvision_preset_equals_torchvision_alexnet(size, num_classes):
    ours, ref = copy_of_torchvision(num_classes)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.eval(), ref.eval()  # dropout off: the same function
    torch.manual_seed(1)
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, out_ref = ours(x_ours), ref(x_ref)
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-12)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    out_ref.backward(upstream)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
    params_ref = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(
            p.grad, params_ref[name].grad, rtol=1e-10, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}"
        )


def test_torchvision_adaptive_pool_averages_a_larger_map():
    """At 224 (6x6 maps) and 63 (1x1) the adaptive pool only copies; at 256 it averages 7x7 -> 6x6."""
    ours, ref = copy_of_torchvision(4)
    x = torch.randn(1, 3, 256, 256, dtype=torch.float64)
    assert ref.features(x).shape[-1] == 7
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), ref.eval()(x), rtol=1e-10, atol=1e-12)


def test_torchvision_dropout_is_in_the_same_places():
    """Training mode with one seed: the same dropout masks, so the same logits."""
    ours, ref = copy_of_torchvision(5)
    x = torch.randn(2, 3, 63, 63, dtype=torch.float64)
    torch.manual_seed(3)
    a = ours.train()(x)
    torch.manual_seed(3)
    b = ref.train()(x)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_parameter_counts():
    tv = AlexNet(AlexNetConfig(preset="torchvision", num_classes=1000))
    assert count_params(tv) == 61_100_840
    assert count_params(tv) == count_params(torchvision.models.alexnet(weights=None))
    # the paper's two towers: 60,965,224 (the "60 million parameters" of its abstract)
    assert count_params(AlexNet(AlexNetConfig(preset="paper", num_classes=1000))) == 60_965_224


def test_paper_preset_shapes():
    model = AlexNet(AlexNetConfig(preset="paper", num_classes=10))
    assert model.features[4].groups == 2 and model.features[8].groups == 1  # conv2, conv3
    x = torch.randn(1, 3, 224, 224)
    assert model.features(x).shape == (1, 256, 6, 6)
    assert model(x).shape == (1, 10)
    assert sum(isinstance(m, LocalResponseNorm) for m in model.modules()) == 2
    no_lrn = AlexNet(AlexNetConfig(preset="paper", lrn=False))
    assert not any(isinstance(m, LocalResponseNorm) for m in no_lrn.modules())


def test_minimum_sizes_and_bad_inputs_are_one_clear_error():
    assert min_input_size(PRESETS["torchvision"]["features"]) == 63
    tv = AlexNet(AlexNetConfig(preset="torchvision", num_classes=3))
    with pytest.raises(ValueError, match="at least 63x63"):
        tv(torch.randn(1, 3, 62, 62))
    small = AlexNet(AlexNetConfig(preset="small"))
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="built for 32x32 inputs, got 40x40"):
        small(torch.randn(1, 3, 40, 40))
    with pytest.raises(ValueError, match=r"expected images \(B, 3, H, W\)"):
        small(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="unknown preset"):
        AlexNetConfig(preset="vgg")
    with pytest.raises(ValueError, match="at least"):
        AlexNetConfig(preset="small", image_size=8)


def test_non_overlapping_pooling_ablation():
    """--pool-kernel 2 (Section 3.4's z = s = 2) tiles the map: each pool keeps one more row."""
    cfg = AlexNetConfig(preset="small", pool_kernel=2)
    model = AlexNet(cfg)
    pools = [m for m in model.features if isinstance(m, torch.nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(2, 2)] * 3
    assert model.features(torch.randn(1, 3, 32, 32)).shape == (1, 96, 2, 2)  # 1x1 when z = 3
    assert model.classifier[0].in_features == 96 * 2 * 2
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="pool_kernel must be 2 or 3"):
        AlexNetConfig(preset="small", pool_kernel=4)


def test_hidden_width_of_the_classifier():
    """--hidden sets fc6 and fc7 (0: the preset's); the conv features are unchanged."""
    assert AlexNetConfig(preset="small").hidden == 256
    assert AlexNetConfig(preset="torchvision").hidden == 4096
    model = AlexNet(AlexNetConfig(preset="small", hidden=64, pool_kernel=2))
    fcs = [m for m in model.classifier if isinstance(m, torch.nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(384, 64), (64, 64), (64, 10)]
    with pytest.raises(ValueError, match="hidden must be positive"):
        AlexNetConfig(preset="small", hidden=-1)
