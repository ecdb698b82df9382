"""metrics.py: a hand-computed example, and equality with torchmetrics' MeanAveragePrecision
(pycocotools backend) on random detections and on hand-made corner cases."""

import numpy as np
import pytest
import torch
from metrics import average_precision, evaluate, precision_recall
from torchmetrics.detection import MeanAveragePrecision


def reference(preds, targets):
    m = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools", class_metrics=True)  # fmt: skip
    m.update(preds, targets)
    return m.compute()


def box(x, y, w, h):
    return [x, y, x + w, y + h]


def test_hand_computed_example():
    """One class, 3 true boxes in 2 images, 4 detections ranked TP, FP, TP, FP:
    recall 1/3, 1/3, 2/3, 2/3; precision 1, 1/2, 2/3, 1/2; interpolated 1, 2/3, 2/3, 1/2.
    VOC 11-point: r = 0..0.3 -> 1 (4 points), 0.4..0.6 -> 2/3 (3 points), 0.7..1 -> 0:
    AP = (4 + 2) / 11. COCO 101-point: r <= 0.33 -> 1 (34 points), 0.34..0.66 -> 2/3 (33
    points): AP = (34 + 22) / 101."""
    targets = [
        {"boxes": torch.tensor([box(0, 0, 10, 10), box(20, 20, 10, 10)], dtype=torch.float32), "labels": torch.tensor([0, 0])},
        {"boxes": torch.tensor([box(5, 5, 10, 10)], dtype=torch.float32), "labels": torch.tensor([0])},
    ]  # fmt: skip
    preds = [
        {"boxes": torch.tensor([box(0, 0, 10, 10), box(40, 40, 5, 5)], dtype=torch.float32), "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])},
        {"boxes": torch.tensor([box(6, 5, 10, 10), box(50, 0, 5, 5)], dtype=torch.float32), "scores": torch.tensor([0.7, 0.6]), "labels": torch.tensor([0, 0])},
    ]  # fmt: skip
    ours = evaluate(preds, targets, 1)
    assert ours["map50_voc11"] == pytest.approx(6 / 11)
    assert ours["map50"] == pytest.approx(56 / 101)
    precision, recall = ours["pr50"][0]
    np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3, 1 / 2])
    np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    # box(6, 5, ...) overlaps box(5, 5, ...) at IoU 90 / 110 = 0.82: a hit up to t = 0.8
    ref = reference(preds, targets)
    assert ours["map50"] == pytest.approx(ref["map_50"].item(), abs=1e-6)
    assert ours["map"] == pytest.approx(ref["map"].item(), abs=1e-6)


def test_average_precision_edge_cases():
    assert average_precision(np.array([]), np.array([])) == 0.0
    p, r = precision_recall(np.array([True, True]), 2)  # perfect ranking
    assert average_precision(p, r, 101) == 1.0 and average_precision(p, r, 11) == 1.0
    p, r = precision_recall(np.array([False, True]), 1)  # one FP above the only TP
    assert average_precision(p, r, 101) == pytest.approx(0.5)


def random_case(seed, n_images=12, n_classes=3):
    """Detections made by jittering the true boxes (so IoUs span 0..1), plus false alarms."""
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for _ in range(n_images):
        n = int(torch.randint(0, 5, (), generator=g))
        xy = torch.rand(n, 2, generator=g) * 50
        gt = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=g) * 20], 1)
        labels = torch.randint(0, n_classes, (n,), generator=g)
        jitter = gt + torch.randn(n, 4, generator=g) * 3
        jitter = torch.cat([jitter[:, :2], torch.max(jitter[:, 2:], jitter[:, :2] + 1)], 1)
        m = int(torch.randint(0, 4, (), generator=g))
        xy = torch.rand(m, 2, generator=g) * 50
        alarms = torch.cat([xy, xy + 5 + torch.rand(m, 2, generator=g) * 20], 1)
        boxes = torch.cat([jitter, jitter[: n // 2] + 2, alarms])
        det_labels = torch.cat([labels, labels[: n // 2], torch.randint(0, n_classes, (m,), generator=g)])  # fmt: skip
        flip = torch.rand(len(det_labels), generator=g) < 0.15  # some wrong classes
        det_labels = torch.where(flip, (det_labels + 1) % n_classes, det_labels)
        preds.append({"boxes": boxes, "scores": torch.rand(len(boxes), generator=g), "labels": det_labels})  # fmt: skip
        targets.append({"boxes": gt, "labels": labels})
    return preds, targets


@pytest.mark.parametrize("seed", range(4))
def test_equals_torchmetrics_on_random_detections(seed):
    preds, targets = random_case(seed)
    ours, ref = evaluate(preds, targets, 3), reference(preds, targets)
    assert ours["map50"] == pytest.approx(ref["map_50"].item(), abs=1e-6)
    assert ours["map"] == pytest.approx(ref["map"].item(), abs=1e-6)
    assert ours["map75"] == pytest.approx(ref["map_75"].item(), abs=1e-6)
    per_class = dict(zip(ref["classes"].tolist(), ref["map_per_class"].tolist()))
    for c in [c for c in range(3) if not np.isnan(ours["ap50"][c])]:
        # map_per_class is over 0.50:0.95: ours on that class's boxes alone
        one = [{k: v[d["labels"] == c] for k, v in d.items()} for d in preds]
        one_t = [{k: v[d["labels"] == c] for k, v in d.items()} for d in targets]
        assert evaluate(one, one_t, 3)["map"] == pytest.approx(per_class[c], abs=1e-6)


def test_equals_torchmetrics_on_hand_made_cases():
    """A class with detections but no true boxes (left out), a class with true boxes but no
    detections (AP 0), an image without detections, two detections on one true box."""
    t = lambda b, l: {"boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(l, dtype=torch.long)}  # fmt: skip
    p = lambda b, s, l: {**t(b, l), "scores": torch.tensor(s)}
    targets = [t([box(0, 0, 10, 10), box(30, 30, 8, 8)], [0, 1]), t([box(10, 10, 20, 20)], [0]), t([], [])]  # fmt: skip
    preds = [
        p([box(0, 0, 10, 10), box(1, 0, 10, 10), box(50, 50, 5, 5)], [0.9, 0.95, 0.5], [0, 0, 2]),
        p([], [], []),
        p([box(3, 3, 5, 5)], [0.4], [0]),
    ]
    ours, ref = evaluate(preds, targets, 3), reference(preds, targets)
    assert np.isnan(ours["ap50"][2]) and ours["ap50"][1] == 0.0
    assert ours["map50"] == pytest.approx(ref["map_50"].item(), abs=1e-6)
    assert ours["map"] == pytest.approx(ref["map"].item(), abs=1e-6)
