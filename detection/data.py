"""Detection data in memory: generated scenes (the offline default), PASCAL VOC XML, COCO JSON.

Every loader returns a dict:
    train, val, test: (images uint8 (N, 3, S, S), targets), targets[i] = {"boxes": float32
        (n_i, 4) as (x1, y1, x2, y2) in pixels of the S x S image, "labels": int64 (n_i,) in 0..K-1}
    classes: the K class names (background is not a class here; the detectors add it)

Coordinates are continuous: pixel (row r, column c) covers [c, c+1) x [r, r+1), so a box
that covers columns 3..7 is x1 = 3, x2 = 8. VOC's 1-based inclusive corners (xmin..xmax)
become (xmin - 1, xmax); COCO's [x, y, w, h] becomes (x, y, x + w, y + h).

`scenes` (the default) is generated here: 1 to 4 shapes (disk, square, triangle) of random
size (10-28 px a side, aspect 1:2 to 2:1) and colour on a noisy background, later shapes
painted over earlier ones with at most 0.4 IoU between any two, so some overlap. Each box is
the shape's geometric extent, known exactly.

Real annotations (`--dataset voc|coco-json --data-dir DIR`) are resized to S x S (the aspect
ratio is not kept; boxes are scaled with the image). Bad annotations, decided once here:
a box partly outside its image is clipped to the image; a box with zero area (after
clipping, so also one wholly outside) is refused, naming the file; an image with no boxes
is refused (detectors here learn background from the other parts of annotated images).
COCO `iscrowd` boxes are skipped; VOC `difficult` objects are kept as ordinary boxes.
"""

import functools
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

DATASETS = ("scenes", "voc", "coco-json")
SHAPES = ("disk", "square", "triangle")


class DataError(Exception):
    """The data asked for is not there, not readable, or not valid: one line for the user."""


# ----------------------------------------------------------------------------- scenes


def shape_mask(c, box, size):
    """Bool (S, S) mask of shape class c filling box (x1, y1, x2, y2), at the pixel centres."""
    x1, y1, x2, y2 = box
    g = np.arange(size) + 0.5
    a = ((g - x1) / (x2 - x1))[None, :]  # (1, S): 0..1 across the box
    b = ((g - y1) / (y2 - y1))[:, None]  # (S, 1)
    inside = (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)
    if c == 0:  # the ellipse inscribed in the box
        return (a - 0.5) ** 2 + (b - 0.5) ** 2 <= 0.25
    if c == 1:
        return inside
    # apex at the top middle (half a pixel wide, so the top row is drawn), base along the bottom
    return inside & (np.abs(a - 0.5) <= b / 2 + 0.5 / (x2 - x1))


def box_iou_np(a, b):
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(rb - lt, 0, None))
    area = lambda x: (x[2] - x[0]) * (x[3] - x[1])
    return inter / (area(a) + area(b) - inter)


