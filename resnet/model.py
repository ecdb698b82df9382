"""Residual networks and batch normalisation by hand, their plain twins, and two baselines.

He, Zhang, Ren, Sun 2016, "Deep Residual Learning for Image Recognition" (CVPR),
https://arxiv.org/abs/1512.03385 (Section 3: residual blocks; Table 1: ResNet-18/34/50;
Section 4.2: the CIFAR-10 family ResNet-20/32/56 and its "plain" twins). Ioffe & Szegedy 2015,
"Batch Normalization", https://arxiv.org/abs/1502.03167 (Algorithm 1 and Section 3.1).
Read from the smallest piece up:

    BatchNorm2d  ->  shortcuts  ->  BasicBlock, Bottleneck  ->  ModelConfig  ->  ResNet
                 ->  MLP, PlainCNN (the baselines)  ->  build_model

Convolution, pooling and Linear were lenet/'s and alexnet/'s lessons, so `nn.Conv2d`,
`nn.Linear`, `nn.AdaptiveAvgPool2d` are used here; batch normalisation is written out.

Tests (tests/test_model.py): BatchNorm2d equals `torch.nn.BatchNorm2d` (outputs, gradients,
running statistics over several steps, eval mode; float64); `torchvision.models.resnet18` and
`resnet50` state dicts load unchanged into ours (num_batches_tracked included) and give the
same logits and every parameter gradient in float64, in train and eval mode; parameter counts;
option A shortcuts, plain twins; one-line errors for unknown archs and too-small images.
"""

import re
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------- BatchNorm


class BatchNorm2d(nn.Module):
    """Ioffe & Szegedy, Algorithm 1, per channel c over the batch and both spatial axes.

    training:   mu_c = mean(x[:, c]),  sigma2_c = mean((x[:, c] - mu_c)^2)      (biased)
                x_hat = (x - mu_c) / sqrt(sigma2_c + eps),   y = gamma_c x_hat + beta_c
                running_mean <- (1 - momentum) running_mean + momentum mu_c
                running_var  <- (1 - momentum) running_var  + momentum sigma2_c m / (m - 1)
                (m = B*H*W values per channel: the running variance is the unbiased one, as torch)
    evaluation: the same affine map with running_mean, running_var in place of mu, sigma2:
                a fixed per-channel linear function, independent of the rest of the batch.
    The names (weight = gamma, bias = beta, running_mean, running_var, num_batches_tracked)
    are torch's, so torchvision state dicts load into it as they are.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.sync = False  # under torchrun: statistics over all processes' rows (global_stats)

    def forward(self, x):
        # x: (B, C, H, W). Half-precision inputs (autocast) are normalised in float32.
        dtype = x.dtype
        x = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        if self.training:
            m = x.numel() // x.shape[1]
            if m < 2:
                raise ValueError(f"BatchNorm in training needs more than 1 value per channel, got {tuple(x.shape)}")  # fmt: skip
            if self.sync and dist.is_available() and dist.is_initialized():
                mean, var, m = self.global_stats(x)
            else:
                mean = x.mean(dim=(0, 2, 3))  # (C,)
                var = x.var(dim=(0, 2, 3), unbiased=False)  # (C,): the batch's own, biased
            with torch.no_grad():
                self.num_batches_tracked += 1
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_((var * m / (m - 1)).to(self.running_var.dtype), self.momentum)  # fmt: skip
        else:
            mean, var = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        x_hat = (x - mean[:, None, None]) * torch.rsqrt(var[:, None, None] + self.eps)
        y = x_hat * self.weight.to(x.dtype)[:, None, None] + self.bias.to(x.dtype)[:, None, None]
        return y.to(dtype)

    def global_stats(self, x):
        """SyncBatchNorm: mu and sigma2 over the rows of every process (train.py --sync-bn).

        sum x and sum x^2 are all-reduced; autograd's all_reduce sends the gradients of the
        shared statistics back to every process, so DDP's averaged gradient is that of one
        big batch. sigma2 = E[x^2] - mu^2 (one all-reduce instead of two).
        """
        from torch.distributed.nn.functional import all_reduce

        count = torch.full((1,), x.numel() // x.shape[1], dtype=x.dtype, device=x.device)
        stats = all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), count]))
        C = x.shape[1]
        m = int(stats[-1].item())
        mean = stats[:C] / m
        return mean, stats[C : 2 * C] / m - mean * mean, m

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


# ----------------------------------------------------------------------------- shortcuts


def conv3x3(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False)  # BN's beta is the bias


def conv1x1(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 1, stride, bias=False)


class PadShortcut(nn.Module):
    """Option A (Section 3.3, used for CIFAR in 4.2): identity with zero-padded extra channels.

    x (B, C, H, W) -> (B, C_out, H/s, W/s): take every s-th pixel, append C_out - C zero maps.
    No parameters, so a residual net and its plain twin have exactly the same weights.
    """

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.extra, self.stride = c_out - c_in, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # zeros after the last channel


def projection(c_in, c_out, stride):
    """Option B: W_s x, a 1x1 convolution + BN (torchvision's `downsample.0`, `downsample.1`)."""
    return nn.Sequential(conv1x1(c_in, c_out, stride), BatchNorm2d(c_out))


# ----------------------------------------------------------------------------- blocks


class BasicBlock(nn.Module):
    """Figure 2 / Figure 5 left: two 3x3 convolutions and a shortcut around them.

        y = ReLU( F(x) + shortcut(x) ),   F(x) = BN(conv(ReLU(BN(conv(x)))))
    residual=False is the plain twin: y = ReLU(F(x)), the same layers without the addition.
    """

    expansion = 1

    def __init__(self, c_in, planes, stride=1, shortcut="B", residual=True):
        super().__init__()
        c_out = planes * self.expansion
        self.conv1, self.bn1 = conv3x3(c_in, planes, stride), BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, c_out), BatchNorm2d(c_out)
        self.residual = residual
        self.downsample = make_shortcut(c_in, c_out, stride, shortcut, residual)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return F.relu(out)


