"""model.py against its references: BatchNorm2d vs torch.nn.BatchNorm2d (train and eval,
running statistics over several steps, outputs and gradients, float64); torchvision's
resnet18 and resnet50 state dicts loaded unchanged into ours give the same logits, running
statistics and every parameter gradient in float64, in train and eval mode; the CIFAR family
(parameter counts of the paper, option A shortcuts, plain twins); one-line errors."""

import pytest
import torch
import torchvision
from model import BatchNorm2d, ModelConfig, PadShortcut, ResNet, build_model, count_params

TOL = dict(rtol=1e-10, atol=1e-12)


def assert_close_scaled(a, b, name=""):
    """float64 equality up to rounding, relative to the tensor's scale: atol = 1e-10 max|b|.

    Through 50 layers of training-mode BN, whose backward divides by small batch variances,
    summation-order rounding reaches ~1e-12 of a gradient's largest entry (measured); a wrong
    term (biased running variance, a missing eps, a dropped shortcut) is off by > 1e-4.
    """
    assert a.shape == b.shape and a.dtype == b.dtype, (name, a.shape, b.shape, a.dtype, b.dtype)
    if not b.is_floating_point():
        assert torch.equal(a, b), (name, a, b)
        return
    err = (a - b).abs().max().item()
    scale = b.abs().max().item()
    assert err <= 1e-10 * scale + 1e-14, (
        f"{name}: max |ours - torchvision| = {err:.3g}, scale {scale:.3g}"
    )


def assert_grads_equal(ours, ref):
    params_ref = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert_close_scaled(p.grad, params_ref[name].grad, name)


@pytest.mark.parametrize("shape, momentum", [((4, 3, 5, 5), 0.1), ((2, 5, 3, 4), 0.3), ((7, 2, 1, 1), 0.05)])  # fmt: skip
def test_batchnorm_matches_torch_over_several_steps(shape, momentum):
    torch.manual_seed(0)
    C = shape[1]
    ours = BatchNorm2d(C, eps=1e-5, momentum=momentum).double()
    ref = torch.nn.BatchNorm2d(C, eps=1e-5, momentum=momentum).double()
    with torch.no_grad():  # a non-trivial affine part
        ref.weight.copy_(torch.randn(C) + 1)
        ref.bias.copy_(torch.randn(C))
    ours.load_state_dict(ref.state_dict())
    for step in range(4):  # training: batch statistics, running averages updated each step
        x = (torch.randn(shape, dtype=torch.float64) * 3 + step).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        y, y_ref = ours(x), ref(x_ref)
        torch.testing.assert_close(y, y_ref, **TOL)
        g = torch.randn_like(y)  # a random upstream gradient (all-ones would make dx = 0)
        y.backward(g)
        y_ref.backward(g)
        torch.testing.assert_close(x.grad, x_ref.grad, **TOL)
        assert_grads_equal(ours, ref)
        ours.zero_grad(), ref.zero_grad()
        for name, buf in ref.named_buffers():
            torch.testing.assert_close(getattr(ours, name), buf, **TOL)
    assert ours.num_batches_tracked.item() == 4
    ours.eval(), ref.eval()  # evaluation: the running statistics, the batch ignored
    x = torch.randn(shape, dtype=torch.float64).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = ours(x), ref(x_ref)
    torch.testing.assert_close(y, y_ref, **TOL)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, **TOL)
    assert_grads_equal(ours, ref)
    torch.testing.assert_close(ours(x[:1]), y[:1])  # eval: a row's output does not see the others


def test_batchnorm_by_hand_and_in_half_precision():
    x = torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=torch.float64).reshape(4, 1, 1, 1)
    bn = BatchNorm2d(1, momentum=0.5).double()
    y = bn(x).flatten()
    mu, var = 3.0, (4 + 1 + 0 + 9) / 4  # biased variance normalises
    torch.testing.assert_close(y, (x.flatten() - mu) / (var + 1e-5) ** 0.5)
    assert bn.running_mean.item() == pytest.approx(0.5 * mu)
    assert bn.running_var.item() == pytest.approx(0.5 * 1 + 0.5 * 14 / 3)  # unbiased: / (m - 1)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(torch.ones(1, 1, 1, 1, dtype=torch.float64))
    bf = bn.float()(torch.randn(8, 1, 2, 2).bfloat16())
    assert bf.dtype == torch.bfloat16 and bn.running_mean.dtype == torch.float32


def copy_of_torchvision(arch, num_classes, seed=0):
    torch.manual_seed(seed)
    ref = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes).double()
    with torch.no_grad():  # non-trivial BN: torchvision initialises gamma 1, beta 0, stats 0/1
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 2)
    ours = build_model(ModelConfig(arch=arch, num_classes=num_classes)).double()
    assert list(ours.state_dict()) == list(ref.state_dict())  # same names, same order
    ours.load_state_dict(ref.state_dict(), strict=True)  # no renaming, num_batches_tracked too
    return ours, ref


@pytest.fixture(scope="module")
def pairs():
    """Each torchvision net and its copy built once (ResNet-50's 25M weights take seconds)."""
    cache = {}

    def get(arch):
        if arch not in cache:
            ours, ref = copy_of_torchvision(arch, num_classes=6)
            cache[arch] = ours, ref, {k: v.clone() for k, v in ref.state_dict().items()}
        ours, ref, state = cache[arch]
        ours.load_state_dict(state), ref.load_state_dict(state)  # undo the last test's BN updates
        ours.zero_grad(), ref.zero_grad()
        return ours, ref

    return get


