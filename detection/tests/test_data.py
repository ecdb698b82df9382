"""data.py: the generated scenes (deterministic, boxes exact, some overlap) and the VOC XML and
COCO JSON readers on tiny files written here, with their documented bad-box rules."""

import json

import numpy as np
import pytest
import torch
from boxes import box_iou
from data import DataError, load, make_scenes, shape_mask
from PIL import Image


def test_scenes_are_deterministic_and_their_boxes_exact():
    x, t = make_scenes(50, 64, seed=3)
    x2, t2 = make_scenes(50, 64, seed=3)
    assert x.shape == (50, 3, 64, 64) and x.dtype == torch.uint8 and torch.equal(x, x2)
    assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(t, t2))
    assert not torch.equal(x, make_scenes(50, 64, seed=4)[0])
    boxes = torch.cat([a["boxes"] for a in t])
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 64).all()
    sides = boxes[:, 2:] - boxes[:, :2]
    assert sides.min() >= 10 and sides.max() <= 28
    counts = [len(a["labels"]) for a in t]
    assert min(counts) >= 1 and max(counts) <= 4
    overlapping = sum(((box_iou(a["boxes"], a["boxes"]) > 0).sum() > len(a["boxes"])).item() for a in t)  # fmt: skip
    assert overlapping >= 5  # some scenes have touching or overlapping shapes
    assert all((box_iou(a["boxes"], a["boxes"]).fill_diagonal_(0) <= 0.4).all() for a in t)


@pytest.mark.parametrize("c", [0, 1, 2])
def test_each_shape_fills_its_box(c):
    """The drawn mask's tight pixel box is the stated box (a pixel is in when its centre is)."""
    for box in [(7, 11, 27, 25), (0, 0, 10, 10), (3, 20, 31, 30), (30, 2, 40, 30), (5, 5, 16, 27)]:
        m = shape_mask(c, box, 40)
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        tight = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        assert tight == box, (tight, box)


def write_image(path, w, h):
    Image.fromarray(np.zeros((h, w, 3), np.uint8) + 100).save(path)


def voc_xml(file, w, h, objects):
    objs = "".join(
        f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b in objects
    )  # fmt: skip
    return f"<annotation><filename>{file}</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objs}</annotation>"  # fmt: skip


def voc_tree(root, records):
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for i, (w, h, objects) in enumerate(records):
        write_image(root / "JPEGImages" / f"{i:06d}.png", w, h)
        (root / "Annotations" / f"{i:06d}.xml").write_text(voc_xml(f"{i:06d}.png", w, h, objects))


def test_voc_reader(tmp_path):
    """1-based inclusive corners -> ours; resized to 32 x 32; a box past the edge is clipped."""
    voc_tree(tmp_path, [
        (100, 50, [("dog", (11, 6, 60, 25)), ("cat", (1, 1, 100, 50))]),
        (80, 80, [("cat", (41, 41, 200, 90))]),  # past the right and bottom edges
        (40, 40, [("dog", (1, 1, 20, 20))]),
    ])  # fmt: skip
    data = load("voc", str(tmp_path), 32)
    assert data["classes"] == ["cat", "dog"]
    x = torch.cat([data[k][0] for k in ("train", "val", "test")])
    assert x.shape == (3, 3, 32, 32)
    everything = [t for k in ("train", "val", "test") for t in data[k][1]]
    first = next(t for t in everything if len(t["labels"]) == 2)  # 100 x 50 -> 32 x 32
    assert first["labels"].tolist() == [1, 0]
    torch.testing.assert_close(first["boxes"], torch.tensor([[10 * 0.32, 5 * 0.64, 60 * 0.32, 25 * 0.64], [0, 0, 32, 32]]))  # fmt: skip
    clipped = [t["boxes"] for t in everything if t["boxes"][0, 0] > 10]  # 80 x 80 -> 32 x 32
    torch.testing.assert_close(clipped[0], torch.tensor([[40 * 0.4, 40 * 0.4, 32, 32]]))
    # torchvision's layout: DIR/VOCdevkit/VOC2007/...
    voc_tree(tmp_path / "tv" / "VOCdevkit" / "VOC2007", [(20, 20, [("a", (1, 1, 5, 5))])] * 3)
    assert load("voc", str(tmp_path / "tv"), 16)["classes"] == ["a"]


@pytest.mark.parametrize(
    "objects, message",
    [
        (
            [("dog", (11, 6, 10, 25))],
            "has zero area",
        ),  # xmax = xmin - 1: zero width (inclusive corners)
        ([("dog", (300, 300, 400, 400))], "has zero area"),  # wholly outside: zero after clipping
        ([], "has no annotated objects"),
    ],
)
def test_voc_bad_annotations_are_refused(tmp_path, objects, message):
    voc_tree(tmp_path, [(100, 50, [("cat", (1, 1, 9, 9))])] * 2 + [(100, 50, objects)])
    with pytest.raises(DataError, match=message):
        load("voc", str(tmp_path), 32)


def coco_file(tmp_path, annotations, images=None):
    (tmp_path / "images").mkdir(exist_ok=True)
    images = images or [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 32} for i in (1, 2, 3)]  # fmt: skip
    for im in images:
        write_image(tmp_path / "images" / im["file_name"], im["width"], im["height"])
    cats = [{"id": 7, "name": "person"}, {"id": 3, "name": "car"}, {"id": 9, "name": "unused"}]
    (tmp_path / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))  # fmt: skip


def test_coco_reader(tmp_path):
    """[x, y, w, h] -> corners; categories in id order, unused ones dropped; crowds skipped."""
    ann = [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [8, 4, 16, 8], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [60, 30, 10, 10], "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 64, 32], "iscrowd": 1},
        {"id": 4, "image_id": 2, "category_id": 3, "bbox": [1, 1, 2, 2], "iscrowd": 0},
        {"id": 5, "image_id": 3, "category_id": 7, "bbox": [1, 1, 2, 2]},
    ]
    coco_file(tmp_path, ann)
    data = load("coco-json", str(tmp_path), 32)
    assert data["classes"] == ["car", "person"]
    targets = [t for k in ("train", "val", "test") for t in data[k][1]]
    first = next(t for t in targets if len(t["labels"]) == 2)
    torch.testing.assert_close(first["boxes"], torch.tensor([[4.0, 4, 12, 12], [30, 30, 32, 32]]))
    assert first["labels"].tolist() == [1, 0]
    assert sorted(len(t["labels"]) for t in targets) == [1, 1, 2]  # the crowd box is skipped


def test_coco_bad_annotations_are_refused(tmp_path):
    coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [8, 4, 5, 8]}])
    with pytest.raises(
        DataError, match="image 2.jpg has no annotations"
    ):  # images 2 and 3 have none
        load("coco-json", str(tmp_path), 32)
    ann = [{"id": i, "image_id": i, "category_id": 7, "bbox": [8, 4, 5, 8]} for i in (1, 2)]
    coco_file(tmp_path, ann + [{"id": 3, "image_id": 3, "category_id": 7, "bbox": [8, 4, 0, 8]}])
    with pytest.raises(DataError, match="has zero area"):
        load("coco-json", str(tmp_path), 32)
    (tmp_path / "annotations.json").write_text("{not json")
    with pytest.raises(DataError, match="not a COCO detection file"):
        load("coco-json", str(tmp_path), 32)
    with pytest.raises(DataError, match="no COCO JSON"):
        load("coco-json", str(tmp_path / "nowhere"), 32)