def make_scene(rng, size=64, max_objects=4, max_iou=0.4):
    """One image (3, S, S) uint8 and its target; the same rng gives the same scene."""
    img = rng.uniform(0.0, 0.35) + rng.normal(0, 0.05, (3, size, size))
    boxes, labels = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(20):
            w, h = rng.integers(10, 29, 2)
            if max(w / h, h / w) > 2:
                continue
            x1, y1 = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
            box = np.array([x1, y1, x1 + w, y1 + h], np.float64)
            if all(box_iou_np(box, b) <= max_iou for b in boxes):
                break
        else:
            continue
        c = int(rng.integers(0, len(SHAPES)))
        colour = rng.uniform(0.45, 1.0, 3)
        mask = shape_mask(c, box, size)
        img[:, mask] = colour[:, None] + rng.normal(0, 0.03, (3, int(mask.sum())))
        boxes.append(box)
        labels.append(c)
    img = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    target = {
        "boxes": torch.tensor(np.array(boxes), dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }
    return torch.from_numpy(img), target


def make_scenes(n, size=64, seed=0):
    """n scenes: images (n, 3, S, S) uint8 and a list of n targets, deterministic by seed."""
    rng = np.random.default_rng(seed)
    pairs = [make_scene(rng, size) for _ in range(n)]
    return torch.stack([p[0] for p in pairs]), [p[1] for p in pairs]


@functools.cache  # one generation per process (tests call train() many times)
def load_scenes(n_train=2000, n_val=200, n_test=300, size=64, seed=0):
    """The offline default: the same scenes every run (the seed is the data's, not the run's)."""
    out = {"classes": list(SHAPES)}
    for i, (name, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        out[name] = make_scenes(n, size, seed=1000 * seed + 17 + i)
    return out


# ----------------------------------------------------------------------------- real annotations


def checked_boxes(boxes, width, height, where):
    """(n, 4) float boxes in the file's pixels -> clipped to the image; zero area is refused."""
    b = np.array(boxes, np.float64).reshape(-1, 4)
    b[:, 0::2] = b[:, 0::2].clip(0, width)
    b[:, 1::2] = b[:, 1::2].clip(0, height)
    bad = np.flatnonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
    if len(bad):
        raise DataError(
            f"{where}: box {boxes[bad[0]]} has zero area inside the {width}x{height} image (fix or delete it)"
        )
    return b


def read_image(path, size):
    """A file -> uint8 (3, S, S), resized without keeping the aspect; and its (width, height)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            wh = im.size
            im = im.resize((size, size), Image.BILINEAR)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path} is not an image PIL can read ({type(e).__name__})") from None
    return torch.from_numpy(np.asarray(im, np.uint8).copy()).permute(2, 0, 1), wh


def scaled_target(boxes, labels, wh, size):
    sx, sy = size / wh[0], size / wh[1]
    b = torch.tensor(boxes * np.array([sx, sy, sx, sy]), dtype=torch.float32)
    return {"boxes": b, "labels": torch.tensor(labels, dtype=torch.int64)}


def voc_root(data_dir):
    """DIR itself, or torchvision's DIR/VOCdevkit/VOC20xx layout."""
    root = Path(data_dir)
    if (root / "Annotations").is_dir():
        return root
    found = sorted((root / "VOCdevkit").glob("VOC*/Annotations"))
    if not found:
        raise DataError(f"no VOC tree at {root} (expected {root}/Annotations/*.xml and {root}/JPEGImages/)")  # fmt: skip
    return found[-1].parent


def read_voc(data_dir):
    """[(image path, boxes (n, 4) in the file's pixels, names)] from DIR/Annotations/*.xml."""
    root = voc_root(data_dir)
    records = []
    for xml in sorted((root / "Annotations").glob("*.xml")):
        try:
            tree = ET.parse(xml).getroot()
            file = tree.findtext("filename")
            w, h = int(tree.findtext("size/width")), int(tree.findtext("size/height"))
            objects = [
                (o.findtext("name").strip(), [float(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")])
                for o in tree.iter("object")
            ]  # fmt: skip
        except (ET.ParseError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"{xml}: not a VOC annotation ({type(e).__name__}: {e})") from None
        if not objects:
            raise DataError(f"{xml}: image {file} has no annotated objects (delete it or label it)")
        raw = [[b[0] - 1, b[1] - 1, b[2], b[3]] for _, b in objects]  # 1-based inclusive -> ours
        boxes = checked_boxes(raw, w, h, xml)
        records.append((root / "JPEGImages" / file, boxes, [n for n, _ in objects], (w, h)))
    if not records:
        raise DataError(f"no annotations in {root}/Annotations/*.xml")
    return records, sorted({n for r in records for n in r[2]})


def read_coco(data_dir):
    """[(image path, boxes, names)] from DIR/annotations.json (images in DIR/images/ or DIR/)."""
    root = Path(data_dir)
    path = root / "annotations.json" if root.is_dir() else root
    root = path.parent
    if not path.is_file():
        raise DataError(f"no COCO JSON at {path} (expected DIR/annotations.json)")
    try:
        coco = json.loads(path.read_text())
        names = {c["id"]: c["name"] for c in coco["categories"]}
        images = {im["id"]: im for im in coco["images"]}
        per_image = {i: [] for i in images}
        for a in coco["annotations"]:
            if not a.get("iscrowd", 0):
                per_image[a["image_id"]].append((names[a["category_id"]], a["bbox"]))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a COCO detection file ({type(e).__name__}: {e})") from None
    folder = root / "images" if (root / "images").is_dir() else root
    records = []
    for i, im in images.items():
        if not per_image[i]:
            raise DataError(f"{path}: image {im['file_name']} has no annotations (delete it or label it)")  # fmt: skip
        raw = [[x, y, x + w, y + h] for _, (x, y, w, h) in per_image[i]]
        boxes = checked_boxes(raw, im["width"], im["height"], f"{path} ({im['file_name']})")
        records.append((folder / im["file_name"], boxes, [n for n, _ in per_image[i]], (im["width"], im["height"])))  # fmt: skip
    order = [names[k] for k in sorted(names)]
    return records, [n for n in order if any(n in r[2] for r in records)]


def load_annotated(dataset, data_dir, size):
    """VOC or COCO records -> images and targets; a fixed 80/10/10 split by a seeded permutation."""
    records, classes = (read_voc if dataset == "voc" else read_coco)(data_dir)
    index = {n: i for i, n in enumerate(classes)}
    images, targets = [], []
    for file, boxes, names, wh in records:
        img, real_wh = read_image(file, size)
        if tuple(real_wh) != tuple(wh):
            raise DataError(f"{file} is {real_wh[0]}x{real_wh[1]} but its annotation says {wh[0]}x{wh[1]}")  # fmt: skip
        images.append(img)
        targets.append(scaled_target(boxes, [index[n] for n in names], wh, size))
    n = len(images)
    if n < 3:
        raise DataError(f"{data_dir}: {n} annotated images; need at least 3 (train, val, test)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
    n_val = n_test = max(1, n // 10)
    parts = {"test": perm[:n_test], "val": perm[n_test : n_test + n_val], "train": perm[n_test + n_val :]}  # fmt: skip
    x = torch.stack(images)
    out = {k: (x[idx], [targets[i] for i in idx]) for k, idx in parts.items()}
    return out | {"classes": classes}


def load(dataset, data_dir="data", image_size=64, smoke=False):
    if dataset == "scenes":
        return load_scenes(64, 32, 32, image_size) if smoke else load_scenes(size=image_size)
    if dataset in ("voc", "coco-json"):
        return load_annotated(dataset, data_dir, image_size)
    raise DataError(f"unknown --dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