@pytest.mark.parametrize("arch, size, batch", [("resnet18", 32, 4), ("resnet50", 32, 4)])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_torchvision_resnet_copied_into_ours(pairs, arch, size, batch, mode):
    ours, ref = pairs(arch)
    ours.train(mode == "train"), ref.train(mode == "train")
    torch.manual_seed(1)
    x = torch.randn(batch, 3, size, size, dtype=torch.float64)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, out_ref = ours(x_ours), ref(x_ref)
    assert_close_scaled(out, out_ref, "logits")
    g = torch.randn_like(out)
    out.backward(g)
    out_ref.backward(g)
    assert_close_scaled(x_ours.grad, x_ref.grad, "input gradient")
    assert_grads_equal(ours, ref)
    for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
        assert_close_scaled(a, b, name)  # running statistics and num_batches_tracked


def test_parameter_counts_are_the_papers():
    with torch.device("meta"):  # shapes only: no memory, no init time
        counts = {a: count_params(build_model(ModelConfig(arch=a, num_classes=1000))) for a in ("resnet18", "resnet34", "resnet50")}  # fmt: skip
    assert counts == {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}
    # Section 4.2: ResNet-20 0.27M, ResNet-56 0.85M; option A adds nothing, so plain = residual
    n = {a: count_params(build_model(ModelConfig(arch=a))) for a in ("resnet-20", "plain-20", "resnet-56")}  # fmt: skip
    assert n["resnet-20"] == n["plain-20"] == 269_722 and n["resnet-56"] == 853_018
    b = count_params(build_model(ModelConfig(arch="resnet-20", shortcut="B")))
    assert b - n["resnet-20"] == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # two 1x1 convs + BN


def test_cifar_family_layout():
    net = ResNet(ModelConfig(arch="resnet-32", width=4))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) + 1 == 32 and len(net.layer1) == len(net.layer3) == 5  # 6n + 2, n = 5
    assert isinstance(net.layer2[0].downsample, PadShortcut) and net.layer2[1].downsample is None
    x = torch.randn(2, 3, 32, 32)
    feats = net.maxpool(net.conv1(x))
    assert feats.shape == (2, 4, 32, 32)  # CIFAR stem: no stride, no pool
    assert net.layer3(net.layer2(net.layer1(feats))).shape == (2, 16, 8, 8)
    plain = ResNet(ModelConfig(arch="plain-32", width=4))
    assert all(b.downsample is None and not b.residual for s in (plain.layer1, plain.layer2) for b in s)  # fmt: skip
    stem = ResNet(ModelConfig(arch="resnet18", stem="cifar", width=8, num_classes=3))
    assert stem.conv1.kernel_size == (3, 3) and isinstance(stem.maxpool, torch.nn.Identity)
    assert stem(torch.randn(2, 3, 16, 16)).shape == (2, 3)


def test_option_a_shortcut_pads_with_zeros():
    x = torch.arange(2 * 2 * 4 * 4.0).reshape(2, 2, 4, 4)
    y = PadShortcut(2, 5, 2)(x)
    assert y.shape == (2, 5, 2, 2)
    torch.testing.assert_close(y[:, :2], x[:, :, ::2, ::2])
    assert (y[:, 2:] == 0).all()


def test_residual_block_with_zero_branch_is_the_identity():
    """F(x) = 0 (bn2's gamma = beta = 0): the block passes ReLU(x) = x for x >= 0, the plain twin 0."""
    cfg = ModelConfig(arch="resnet-8")
    net, plain = ResNet(cfg).eval(), ResNet(ModelConfig(arch="plain-8")).eval()
    for block in (net.layer1[0], plain.layer1[0]):
        torch.nn.init.zeros_(block.bn2.weight), torch.nn.init.zeros_(block.bn2.bias)
    x = torch.rand(2, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net.layer1[0](x), x)
        assert (plain.layer1[0](x) == 0).all()


def test_baselines_and_bad_configs():
    mlp = build_model(ModelConfig(arch="mlp", image_size=16, in_channels=1, width=32))
    assert mlp(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    with pytest.raises(ValueError, match="built for 16x16 inputs, got 20x20"):
        mlp(torch.randn(2, 1, 20, 20))
    cnn = build_model(ModelConfig(arch="cnn", width=8))
    assert cnn(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown --arch 'resnet-21'"):
        ModelConfig(arch="resnet-21")  # 21 - 2 is not a multiple of 6
    with pytest.raises(ValueError, match="unknown --arch 'vgg16'"):
        ModelConfig(arch="vgg16")
    with pytest.raises(ValueError, match="imagenet stem needs images of at least 32x32, got 16x16"):
        ModelConfig(arch="resnet18", image_size=16)
    net = build_model(ModelConfig(arch="resnet50", width=8))
    with pytest.raises(ValueError, match="at least 32x32, got 20x20"):
        net(torch.randn(2, 3, 20, 20))
    with pytest.raises(ValueError, match="--shortcut A applies to resnet-N only"):
        ModelConfig(arch="resnet34", shortcut="A")
    with pytest.raises(ValueError, match="applies to resnet18/34/50 only"):
        ModelConfig(arch="resnet-20", stem="imagenet")
