"""Three object detectors on one small CNN backbone, from the oldest idea to the two that won:

1. SlidingWindow: a patch classifier scanned over the image at several window sizes, then
   NMS (the pre-2014 detector; here the "scan" is one batch of crops cut by RoIAlign).
2. TwoStage: Faster R-CNN (Ren et al. 2015, https://arxiv.org/abs/1506.01497): a region
   proposal network scores anchors and regresses them (Section 3.1), NMS keeps the best
   proposals, RoIAlign (He et al. 2017, https://arxiv.org/abs/1703.06870) cuts a fixed-size
   feature for each, and a head classifies it and refines its box (Fast R-CNN's head).
3. OneStage: YOLO (Redmon et al. 2016, https://arxiv.org/abs/1506.02640): an S x S grid,
   each cell predicting B boxes with a confidence and one class distribution, trained with
   the paper's sum-squared loss (Section 2.2).

Every detector has `loss(images, targets) -> (loss, parts)` and `detect(images) -> [{boxes,
scores, labels}]`, images float (B, 3, S, S) in [0, 1]. Box arithmetic, NMS and RoIAlign are
in boxes.py. Tests (tests/test_model.py) check shapes, the anchor/target assignment by hand,
the YOLO loss on a hand example, and that each detector learns the scenes (tests/test_train.py).
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from boxes import (  # fmt: skip
    batched_nms,
    box_area,
    box_iou,
    clip_boxes,
    decode,
    encode,
    make_anchors,
    nms,
    roi_align,
)

DETECTORS = ("sliding", "two-stage", "one-stage")
HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # Fast R-CNN's scaling of the head's box targets


@dataclass
class DetectorConfig:
    detector: str = "two-stage"
    num_classes: int = 3
    image_size: int = 64
    width: int = 32  # backbone channels (doubled after the first downsampling)
    stride: int = 4  # backbone output stride: a 64x64 image gives a 16x16 map
    # two-stage: anchors, RPN sampling and proposals, head sampling
    anchor_sizes: tuple = (12.0, 18.0, 28.0)
    anchor_ratios: tuple = (0.5, 1.0, 2.0)  # h / w
    rpn_batch: int = 64  # anchors sampled per image, up to half positive
    rpn_pre_nms: int = 300
    rpn_post_nms: int = 40
    rpn_nms: float = 0.7
    roi_size: int = 7
    head_batch: int = 32  # proposals sampled per image, up to a quarter positive
    hidden: int = 256
    # one-stage: YOLO grid
    grid_stride: int = 8  # 64 / 8: an 8x8 grid
    boxes_per_cell: int = 2
    lambda_coord: float = 5.0
    lambda_noobj: float = 0.5
    # sliding window: window sides (pixels) scanned with window_stride, crops of patch_size
    window_sizes: tuple = (12.0, 18.0, 26.0)
    window_stride: int = 4
    patch_size: int = 16
    # all: post-processing
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    max_detections: int = 100

    def __post_init__(self):
        self.anchor_sizes, self.anchor_ratios = tuple(self.anchor_sizes), tuple(self.anchor_ratios)  # fmt: skip
        self.window_sizes = tuple(self.window_sizes)
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}: expected one of {', '.join(DETECTORS)}")  # fmt: skip
        for name in ("num_classes", "image_size", "width", "boxes_per_cell", "patch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)}: expected a positive number")
        for name in ("stride", "grid_stride"):
            if self.image_size % getattr(self, name):
                raise ValueError(f"image_size {self.image_size} is not a multiple of {name} {getattr(self, name)}")  # fmt: skip


# ----------------------------------------------------------------------------- backbone


def conv(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU())


class Backbone(nn.Module):
    """(B, 3, S, S) -> (B, 2 width, S / 4, S / 4): five 3x3 conv-ReLU, two of stride 2."""

    def __init__(self, width):
        super().__init__()
        w = width
        self.body = nn.Sequential(conv(3, w), conv(w, w, 2), conv(w, 2 * w), conv(2 * w, 2 * w, 2), conv(2 * w, 2 * w))  # fmt: skip
        self.channels = 2 * w

    def forward(self, x):
        return self.body(x - 0.5)


def postprocess(boxes, scores, labels, cfg):
    """Score threshold, NMS per class, the best max_detections: one image's detections."""
    keep = (scores > cfg.score_threshold) & (box_area(boxes) > 1e-2)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, cfg.nms_threshold, cfg.max_detections)
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


def sample(labels, n, positive_fraction):
    """Indices of at most n entries: up to n * fraction with label > 0, the rest label == 0
    (-1: ignored). Random (the global torch RNG, which the checkpoint stores)."""
    pos, neg = (labels > 0).nonzero()[:, 0], (labels == 0).nonzero()[:, 0]
    n_pos = min(len(pos), int(n * positive_fraction))
    pos = pos[torch.randperm(len(pos), device=pos.device)[:n_pos]]
    neg = neg[torch.randperm(len(neg), device=neg.device)[: n - n_pos]]
    return torch.cat([pos, neg])


