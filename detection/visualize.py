"""Pictures of the detectors: anchors on an image, proposals before and after NMS, PR curves,
and the three detectors side by side with their table.

    python visualize.py                      # runs/: anchors.png, proposals.png (two-stage), pr.png
    python visualize.py --compare runs/sliding runs/two-stage runs/one-stage   # + compare.png, the table
"""

import argparse
import json
from pathlib import Path

import harness
import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from inference import COLOURS, draw, from_checkpoint, grid, run_test_images  # noqa: E402
from metrics import evaluate  # noqa: E402
from model import TwoStage  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--out-dir", default="runs", help="the run to draw (OUT_DIR/checkpoint.pt); PNGs go here")  # fmt: skip
    p.add_argument("--compare", nargs="*", default=[], help="run folders of different detectors: side by side + table")  # fmt: skip
    p.add_argument("--num-samples", type=int, default=4, help="test images per picture")
    p.add_argument("--n-test", type=int, default=100, help="test images for the PR curves")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: half the cores)")
    return p


def show(ax, pil, title):
    ax.imshow(pil)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def anchors_figure(model, image, path):
    """The A anchors of three cells, and every anchor centre (the stride-4 grid)."""
    cfg, A = model.cfg, len(model.cfg.anchor_sizes) * len(model.cfg.anchor_ratios)
    fs = cfg.image_size // cfg.stride
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image.permute(1, 2, 0).numpy(), extent=(0, cfg.image_size, cfg.image_size, 0))
    centres = (model.anchors[::A, :2] + model.anchors[::A, 2:]) / 2
    ax.plot(centres[:, 0], centres[:, 1], ".", color="white", ms=1.5)
    for n, cell in enumerate([fs * 3 + 3, fs * fs // 2 + fs // 2, fs * (fs - 4) + fs - 4]):
        for a in model.anchors[cell * A : (cell + 1) * A].tolist():
            ax.add_patch(plt.Rectangle(a[:2], a[2] - a[0], a[3] - a[1], fill=False, color=[c / 255 for c in COLOURS[n]], lw=1))  # fmt: skip
    ax.set_xlim(-8, cfg.image_size + 8)
    ax.set_ylim(cfg.image_size + 8, -8)
    ax.set_title(f"{A} anchors per cell (sizes {cfg.anchor_sizes}, h/w {cfg.anchor_ratios}), {fs}x{fs} cells", fontsize=7)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def proposals_figure(model, x, path):
    """Each image: the RPN's 100 best proposals before NMS (of pre_nms), then those NMS keeps."""
    with torch.no_grad():
        obj, deltas = model.rpn(model.backbone(x.float() / 255))
        before = model.proposals(obj, deltas, before_nms=True)
        after = model.proposals(obj, deltas)
    fig, axes = plt.subplots(2, len(x), figsize=(2.2 * len(x), 4.6), squeeze=False)
    for i in range(len(x)):
        n = len(before[i][0])
        for row, (boxes, title) in enumerate([(before[i][0][:100], f"best 100 of {n} before NMS"), (after[i], f"{len(after[i])} after NMS {model.cfg.rpn_nms}")]):  # fmt: skip
            d = {"boxes": boxes, "scores": torch.ones(len(boxes)), "labels": torch.zeros(len(boxes), dtype=torch.long)}  # fmt: skip
            show(axes[row, i], draw(x[i], d, [""], scale=3, text=False, width=1), title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pr_figure(model, classes, x, t, path):
    with torch.no_grad():
        preds = [d for i in range(0, len(x), 32) for d in model.detect(x[i : i + 32].float() / 255)]
    result = evaluate(preds, t, len(classes))
    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    for c, (precision, recall) in result["pr50"].items():
        ax.plot(recall, precision, label=f"{classes[c]} AP {result['ap50'][c]:.3f}", color=[v / 255 for v in COLOURS[c % len(COLOURS)]])  # fmt: skip
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{model.cfg.detector}: PR at IoU 0.5 on {len(x)} test images, mAP {result['map50']:.3f}", fontsize=8)  # fmt: skip
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(dirs, n, out):
    """Detections of each run on the same test images, one column each, and the table."""
    rows, columns = [], []
    print("| detector | mAP@0.5 | mAP@[.5:.95] | VOC11 mAP@0.5 | images/s | steps | training s | threads |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for d in dirs:
        model, classes, tc = from_checkpoint(Path(d) / harness.CHECKPOINT, torch.device("cpu"))
        m = json.loads((Path(d) / "metrics.json").read_text())
        print(f"| {m['detector']} | {m['value']:.3f} | {m['test_map']:.3f} | {m['test_map50_voc11']:.3f} | {m['images_per_second']:.1f} | {m['steps']} | {m['seconds']:.0f} | {m['threads']} |")  # fmt: skip
        x, t = run_test_images(tc, n)
        with torch.no_grad():
            dets = model.detect(x.float() / 255)
        columns.append([draw(x[i], dets[i], classes, scale=3, threshold=0.3, truth=t[i]) for i in range(len(x))])  # fmt: skip
        rows.append(m["detector"])
    fig, axes = plt.subplots(n, len(dirs), figsize=(2.4 * len(dirs), 2.4 * n), squeeze=False)
    for j, col in enumerate(columns):
        for i, pil in enumerate(col):
            show(axes[i, j], pil, rows[j] if i == 0 else "")
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=100)
    plt.close(fig)


def run(args):
    harness.check(args.num_samples > 0, f"--num-samples {args.num_samples}: expected a positive number")  # fmt: skip
    harness.check(args.n_test > 0, f"--n-test {args.n_test}: expected a positive number")
    harness.set_threads(args.threads)
    out = harness.prepare_out_dir(args.out_dir)
    model, classes, tc = from_checkpoint(out / harness.CHECKPOINT, torch.device("cpu"))
    x, t = run_test_images(tc, max(args.n_test, args.num_samples))
    written = []
    anchors_model = model if isinstance(model, TwoStage) else TwoStage(model.cfg)
    anchors_figure(anchors_model, x[0], out / "anchors.png")
    written.append("anchors.png")
    if isinstance(model, TwoStage):
        proposals_figure(model, x[: args.num_samples], out / "proposals.png")
        written.append("proposals.png")
    pr_figure(model, classes, x[: args.n_test], t[: args.n_test], out / "pr.png")
    written.append("pr.png")
    if args.compare:
        compare(args.compare, args.num_samples, out)
        written.append("compare.png")
    grid([draw(x[i], {"boxes": t[i]["boxes"], "scores": torch.ones(len(t[i]["labels"])), "labels": t[i]["labels"]}, classes) for i in range(args.num_samples)]).save(out / "scenes.png")  # fmt: skip
    written.append("scenes.png")
    print(f"wrote {', '.join(written)} in {out}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return harness.run_main(lambda: run(args), lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
