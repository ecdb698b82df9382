"""Knowledge distillation: a teacher CNN, small students, and the soft-target loss written by hand.

Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015,
https://arxiv.org/abs/1503.02531 (Sections 2 and 3).

A big model (the teacher) is trained on the labels. A small model (the student) is then
trained to match the teacher's *soft targets*: the teacher's class probabilities taken at a
high temperature T, where the small probabilities that say "this 2 looks a bit like a 7"
(the dark knowledge) become large enough to learn from. The loss mixes that soft term with
the ordinary cross-entropy on the labels:

    L = alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(p_student^1, y)

Read top to bottom: the temperature softmax, the loss, the bias shift of Section 3, the
networks (teacher CNN, small CNN student, MLP student), then the presets.

tests/test_loss.py holds the loss against F.kl_div(..., log_target=True) * T^2 and
torch.distributions.kl_divergence (values and gradients, float64), against the gradient of
F.cross_entropy with soft targets, and against the paper's high-temperature limit (logit
matching); tests/test_model.py checks shapes and parameter counts.
"""

from dataclasses import dataclass

import torch
from torch import nn

# ----------------------------------------------------------------------------- temperature softmax


def log_softmax_t(logits, T=1.0):
    """log q_i = z_i / T - log sum_j exp(z_j / T); logits (N, K) -> (N, K).

    The max is subtracted first (it cancels between the two terms), so exp never overflows.
    """
    z = logits / T
    z = z - z.max(dim=-1, keepdim=True).values.detach()
    return z - torch.log(torch.exp(z).sum(dim=-1, keepdim=True))


def softmax_t(logits, T=1.0):
    """q_i = exp(z_i / T) / sum_j exp(z_j / T) (paper eq. 1): T = 1 is the softmax, T > 1 softer."""
    return torch.exp(log_softmax_t(logits, T))


# ----------------------------------------------------------------------------- the distillation loss


def soft_target_loss(student_logits, teacher_logits, T):
    """T^2 * KL(p^T || q^T), summed over classes, averaged over the N examples of the batch.

        KL(p || q) = sum_i p_i (log p_i - log q_i),  p = softmax(v / T) (teacher), q = softmax(z / T)

    Averaging over N*K (classes too, `reduction="mean"` in F.kl_div) would divide the loss by
    the number of classes K: the commonest bug in published implementations.

    Why T^2: the gradient of the KL with respect to a student logit is
        dKL/dz_i = (q_i - p_i) / T,
    and as T grows q_i - p_i ~ (z_i - v_i) / (K T) (Section 2.1), so the gradient shrinks as
    1 / T^2. Multiplying by T^2 keeps the soft term's gradients the same size whatever T is,
    so alpha means the same thing at T = 2 and at T = 20.
    """
    log_q = log_softmax_t(student_logits, T)  # (N, K)
    log_p = log_softmax_t(teacher_logits, T)  # (N, K)
    kl = (torch.exp(log_p) * (log_p - log_q)).sum(dim=-1)  # (N,): one KL per example
    return T * T * kl.mean()


def hard_label_loss(student_logits, labels):
    """CE = -(1/N) sum_n log q_{n, y_n} at T = 1: the ordinary cross-entropy with the labels."""
    log_q = log_softmax_t(student_logits, 1.0)  # (N, K)
    return -log_q.gather(1, labels[:, None]).mean()


def distillation_loss(student_logits, teacher_logits, labels, T, alpha):
    """L = alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, y).

    alpha = 0 is exactly the hard-label loss (the teacher is not read); alpha = 1 is the soft
    term alone (labels may be None: an unlabelled transfer set).
    """
    if alpha == 0:
        return hard_label_loss(student_logits, labels)
    soft = soft_target_loss(student_logits, teacher_logits, T)
    if alpha == 1:
        return soft
    return alpha * soft + (1 - alpha) * hard_label_loss(student_logits, labels)


def best_bias_shift(logits, labels, k, shifts):
    """Section 3: a student that never saw class k rarely predicts it; raising k's output
    bias by b fixes much of that. Returns the b in `shifts` with the most correct
    predictions on (logits, labels) (the paper tuned b = 3.5 on the test set; train.py tunes
    it on the validation set) and that count."""
    best = (0.0, -1)
    for b in shifts:
        z = logits.clone()
        z[:, k] += b
        correct = int((z.argmax(1) == labels).sum())
        if correct > best[1]:
            best = (float(b), correct)
    return best


# ----------------------------------------------------------------------------- the networks


@dataclass
class ModelConfig:
    """One family for teacher and students: conv blocks, then fully connected layers.

    channels: one 3x3 conv + ReLU + 2x2 max-pool block per entry (empty: an MLP on pixels).
    hidden: the widths of the fully connected hidden layers (ReLU, dropout).
    """

    image_size: int = 8
    in_channels: int = 1
    n_classes: int = 10
    channels: tuple = (32, 64)
    hidden: tuple = (256,)
    dropout: float = 0.3  # on every hidden layer (the paper's teachers used dropout)
    input_dropout: float = 0.0  # on the pixels (Hinton's 1200-1200 MNIST teacher used 0.2)


class ConvBlock(nn.Module):
    """x (N, C_in, H, W) -> maxpool2(relu(conv3x3(x))) (N, C_out, H/2, W/2)."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)

    def forward(self, x):
        return nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)


class Classifier(nn.Module):
    """Teacher or student: [ConvBlock]* -> flatten -> [Linear, ReLU, dropout]* -> Linear -> logits."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c, side = config.in_channels, config.image_size
        self.input_dropout = nn.Dropout(config.input_dropout)
        blocks = []
        for width in config.channels:
            blocks.append(ConvBlock(c, width))
            c, side = width, side // 2
        self.features = nn.Sequential(*blocks)
        layers, width = [], c * side * side
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(config.dropout)]
            width = h
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(width, config.n_classes)  # its bias is what Section 3 shifts

    def forward(self, x):
        """x (N, C, H, W) -> logits (N, n_classes)."""
        h = self.features(self.input_dropout(x))  # (N, C', H', W')
        return self.head(self.hidden(h.flatten(1)))  # (N, C'*H'*W') -> (N, K)


def n_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- presets

# On 8x8 digits the teacher has 87,178 parameters: 64x the small CNN student (1,370) and 25x
# the MLP (3,466). On 28x28 images: 824,458, 52x and 31x.
TEACHER = dict(channels=(32, 64), hidden=(256,), dropout=0.3)
STUDENTS = {
    "cnn": dict(channels=(8,), hidden=(), dropout=0.0),  # one conv block, then a linear read-out
    "mlp": dict(channels=(), hidden=(32, 32), dropout=0.0),  # Hinton's 800-800 MLP, scaled down
}
SMOKE = dict(channels=(8,), hidden=(32,), dropout=0.1)  # a tiny teacher for --smoke


def build_config(preset, image_size, in_channels, n_classes):
    return ModelConfig(
        image_size=image_size, in_channels=in_channels, n_classes=n_classes, **preset
    )


def from_config(d):
    """Rebuild a ModelConfig from a checkpoint's plain dict (tuples may come back as lists)."""
    d = dict(d)
    d["channels"], d["hidden"] = tuple(d["channels"]), tuple(d["hidden"])
    return ModelConfig(**d)