def match(boxes, gt, gt_labels, fg, bg):
    """Each box's best ground truth (index) and its label: class + 1 if IoU >= fg, 0 if < bg,
    -1 in between (ignored)."""
    if len(gt) == 0:
        return torch.zeros(len(boxes), dtype=torch.long), torch.zeros(len(boxes), dtype=torch.long)  # fmt: skip
    iou = box_iou(gt, boxes)  # (M, N)
    best, idx = iou.max(0)
    labels = torch.full_like(idx, -1)
    labels[best < bg] = 0
    labels[best >= fg] = gt_labels[idx[best >= fg]] + 1
    return idx, labels


# ----------------------------------------------------------------------------- 1. sliding window


class SlidingWindow(nn.Module):
    """A (K + 1)-way patch classifier (class 0: background) scanned over every window."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.width)
        side = cfg.patch_size // 4
        self.classify = nn.Linear(self.backbone.channels * side * side, cfg.num_classes + 1)
        windows = [make_anchors(int(cfg.image_size - s) // cfg.window_stride + 1, cfg.window_stride, [s], [1.0]) + (s / 2 - cfg.window_stride / 2) for s in cfg.window_sizes]  # fmt: skip
        self.register_buffer("windows", torch.cat(windows), persistent=False)  # (W, 4)

    def patches(self, images, boxes_per_image):
        """Crops of each box resized to patch_size x patch_size: RoIAlign on the image itself."""
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], 1) for i, b in enumerate(boxes_per_image)])  # fmt: skip
        return roi_align(images, rois, self.cfg.patch_size, 1.0, 2, True)

    def logits(self, patches):
        return self.classify(self.backbone(patches).flatten(1))  # (P, K + 1)

    def loss(self, images, targets):
        """Cross-entropy on windows (and the true boxes): IoU >= 0.5 its class, < 0.5 background."""
        chosen, labels = [], []
        for t in targets:
            cand = torch.cat([self.windows, t["boxes"]])
            _, lab = match(cand, t["boxes"], t["labels"], 0.5, 0.5)
            keep = sample(lab, 32, 0.25)
            chosen.append(cand[keep])
            labels.append(lab[keep])
        logits = self.logits(self.patches(images, chosen)).float()
        loss = F.cross_entropy(logits, torch.cat(labels))
        return loss, {"cls": loss.detach()}

    @torch.no_grad()
    def detect(self, images):
        out = []
        for img in images:
            probs = self.logits(self.patches(img[None], [self.windows])).float().softmax(-1)
            scores, labels = probs[:, 1:].max(1)
            out.append(postprocess(self.windows, scores, labels, self.cfg))
        return out


# ----------------------------------------------------------------------------- 2. two-stage


class RPN(nn.Module):
    """3x3 conv, then per cell and anchor an objectness logit and 4 box deltas (Section 3.1)."""

    def __init__(self, channels, n_anchors):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, n_anchors, 1)
        self.deltas = nn.Conv2d(channels, 4 * n_anchors, 1)

    def forward(self, feats):
        B, _, H, W = feats.shape
        h = F.relu(self.conv(feats))
        obj = self.objectness(h).permute(0, 2, 3, 1).reshape(B, -1)  # (B, H*W*A)
        d = self.deltas(h).reshape(B, -1, 4, H, W).permute(0, 3, 4, 1, 2).reshape(B, -1, 4)  # (B, H*W*A, 4)  # fmt: skip
        return obj.float(), d.float()


class TwoStage(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.width)
        A = len(cfg.anchor_sizes) * len(cfg.anchor_ratios)
        self.rpn = RPN(self.backbone.channels, A)
        anchors = make_anchors(cfg.image_size // cfg.stride, cfg.stride, cfg.anchor_sizes, cfg.anchor_ratios)  # fmt: skip
        self.register_buffer("anchors", anchors, persistent=False)  # (H*W*A, 4)
        c = self.backbone.channels * cfg.roi_size**2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU())  # fmt: skip
        self.cls = nn.Linear(cfg.hidden, cfg.num_classes + 1)
        self.box = nn.Linear(cfg.hidden, 4 * cfg.num_classes)  # class-specific deltas

    def proposals(self, obj, deltas, before_nms=False):
        """Per image: decode every anchor, clip, keep the pre_nms best, NMS, keep post_nms."""
        cfg, out = self.cfg, []
        for o, d in zip(obj.detach(), deltas.detach()):
            boxes = clip_boxes(decode(d, self.anchors), cfg.image_size)
            top = o.topk(min(cfg.rpn_pre_nms, len(o))).indices
            boxes, o = boxes[top], o[top]
            ok = box_area(boxes) > 1e-2
            boxes, o = boxes[ok], o[ok]
            if before_nms:
                out.append((boxes, o))
                continue
            out.append(boxes[nms(boxes, o, cfg.rpn_nms, cfg.rpn_post_nms)])
        return out

    def roi_features(self, feats, boxes_per_image):
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], 1) for i, b in enumerate(boxes_per_image)])  # fmt: skip
        h = self.head(roi_align(feats, rois, self.cfg.roi_size, 1 / self.cfg.stride, 2, True))
        return self.cls(h).float(), self.box(h).float().reshape(len(rois), -1, 4)

    def loss(self, images, targets):
        """L = L_cls^rpn + L_box^rpn + L_cls^head + L_box^head (Section 3.1.2 and Fast R-CNN)."""
        cfg = self.cfg
        feats = self.backbone(images)
        obj, deltas = self.rpn(feats)
        o_logit, o_label, d_pred, d_true, n_rpn = [], [], [], [], 0
        for i, t in enumerate(targets):
            idx, lab = match(self.anchors, t["boxes"], t["labels"], 0.7, 0.3)
            if len(t["boxes"]):  # each true box's best anchors are positive too
                iou = box_iou(t["boxes"], self.anchors)
                best = (iou == iou.max(1, keepdim=True).values) & (iou > 0)
                gt_i, a_i = best.nonzero(as_tuple=True)
                idx[a_i], lab[a_i] = gt_i, t["labels"][gt_i] + 1
            keep = sample(lab, cfg.rpn_batch, 0.5)
            o_logit.append(obj[i, keep])
            o_label.append((lab[keep] > 0).float())
            pos = keep[lab[keep] > 0]
            d_pred.append(deltas[i, pos])
            d_true.append(encode(t["boxes"][idx[pos]], self.anchors[pos]))
            n_rpn += len(keep)
        rpn_cls = F.binary_cross_entropy_with_logits(torch.cat(o_logit), torch.cat(o_label))
        rpn_box = F.smooth_l1_loss(torch.cat(d_pred), torch.cat(d_true), beta=1 / 9, reduction="sum") / max(n_rpn, 1)  # fmt: skip
        # the head learns on sampled proposals plus the true boxes
        chosen, labels, targets_t = [], [], []
        for p, t in zip(self.proposals(obj, deltas), targets):
            p = torch.cat([p, t["boxes"]])
            idx, lab = match(p, t["boxes"], t["labels"], 0.5, 0.5)
            keep = sample(lab, cfg.head_batch, 0.25)
            chosen.append(p[keep])
            labels.append(lab[keep])
            targets_t.append(encode(t["boxes"][idx[keep]], p[keep], HEAD_WEIGHTS) if len(t["boxes"]) else p[keep] * 0)  # fmt: skip
        logits, box = self.roi_features(feats, chosen)
        labels, targets_t = torch.cat(labels), torch.cat(targets_t)
        head_cls = F.cross_entropy(logits, labels)
        pos = (labels > 0).nonzero()[:, 0]
        head_box = F.smooth_l1_loss(box[pos, labels[pos] - 1], targets_t[pos], beta=1 / 9, reduction="sum") / max(len(labels), 1)  # fmt: skip
        parts = {"rpn_cls": rpn_cls, "rpn_box": rpn_box, "head_cls": head_cls, "head_box": head_box}  # fmt: skip
        return sum(parts.values()), {k: v.detach() for k, v in parts.items()}

    @torch.no_grad()
    def detect(self, images):
        cfg = self.cfg
        feats = self.backbone(images)
        props = self.proposals(*self.rpn(feats))
        logits, box = self.roi_features(feats, props)
        probs, out, start = logits.softmax(-1), [], 0
        for p in props:
            n, K = len(p), cfg.num_classes
            d = box[start : start + n].reshape(n * K, 4)
            boxes = clip_boxes(decode(d, p.repeat_interleave(K, 0), HEAD_WEIGHTS), cfg.image_size)
            scores = probs[start : start + n, 1:].reshape(-1)
            labels = torch.arange(K, device=p.device).repeat(n)
            out.append(postprocess(boxes, scores, labels, cfg))
            start += n
        return out


# ----------------------------------------------------------------------------- 3. one-stage


class OneStage(nn.Module):
    """YOLO: per cell of the S x S grid, B boxes (x, y, sqrt w, sqrt h, confidence) and one
    class distribution. x, y are offsets in the cell, w, h fractions of the image."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.width)
        c = self.backbone.channels
        self.down = nn.Sequential(*[conv(c, c, 2) for _ in range(cfg.grid_stride // cfg.stride // 2)], conv(c, c))  # fmt: skip
        self.out = nn.Conv2d(c, 5 * cfg.boxes_per_cell + cfg.num_classes, 1)

    def predict(self, images):
        """-> boxes (B, S, S, nb, 4) as (x1, y1, x2, y2) pixels, raw (B, S, S, nb, 5) in the
        loss's units, confidence (B, S, S, nb), class probabilities (B, S, S, K)."""
        cfg, nb = self.cfg, self.cfg.boxes_per_cell
        y = (
            self.out(self.down(self.backbone(images))).float().permute(0, 2, 3, 1)
        )  # (B, S, S, 5nb+K)
        B, S = y.shape[:2]
        raw = y[..., : 5 * nb].reshape(B, S, S, nb, 5).sigmoid()
        probs = y[..., 5 * nb :].softmax(-1)
        cell = torch.arange(S, device=y.device, dtype=y.dtype)
        cx = (raw[..., 0] + cell[None, None, :, None]) * cfg.grid_stride  # (B, S, S, nb) column j
        cy = (raw[..., 1] + cell[None, :, None, None]) * cfg.grid_stride
        w, h = raw[..., 2] ** 2 * cfg.image_size, raw[..., 3] ** 2 * cfg.image_size
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        return boxes, raw, raw[..., 4], probs

    def loss(self, images, targets):
        """YOLO eq. (3): lambda_coord sum_resp [(x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 +
        (sqrt h - sqrt h^)^2] + sum_resp (C - IoU)^2 + lambda_noobj sum_other C^2 +
        sum_{cells with an object} sum_c (p(c) - p^(c))^2, per image."""
        cfg = self.cfg
        boxes, raw, conf, probs = self.predict(images)
        B, S, nb = boxes.shape[0], boxes.shape[1], cfg.boxes_per_cell
        resp = torch.zeros(B, S, S, nb, dtype=torch.bool, device=boxes.device)
        t_raw, t_conf = torch.zeros_like(raw[..., :4]), torch.zeros_like(conf)
        has_obj = torch.zeros(B, S, S, dtype=torch.bool, device=boxes.device)
        t_cls = torch.zeros_like(probs)
        for b, t in enumerate(targets):
            # one object per cell: the larger box wins a cell two centres share (written last)
            for k in box_area(t["boxes"]).argsort().tolist():
                g = t["boxes"][k]
                cx, cy = (g[0] + g[2]) / 2 / cfg.grid_stride, (g[1] + g[3]) / 2 / cfg.grid_stride
                j, i = min(int(cx), S - 1), min(int(cy), S - 1)
                iou = box_iou(boxes[b, i, j].detach(), g[None])[:, 0]  # (nb,) responsible: best IoU
                r = int(iou.argmax())
                resp[b, i, j] = False
                resp[b, i, j, r], t_conf[b, i, j] = True, 0
                t_conf[b, i, j, r] = iou[r]
                wh = ((g[2:] - g[:2]) / cfg.image_size).sqrt()
                t_raw[b, i, j, r] = torch.stack([cx - j, cy - i, wh[0], wh[1]])
                has_obj[b, i, j] = True
                t_cls[b, i, j] = F.one_hot(t["labels"][k], cfg.num_classes).to(t_cls)
        coord = ((raw[..., :4] - t_raw) ** 2)[resp].sum()
        obj = ((conf - t_conf) ** 2)[resp].sum()
        noobj = (conf**2)[~resp].sum()
        cls = ((probs - t_cls) ** 2)[has_obj].sum()
        parts = {"coord": cfg.lambda_coord * coord / B, "obj": obj / B, "noobj": cfg.lambda_noobj * noobj / B, "cls": cls / B}  # fmt: skip
        return sum(parts.values()), {k: v.detach() for k, v in parts.items()}

    @torch.no_grad()
    def detect(self, images):
        """Class-specific confidence Pr(class | object) * C (Section 2), per box and class."""
        cfg = self.cfg
        boxes, _, conf, probs = self.predict(images)
        K, out = cfg.num_classes, []
        for b in range(len(images)):
            scores = (conf[b][..., None] * probs[b][:, :, None, :]).reshape(-1)  # (S*S*nb*K,)
            bx = clip_boxes(boxes[b].reshape(-1, 4), cfg.image_size).repeat_interleave(K, 0)
            labels = torch.arange(K, device=bx.device).repeat(len(bx) // K)
            out.append(postprocess(bx, scores, labels, cfg))
        return out


# ----------------------------------------------------------------------------- the whole


def build_detector(cfg):
    return {"sliding": SlidingWindow, "two-stage": TwoStage, "one-stage": OneStage}[cfg.detector](cfg)  # fmt: skip


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
