"""Render fresh digit images with the fonts matplotlib ships, to try inference.py offline.

Each image is one digit drawn with Pillow in a random font (DejaVu Sans/Serif/Mono, STIX,
Computer Modern...), random size, stroke thickness, rotation and position, dark ink on a light
background like a digit written on paper (inference.py inverts it). Files are named
"<digit>_<n>.png", so inference.py can score its predictions.

    python generate_digits.py --num-samples 30 --out-dir runs/generated
    python inference.py runs/generated/*.png

These are printed digits, not handwriting: a model trained on sklearn's 8x8 handwritten digits
meets a shift in style here (README, Results). tests/test_inference.py checks the files and labels.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

FONTS = [
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
]


def font_paths():
    """The TrueType files matplotlib installs under mpl-data/fonts/ttf (those that exist)."""
    import matplotlib

    root = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return [root / f for f in FONTS if (root / f).exists()]


def render_digit(digit, rng, fonts, size=64):
    """One (size, size) uint8 image: the digit in dark ink on a light, slightly uneven page."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(
        str(fonts[rng.integers(len(fonts))]), int(size * rng.uniform(0.55, 0.8))
    )
    canvas = Image.new("L", (size * 2, size * 2), color=0)
    draw = ImageDraw.Draw(canvas)
    stroke = int(rng.integers(0, 3))  # thickness: 0 to 2 extra pixels around each stroke
    draw.text(
        (size, size),
        str(digit),
        fill=255,
        font=font,
        anchor="mm",
        stroke_width=stroke,
        stroke_fill=255,
    )
    canvas = canvas.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR)
    dx, dy = rng.integers(-size // 10, size // 10 + 1, size=2)
    left, top = size // 2 + dx, size // 2 + dy
    ink = np.asarray(canvas.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    paper = rng.uniform(0.85, 1.0) - rng.uniform(0, 0.05, size=(size, size))
    return (np.clip(paper * (1.0 - 0.9 * ink), 0, 1) * 255).astype(np.uint8)


def generate(out_dir, n=30, seed=0):
    """Write n images, digits 0..9 in turn, to out_dir; returns their paths."""
    from PIL import Image

    fonts = font_paths()
    if not fonts:
        raise RuntimeError("matplotlib's fonts were not found")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        digit = i % 10
        path = out / f"{digit}_{i:03d}.png"
        Image.fromarray(render_digit(digit, rng, fonts)).save(path)
        paths.append(path)
    return paths


def out_of_distribution(out_dir):
    """Two images that are no digit at all: a 16-bit grey ramp and a white strip on black.

    A softmax classifier has no "none of these" answer: README, Results, shows how sure it is.
    """
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ramp = np.tile(np.linspace(0, 65535, 64)[:, None], (1, 64)).astype(np.uint16)  # top dark
    strip = np.zeros((64, 64), np.uint8)
    strip[:, 26:38] = 255  # a vertical white bar, 12 pixels wide
    paths = [out / "ood_gradient16.png", out / "ood_white_strip.png"]
    Image.fromarray(ramp).save(paths[0])  # mode I;16: a 16-bit greyscale PNG
    Image.fromarray(strip).save(paths[1])
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--num-samples", type=int, default=30, help="how many images (digits 0-9 in turn)")  # fmt: skip
    p.add_argument("--out-dir", default="runs/generated", help="where the PNG files go")
    p.add_argument("--seed", type=int, default=0, help="seeds font, size, rotation, thickness")
    p.add_argument("--ood", action="store_true", help="also write two non-digits: ood_gradient16.png, ood_white_strip.png")  # fmt: skip
    args = p.parse_args(argv)
    if args.num_samples <= 0:
        p.error("--num-samples must be positive")
    try:
        paths = generate(args.out_dir, args.num_samples, args.seed)
        if args.ood:
            paths += out_of_distribution(args.out_dir)
    except (OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"wrote {len(paths)} images to {args.out_dir}/ (e.g. {paths[0].name}); try: python inference.py {args.out_dir}/*.png"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
