"""Classify images with a trained LeNet-5 and look inside it: C1 filters and feature maps.

The model is rebuilt from the checkpoint alone (its config says the variant, dataset and input
normalisation). tests/test_inference.py loads a checkpoint made by a smoke run.

    python inference.py                        # 8 random test images + C1 filters + feature maps
    python inference.py my_digit.png --show    # top-3 classes; --show saves a PNG with the bars
    python generate_digits.py && python inference.py runs/generated/*.png

Image files (PNG, JPG, ...) are read as the training images look: greyscale; if the background
(the border pixels) is lighter than the ink, the image is inverted, since MNIST-style digits are
light on dark; for digits and MNIST the ink's bounding box is scaled to fit a 20x20 box (digits:
28x28, since sklearn's digits fill their frame) and centred on its centre of mass in 28x28 (Fashion:
the whole image is resized to 28x28); then zero-padded to 32x32 as in training.
"""

import argparse
from pathlib import Path

import harness
import numpy as np
from data import CLASS_NAMES, DataError, load_dataset
from harness import UserError
from model import LeNet5, ModelConfig, softmax
from train import normalize, predict_logits


def load_model(out_dir):
    """-> (model, config) from OUT_DIR/checkpoint.npz: LeNet5(**model_config), its weights, and
    the train config with the input normalisation the model was trained with."""
    path = Path(out_dir) / harness.CHECKPOINT
    ckpt = harness.load_checkpoint(path)
    try:
        model = LeNet5(**vars(harness.config_from_dict(ModelConfig, ckpt["model_config"])))
        config = dict(ckpt["train_config"], **ckpt["normalize"])
    except (TypeError, ValueError, KeyError) as e:
        raise UserError(f"{path} does not describe a LeNet-5 this code can build ({e})") from None
    harness.load_params(model.params, ckpt["model"], path)
    return model, config


def prepare_image(path, dataset="digits"):
    """An image file -> (32, 32) float32 in [0, 1], light ink on a dark background."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise DataError(f"no such file: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path} is not a readable image ({e.__class__.__name__})") from None
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    if border.mean() > 0.5:  # dark ink on a light background: invert
        img, border = 1.0 - img, 1.0 - border
    background = np.median(border)
    img = np.clip((img - background) / max(img.max() - background, 1e-6), 0.0, 1.0)
    if dataset == "fashion-mnist":
        return _pad32(_resize(img, 28, 28))
    ys, xs = np.nonzero(img > 0.2)
    if len(ys) == 0:
        raise DataError(f"{path}: no ink found (the image is blank)")
    img = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]  # crop to the ink
    box = 28 if dataset == "digits" else 20
    scale = box / max(img.shape)
    h, w = max(1, round(img.shape[0] * scale)), max(1, round(img.shape[1] * scale))
    img = _resize(img, h, w)
    if dataset == "mnist":  # MNIST centres the centre of mass, not the box
        cy, cx = (np.indices(img.shape) * img).sum(axis=(1, 2)) / max(img.sum(), 1e-6)
        top, left = int(np.clip(round(14 - cy), 0, 28 - h)), int(np.clip(round(14 - cx), 0, 28 - w))
    else:
        top, left = (28 - h) // 2, (28 - w) // 2
    canvas = np.zeros((28, 28), dtype=np.float32)
    canvas[top : top + h, left : left + w] = img
    return _pad32(canvas)


def _resize(img, h, w):
    from PIL import Image

    return np.asarray(Image.fromarray(img, mode="F").resize((w, h), Image.BILINEAR)).clip(0, 1)


def _pad32(img28):
    out = np.zeros((32, 32), dtype=np.float32)
    out[2:30, 2:30] = img28
    return out


def classify(model, config, images):
    """images (N, 32, 32) in [0, 1] -> probabilities (N, 10)."""
    x = normalize(images[:, None].astype(np.float32), config["mean"], config["std"])
    return softmax(predict_logits(model, x))


def report(names, label, probs, truth=None):
    top = np.argsort(probs)[::-1][:3]
    guesses = ", ".join(f"{names[k]} {probs[k]:.3f}" for k in top)
    mark = ""
    if truth is not None:
        mark = f"  (true: {names[truth]}" + (")" if top[0] == truth else ", WRONG)")
    print(f"{label}: {guesses}{mark}")


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("images", nargs="*", help="image files to classify (PNG, JPG...); none: random test images")  # fmt: skip
    p.add_argument("--out-dir", default="runs", help="where train.py wrote checkpoint.npz; PNGs go here too")  # fmt: skip
    p.add_argument("--num-samples", type=int, default=8, help="random test images to classify when no files are given")  # fmt: skip
    p.add_argument("--data-dir", default=None, help="override the checkpoint's --data-dir (mnist, fashion-mnist)")  # fmt: skip
    p.add_argument("--show", action="store_true", help="save OUT_DIR/prediction_<file name>.png per image with its class probabilities")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="picks the random test images")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return harness.run_main(lambda: run(args), lambda: args.out_dir)


def run(args):
    from visualize import plot_feature_maps, plot_filters, plot_prediction

    harness.check(args.num_samples > 0, f"--num-samples must be positive, got {args.num_samples}")
    model, config = load_model(args.out_dir)
    names, out = CLASS_NAMES[config["dataset"]], Path(args.out_dir)
    if args.images:
        images = np.stack([prepare_image(f, config["dataset"]) for f in args.images])
        labels = [Path(f).name for f in args.images]
        # generate_digits.py names its files "<digit>_<n>.png": use that as ground truth
        truths = [
            int(n[0])
            if n[0].isdigit() and n[1:2] == "_" and config["dataset"] != "fashion-mnist"
            else None
            for n in labels
        ]
    else:
        data_dir = args.data_dir or config["data_dir"]
        data = load_dataset(
            config["dataset"], data_dir, False, config["test_set_only"], config["seed"]
        )
        x_test, y_test = data["test"]
        pick = np.random.default_rng(args.seed).choice(
            len(y_test), size=min(args.num_samples, len(y_test)), replace=False
        )
        images, truths = x_test[pick, 0], [int(y_test[i]) for i in pick]
        labels = [f"test image #{i}" for i in pick]
    probs = classify(model, config, images)
    print(f"LeNet-5 ({config['variant']}, trained on {config['dataset']}): top-3 classes")
    for label, pr, truth in zip(labels, probs, truths):
        report(names, label, pr, truth)
    known = [(int(np.argmax(pr)) == t) for pr, t in zip(probs, truths) if t is not None]
    if known:
        print(f"accuracy on these {len(known)} labelled images: {np.mean(known):.3f}")
    if args.show:
        for i, (label, pr) in enumerate(zip(labels, probs)):
            stem = Path(args.images[i]).stem if args.images else f"test_{label.split('#')[1]}"
            path = out / f"prediction_{stem}.png"  # named after its input: no stale mix-ups
            plot_prediction(images[i], pr, names, f"{label}: {names[int(np.argmax(pr))]}", path)
            print(f"wrote {path}")
    plot_filters(model.params["C1.W"], out / "c1_filters.png")
    maps = {}
    model.forward(normalize(images[:1, None], config["mean"], config["std"]), keep=maps)
    plot_feature_maps(images[0], maps, out / "feature_maps.png")
    print(
        f"wrote {out / 'c1_filters.png'} and {out / 'feature_maps.png'} (feature maps of {labels[0]})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
