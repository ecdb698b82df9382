"""Mean average precision by hand: matching, precision-recall per class, AP, mAP.

Everingham et al. 2010, The PASCAL VOC Challenge (IJCV), Section 4.2 (11-point AP); the COCO
detection evaluation (https://cocodataset.org/#detection-eval, pycocotools' COCOeval: 101
recall points, IoU thresholds 0.50:0.05:0.95, at most 100 detections per image and class).

The headline of this folder is **mAP@0.5 with COCO's 101-point interpolation** (torchmetrics'
`map_50`); mAP@[.5:.95] (`map`) and VOC's 11-point mAP@0.5 are reported beside it. Both
interpolations use the same matching (COCO's: each detection, best score first, takes the
unmatched true box of its class with the highest IoU >= t, else it is a false positive) and
the same interpolated precision p_interp(r) = max_{r' >= r} p(r'); they differ only in the
recall points averaged: AP = (1/|R|) sum_{r in R} p_interp(r), R = {0, 0.1, ..., 1} (VOC
2007) or {0, 0.01, ..., 1} (COCO). A class without true boxes is left out of the mean.

Tests (tests/test_metrics.py): equal to torchmetrics.detection.MeanAveragePrecision
(pycocotools backend) on random and hand-made detections, and a hand-computed example.
"""

import numpy as np
import torch
from boxes import box_iou

IOU_THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2).tolist())


def match_class(preds, targets, cls, iou_threshold, max_dets=100):
    """-> (scores (D,), true positive flags (D,), n_true) for class cls over all images, the
    detections sorted by score, highest first (ties: image order, then score order)."""
    scores, flags, n_true = [], [], 0
    for p, t in zip(preds, targets):
        gt = t["boxes"][t["labels"] == cls].double()
        keep = p["labels"] == cls
        s = p["scores"][keep].double()
        order = s.argsort(descending=True, stable=True)[:max_dets]
        d, s = p["boxes"][keep][order].double(), s[order]
        tp = torch.zeros(len(d), dtype=torch.bool)
        if len(gt) and len(d):
            iou = box_iou(d, gt)  # (D_i, G_i)
            taken = torch.zeros(len(gt), dtype=torch.bool)
            for i in range(len(d)):
                cand = iou[i].masked_fill(taken, -1.0)
                j = int(cand.argmax())
                if cand[j] >= iou_threshold:
                    tp[i], taken[j] = True, True
        scores.append(s)
        flags.append(tp)
        n_true += len(gt)
    s, tp = torch.cat(scores), torch.cat(flags)
    order = s.argsort(descending=True, stable=True)
    return s[order].numpy(), tp[order].numpy(), n_true


def precision_recall(tp, n_true):
    """Cumulative precision TP / (TP + FP) and recall TP / n_true down the ranked list."""
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    return ctp / np.maximum(ctp + cfp, np.spacing(1)), ctp / n_true


def average_precision(precision, recall, points=101):
    """AP = mean over `points` recall levels r of max_{r' >= r} precision(r') (0 if none)."""
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # max precision at or after each rank
    r = np.linspace(0, 1, points)
    idx = np.searchsorted(recall, r, side="left")  # first rank reaching recall r
    return float(np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0).mean()) if len(recall) else 0.0  # fmt: skip


def evaluate(preds, targets, num_classes):
    """preds[i] = {boxes (D, 4), scores (D,), labels (D,)}, targets[i] = {boxes, labels} ->

    map50 (COCO 101-point, the headline), map (mean over IoU 0.50:0.05:0.95), map75,
    map50_voc11 (11-point), ap50 per class (nan: no true boxes), pr50 per class: the
    (precision, recall) arrays at IoU 0.5.
    """
    preds = [{k: v.detach().cpu() for k, v in p.items()} for p in preds]
    targets = [{k: v.detach().cpu() for k, v in t.items()} for t in targets]
    ap = np.full((len(IOU_THRESHOLDS), num_classes), np.nan)
    ap11 = np.full(num_classes, np.nan)
    pr50 = {}
    for c in range(num_classes):
        for ti, thr in enumerate(IOU_THRESHOLDS):
            _, tp, n_true = match_class(preds, targets, c, thr)
            if n_true == 0:
                break
            precision, recall = precision_recall(tp, n_true)
            ap[ti, c] = average_precision(precision, recall, 101)
            if ti == 0:
                ap11[c] = average_precision(precision, recall, 11)
                pr50[c] = (precision, recall)
    present = ~np.isnan(ap[0])
    mean = lambda a: float(a[..., present].mean()) if present.any() else float("nan")
    return {
        "map50": mean(ap[0]),
        "map": mean(ap),
        "map75": mean(ap[5]),
        "map50_voc11": mean(ap11),
        "ap50": ap[0].tolist(),
        "pr50": pr50,
    }
