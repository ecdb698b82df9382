"""AlexNet: the paper's two-tower network, torchvision's one-tower layout, and a small CPU net.

Krizhevsky, Sutskever, Hinton 2012, "ImageNet Classification with Deep Convolutional Neural
Networks" (NeurIPS), https://papers.nips.cc/paper/4824 . Read from the smallest piece up:

    LocalResponseNorm (Section 3.3)  ->  PRESETS (Section 3.5, Figure 2)  ->  AlexNetConfig  ->  AlexNet

What is new over lenet/: ReLU instead of tanh (Section 3.1), overlapping 3x3 stride-2 max
pooling (3.4), local response normalisation (3.3), dropout in the classifier (4.2), and depth.
Convolution itself was lenet's lesson, so `nn.Conv2d`, `nn.Linear`, `nn.Dropout` are used here.

Tests (tests/test_model.py): LocalResponseNorm equals `torch.nn.LocalResponseNorm` (outputs and
gradients, float64, odd channel counts, channel edges) and passes gradcheck; the `torchvision`
preset loads the state dict of `torchvision.models.alexnet` with no renaming and gives identical
logits and gradients in float64 at 224x224 and at the 63x63 minimum; parameter counts of both
presets.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------- LRN


def channel_window_sum(t, before, after):
    """out[:, c] = sum of t[:, c - before .. c + after] (channels past the edges count as zero)."""
    pad = [0, 0] * (t.dim() - 2) + [before, after]  # F.pad pads the last axes first
    return F.pad(t, pad).unfold(1, before + after + 1, 1).sum(-1)  # (B, C, *spatial)


class LocalResponseNormFunction(torch.autograd.Function):
    """LRN with its backward written out (autograd's takes a second pow and a division's two).

    Forward, channel c of one position, the window W(c) = c - n//2 .. c + (n-1)//2:
        D_c = k + (alpha / n) sum_{j in W(c)} a_j^2,    b_c = a_c D_c^(-beta).
    Backward, g = dL/db: a_i enters b_i directly and every D_c whose window holds i, i.e. every
    c in i - (n-1)//2 .. i + n//2 (the window mirrored), through dD_c/da_i = (2 alpha / n) a_i:
        dL/da_i = g_i D_i^(-beta) - (2 alpha beta / n) a_i sum_{c: i in W(c)} g_c a_c D_c^(-beta-1),
    and a_c D_c^(-beta-1) = b_c / D_c: one pow in all, in the forward.
    """

    @staticmethod
    def forward(ctx, a, n, alpha, beta, k):
        d = channel_window_sum(a * a, n // 2, (n - 1) // 2).mul_(alpha / n).add_(k)  # D
        s = d.pow(-beta)  # D^(-beta)
        b = a * s
        ctx.save_for_backward(a, b, d, s)
        ctx.n, ctx.alpha, ctx.beta = n, alpha, beta
        return b

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        a, b, d, s = ctx.saved_tensors
        n = ctx.n
        t = (g * b).div_(d)  # g_c a_c D_c^(-beta-1)
        u = channel_window_sum(t, (n - 1) // 2, n // 2)  # over the mirrored window
        return (g * s).addcmul_(a, u, value=-2.0 * ctx.alpha * ctx.beta / n), None, None, None, None


class LocalResponseNorm(nn.Module):
    """Section 3.3: each activation divided by the energy of its n neighbouring channels.

        b[c] = a[c] / (k + (alpha / n) * sum_{j = c - n//2}^{c + (n - 1)//2} a[j]^2) ^ beta

    The paper writes alpha without the 1/n (its alpha = 1e-4 multiplies the plain sum);
    torch's `nn.LocalResponseNorm` and ONNX's LRN divide alpha by n. We follow torch so that
    the test can hold this layer against it: the paper's layer is ours with alpha = 5e-4.
    Channels past the edges count as zero (the sum is clipped at c = 0 and c = C - 1).
    The paper's values: k = 2, n = 5, alpha = 1e-4, beta = 0.75. Forward and backward are
    LocalResponseNormFunction's, held to nn.LocalResponseNorm and to gradcheck.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, a):  # a: (B, C, *spatial)
        return LocalResponseNormFunction.apply(a, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


# ----------------------------------------------------------------------------- presets

# One entry per layer of `features`, in order; an activation follows every conv.
#   ("conv", out_channels, kernel, stride, padding, groups)   ("lrn",)   ("pool",) = 3x3 stride 2
# groups=2 is the paper's two GPUs: conv2, conv4, conv5 see only the maps on their own GPU.
PRESETS = {
    # Section 3.5: 96-256-384-384-256 kernels, LRN after conv1 and conv2 (after the ReLU),
    # pooling after both LRNs and after conv5. 224 + 2*2 pad -> 55 -> 27 -> 13 -> 6.
    "paper": dict(
        features=[
            ("conv", 96, 11, 4, 2, 1), ("lrn",), ("pool",),
            ("conv", 256, 5, 1, 2, 2), ("lrn",), ("pool",),
            ("conv", 384, 3, 1, 1, 1),
            ("conv", 384, 3, 1, 1, 2),
            ("conv", 256, 3, 1, 1, 2), ("pool",),
        ],
        hidden=4096, adaptive_pool=0, dropout_first=False, image_size=224,
    ),
    # torchvision.models.alexnet: the one-tower layout of "One weird trick" (Krizhevsky 2014,
    # https://arxiv.org/abs/1404.5997): 64-192-384-256-256, no LRN, an adaptive 6x6 average
    # pool (any input >= 63x63), dropout *before* fc6 and fc7. Same module indices as
    # torchvision (features.0 .3 .6 .8 .10, classifier.1 .4 .6), so its weights load as they are.
    "torchvision": dict(
        features=[
            ("conv", 64, 11, 4, 2, 1), ("pool",),
            ("conv", 192, 5, 1, 2, 1), ("pool",),
            ("conv", 384, 3, 1, 1, 1),
            ("conv", 256, 3, 1, 1, 1),
            ("conv", 256, 3, 1, 1, 1), ("pool",),
        ],
        hidden=4096, adaptive_pool=6, dropout_first=True, image_size=224,
    ),
    # The same five-conv, three-FC plan for 32x32 images on a CPU: a 5x5 stride-2 first layer
    # instead of 11x11 stride 4, everything else (LRN, overlapping pools, dropout) kept.
    # 32 -> 16 -> 7 -> 7 -> 3 -> 3 -> 3 -> 3 -> 1, as the paper's 224 -> 55 -> 27 -> 13 -> 6.
    "small": dict(
        features=[
            ("conv", 48, 5, 2, 2, 1), ("lrn",), ("pool",),
            ("conv", 96, 5, 1, 2, 1), ("lrn",), ("pool",),
            ("conv", 128, 3, 1, 1, 1),
            ("conv", 128, 3, 1, 1, 1),
            ("conv", 96, 3, 1, 1, 1), ("pool",),
        ],
        hidden=256, adaptive_pool=0, dropout_first=False, image_size=32,
    ),
}  # fmt: skip


def feature_map_size(layers, size, pool_kernel=3):
    """Spatial size after `features`: conv (s + 2p - k) // stride + 1, pool (s - z) // 2 + 1."""
    for layer in layers:
        if layer[0] == "conv":
            _, _, k, stride, pad, _ = layer
            size = (size + 2 * pad - k) // stride + 1
        elif layer[0] == "pool":
            size = (size - pool_kernel) // 2 + 1
    return size


@dataclass
class AlexNetConfig:
    preset: str = "small"  # paper | torchvision | small
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 0  # 0: the preset's (224, or 32 for small); fixed unless adaptive_pool
    activation: str = "relu"  # relu | tanh (the paper's Figure 1 comparison)
    dropout: float = 0.5
    lrn: bool = True  # keep the preset's LRN layers (torchvision's has none)
    pool_kernel: int = 3  # z in Section 3.4: 3 overlapping (z > s = 2), 2 non-overlapping
    hidden: int = 0  # width of fc6 and fc7; 0: the preset's (4096, or 256 for small)

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}: expected {', '.join(PRESETS)}")
        if self.image_size == 0:
            self.image_size = PRESETS[self.preset]["image_size"]
        if self.hidden == 0:
            self.hidden = PRESETS[self.preset]["hidden"]
        for name in ("num_classes", "in_channels", "image_size", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.activation not in ("relu", "tanh"):
            raise ValueError(f"activation {self.activation!r}: expected relu or tanh")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.pool_kernel not in (2, 3):
            raise ValueError(f"pool_kernel must be 2 or 3, got {self.pool_kernel}")
        p = PRESETS[self.preset]
        size = feature_map_size(p["features"], self.image_size, self.pool_kernel)
        self.min_size = min_input_size(p["features"], self.pool_kernel)
        if self.image_size < self.min_size or size < 1:
            raise ValueError(
                f"preset {self.preset} needs images of at least {self.min_size}x{self.min_size}"
            )


def min_input_size(layers, pool_kernel=3):
    """The smallest square input that leaves a 1x1 map after `features` (63 for torchvision)."""
    size = 1
    while feature_map_size(layers, size, pool_kernel) < 1:
        size += 1
    return size


# ----------------------------------------------------------------------------- AlexNet


class AlexNet(nn.Module):
    """features (conv-act[-LRN][-pool] x 5) -> [adaptive pool] -> flatten -> classifier.

    classifier: fc6 -> act -> fc7 -> act -> fc8 with dropout p = 0.5 on the two hidden layers
    (Section 4.2; torchvision applies it to the inputs of fc6 and fc7, the paper to their outputs).
    """

    def __init__(self, config: AlexNetConfig):
        super().__init__()
        self.config = config
        p = PRESETS[config.preset]
        act = (lambda: nn.ReLU(inplace=True)) if config.activation == "relu" else nn.Tanh
        layers, c = [], config.in_channels
        for spec in p["features"]:
            if spec[0] == "conv":
                _, out, k, stride, pad, groups = spec
                layers += [nn.Conv2d(c, out, k, stride, pad, groups=groups), act()]
                c = out
            elif spec[0] == "lrn" and config.lrn:
                layers.append(LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))
            elif spec[0] == "pool":
                # overlapping (Section 3.4): windows of z = 3 every s = 2 pixels; z = 2 tiles
                layers.append(nn.MaxPool2d(kernel_size=config.pool_kernel, stride=2))
        self.features = nn.Sequential(*layers)
        s = p["adaptive_pool"] or feature_map_size(
            p["features"], config.image_size, config.pool_kernel
        )
        self.avgpool = nn.AdaptiveAvgPool2d(s) if p["adaptive_pool"] else nn.Identity()
        d, h, drop = c * s * s, config.hidden, config.dropout
        if p["dropout_first"]:  # torchvision's order; indices 1, 4, 6 are the Linear layers
            head = [nn.Dropout(drop), nn.Linear(d, h), act()]
            head += [nn.Dropout(drop), nn.Linear(h, h), act()]
        else:  # the paper's: dropout on the outputs of fc6 and fc7
            head = [nn.Linear(d, h), act(), nn.Dropout(drop)]
            head += [nn.Linear(h, h), act(), nn.Dropout(drop)]
        self.classifier = nn.Sequential(*head, nn.Linear(h, config.num_classes))
        for m in self.modules():
            # He et al. 2015 (https://arxiv.org/abs/1502.01852): var(w) = 2 / fan_in keeps the
            # signal's scale through ReLU layers. The paper's N(0, 0.01) with biases of 1 stalls
            # at chance here (measured); torchvision's default init too, behind two LRNs.
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        """x: (B, in_channels, H, W) normalised images -> logits (B, num_classes)."""
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"expected images (B, {cfg.in_channels}, H, W), got {tuple(x.shape)}")
        if PRESETS[cfg.preset]["adaptive_pool"]:
            if min(x.shape[-2:]) < cfg.min_size:
                raise ValueError(
                    f"preset {cfg.preset} needs inputs of at least {cfg.min_size}x{cfg.min_size}, got {x.shape[-2]}x{x.shape[-1]}"
                )
        elif tuple(x.shape[-2:]) != (cfg.image_size, cfg.image_size):
            raise ValueError(
                f"preset {cfg.preset} was built for {cfg.image_size}x{cfg.image_size} inputs, got {x.shape[-2]}x{x.shape[-1]}"
            )
        x = self.avgpool(self.features(x))  # (B, C, 6, 6) for 224 inputs
        return self.classifier(torch.flatten(x, 1))  # (B, C*6*6) -> (B, num_classes)


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_table(config: AlexNetConfig):
    """[(name, output shape, parameters)] per layer: the README's architecture table."""
    model = AlexNet(config)
    rows, x = [], torch.zeros(1, config.in_channels, config.image_size, config.image_size)
    names = {"Conv2d": "conv", "Linear": "fc", "MaxPool2d": "pool", "LocalResponseNorm": "lrn"}
    counts = {}
    with torch.no_grad():
        for part in (model.features, model.avgpool, nn.Flatten(), model.classifier):
            for m in part.modules() if isinstance(part, nn.Sequential) else [part]:
                if isinstance(m, nn.Sequential):
                    continue
                x = m(x)
                kind = names.get(type(m).__name__)
                if kind is None:
                    continue
                counts[kind] = counts.get(kind, 0) + 1
                n = sum(p.numel() for p in m.parameters())
                label = f"{kind}{counts[kind] + (5 if kind == 'fc' else 0)}"
                rows.append((label, tuple(x.shape[1:]), n))
    return rows


if __name__ == "__main__":
    for name in PRESETS:
        cfg = AlexNetConfig(preset=name, num_classes=1000 if name != "small" else 10)
        print(
            f"{name}: {count_params(AlexNet(cfg)):,} parameters at {cfg.image_size}x{cfg.image_size}"
        )
        for label, shape, n in layer_table(cfg):
            print(f"  {label:6s} {str(shape):18s} {n:>12,}")
