"""Load a checkpoint written by train.py and predict.

    python inference.py                              # runs/: random test samples + boundary
    python inference.py --point 0.5 -0.2 --point 0 0 # classify points of your own
    python inference.py --csv points.csv             # one point per row, comma-separated

The model is rebuilt from the checkpoint's config alone (np.load with
allow_pickle=False). For 2-D data the decision boundary is re-drawn with your
points on it (OUT_DIR/inference_boundary.png). Tests (tests/test_train.py)
load a freshly trained checkpoint, check predictions equal train.py's and
check the error lines for a missing checkpoint and a wrong feature count.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from data import CLASS_NAMES, TOYS_2D, DataError, load_dataset
from train import Config, Parser, build_model, draw_task_figure, load_checkpoint, predict, to_labels


def load_model(path):
    """-> (model in eval mode, config, meta) from OUT_DIR/checkpoint.npz."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; run train.py first")
    params, _, meta = load_checkpoint(path)  # ValueError with one line when unreadable
    try:
        cfg = Config(**meta["config"])
        last = max((k for k in params if k.endswith(".W")), key=lambda k: int(k.split(".")[0]))
        n_out = params[last].shape[1]  # the output Linear's W is (hidden, n_out)
        model = build_model(cfg, meta["n_features"], n_out, np.random.default_rng(0))
        model.load_params(params)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path} is unreadable ({e!r}); run train.py again") from e
    return model.eval(), cfg, meta


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


def read_points(args, n_features):
    rows = [np.asarray(p, dtype=float) for p in args.point or []]
    if args.csv:
        try:
            table = np.loadtxt(args.csv, delimiter=",", ndmin=2)
        except ValueError:  # a header line
            table = np.loadtxt(args.csv, delimiter=",", ndmin=2, skiprows=1)
        rows += list(table)
    for r in rows:
        if r.shape != (n_features,):
            raise ValueError(f"expected {n_features} features per point, got {r.size}")
    return np.stack(rows) if rows else None


def run(args):
    out_dir = Path(args.out_dir)
    model, cfg, meta = load_model(args.checkpoint or out_dir / "checkpoint.npz")
    task, dtype = meta["task"], np.dtype(cfg.dtype)
    names = CLASS_NAMES.get(cfg.dataset)
    print(f"loaded {cfg.dataset} MLP {model.sizes} ({meta['epoch']} epochs)")
    points = read_points(args, meta["n_features"])
    data_dir = args.data_dir or cfg.data_dir
    try:
        data = load_dataset(cfg.dataset, cfg.seed, data_dir, False, cfg.n_train, cfg.n_train // 2)
    except DataError as e:
        data = None
        print(f"(test set unavailable: {e})")
    if points is not None:
        out = predict(model, points.astype(dtype), task)
        for p, line in zip(points, describe(out, task, names)):
            print(f"{np.array2string(p, precision=3, separator=', ')} -> {line}")
    elif data is not None:
        rng = np.random.default_rng(args.seed)
        idx = rng.choice(len(data.X_test), size=min(args.n, len(data.X_test)), replace=False)
        out = predict(model, data.X_test[idx].astype(dtype), task)
        for i, line in zip(idx, describe(out, task, names)):
            truth = data.y_test[i]
            shown = f"{truth[0]:+.4f}" if task == "regression" else str(truth)
            x = data.X_test[i]
            where = np.array2string(x, precision=3, separator=", ") if x.size <= 4 else f"#{i}"
            print(f"test {where} -> {line}   (true {shown})")
        out = predict(model, data.X_test.astype(dtype), task)
        if task == "regression":
            print(f"test MSE {np.mean((out - data.y_test) ** 2):.4f} on {len(out)} points")
        else:
            acc = np.mean(to_labels(out, task) == data.y_test)
            print(f"test accuracy {acc:.4f} on {len(out)} points")
    if data is not None and (cfg.dataset in TOYS_2D or points is None):
        out_dir.mkdir(parents=True, exist_ok=True)
        name = (
            "inference_boundary.png" if cfg.dataset in TOYS_2D else f"inference_{cfg.dataset}.png"
        )
        draw_task_figure(model, data, cfg, out_dir, points, name)
        print(f"wrote {out_dir / name}")


def main(argv=None):
    p = Parser(
        description="Predict with a NumPy MLP trained by train.py.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--out-dir", default="runs", help="where train.py wrote checkpoint.npz; figures go here too"
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="explicit checkpoint path (default: OUT_DIR/checkpoint.npz)",
    )
    p.add_argument(
        "--point",
        type=float,
        nargs="+",
        action="append",
        metavar="X",
        help="one point's features; repeat the flag for more points",
    )
    p.add_argument("--csv", default=None, help="file of points, one per row, comma-separated")
    p.add_argument(
        "--n", type=int, default=8, help="random test samples shown when no points are given"
    )
    p.add_argument(
        "--data-dir", default=None, help="override the checkpoint's --data-dir (real datasets)"
    )
    p.add_argument("--seed", type=int, default=0, help="picks the random test samples")
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu"),
        help="NumPy runs on the CPU; auto = cpu",
    )
    args = p.parse_args(argv)
    try:
        run(args)
    except (FileNotFoundError, ValueError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
