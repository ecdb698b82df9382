"""Load a checkpoint written by train.py and predict.

    python inference.py                              # runs/: random test samples + boundary
    python inference.py --point 0.5 -0.2 --point 0 0 # classify points of your own
    python inference.py --csv points.csv             # one point per row (points.csv ships)

The model is rebuilt from the checkpoint's model_config alone (np.load with
allow_pickle=False). For 2-D data the decision boundary is re-drawn with your
points on it (OUT_DIR/inference_boundary.png). Tests (tests/test_train.py)
load a freshly trained checkpoint, check predictions equal train.py's and
check the error lines for a missing checkpoint, a wrong feature count, an
empty CSV and non-finite points.
"""

import argparse
from pathlib import Path

import harness
import numpy as np
from data import CLASS_NAMES, TOYS_2D, DataError, load_dataset
from harness import UserError
from model import ModelConfig, build_model, predict, to_labels
from plots import draw_task_figure
from train import TrainConfig


def load_model(path):
    """-> (model in eval mode, model config, train config, checkpoint) from checkpoint.npz."""
    ckpt = harness.load_checkpoint(path)
    try:
        mcfg = harness.config_from_dict(ModelConfig, ckpt["model_config"])
        tcfg = harness.config_from_dict(TrainConfig, ckpt["train_config"])
        model = build_model(mcfg)
    except (TypeError, ValueError) as e:
        raise UserError(f"{path} holds a config this code cannot build ({e})") from None
    harness.load_params(model.params, ckpt["model"], path)
    return model.eval(), mcfg, tcfg, ckpt


def describe(out, task, names=None):
    """One line per row: the class with its probability, or the regressed value."""
    if task == "regression":
        return [f"y = {v:+.4f}" for v in out[:, 0]]
    if task == "binary":
        p1 = 1.0 / (1.0 + np.exp(-out[:, 0].astype(np.float64)))  # sigmoid(logit)
        probs = np.stack([1 - p1, p1], 1)
    else:
        z = out.astype(np.float64) - out.max(1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)  # softmax
    labels = to_labels(out, task)
    name = (lambda c: f"{c} ({names[c]})") if names else str
    return [f"class {name(c)}  p={probs[i, c]:.3f}" for i, c in enumerate(labels)]


def read_points(args, n_features, dataset):
    """--point and --csv rows as one (N, D) array, or None; a bad row is one line."""
    rows = [np.asarray(p, dtype=float) for p in args.point or []]
    if args.csv:
        path = Path(args.csv)
        harness.check(path.is_file(), f"no such file: {path}")
        lines = [l for l in path.read_text().splitlines() if l.strip()]
        try:
            float(lines[0].split(",")[0]) if lines else None
        except ValueError:  # a header line
            lines = lines[1:]
        harness.check(lines, f"{path} holds no points (one point per row, comma-separated)")
        try:
            rows += [np.array([float(v) for v in l.split(",")]) for l in lines]
        except ValueError as e:
            raise UserError(f"{path}: not a number ({e})") from None
    for r in rows:
        harness.check(
            r.shape == (n_features,),
            f"expected {n_features} features per point (this checkpoint was trained on {dataset}), got {r.size}",
        )
        harness.check(np.isfinite(r).all(), f"point {r.tolist()} is not finite: give numbers")
    return np.stack(rows) if rows else None


def run(args):
    harness.check(args.num_samples > 0, f"--num-samples must be positive, got {args.num_samples}")
    out_dir = Path(args.out_dir)
    model, mcfg, cfg, ckpt = load_model(args.checkpoint or out_dir / harness.CHECKPOINT)
    task, dtype = mcfg.task, np.dtype(mcfg.dtype)
    names = CLASS_NAMES.get(cfg.dataset)
    print(f"loaded {cfg.dataset} MLP {model.sizes} ({ckpt['step']} updates)")
    points = read_points(args, mcfg.sizes[0], cfg.dataset)
    data_dir = args.data_dir or cfg.data_dir
    try:
        data = load_dataset(cfg.dataset, cfg.seed, data_dir, False, cfg.n_train, cfg.n_train // 2)
    except DataError as e:
        data = None
        print(f"(test set unavailable: {e})")
    if points is not None:
        out = predict(model, points.astype(dtype))
        for p, line in zip(points, describe(out, task, names)):
            print(f"{np.array2string(p, precision=3, separator=', ')} -> {line}")
    elif data is not None:
        rng = np.random.default_rng(args.seed)
        k = min(args.num_samples, len(data.X_test))
        idx = rng.choice(len(data.X_test), size=k, replace=False)
        out = predict(model, data.X_test[idx].astype(dtype))
        for i, line in zip(idx, describe(out, task, names)):
            truth = data.y_test[i]
            shown = f"{truth[0]:+.4f}" if task == "regression" else str(truth)
            x = data.X_test[i]
            where = np.array2string(x, precision=3, separator=", ") if x.size <= 4 else f"#{i}"
            print(f"test {where} -> {line}   (true {shown})")
        out = predict(model, data.X_test.astype(dtype))
        if task == "regression":
            print(f"test MSE {np.mean((out - data.y_test) ** 2):.4f} on {len(out)} points")
        else:
            acc = np.mean(to_labels(out, task) == data.y_test)
            print(f"test accuracy {acc:.4f} on {len(out)} points")
    if data is not None and (cfg.dataset in TOYS_2D or points is None):
        harness.prepare_out_dir(out_dir, clear_figures=False)
        name = (
            "inference_boundary.png" if cfg.dataset in TOYS_2D else f"inference_{cfg.dataset}.png"
        )
        draw_task_figure(model, data, mcfg, out_dir, points, name)
        print(f"wrote {out_dir / name}")


def build_parser():
    p = argparse.ArgumentParser(
        description="Predict with a NumPy MLP trained by train.py.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out-dir", default="runs", help="where train.py wrote checkpoint.npz; figures go here too")  # fmt: skip
    p.add_argument("--checkpoint", default=None, help="checkpoint path (default: OUT_DIR/checkpoint.npz)")  # fmt: skip
    p.add_argument("--point", type=float, nargs="+", action="append", metavar="X",
                   help="one point's features; repeat the flag for more points")  # fmt: skip
    p.add_argument("--csv", default=None, help="file of points, one per row, comma-separated")
    p.add_argument("--num-samples", type=int, default=8, help="random test samples shown when no points are given")  # fmt: skip
    p.add_argument("--data-dir", default=None, help="override the checkpoint's --data-dir (real datasets)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="picks the random test samples")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return harness.run_main(lambda: run(args), lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
