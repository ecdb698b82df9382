"""Top-k predictions of a trained ResNet for image files or the run's test images, or of a
torchvision ResNet state dict (`--init-from torchvision --weights PATH`, e.g. ImageNet's
resnet18-f37072fd.pth) loaded unchanged into model.py's network.

    python inference.py                                  # the run's checkpoint on its test images
    python inference.py --images photo.jpg photos/ --top-k 3
    python inference.py --init-from torchvision --weights ~/models/resnet18-f37072fd.pth --images cat.jpg

The architecture of a torchvision file (resnet18, resnet34 or resnet50) is read from its
keys; images are resized (shorter side 256), centre-cropped to 224 and normalised with
ImageNet's mean and std, as torchvision's ImageNet transform. Nothing is downloaded: class
names come from `--classes FILE` (one per line), else they are printed as indices.

Tests (tests/test_inference.py): predictions on the gate checkpoint; a random torchvision
resnet18 saved to a file predicts exactly as torchvision does; weights of another
architecture, a file that is not an image, a missing checkpoint are one `error:` line.
"""

import argparse
from pathlib import Path

import harness
import torch
from data import DataError, load, load_image, resize
from model import IMAGENET_ARCHS, ModelConfig, build_model, load_torchvision

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--out-dir", default="runs", help="the run to load (OUT_DIR/checkpoint.pt)")
    p.add_argument("--checkpoint", default="", help="a checkpoint path (default OUT_DIR/checkpoint.pt)")  # fmt: skip
    p.add_argument("--images", nargs="*", default=[], help="image files or folders (default: the run's test images)")  # fmt: skip
    p.add_argument("--num-samples", type=int, default=8, help="test images shown when --images is not given")  # fmt: skip
    p.add_argument("--top-k", type=int, default=3, help="predictions shown per image")
    p.add_argument("--init-from", default="", choices=["", "torchvision"], help="torchvision: a torchvision ResNet state dict instead of a checkpoint")  # fmt: skip
    p.add_argument(
        "--weights", default="", help="with --init-from torchvision: the state dict file"
    )
    p.add_argument("--classes", default="", help="with --init-from torchvision: a file of class names, one per line")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: half the cores)")
    return p


def from_checkpoint(path, device):
    """(model, info) from our checkpoint alone; info: classes, mean, std, side, train_config."""
    ckpt = harness.load_checkpoint(path, device)
    info = ckpt.get("data")
    if not info:
        raise harness.UserError(f"{path} lacks its data description: not a checkpoint of resnet/train.py")  # fmt: skip
    try:
        config = ModelConfig(**ckpt["model_config"])
        model = build_model(config)
        model.load_state_dict(ckpt["model"])
    except (TypeError, ValueError, RuntimeError) as e:
        raise harness.UserError(f"{path}: weights do not fit model_config ({str(e).strip().splitlines()[-1].strip()})") from None  # fmt: skip
    return model.to(device).eval(), info | {"side": config.image_size, "crop": 0, "train_config": ckpt["train_config"]}  # fmt: skip


def from_torchvision(weights, classes_file, device):
    """A torchvision ResNet state dict in model.py's ResNet: the arch read from its keys."""
    path = Path(weights)
    if not path.is_file():
        raise harness.UserError(f"--weights {weights}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a damaged file
        raise harness.UserError(f"{path} is not a readable weights file ({type(e).__name__})") from None  # fmt: skip
    keys = set(state) if isinstance(state, dict) else set()
    with torch.device("meta"):  # names and shapes only
        fits = [
            a for a in IMAGENET_ARCHS if set(build_model(ModelConfig(arch=a)).state_dict()) == keys
        ]
    if not fits:
        raise harness.UserError(f"{path} is not a torchvision resnet18, resnet34 or resnet50 state dict (its keys differ)")  # fmt: skip
    num_classes = state["fc.weight"].shape[0]
    model = build_model(ModelConfig(arch=fits[0], num_classes=num_classes))
    try:
        load_torchvision(model, state)
    except ValueError as e:
        raise harness.UserError(f"{path}: {e}") from None
    names = [f"class {i}" for i in range(num_classes)]
    if classes_file:
        names = [n.strip() for n in Path(classes_file).read_text().splitlines() if n.strip()]
        harness.check(len(names) == num_classes, f"--classes {classes_file}: {len(names)} names for {num_classes} classes")  # fmt: skip
    info = {"classes": names, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "side": 256, "crop": 224}
    return model.to(device).eval(), info


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


@torch.no_grad()
def predict(model, info, images):
    """uint8 images (B, C, side, side) -> class probabilities (B, num_classes)."""
    device = next(model.parameters()).device
    mean = torch.tensor(info["mean"], device=device)[:, None, None]
    std = torch.tensor(info["std"], device=device)[:, None, None]
    x = (images.to(device).float() / 255 - mean) / std
    if info["crop"]:  # the ImageNet centre crop: 224 of 256
        i = (x.shape[-1] - info["crop"]) // 2
        x = x[..., i : i + info["crop"], i : i + info["crop"]]
    return model(x).softmax(-1)


def show(names, probs, classes, k, labels=None):
    top = probs.topk(min(k, probs.shape[1]), dim=1)
    for i, name in enumerate(names):
        truth = f" (true: {classes[labels[i]]})" if labels is not None else ""
        print(f"{name}{truth}")
        for rank, (p, c) in enumerate(zip(top.values[i].tolist(), top.indices[i].tolist()), 1):
            print(f"  {rank}. {classes[c]:24s} {p:.3f}")


def run(args):
    harness.check(args.top_k > 0, f"--top-k {args.top_k}: expected a positive number")
    harness.check(args.num_samples > 0, f"--num-samples {args.num_samples}: expected a positive number")  # fmt: skip
    harness.check(not (args.weights and not args.init_from), "--weights needs --init-from torchvision")  # fmt: skip
    device = harness.pick_device(args.device)
    harness.set_threads(args.threads)
    if args.init_from == "torchvision":
        harness.check(bool(args.weights and args.images), "--init-from torchvision: pass --weights PATH and --images FILE_OR_FOLDER")  # fmt: skip
        model, info = from_torchvision(args.weights, args.classes, device)
    else:
        path = Path(args.checkpoint) if args.checkpoint else Path(args.out_dir) / harness.CHECKPOINT
        model, info = from_checkpoint(path, device)
    channels = model.config.in_channels
    if args.images:
        files = image_files(args.images)
        try:
            images = torch.stack([load_image(f, info["side"], channels) for f in files])
        except DataError as e:
            raise harness.UserError(str(e)) from None
        show([str(f) for f in files], predict(model, info, images), info["classes"], args.top_k)
        return 0
    tc = info["train_config"]
    try:
        data = load(tc["dataset"], tc["data_dir"], False, tc["image_size"])
    except DataError as e:
        raise harness.UserError(f"cannot load the run's test images: {e} (or pass --images)") from None  # fmt: skip
    x, y = data["test"]
    x, y = resize(x[: args.num_samples], info["side"]), y[: args.num_samples]
    probs = predict(model, info, x)
    show([f"test image {i}" for i in range(len(y))], probs, info["classes"], args.top_k, y.tolist())
    print(f"top-1 correct: {(probs.argmax(1).cpu() == y).sum().item()} of {len(y)}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return harness.run_main(lambda: run(args), lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
