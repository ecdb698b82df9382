"""Box arithmetic by hand: IoU, the anchor box code, anchors, NMS, and RoIAlign.

Boxes are (x1, y1, x2, y2) in pixels, x2 > x1, y2 > y1 (data.py's continuous coordinates).
Ren et al. 2015, Faster R-CNN, https://arxiv.org/abs/1506.01497 (Section 3.1.2: the box
parameterisation; 3.1: anchors); He et al. 2017, Mask R-CNN, https://arxiv.org/abs/1703.06870
(Section 3: RoIAlign).

Tests (tests/test_boxes.py) hold box_iou, nms, batched_nms and roi_align against
torchvision.ops (values; RoIAlign's input gradients in float64, aligned True and False,
fixed and adaptive sampling_ratio), decode(encode(b)) == b, and the anchors' coverage.
"""

import math

import torch

# exp(dw) is clamped so a wild early prediction cannot overflow (torchvision's bound)
DW_CLAMP = math.log(1000.0 / 16)


def box_area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_iou(a, b):
    """IoU(A, B) = |A n B| / (|A| + |B| - |A n B|) for every pair: (N, 4), (M, 4) -> (N, M)."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])  # (N, M, 2) top-left of the overlap
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2) bottom-right
    inter = (rb - lt).clamp(min=0).prod(-1)  # (N, M)
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter)


def clip_boxes(b, size):
    """Clip to the size x size image."""
    return b.clamp(0, size)


# ----------------------------------------------------------------------------- box code


def to_cxcywh(b):
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return b[:, 0] + 0.5 * w, b[:, 1] + 0.5 * h, w, h


def encode(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    """Faster R-CNN's targets t of boxes against anchors a (eq. 2), each scaled by a weight:

    t_x = (x - x_a) / w_a,  t_y = (y - y_a) / h_a,  t_w = log(w / w_a),  t_h = log(h / h_a)
    """
    x, y, w, h = to_cxcywh(boxes)
    xa, ya, wa, ha = to_cxcywh(anchors)
    wx, wy, ww, wh = weights
    return torch.stack(
        [wx * (x - xa) / wa, wy * (y - ya) / ha, ww * torch.log(w / wa), wh * torch.log(h / ha)], 1
    )


def decode(t, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    """The inverse of encode: x = x_a + t_x w_a, w = w_a exp(t_w), ... -> (x1, y1, x2, y2)."""
    xa, ya, wa, ha = to_cxcywh(anchors)
    wx, wy, ww, wh = weights
    x, y = xa + t[:, 0] / wx * wa, ya + t[:, 1] / wy * ha
    w = wa * torch.exp((t[:, 2] / ww).clamp(max=DW_CLAMP))
    h = ha * torch.exp((t[:, 3] / wh).clamp(max=DW_CLAMP))
    return torch.stack([x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h], 1)


def make_anchors(feature_size, stride, sizes, ratios):
    """Anchors at every cell of a feature_size x feature_size map: (H * W * A, 4), A = |sizes| |ratios|.

    Cell (i, j) is centred on the image pixel ((j + 0.5) stride, (i + 0.5) stride); its A anchors
    have area size^2 and aspect h / w = ratio: w = size / sqrt(ratio), h = size * sqrt(ratio).
    Ordered (i, j, a), as the RPN's (B, A, H, W) outputs are permuted to (B, H, W, A).
    """
    s = torch.tensor(sizes, dtype=torch.float32)[:, None]
    r = torch.tensor(ratios, dtype=torch.float32)[None, :]
    w, h = (s / r.sqrt()).reshape(-1), (s * r.sqrt()).reshape(-1)  # (A,)
    base = torch.stack([-w, -h, w, h], 1) / 2  # (A, 4) centred on 0
    c = (torch.arange(feature_size, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(c, c, indexing="ij")
    centres = torch.stack([cx, cy, cx, cy], -1).reshape(-1, 1, 4)  # (H*W, 1, 4)
    return (centres + base[None]).reshape(-1, 4)


# ----------------------------------------------------------------------------- NMS


def nms(boxes, scores, iou_threshold, limit=None):
    """Greedy non-maximum suppression: keep the highest-scoring box, drop every box whose IoU
    with it exceeds the threshold, repeat. Returns kept indices, highest score first; with a
    limit, stops after that many (the same as nms(...)[:limit], sooner)."""
    order = scores.argsort(descending=True)
    iou = box_iou(boxes[order], boxes[order])  # (N, N) in score order
    remaining, keep = torch.arange(len(order), device=boxes.device), []
    while len(remaining) and len(keep) != limit:
        i = remaining[0]
        keep.append(i)
        remaining = remaining[1:][iou[i, remaining[1:]] <= iou_threshold]
    return order[torch.stack(keep)] if keep else order[:0]


def batched_nms(boxes, scores, idxs, iou_threshold, limit=None):
    """NMS within each class idxs[k] only: shift each class's boxes by its own offset so boxes
    of different classes never overlap, then one plain NMS."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    offset = idxs.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offset[:, None], scores, iou_threshold, limit)


