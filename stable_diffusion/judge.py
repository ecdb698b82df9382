"""How good and how faithful the samples are, measured with a judge trained here.

- The judge: a small CNN classifier trained on the real training images (cached under
  --out-dir as judge.pt). Its accuracy on the samples for a prompt "seven" is the share
  of samples that look like a seven: text faithfulness.
- judge-FID: the Frechet distance between Gaussians fitted to the judge's penultimate
  features of samples and of real test images,
      d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))
  (Heusel et al. 2017, https://arxiv.org/abs/1706.08500). In the judge's features, not
  Inception's: not comparable with published FID. Its floor is the same distance between
  real training and real test images.
- Attribute ordering: for a class, the share of (bold, thin) sample pairs whose ink mass is
  ordered as asked (0.5: the words do nothing; 1: always right); likewise (large, small) with
  the ink's bounding box and, for digits, (slanted, upright) with its shear |mu11 / mu02|.

tests/test_judge.py: the Frechet distance against pytorch_fid's calculate_frechet_distance.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import linalg


@dataclass
class JudgeConfig:
    n_classes: int = 10
    width: int = 32


class Judge(nn.Module):
    """(B, 1, H, W) -> logits (B, n_classes); features() is the 128-d penultimate layer."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        w = config.width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, H/2, W/2)
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2w, H/4, W/4)
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),  # (B, 2w, 2, 2)
            nn.Flatten(), nn.Linear(8 * w, 128), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(128, config.n_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def train_judge(x, y, steps, generator, batch_size=128, lr=2e-3):
    """Adam on the real images, small random shifts as augmentation; returns the eval() judge."""
    judge = Judge(JudgeConfig(n_classes=int(y.max()) + 1))
    opt = torch.optim.Adam(judge.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(len(x), (batch_size,), generator=generator)
        shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
        xb = torch.roll(x[idx], shifts=shift, dims=(2, 3))
        loss = F.cross_entropy(judge(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return judge.eval(), opt


@torch.no_grad()
def judge_features(judge, x, batch=500):
    return (
        torch.cat([judge.features(x[i : i + batch]) for i in range(0, len(x), batch)])
        .double()
        .numpy()
    )


@torch.no_grad()
def judge_predict(judge, x, batch=500):
    return torch.cat([judge(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


def frechet_distance(f1, f2):
    """d^2 between Gaussians fitted to two feature sets (N, D), float64."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    with warnings.catch_warnings():  # few samples give a singular product: handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # near-singular product: nudge both diagonals
        eps = 1e-6 * np.eye(len(s1))
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def ordering_accuracy(more, less):
    """Share of pairs (i, j) with more[i] > less[j]: 0.5 means the attribute word does nothing."""
    more, less = np.asarray(more)[:, None], np.asarray(less)[None, :]
    return float((more > less).mean() + 0.5 * (more == less).mean())
