"""Classify test images with the teacher and the student side by side, with their soft targets.

Hinton et al. 2015 (https://arxiv.org/abs/1503.02531): the soft targets at temperature T are
softmax(z / T); at T = 1 they are the predictions, at T = 4 or 20 the small probabilities
(the dark knowledge) show.

    python inference.py                       # runs/checkpoint.pt and its teacher, 6 test images
    python inference.py --temperature 20 --num-samples 4

Both models are rebuilt from their checkpoints alone; the student's checkpoint names its
teacher's folder. Writes OUT_DIR/soft_targets.png. tests/test_inference.py runs it.
"""

import argparse
from pathlib import Path

import harness
import torch
from data import DataError, load_dataset
from harness import UserError, check
from model import Classifier, from_config, softmax_t
from visualize import plot_soft_targets


def load_model(path, device):
    ckpt = harness.load_checkpoint(path, device)
    model = Classifier(from_config(ckpt["model_config"])).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def teacher_of(ckpt, path, device):
    """The teacher a student checkpoint names, checked; None for a teacher's own checkpoint."""
    if ckpt["train_config"]["role"] == "teacher":
        return None
    if ckpt.get("teacher_dir"):
        tdir = Path(ckpt["teacher_dir"])
    else:  # a student alone: look for the teacher a kd run in the same folder would use
        tdir = Path(ckpt["train_config"]["teacher_dir"] or path.parent / "teacher")
    tpath = tdir / harness.CHECKPOINT
    check(
        tpath.exists(),
        f"student checkpoint {path} has no teacher: {tpath} is missing (train it with train.py --role teacher --out-dir {tdir})",
    )
    teacher, tckpt = load_model(tpath, device)
    k, kt = ckpt["model_config"]["n_classes"], tckpt["model_config"]["n_classes"]
    check(k == kt, f"teacher {tpath} has {kt} classes, the student {path} has {k}")
    return teacher


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out-dir", default="runs", help="the run folder")
    p.add_argument("--checkpoint", default="", help="default: OUT_DIR/checkpoint.pt")
    p.add_argument("--temperature", type=float, default=4.0, help="T of the soft targets shown")
    p.add_argument("--num-samples", type=int, default=6, help="test images to classify")
    p.add_argument("--data-dir", default="", help="default: the one the run used")
    p.add_argument("--seed", type=int, default=0, help="which test images")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    args = p.parse_args(argv)

    def run():
        check(args.temperature > 0, f"--temperature {args.temperature}: must be > 0")
        check(args.num_samples > 0, f"--num-samples {args.num_samples}: must be > 0")
        device = harness.pick_device(args.device)
        path = Path(args.checkpoint or Path(args.out_dir) / harness.CHECKPOINT)
        model, ckpt = load_model(path, device)
        teacher = teacher_of(ckpt, path, device)
        tc = ckpt["train_config"]
        try:
            data = load_dataset(
                tc["dataset"], args.data_dir or tc["data_dir"], False, tc["test_set_only"]
            )
        except DataError as e:
            raise UserError(str(e)) from None
        x, y = data["test"]
        pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(args.seed))[
            : args.num_samples
        ]
        x, y, T, classes = x[pick].to(device), y[pick], args.temperature, data["classes"]
        models = (
            [("teacher", teacher), (tc["role"], model)]
            if teacher is not None
            else [("teacher", model)]
        )
        rows = []
        with torch.no_grad():
            for name, m in models:
                logits = m(x).float().cpu()
                rows.append((f"{name} T=1", softmax_t(logits, 1.0)))
                rows.append((f"{name} T={T:g}", softmax_t(logits, T)))
        for i in range(len(y)):
            line = f"image {i}: label {classes[y[i]]}"
            for label, probs in rows[::2]:
                line += f" | {label.split()[0]} says {classes[probs[i].argmax()]} ({probs[i].max():.3f})"
            print(line)
            for label, probs in rows[1::2]:
                top = probs[i].topk(3)
                print(
                    f"    {label} soft targets: "
                    + ", ".join(f"{classes[j]} {v:.3f}" for v, j in zip(top.values, top.indices))
                )
        out = Path(args.out_dir) / "soft_targets.png"
        titles = [f"label {classes[c]}" for c in y]
        plot_soft_targets(x[:, 0].cpu().numpy(), titles, rows, classes, out)
        print(f"wrote {out}")

    return harness.run_main(run, lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