# ----------------------------------------------------------------------------- RoIAlign


def interpolation_weights(coords, size):
    """Bilinear weights of 1-d sample coordinates (K, P) over a side of `size` cells: (K, P, size).

    Mask R-CNN's rule (torchvision's): a sample more than one cell outside is 0; otherwise it
    is clamped into [0, size - 1] and splits 1 between its two neighbours, (1 - l) and l.
    A 2-d bilinear sample is the product of a row weight and a column weight, so sampling a
    grid is two matrix products: v = W_y f W_x^T.
    """
    outside = (coords < -1) | (coords > size)
    c = coords.clamp(min=0)
    lo = c.floor().long().clamp(max=size - 1)
    hi = (lo + 1).clamp(max=size - 1)
    c = torch.where(lo >= size - 1, lo.to(c), c)
    frac = c - lo  # distance to the lower neighbour
    w = coords.new_zeros(*coords.shape, size)
    w.scatter_add_(2, lo[..., None], (1 - frac)[..., None])
    w.scatter_add_(2, hi[..., None], frac[..., None])
    return w.masked_fill(outside[..., None], 0)


def roi_align(features, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """RoIAlign, as torchvision.ops.roi_align defines it: rois (K, 5) = (image index, x1, y1,
    x2, y2) in image pixels -> (K, C, ph, pw).

    The RoI is scaled to the map (x * spatial_scale, minus half a pixel if aligned) and cut
    into ph x pw bins; each bin is the mean of g_h x g_w bilinear samples at the centres of a
    regular sub-grid, g = sampling_ratio, or ceil(roi side / bins) when sampling_ratio <= 0.
    Without `aligned` the RoI is at least 1 x 1 (Mask R-CNN's original, off by half a pixel).
    The mean over a bin's samples folds into the weights: A_y = mean of g_h rows of W_y, and
    out[k] = A_y[k] f[image k] A_x[k]^T. The boxes carry no gradient (as in torchvision).
    """
    ph, pw = (output_size, output_size) if isinstance(output_size, int) else output_size
    N, C, H, W = features.shape
    rois = rois.detach().to(features.dtype)
    offset = 0.5 if aligned else 0.0
    x1, y1 = rois[:, 1] * spatial_scale - offset, rois[:, 2] * spatial_scale - offset
    w, h = rois[:, 3] * spatial_scale - offset - x1, rois[:, 4] * spatial_scale - offset - y1
    if not aligned:
        w, h = w.clamp(min=1), h.clamp(min=1)
    if sampling_ratio > 0:
        gh = gw = torch.full_like(w, sampling_ratio, dtype=torch.long)
    else:
        gh, gw = torch.ceil(h / ph).long(), torch.ceil(w / pw).long()
    Ay, Ax = features.new_zeros(len(rois), ph, H), features.new_zeros(len(rois), pw, W)
    # RoIs with the same sub-grid (g_h, g_w) get their weights together
    for gy, gx in torch.unique(torch.stack([gh, gw], 1), dim=0).tolist():
        if gy == 0 or gx == 0:  # an empty RoI (aligned, zero size): no samples, 0
            continue
        k = ((gh == gy) & (gw == gx)).nonzero()[:, 0]
        iy = (torch.arange(ph * gy, dtype=w.dtype, device=w.device) + 0.5) / gy  # in bins
        ix = (torch.arange(pw * gx, dtype=w.dtype, device=w.device) + 0.5) / gx
        ys = y1[k, None] + iy[None] * (h[k, None] / ph)  # (K', ph*gy) sample rows
        xs = x1[k, None] + ix[None] * (w[k, None] / pw)  # (K', pw*gx)
        Ay[k] = interpolation_weights(ys, H).reshape(len(k), ph, gy, H).mean(2)
        Ax[k] = interpolation_weights(xs, W).reshape(len(k), pw, gx, W).mean(2)
    b = rois[:, 0].long()
    order = b.argsort(stable=True)  # the RoIs image by image
    parts, start = [], 0
    for i, n in zip(*[t.tolist() for t in torch.unique_consecutive(b[order], return_counts=True)]):
        k = order[start : start + n]
        # (K', 1, ph, H) @ (1, C, H, W) @ (K', 1, W, pw) -> (K', C, ph, pw)
        parts.append(Ay[k, None] @ features[i][None] @ Ax[k, None].transpose(-1, -2))
        start += n
    if not parts:
        return features.new_zeros(0, C, ph, pw)
    return torch.cat(parts)[order.argsort()]  # back in the RoIs' order
