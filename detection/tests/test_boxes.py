"""boxes.py against torchvision.ops: IoU, NMS, batched NMS, RoIAlign (values and gradients in
float64); the box code's round trip; the anchors' coverage of the image and of the scenes."""

import pytest
import torch
import torchvision
from boxes import (
    batched_nms,
    box_iou,
    decode,
    encode,
    make_anchors,
    nms,
    roi_align,
)


def random_boxes(n, size=64.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * size * 0.8
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * size * 0.4 + 1
    return torch.cat([xy, xy + wh], 1)


def test_iou_equals_torchvision_and_a_hand_example():
    a, b = random_boxes(30, seed=1), random_boxes(20, seed=2)
    torch.testing.assert_close(box_iou(a, b), torchvision.ops.box_iou(a, b), rtol=0, atol=1e-12)
    # two 2x2 squares overlapping in a 1x2 strip: 2 / (4 + 4 - 2)
    sq = torch.tensor([[0.0, 0, 2, 2], [1, 0, 3, 2], [5, 5, 6, 6]])
    assert box_iou(sq, sq)[0, 1].item() == pytest.approx(1 / 3)
    assert box_iou(sq, sq)[0, 2].item() == 0.0


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_equals_torchvision(threshold):
    for seed in range(5):
        b = random_boxes(200, seed=seed, dtype=torch.float32)
        s = torch.rand(200, generator=torch.Generator().manual_seed(100 + seed))
        assert torch.equal(nms(b, s, threshold), torchvision.ops.nms(b, s, threshold))


def test_nms_limit_stops_early_with_the_same_boxes():
    b = random_boxes(300, seed=9, dtype=torch.float32)
    s = torch.rand(300, generator=torch.Generator().manual_seed(9))
    assert torch.equal(nms(b, s, 0.7, limit=40), torchvision.ops.nms(b, s, 0.7)[:40])
    c = torch.randint(0, 3, (300,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(batched_nms(b, s, c, 0.5, limit=25), torchvision.ops.batched_nms(b, s, c, 0.5)[:25])  # fmt: skip


def test_nms_by_hand():
    b = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 1, 10, 11]])
    s = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 (0.95) keeps; box 0 overlaps it at IoU 90/110 > 0.5 and goes; box 1 overlaps box 3
    # at 81/119 = 0.68 and goes; box 2 is alone
    assert nms(b, s, 0.5).tolist() == [3, 2]
    assert nms(b, s, 0.9).tolist() == [3, 0, 1, 2]


def test_batched_nms_equals_torchvision():
    for seed in range(5):
        b = random_boxes(300, seed=seed, dtype=torch.float32)
        g = torch.Generator().manual_seed(seed)
        s, c = torch.rand(300, generator=g), torch.randint(0, 4, (300,), generator=g)
        ours, theirs = batched_nms(b, s, c, 0.5), torchvision.ops.batched_nms(b, s, c, 0.5)
        assert torch.equal(ours, theirs)
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).numel() == 0  # fmt: skip


def test_encode_then_decode_is_the_identity():
    boxes, anchors = random_boxes(100, seed=3), random_boxes(100, seed=4)
    for weights in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
        t = encode(boxes, anchors, weights)
        torch.testing.assert_close(decode(t, anchors, weights), boxes, rtol=0, atol=1e-10)
    # the paper's definition at one box: centre shift / anchor side, log of the side ratio
    t = encode(torch.tensor([[2.0, 0, 6, 8]]), torch.tensor([[0.0, 0, 4, 4]]))
    torch.testing.assert_close(t, torch.tensor([[0.5, 0.5, 0.0, torch.log(torch.tensor(2.0))]]))


def test_encode_equals_torchvision_box_coder():
    from torchvision.models.detection._utils import BoxCoder

    boxes, anchors = random_boxes(50, seed=5), random_boxes(50, seed=6)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    torch.testing.assert_close(encode(boxes, anchors, coder.weights), coder.encode_single(boxes, anchors))  # fmt: skip
    t = torch.randn(50, 4, dtype=torch.float64)
    torch.testing.assert_close(decode(t, anchors, coder.weights), coder.decode_single(t, anchors))


def test_anchors_layout_and_coverage():
    """Anchors are centred on every cell; each pixel of the image is inside an anchor; and
    every box the scene generator draws has an anchor with IoU >= 0.5 (the RPN's claim)."""
    from data import make_scenes
    from model import DetectorConfig

    cfg = DetectorConfig()
    fs = cfg.image_size // cfg.stride
    a = make_anchors(fs, cfg.stride, cfg.anchor_sizes, cfg.anchor_ratios)
    A = len(cfg.anchor_sizes) * len(cfg.anchor_ratios)
    assert a.shape == (fs * fs * A, 4)
    centres = (a[:, :2] + a[:, 2:]) / 2
    assert torch.equal(centres[::A, 0][:fs], (torch.arange(fs) + 0.5) * cfg.stride)
    widths, heights = a[:A, 2] - a[:A, 0], a[:A, 3] - a[:A, 1]
    torch.testing.assert_close((widths * heights).sqrt().reshape(len(cfg.anchor_sizes), -1)[:, 0], torch.tensor(cfg.anchor_sizes, dtype=torch.float32))  # fmt: skip
    g = torch.arange(cfg.image_size) + 0.5
    px = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
    inside = ((px[:, None] >= a[None, :, :2]) & (px[:, None] <= a[None, :, 2:])).all(-1)
    assert inside.any(1).all()
    _, targets = make_scenes(200, cfg.image_size, seed=5)
    gt = torch.cat([t["boxes"] for t in targets])
    best = box_iou(gt, a).max(1).values
    assert best.min() >= 0.5, best.min()


def torchvision_roi_align(x, rois, **kw):
    return torchvision.ops.roi_align(x, rois, **kw)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [2, 1, -1, 0])
def test_roi_align_equals_torchvision_values_and_gradients(aligned, sampling_ratio):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 12, 10, generator=g, dtype=torch.float64)
    boxes = torch.cat([random_boxes(9, size=44.0, seed=8), torch.tensor([[-6.0, -5.0, 3.0, 4.0], [30.0, 38.0, 47.0, 50.0], [8.0, 8.0, 8.2, 8.1]], dtype=torch.float64)])  # fmt: skip
    rois = torch.cat([torch.tensor([0, 1] * 6, dtype=torch.float64)[: len(boxes), None], boxes], 1)
    kw = dict(output_size=(3, 4), spatial_scale=0.25, sampling_ratio=sampling_ratio, aligned=aligned)  # fmt: skip
    up = torch.randn(len(rois), 3, 3, 4, generator=g, dtype=torch.float64)
    ours_x, ref_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ref = roi_align(ours_x, rois, **kw), torchvision_roi_align(ref_x, rois, **kw)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    (ours * up).sum().backward()
    (ref * up).sum().backward()
    torch.testing.assert_close(ours_x.grad, ref_x.grad, rtol=0, atol=1e-12)
    assert ours_x.grad.abs().sum() > 0


def test_roi_align_of_a_constant_map_is_the_constant():
    """A RoI inside the map averages samples of a constant: the constant, at any size."""
    x = torch.full((1, 2, 8, 8), 3.0)
    rois = torch.tensor([[0.0, 4, 4, 20, 28], [0.0, 0, 0, 31, 31]])
    out = roi_align(x, rois, 5, spatial_scale=0.25, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(out, torch.full((2, 2, 5, 5), 3.0))