class Bottleneck(nn.Module):
    """Figure 5 right (ResNet-50/101/152): 1x1 reduce, 3x3, 1x1 expand by 4, and a shortcut.

    The stride sits on the 3x3 convolution, as in torchvision ("ResNet v1.5"); the paper put it
    on the first 1x1. y = ReLU( BN(conv1x1(ReLU(BN(conv3x3(ReLU(BN(conv1x1(x)))))))) + shortcut(x) )
    """

    expansion = 4

    def __init__(self, c_in, planes, stride=1, shortcut="B", residual=True):
        super().__init__()
        c_out = planes * self.expansion
        self.conv1, self.bn1 = conv1x1(c_in, planes), BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, stride), BatchNorm2d(planes)
        self.conv3, self.bn3 = conv1x1(planes, c_out), BatchNorm2d(c_out)
        self.residual = residual
        self.downsample = make_shortcut(c_in, c_out, stride, shortcut, residual)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return F.relu(out)


def make_shortcut(c_in, c_out, stride, kind, residual):
    """None where the identity fits (same shape) or the net is plain; else option A or B."""
    if not residual or (stride == 1 and c_in == c_out):
        return None
    return PadShortcut(c_in, c_out, stride) if kind == "A" else projection(c_in, c_out, stride)


# ----------------------------------------------------------------------------- configs

# Table 1 of the paper: block type and blocks per stage (widths 64-128-256-512, x4 for bottleneck)
IMAGENET_ARCHS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}
ARCH_HELP = "mlp, cnn, resnet-N or plain-N (N = 6n+2: 8, 14, 20, 32, 44, 56, 110), resnet18, resnet34, resnet50"  # fmt: skip


def parse_arch(arch):
    """'resnet-56' -> ('cifar', 9 blocks per stage, residual); 'plain-20' -> ('cifar', 3, plain)."""
    if arch in IMAGENET_ARCHS or arch in ("mlp", "cnn"):
        return arch, None, True
    match = re.fullmatch(r"(resnet|plain)-(\d+)", arch)
    if not match or int(match[2]) < 8 or (int(match[2]) - 2) % 6:
        raise ValueError(f"unknown --arch {arch!r}: expected {ARCH_HELP}")
    return "cifar", (int(match[2]) - 2) // 6, match[1] == "resnet"


