"""model.py: label assignment and sampling by hand, the layouts of the RPN and the YOLO grid
(which anchor and which cell each output is), the YOLO loss on a hand example, and the
detections' form for all three detectors."""

import pytest
import torch
from model import DETECTORS, DetectorConfig, OneStage, TwoStage, build_detector, match, sample


def test_match_labels_by_hand():
    gt = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 3], [22, 20, 32, 30], [40, 40, 50, 50]])  # fmt: skip
    idx, labels = match(boxes, gt, torch.tensor([2, 0]), 0.7, 0.3)
    # IoUs with their best: 1, 0.5 (ignored), 0.3 (not < 0.3: ignored), 80/120 = 0.67, 0
    assert labels.tolist() == [3, -1, -1, -1, 0]
    _, labels = match(boxes, gt, torch.tensor([2, 0]), 0.5, 0.5)
    assert labels.tolist() == [3, 3, 0, 1, 0] and idx[3] == 1
    _, labels = match(boxes, gt[:0], torch.tensor([], dtype=torch.long), 0.5, 0.5)
    assert labels.tolist() == [0] * 5  # no true boxes: all background


def test_sample_keeps_the_fraction_and_skips_ignored():
    torch.manual_seed(0)
    labels = torch.tensor([1] * 30 + [0] * 100 + [-1] * 50)
    keep = sample(labels, 40, 0.25)
    assert len(keep) == 40 and (labels[keep] > 0).sum() == 10 and (labels[keep] >= 0).all()
    keep = sample(torch.tensor([2, 0, 0, -1]), 40, 0.5)  # fewer than asked: all usable ones
    assert sorted(keep.tolist()) == [0, 1, 2]


