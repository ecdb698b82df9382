"""The judge: a small classifier of real images, and the sample-quality figures read in its features.

Heusel et al. 2017 (arXiv 1706.08500) compare generated and real images by the Frechet
distance between Gaussians fitted to their features in Inception-v3:

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

Inception never saw 8x8 digits, so here the features are the penultimate layer (64 units, after its ReLU, as FID takes Inception's pool features) of a
CNN trained in this folder on the real training split: "judge-FID", not FID, and not comparable
with published FID numbers. Its floor is the same distance between the real test split and the
real training split (the value a perfect generator would get with as many samples); judge
accuracy is how often the judge gives a class-conditional sample the class it was asked for.

Tests (tests/test_judge.py): frechet_distance against pytorch-fid's calculate_frechet_distance.
"""

import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import linalg


class Judge(nn.Module):
    """conv-conv-pool-conv, pooled to 4x4 and flattened, 64 features, 10 logits."""

    def __init__(self, in_channels=1, width=16, n_classes=10):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.fc = nn.Linear(2 * width * 16, 64)
        self.head = nn.Linear(64, n_classes)

    def features(self, x):
        h = F.adaptive_avg_pool2d(self.convs(x), 4).flatten(1)  # (B, 2 width * 4 * 4)
        return F.relu(self.fc(h))  # (B, 64): the penultimate layer

    def forward(self, x):
        return self.head(self.features(x))


def train_judge(data, steps=400, batch_size=128, seed=0, width=16):
    """Adam on the real training split, with a one-pixel random shift (a few minutes at most)."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # the judge never moves the diffusion run's RNG
        torch.manual_seed(seed)
        judge = Judge(data["train_x"].shape[1], width)
    opt = torch.optim.Adam(judge.parameters(), lr=2e-3)
    x, y = data["train_x"], data["train_y"]
    for _ in range(steps):
        i = torch.randint(len(x), (batch_size,), generator=g)
        dx, dy = torch.randint(-1, 2, (2,), generator=g).tolist()
        xb = torch.roll(x[i], (dx, dy), (2, 3))
        loss = F.cross_entropy(judge(xb), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return judge.eval()


@torch.no_grad()
def features(judge, x, batch=1000):
    return (
        torch.cat([judge.features(x[i : i + batch].float()) for i in range(0, len(x), batch)])
        .double()
        .numpy()
    )


def frechet_distance(f1, f2):
    """d^2 between N(mu_1, S_1) and N(mu_2, S_2) fitted to two feature sets (N, D)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    with warnings.catch_warnings():  # units that never fire make S singular; sqrtm copes
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    if np.iscomplexobj(covmean):
        covmean = covmean.real  # rounding leaves tiny imaginary parts
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


class Referee:
    """The judge with the real statistics it compares against, trained once and cached."""

    def __init__(self, data, cache=None, steps=400, seed=0, width=16):
        key = dict(
            n_train=len(data["train_x"]),
            steps=steps,
            seed=seed,
            width=width,
            shape=list(data["train_x"].shape[1:]),
        )
        state = torch.load(cache, weights_only=True) if cache and Path(cache).exists() else None
        if state is not None and state["key"] == key:
            self.judge = Judge(data["train_x"].shape[1], width)
            self.judge.load_state_dict(state["model"])
            self.judge.eval()
        else:
            self.judge = train_judge(data, steps, seed=seed, width=width)
            if cache:
                torch.save({"key": key, "model": self.judge.state_dict()}, cache)
        self.train_features = features(self.judge, data["train_x"])
        self.test_features = features(self.judge, data["test_x"])
        self.floor = self.floor_at(len(self.test_features))
        self.test_accuracy = self.accuracy(data["test_x"], data["test_y"])

    def floor_at(self, n):
        """The distance of n real test images from the training images: a perfect generator's."""
        return frechet_distance(self.test_features[:n], self.train_features)

    @torch.no_grad()
    def accuracy(self, x, y):
        return (self.judge(x.float()).argmax(-1) == y).float().mean().item()

    def score(self, samples, labels=None):
        """{judge_fid, judge_accuracy}: samples (N, C, H, W) in [-1, 1] (clamped as images are)."""
        x = samples.float().clamp(-1, 1)
        out = {"judge_fid": frechet_distance(features(self.judge, x), self.train_features)}
        if labels is not None:
            out["judge_accuracy"] = self.accuracy(x, labels)
        return out


def judge_model(
    model, schedule, data, cache, n, steps, guidance=0.0, prediction="eps", judge_steps=400
):
    """The headline: judge-FID of the model's DDIM samples, the real-vs-real floor beside it."""
    from sample import sample_labelled

    ref = Referee(data, cache, steps=judge_steps)
    t0 = time.time()
    x, labels = sample_labelled(model, schedule, n, steps, guidance, "ddim", prediction)
    scores = ref.score(x, labels)
    return dict(**scores, judge_fid_floor=ref.floor, judge_test_accuracy=ref.test_accuracy, eval_samples=n,
                eval_sampler=f"ddim{steps}", eval_guidance=guidance, eval_seconds=round(time.time() - t0, 1))  # fmt: skip