@dataclass
class ModelConfig:
    arch: str = "resnet-20"
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32  # the MLP's input size; the conv nets take any size >= min_size
    width: int = 0  # first-stage channels; 0: the paper's (16 resnet-N, 64 resnet18/34/50)
    stem: str = ""  # imagenet (7x7/2 conv + 3x3/2 max-pool) | cifar (3x3/1); "": the arch's
    shortcut: str = ""  # A (zero-padded identity) | B (projection); "": A for resnet-N, else B

    def __post_init__(self):
        kind, _, _ = parse_arch(self.arch)
        if self.width == 0:
            self.width = {"cifar": 16, "mlp": 256, "cnn": 32}.get(kind, 64)
        if self.stem == "":
            self.stem = "imagenet" if kind in IMAGENET_ARCHS else "cifar"
        if self.shortcut == "":
            self.shortcut = "A" if kind == "cifar" else "B"
        for name in ("num_classes", "in_channels", "image_size", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem {self.stem!r}: expected imagenet or cifar")
        if self.shortcut not in ("A", "B"):
            raise ValueError(f"shortcut {self.shortcut!r}: expected A or B")
        if self.shortcut == "A" and kind in IMAGENET_ARCHS:
            raise ValueError(f"--shortcut A applies to resnet-N only ({self.arch} has torchvision's projections)")  # fmt: skip
        if self.stem == "imagenet" and kind not in IMAGENET_ARCHS:
            raise ValueError(f"--stem imagenet applies to resnet18/34/50 only, not {self.arch}")
        if self.image_size < min_size(self):
            raise ValueError(too_small(self, self.image_size))


def min_size(cfg):
    """The total stride of the net: a smaller image leaves the last stage nothing but padding."""
    kind, _, _ = parse_arch(cfg.arch)
    if kind == "mlp":
        return 1
    if kind in ("cifar", "cnn"):
        return 4 if kind == "cifar" else 8  # strides 1, 2, 2 / three 2x2 max-pools
    return 32 if cfg.stem == "imagenet" else 8  # 2 * 2 * 8 / 1 * 8


def too_small(cfg, size):
    return f"{cfg.arch} with the {cfg.stem} stem needs images of at least {min_size(cfg)}x{min_size(cfg)}, got {size}x{size}"  # fmt: skip


# ----------------------------------------------------------------------------- ResNet


class ResNet(nn.Module):
    """stem -> layer1..layerK (stages of blocks, stride 2 at each stage's first block but the
    first) -> global average pool -> fc. torchvision's module names: conv1, bn1, maxpool,
    layer1.0.conv1, layer2.0.downsample.0, fc, so its state dicts load without renaming.

    ImageNet (Table 1): 7x7/2 conv, 3x3/2 max-pool, 4 stages of width 64-128-256-512.
    CIFAR (Section 4.2): 3x3 conv with 16 maps, 3 stages of n blocks each at widths 16-32-64
    on 32x32 -> 16x16 -> 8x8 maps, 6n + 2 weighted layers in all; residual=False: the plain net.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        kind, n, residual = parse_arch(cfg.arch)
        block, blocks = IMAGENET_ARCHS[cfg.arch] if kind != "cifar" else (BasicBlock, [n] * 3)
        w = cfg.width
        if cfg.stem == "imagenet":
            self.conv1 = nn.Conv2d(cfg.in_channels, w, 7, 2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        else:
            self.conv1, self.maxpool = conv3x3(cfg.in_channels, w), nn.Identity()
        self.bn1 = BatchNorm2d(w)
        c = w
        for i, count in enumerate(blocks):
            layers = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(block(c, w * 2**i, stride, cfg.shortcut, residual))
                c = w * 2**i * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.n_stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, cfg.num_classes)
        for m in self.modules():  # He et al. 2015 init, as torchvision
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x):
        x = self.maxpool(
            F.relu(self.bn1(self.conv1(x)))
        )  # (B, w, H/4, W/4) imagenet, (B, w, H, W) cifar
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)  # each later stage: channels x2, H and W / 2
        return torch.flatten(self.avgpool(x), 1)  # (B, C_last)

    def forward(self, x):
        """x: (B, in_channels, H, W) normalised images -> logits (B, num_classes)."""
        check_input(self.config, x)
        return self.fc(self.features(x))


# ----------------------------------------------------------------------------- baselines


class MLP(nn.Module):
    """The first baseline: pixels -> two hidden ReLU layers -> logits. No notion of space."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        d = cfg.in_channels * cfg.image_size**2
        self.fc1, self.fc2 = nn.Linear(d, cfg.width), nn.Linear(cfg.width, cfg.width)
        self.fc = nn.Linear(cfg.width, cfg.num_classes)

    def forward(self, x):
        check_input(self.config, x, exact=True)
        x = torch.flatten(x, 1)  # (B, C*H*W)
        return self.fc(F.relu(self.fc2(F.relu(self.fc1(x)))))


class PlainCNN(nn.Module):
    """The second baseline, VGG-like: 3 stages of two conv3x3-BN-ReLU and a 2x2 max-pool
    (widths w, 2w, 4w), global average pool, fc. 6 conv layers, no shortcuts."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        layers, c = [], cfg.in_channels
        for i in range(3):
            for _ in range(2):
                layers += [conv3x3(c, cfg.width * 2**i), BatchNorm2d(cfg.width * 2**i), nn.ReLU()]
                c = cfg.width * 2**i
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(c, cfg.num_classes)

    def forward(self, x):
        check_input(self.config, x)
        return self.fc(self.body(x).mean(dim=(2, 3)))  # (B, 4w, H/8, W/8) -> (B, 4w)


def check_input(cfg, x, exact=False):
    if x.dim() != 4 or x.shape[1] != cfg.in_channels:
        raise ValueError(f"expected images (B, {cfg.in_channels}, H, W), got {tuple(x.shape)}")
    if exact and tuple(x.shape[-2:]) != (cfg.image_size, cfg.image_size):
        raise ValueError(f"the MLP was built for {cfg.image_size}x{cfg.image_size} inputs, got {x.shape[-2]}x{x.shape[-1]}")  # fmt: skip
    if min(x.shape[-2:]) < min_size(cfg):
        raise ValueError(too_small(cfg, min(x.shape[-2:])))


def build_model(cfg: ModelConfig):
    kind, _, _ = parse_arch(cfg.arch)
    return {"mlp": MLP, "cnn": PlainCNN}.get(kind, ResNet)(cfg)


def load_torchvision(model, state):
    """A torchvision ResNet state dict (e.g. ImageNet's resnet18-f37072fd.pth) into ours, unchanged.

    Every name and shape must match; only fc may differ (another class count), and is then
    left at its fresh initialisation. Returns True if fc was loaded too. ValueError otherwise.
    """
    expected = model.state_dict()
    arch = model.config.arch
    if not isinstance(state, dict) or set(state) != set(expected):
        extra = sorted(set(state) - set(expected)) if isinstance(state, dict) else []
        missing = sorted(set(expected) - set(state)) if isinstance(state, dict) else []
        detail = (
            f"unexpected {extra[0]}"
            if extra
            else f"lacks {missing[0]}"
            if missing
            else "not a dict"
        )
        raise ValueError(f"not a torchvision {arch} state dict ({detail})")
    for k, v in expected.items():
        if not k.startswith("fc.") and tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"not a {arch} of this config: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")  # fmt: skip
    same_fc = state["fc.weight"].shape == expected["fc.weight"].shape
    if not same_fc:  # a new head for another class count
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    model.load_state_dict(state, strict=same_fc)
    return same_fc


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":
    for arch in ("mlp", "cnn", "plain-20", "resnet-20", "resnet-56", "resnet18", "resnet50"):
        cfg = ModelConfig(arch=arch, num_classes=1000 if arch[-2:] in ("18", "50") else 10)
        print(f"{arch:10s} {count_params(build_model(cfg)):>12,} parameters ({cfg.stem} stem)")
