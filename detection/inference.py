"""Detect objects with a trained checkpoint and draw the boxes, labels and scores into a PNG.

    python inference.py                               # the run's test images -> runs/detections.png
    python inference.py --images photo.jpg photos/ --score-threshold 0.5

The model is rebuilt from the checkpoint alone (its model_config and class names). Image
files are resized to the model's square input side, as in training (aspect not kept); the
boxes are drawn on the resized image, scaled up for legibility.

Tests (tests/test_inference.py): detections drawn from the gate's checkpoint; image files
in a folder; a missing or corrupt checkpoint, a file that is not an image: one `error:` line.
"""

import argparse
from pathlib import Path

import harness
import torch
from data import DataError, load, read_image
from model import DetectorConfig, build_detector

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60)]  # fmt: skip


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--out-dir", default="runs", help="the run to load (OUT_DIR/checkpoint.pt); the PNG goes here")  # fmt: skip
    p.add_argument("--checkpoint", default="", help="a checkpoint path (default OUT_DIR/checkpoint.pt)")  # fmt: skip
    p.add_argument("--images", nargs="*", default=[], help="image files or folders (default: the run's test images)")  # fmt: skip
    p.add_argument("--num-samples", type=int, default=8, help="test images drawn when --images is not given")  # fmt: skip
    p.add_argument("--score-threshold", type=float, default=0.3, help="draw and print detections scoring above this")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: half the cores)")
    return p


def from_checkpoint(path, device):
    """(model, class names, train_config) from our checkpoint alone."""
    ckpt = harness.load_checkpoint(path, device)
    classes = (ckpt.get("data") or {}).get("classes")
    if not classes:
        raise harness.UserError(f"{path} lacks its class names: not a checkpoint of detection/train.py")  # fmt: skip
    try:
        config = DetectorConfig(**ckpt["model_config"])
    except (TypeError, ValueError) as e:
        raise harness.UserError(f"{path}: bad model_config ({e})") from None
    if config.num_classes != len(classes):
        raise harness.UserError(f"{path}: model_config has {config.num_classes} classes but the checkpoint names {len(classes)}")  # fmt: skip
    model = build_detector(config)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise harness.UserError(f"{path}: weights do not fit model_config ({first})") from None
    return model.to(device).eval(), classes, ckpt["train_config"]


def draw(image, detections, classes, scale=4, threshold=0.0, truth=None, text=True, width=2):
    """uint8 (3, S, S) and {boxes, scores, labels} -> a PIL image scale times larger, each box in
    its class's colour with "name score" above it (if text); true boxes (if given) in thin white."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).resize((image.shape[2] * scale, image.shape[1] * scale), Image.NEAREST)  # fmt: skip
    pen = ImageDraw.Draw(im)
    if truth is not None:
        for b in truth["boxes"].tolist():
            pen.rectangle([v * scale for v in b], outline=(255, 255, 255), width=1)
    for b, s, c in zip(detections["boxes"].tolist(), detections["scores"].tolist(), detections["labels"].tolist()):  # fmt: skip
        if s < threshold:
            continue
        colour = COLOURS[c % len(COLOURS)]
        x1, y1, x2, y2 = (v * scale for v in b)
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        if not text:
            continue
        label = f"{classes[c]} {s:.2f}"
        ty = max(0, y1 - 11)
        pen.rectangle([x1, ty, x1 + 6 * len(label), ty + 10], fill=colour)
        pen.text((x1 + 1, ty - 1), label, fill=(255, 255, 255))
    return im


def grid(images, columns=4):
    from PIL import Image

    w, h = images[0].size
    rows = -(-len(images) // columns)
    out = Image.new("RGB", (w * min(columns, len(images)), h * rows), (40, 40, 40))
    for i, im in enumerate(images):
        out.paste(im, ((i % columns) * w, (i // columns) * h))
    return out


def image_files(paths):
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise harness.UserError(f"--images {p}: no such file or folder")
    if not files:
        raise harness.UserError(f"no image files in {' '.join(paths)}")
    return files


def run_test_images(train_config, n):
    """The first n test images of the run's own data, and their targets."""
    tc = train_config
    try:
        data = load(tc["dataset"], tc["data_dir"], tc["image_size"], tc["smoke"])
    except DataError as e:
        raise harness.UserError(f"cannot load the run's test images: {e} (or pass --images)") from None  # fmt: skip
    x, t = data["test"]
    return x[:n], t[:n]


def run(args):
    harness.check(args.num_samples > 0, f"--num-samples {args.num_samples}: expected a positive number")  # fmt: skip
    harness.check(0 <= args.score_threshold <= 1, f"--score-threshold {args.score_threshold}: expected a number in [0, 1]")  # fmt: skip
    device = harness.pick_device(args.device)
    harness.set_threads(args.threads)
    path = Path(args.checkpoint) if args.checkpoint else Path(args.out_dir) / harness.CHECKPOINT
    model, classes, tc = from_checkpoint(path, device)
    out = harness.prepare_out_dir(args.out_dir)
    size, truth = model.cfg.image_size, None
    if args.images:
        files = image_files(args.images)
        try:
            x = torch.stack([read_image(f, size)[0] for f in files])
        except DataError as e:
            raise harness.UserError(str(e)) from None
        names = [str(f) for f in files]
    else:
        x, truth = run_test_images(tc, args.num_samples)
        names = [f"test image {i}" for i in range(len(x))]
    with torch.no_grad():
        dets = model.detect(x.to(device).float() / 255)
    pictures = []
    for i, (name, d) in enumerate(zip(names, dets)):
        keep = d["scores"] >= args.score_threshold
        found = ", ".join(f"{classes[c]} {s:.2f} at ({', '.join(f'{v:.0f}' for v in b)})" for b, s, c in zip(d["boxes"][keep].tolist(), d["scores"][keep].tolist(), d["labels"][keep].tolist()))  # fmt: skip
        print(f"{name}: {int(keep.sum())} detections{': ' + found if found else ''}")
        pictures.append(draw(x[i], d, classes, threshold=args.score_threshold, truth=truth[i] if truth else None))  # fmt: skip
    target = out / "detections.png"
    grid(pictures).save(target)
    print(f"wrote {target} ({model.cfg.detector} detector; white: true boxes)" if truth else f"wrote {target}")  # fmt: skip
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return harness.run_main(lambda: run(args), lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