def test_rpn_outputs_are_laid_out_as_the_anchors():
    """Objectness bias high for anchor shape a only, zero deltas: the best proposals are the
    anchors of shape a (so (B, A, H, W) -> (B, H*W*A) matches make_anchors' order)."""
    cfg = DetectorConfig()
    model = TwoStage(cfg)
    A = len(cfg.anchor_sizes) * len(cfg.anchor_ratios)
    for a in (1, A - 2):
        with torch.no_grad():
            for conv in (model.rpn.objectness, model.rpn.deltas):
                conv.weight.zero_()
                conv.bias.zero_()
            model.rpn.objectness.bias[a] = 5.0
            model.rpn.deltas.bias[4 * a + 2] = 0.25  # t_w of anchor shape a
        obj, deltas = model.rpn(model.backbone(torch.rand(1, 3, 64, 64)))
        assert (obj[0, a::A] == 5).all() and (obj[0].sum() == 5 * obj.shape[1] // A)
        assert (deltas[0, a::A, 2] == 0.25).all() and deltas[0].abs().sum() == 0.25 * deltas.shape[1] // A  # fmt: skip
        with torch.no_grad():
            model.rpn.deltas.bias.zero_()
        obj, deltas = model.rpn(model.backbone(torch.rand(1, 3, 64, 64)))
        boxes, _ = model.proposals(obj, deltas, before_nms=True)[0]
        wh = boxes[:, 2:] - boxes[:, :2]
        expected = model.anchors[a, 2:] - model.anchors[a, :2]
        interior = ((boxes > 0) & (boxes < 64)).all(1)  # clipping changes the border ones
        top = interior[: cfg.image_size // cfg.stride]  # the first 16 are of shape a
        torch.testing.assert_close(wh[: len(top)][top], expected.expand(int(top.sum()), 2))


def test_yolo_grid_layout_and_loss_by_hand():
    """Zero output weights: every box is 16 x 16 at its cell's centre, confidence 0.5, class
    probabilities 1/3. One true 16 x 16 box centred at (22, 12): cell (row 1, column 2),
    offset (0.75, 0.5); the predicted box there is (12, 4, 28, 20), IoU 224 / 288 = 7/9.
    Loss = 5 (0.25^2) + (0.5 - 7/9)^2 + 0.5 (127 0.5^2) + (2/3)^2 + 2 (1/3)^2."""
    cfg = DetectorConfig(detector="one-stage")
    model = OneStage(cfg)
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.zero_()
    boxes, _, conf, probs = model.predict(torch.rand(1, 3, 64, 64))
    S = cfg.image_size // cfg.grid_stride
    assert boxes.shape == (1, S, S, cfg.boxes_per_cell, 4)
    torch.testing.assert_close(boxes[0, 1, 2, 0], torch.tensor([12.0, 4, 28, 20]))
    target = {"boxes": torch.tensor([[14.0, 4, 30, 20]]), "labels": torch.tensor([0])}
    loss, parts = model.loss(torch.rand(1, 3, 64, 64), [target])
    expected = {"coord": 5 * 0.25**2, "obj": (0.5 - 7 / 9) ** 2, "noobj": 0.5 * 127 * 0.25, "cls": (2 / 3) ** 2 + 2 / 9}  # fmt: skip
    for k, v in expected.items():
        assert parts[k].item() == pytest.approx(v, rel=1e-5), k
    assert loss.item() == pytest.approx(sum(expected.values()), rel=1e-5)


@pytest.mark.parametrize("detector", DETECTORS)
def test_detections_have_the_agreed_form_and_gradients_flow(detector):
    torch.manual_seed(0)
    cfg = DetectorConfig(detector=detector, width=8, score_threshold=0.0)
    model = build_detector(cfg)
    x = torch.rand(2, 3, 64, 64)
    target = {"boxes": torch.tensor([[4.0, 4, 20, 24], [30, 30, 50, 44]]), "labels": torch.tensor([0, 2])}  # fmt: skip
    loss, parts = model.loss(x, [target, target])
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in parts.values())
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    for d in model.detect(x):
        assert set(d) == {"boxes", "scores", "labels"} and 0 < len(d["scores"]) <= cfg.max_detections  # fmt: skip
        assert (d["boxes"] >= 0).all() and (d["boxes"] <= 64).all()
        assert (d["scores"][:-1] >= d["scores"][1:]).all()  # best first
        assert d["labels"].min() >= 0 and d["labels"].max() < cfg.num_classes


def test_config_errors():
    with pytest.raises(ValueError, match="unknown detector 'rcnn'"):
        DetectorConfig(detector="rcnn")
    with pytest.raises(ValueError, match="not a multiple of grid_stride"):
        DetectorConfig(image_size=68)


def test_two_stage_detections_are_the_heads_refined_proposals():
    """Head deltas t = (0.5, 0, 5 log 2, 0) (x10, x5 weights: shift by w/20, width x2): every
    detection is a proposal moved so, not the proposal itself."""
    from boxes import clip_boxes, decode

    torch.manual_seed(0)
    cfg = DetectorConfig(width=8, score_threshold=0.0, nms_threshold=1.0)
    model = TwoStage(cfg).eval()
    with torch.no_grad():
        model.box.weight.zero_()
        model.box.bias.zero_()
        model.box.bias[0::4], model.box.bias[2::4] = 0.5, 5 * torch.log(torch.tensor(2.0))
        x = torch.rand(1, 3, 64, 64)
        props = model.proposals(*model.rpn(model.backbone(x)))[0]
        t = torch.tensor([[0.5, 0.0, 5 * 0.6931471805599453, 0.0]]).expand(len(props), 4)
        expected = clip_boxes(decode(t, props, (10.0, 10.0, 5.0, 5.0)), 64)
        dets = model.detect(x)[0]["boxes"]
    assert len(dets) > 0
    gap = (dets[:, None] - expected[None]).abs().amax(-1).min(1).values  # to the nearest expected
    assert gap.max() < 1e-4
    same = (dets[:, None] - props[None]).abs().amax(-1).min(1).values
    assert same.min() > 0.1  # none is an unrefined proposal
