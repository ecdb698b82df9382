"""Top-k predictions of AlexNet for image files or folders: from a checkpoint of train.py, or
with torchvision's ImageNet weights (`--init-from torchvision`) loaded into model.py's network.

    python inference.py                                  # the run's checkpoint on its test images
    python inference.py --images cat.jpg photos/ --top-k 5
    python inference.py --init-from torchvision --weights alexnet-owt-7be5be79.pth --images cat.jpg

The ImageNet file is the standard `alexnet-owt-7be5be79.pth`; without --weights the torchvision
cache (torch.hub.get_dir()/checkpoints) is tried, and nothing is downloaded unless --download.
Class names come from torchvision's offline metadata. Preprocessing is the paper's (Section 2):
shorter side resized to 256, the centre 224x224 crop (or ten crops with --ten-crop), ImageNet
mean and std. Grayscale, palette and RGBA files are converted to RGB (alpha dropped).

Tests (tests/test_inference.py): predictions on the trained checkpoint; torchvision-layout
weights load and predict; a file that is not an image, a weights file that is not AlexNet's,
a checkpoint with a wrong class count are each one `error:` line.
"""

import argparse
from pathlib import Path

import harness
import torch
from augment import center_crop, ten_crop_probs
from data import IMAGENET_MEAN, IMAGENET_STD, DataError, load, load_image
from model import AlexNet, AlexNetConfig

WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--out-dir", default="runs", help="the run to load (OUT_DIR/checkpoint.pt)")
    p.add_argument("--checkpoint", default="", help="a checkpoint path (default OUT_DIR/checkpoint.pt)")  # fmt: skip
    p.add_argument("--images", nargs="*", default=[], help="image files or folders (default: the run's test images)")  # fmt: skip
    p.add_argument("--num-samples", type=int, default=8, help="test images shown when --images is not given")  # fmt: skip
    p.add_argument("--top-k", type=int, default=5, help="predictions shown per image")
    p.add_argument("--ten-crop", action="store_true", help="average the softmax over ten crops (Section 4.1)")  # fmt: skip
    p.add_argument("--init-from", default="", choices=["", "torchvision"], help="torchvision: ImageNet weights instead of a checkpoint")  # fmt: skip
    p.add_argument("--weights", default="", help=f"with --init-from torchvision: the {WEIGHTS_FILE} file")  # fmt: skip
    p.add_argument("--download", action="store_true", help="with --init-from torchvision: fetch the weights if absent")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: half the cores)")
    return p


# ----------------------------------------------------------------------------- loading


def from_checkpoint(path, device):
    """(model, info) from our checkpoint alone; info: classes, mean, std, crop, source side."""
    ckpt = harness.load_checkpoint(path, device)
    info = ckpt.get("data")
    if not info:
        raise harness.UserError(f"{path} lacks its data description: not a checkpoint of alexnet/train.py")  # fmt: skip
    try:
        config = AlexNetConfig(**ckpt["model_config"])
    except (TypeError, ValueError) as e:
        raise harness.UserError(f"{path}: bad model_config ({e})") from None
    if config.num_classes != len(info["classes"]):
        raise harness.UserError(f"{path}: model_config has {config.num_classes} classes but the checkpoint names {len(info['classes'])}")  # fmt: skip
    model = AlexNet(config)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise harness.UserError(f"{path}: weights do not fit model_config ({first})") from None
    return model.to(device).eval(), info | {"train_config": ckpt["train_config"]}


def torchvision_weights(weights, download):
    if weights:
        path = Path(weights)
        if not path.exists():
            raise harness.UserError(f"--weights {weights}: no such file")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE
    if cached.exists():
        return cached
    if not download:
        raise harness.UserError(f"no --weights given and no {cached}: pass --weights PATH or --download")  # fmt: skip
    import torchvision

    torchvision.models.AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    return cached


def from_torchvision(weights, download, device):
    """torchvision's ImageNet AlexNet in model.py's `torchvision` preset, its state dict as is."""
    path = torchvision_weights(weights, download)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise harness.UserError(f"{path} is not a readable weights file ({type(e).__name__})") from None  # fmt: skip
    expected = AlexNet(AlexNetConfig(preset="torchvision", num_classes=1000)).state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        raise harness.UserError(f"{path} is not torchvision AlexNet's state dict (its keys differ from features.0.weight ... classifier.6.bias)")  # fmt: skip
    num_classes = state["classifier.6.weight"].shape[0]
    for k, v in expected.items():
        if not k.startswith("classifier.6") and tuple(state[k].shape) != tuple(v.shape):
            raise harness.UserError(f"{path} is not AlexNet's: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")  # fmt: skip
    model = AlexNet(AlexNetConfig(preset="torchvision", num_classes=num_classes))
    model.load_state_dict(state)
    if num_classes == 1000:
        import torchvision

        classes = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["categories"]
    else:
        classes = [f"class {i}" for i in range(num_classes)]
    info = {
        "classes": classes,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "crop": 224,
        "source": 256,
    }
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


# ----------------------------------------------------------------------------- predicting


@torch.no_grad()
def predict(model, info, images, ten_crop=False):
    """uint8 images (B, C, source, source) -> class probabilities (B, num_classes)."""
    device = next(model.parameters()).device
    mean = torch.tensor(info["mean"], device=device)[:, None, None]
    std = torch.tensor(info["std"], device=device)[:, None, None]
    x = (images.to(device).float() / 255 - mean) / std
    if ten_crop:
        return ten_crop_probs(model, x, info["crop"])
    return model(center_crop(x, info["crop"])).softmax(-1)


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
        harness.check(bool(args.images), "--init-from torchvision: pass --images FILE_OR_FOLDER")
        model, info = from_torchvision(args.weights, args.download, device)
    else:
        path = Path(args.checkpoint) if args.checkpoint else Path(args.out_dir) / harness.CHECKPOINT
        model, info = from_checkpoint(path, device)
    channels = model.config.in_channels
    if args.images:
        files = image_files(args.images)
        try:
            images = torch.stack([load_image(f, info["source"], channels) for f in files])
        except DataError as e:
            raise harness.UserError(str(e)) from None
        show([str(f) for f in files], predict(model, info, images, args.ten_crop), info["classes"], args.top_k)  # fmt: skip
        return 0
    tc = info["train_config"]
    try:
        data = load(tc["dataset"], tc["data_dir"], False, tc["image_size"], tc["num_classes"], tc["smoke"])  # fmt: skip
    except DataError as e:
        raise harness.UserError(f"cannot load the run's test images: {e} (or pass --images)") from None  # fmt: skip
    x, y = data["test"]
    x, y = x[: args.num_samples], y[: args.num_samples]
    probs = predict(model, info, x, args.ten_crop)
    show([f"test image {i}" for i in range(len(y))], probs, info["classes"], args.top_k, y.tolist())
    print(f"top-1 correct: {(probs.argmax(1).cpu() == y).sum().item()} of {len(y)}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return harness.run_main(lambda: run(args), lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
