"""The judge: a small CNN classifier trained on the real training split, used to score samples.

Its penultimate features (64 numbers per image) stand in for Inception's: the Frechet
distance in them is "judge-FID" (never FID: the features, and so the numbers, are this
folder's own), given beside the real-vs-real floor (train images vs test images, the same
counts) that a perfect generator would reach. Its predicted labels give the class histogram
of generated images, and its features the k-NN precision and recall (metrics.py).

Trained once per dataset and image size with its own seed (the run's RNG is left alone, so a
resumed run equals an uninterrupted one), and cached beside the run as judge-DATASET-SIZE.pt.
tests/test_train.py checks that it classifies the digits' test split well.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from metrics import class_histogram, feature_frechet, precision_recall
from torch import nn


class Judge(nn.Module):
    """(N, C, S, S) -> 2 x [conv3x3 -> ReLU -> maxpool2] -> 64 features -> 10 logits."""

    def __init__(self, channels, image_size, n_classes=10, width=32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),  # (N, 2w * S/4 * S/4)
            nn.Linear(2 * width * (image_size // 4) ** 2, 64),
            nn.ReLU(),
        )
        self.head = nn.Linear(64, n_classes)

    def forward(self, x):
        return self.head(self.features(x))


@torch.no_grad()
def batched(fn, x, batch=500):
    return torch.cat([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def train_judge(x, y, x_test, y_test, steps=600, batch_size=64, device="cpu"):
    """Adam 1e-3 on cross-entropy with its own seed; returns (judge, test accuracy)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        judge = Judge(x.shape[1], x.shape[2], int(y.max()) + 1).to(device)
        opt = torch.optim.Adam(judge.parameters(), lr=1e-3)
        for _ in range(steps):
            idx = torch.randint(len(x), (batch_size,))
            loss = F.cross_entropy(judge(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    judge.eval()
    pred = batched(judge, x_test.to(device)).argmax(1).cpu()
    return judge, float((pred == y_test).float().mean())


def load_or_train_judge(path, x, y, x_test, y_test, device="cpu", steps=600):
    path = Path(path)
    if path.exists():
        saved = torch.load(path, map_location=device, weights_only=True)
        judge = Judge(x.shape[1], x.shape[2], saved["n_classes"]).to(device)
        judge.load_state_dict(saved["model"])
        return judge.eval(), saved["test_accuracy"]
    judge, acc = train_judge(x, y, x_test, y_test, steps=steps, device=device)
    torch.save(
        {"model": judge.state_dict(), "n_classes": judge.head.out_features, "test_accuracy": acc},
        path,
    )
    return judge, acc


class JudgeScorer:
    """Judge features of the real splits computed once; score(fake) -> the image metrics."""

    def __init__(self, judge, x_train, x_test, device="cpu"):
        self.judge, self.device = judge, device
        self.real_test = self.feats(x_test)
        self.real_train = self.feats(x_train[: len(x_test)])
        self.floor = feature_frechet(self.real_train, self.real_test)

    @classmethod
    def for_run(cls, data, out_dir, dataset, device, steps=600):
        """The judge of this dataset and size (cached in out_dir), with the real features."""
        size = data.x.shape[-1]
        path = Path(out_dir) / f"judge-{dataset}-{size}.pt"
        judge, acc = load_or_train_judge(
            path, data.x, data.y, data.x_test, data.y_test, device, steps
        )
        scorer = cls(judge, data.x, data.x_test, device)
        scorer.test_accuracy = acc
        print(f"judge: test accuracy {acc:.3f}, real-vs-real judge-FID floor {scorer.floor:.2f}")
        return scorer

    def feats(self, x):
        return batched(self.judge.features, x.to(self.device)).cpu().double().numpy()

    def score(self, fake):
        """fake (N, C, S, S) in [-1, 1], N >= len(test): judge-FID vs the test split, classes, P/R."""
        f = self.feats(fake[: len(self.real_test)])
        labels = batched(self.judge, fake.to(self.device)).argmax(1).cpu().numpy()
        hist = class_histogram(labels, self.judge.head.out_features)
        n = min(len(f), 2000)
        precision, recall = precision_recall(self.real_test[:n], f[:n], k=3)
        return {
            "judge_fid": feature_frechet(f, self.real_test),
            "judge_fid_floor": self.floor,
            "classes_present": hist["classes_present"],
            "kl_to_uniform": hist["kl_to_uniform"],
            "class_histogram": hist["histogram"],
            "precision": precision,
            "recall": recall,
        }


def image_batch_to_numpy(x):
    return np.clip((x.detach().cpu().float().numpy() + 1) / 2, 0, 1)
