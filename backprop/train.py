"""Train the NumPy MLP of model.py on a toy or real dataset.

    python train.py                          # 3-class spirals, seconds on a CPU
    python train.py --dataset digits         # sklearn 8x8 digits
    python train.py --dataset fashion-mnist --data-dir ../../shared/data

The loop is the whole of supervised learning: forward, loss, backward (the
chain rule, model.py), update (optim.py). Writes to --out-dir: checkpoint.npz
(plain arrays + JSON config, no pickle), metrics.json, loss_curves.png and a
decision_boundary.png (2-D data), fit.png (regression) or predictions.png
(images). Tests (tests/test_train.py): accuracy gates on XOR, spirals, moons
and digits; N epochs == N/2 + --resume + N/2, bitwise; bad-input messages.
"""

import argparse
import json
import math
import os
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import plots
from data import CLASS_NAMES, DATASETS, IMAGES, TOYS_2D, DataError, load_dataset
from model import ACTIVATIONS, INITS, LOSSES, MLP
from optim import OPTIMIZERS, SCHEDULES, lr_at, make_optimizer
from threadpoolctl import threadpool_limits  # installed with scikit-learn
from tqdm import tqdm

# per-dataset defaults for the flags left at None: (hidden, epochs, batch_size, lr)
PRESETS = {
    "toy": ((64, 64), 200, 64, 0.01),
    "digits": ((128, 128), 20, 64, 0.001),
    "image": ((256, 256), 10, 128, 0.001),
}


@dataclass
class Config:
    dataset: str = "spirals"
    data_dir: str = "data"
    download: bool = False
    hidden: tuple | None = None  # None: the dataset's preset
    activation: str = "relu"
    init: str = "he"
    dropout: float = 0.0
    optimizer: str = "adam"
    lr: float | None = None
    weight_decay: float = 0.0
    schedule: str = "cosine"
    step_size: int = 1000  # updates between lr drops, schedule "step"
    gamma: float = 0.5
    epochs: int | None = None
    batch_size: int | None = None
    n_train: int = 1000  # points drawn for the generated datasets (test: half as many)
    dtype: str = "float32"
    threads: int = 1  # BLAS threads; 0 = the library's default
    seed: int = 0
    device: str = "auto"
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False
    figures: bool = True  # loss curves and the task picture (tests switch them off for speed)


class NonFiniteLoss(Exception):
    pass


def stop_message(loss, where, ckpt_path):
    return (
        f"loss is {loss} on {where}; stopped (try a lower --lr). Last good checkpoint: {ckpt_path}"
    )


def resolve(cfg):
    """Fill the None fields from the dataset's preset; --smoke shrinks the run."""
    kind = "image" if cfg.dataset in IMAGES else "digits" if cfg.dataset == "digits" else "toy"
    hidden, epochs, batch_size, lr = PRESETS[kind]
    cfg = replace(
        cfg,
        hidden=tuple(cfg.hidden or hidden),
        epochs=cfg.epochs or (2 if cfg.smoke else epochs),
        batch_size=cfg.batch_size or batch_size,
        lr=cfg.lr or lr,
    )
    return replace(cfg, n_train=min(cfg.n_train, 200)) if cfg.smoke else cfg


def build_model(cfg, n_features, n_out, rng):
    return MLP(
        [n_features, *cfg.hidden, n_out],
        cfg.activation,
        cfg.init,
        cfg.dropout,
        rng,
        np.dtype(cfg.dtype),
    )


def loss_for(task):
    return LOSSES[{"binary": "bce", "multiclass": "softmax_ce", "regression": "mse"}[task]]()


def predict(model, X, task, batch=4096):
    """Eval-mode outputs in batches: logits (classification) or values (regression)."""
    was_training = model.training
    model.eval()
    out = np.concatenate([model.forward(X[i : i + batch]) for i in range(0, len(X), batch)])
    model.train(was_training)
    return out


def to_labels(out, task):
    return (out[:, 0] > 0).astype(np.int64) if task == "binary" else out.argmax(1)


def evaluate(model, X, y, task):
    """(mean loss, metric): accuracy for classification, MSE for regression."""
    out = predict(model, X, task)
    loss = loss_for(task).forward(out, y)
    return loss, (loss if task == "regression" else float(np.mean(to_labels(out, task) == y)))


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path, model, opt, meta):
    """Arrays + one JSON string, written to a temp file then renamed (atomic)."""
    arrays = {f"model.{k}": v for k, v in model.params.items()}
    arrays.update({f"optim.{k}": v for k, v in opt.state_dict().items()})
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def load_checkpoint(path):
    """-> (model arrays, optimizer arrays, meta dict); never unpickles.

    A file that is not such a checkpoint (truncated, not a zip, missing keys)
    raises ValueError with one line for the user.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            model = {k[6:]: z[k] for k in z.files if k.startswith("model.")}
            optim = {k[6:]: z[k] for k in z.files if k.startswith("optim.")}
        meta["config"]["hidden"] = tuple(meta["config"]["hidden"])
    except (KeyError, TypeError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"checkpoint {path} is unreadable ({e!r}); run train.py again") from e
    return model, optim, meta


# ---------------------------------------------------------------- training


def train(cfg):
    """Train (checkpointing about ten times), write plots and metrics.json; return the metrics."""
    # small matrices: BLAS worker threads cost more than they save (README, Results)
    with threadpool_limits(cfg.threads or None):
        return _train(cfg)


def _train(cfg):
    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / "checkpoint.npz"
    saved = None
    if cfg.resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"no checkpoint at {ckpt_path}; run train.py first")
        saved = load_checkpoint(ckpt_path)
        old = Config(**saved[2]["config"])
        # the model, data and optimizer come from the checkpoint; length, place and figures do not
        new = dict(epochs=cfg.epochs or old.epochs, out_dir=cfg.out_dir, figures=cfg.figures)
        cfg = replace(old, resume=True, threads=cfg.threads, **new)
    cfg = resolve(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset(
        cfg.dataset, cfg.seed, cfg.data_dir, cfg.download, cfg.n_train, cfg.n_train // 2
    )
    if cfg.smoke and cfg.dataset in IMAGES + ("digits",):
        data.X_train, data.y_train = data.X_train[:512], data.y_train[:512]
        data.X_test, data.y_test = data.X_test[:256], data.y_test[:256]
    dtype = np.dtype(cfg.dtype)
    X, y = data.X_train.astype(dtype), data.y_train
    Xt, yt = data.X_test.astype(dtype), data.y_test
    if data.task == "regression":
        y, yt = y.astype(dtype), yt.astype(dtype)
    print(f"device: cpu (NumPy) | dataset {cfg.dataset}: {len(X)} train, {len(Xt)} test")

    # one generator drives initialisation, shuffling and dropout masks
    rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg, data.n_features, data.n_classes, rng)
    loss_fn = loss_for(data.task)
    opt = make_optimizer(cfg.optimizer, model.params, cfg.lr, cfg.weight_decay)
    history = {k: [] for k in ("epoch", "train_loss", "test_loss", "train_metric", "test_metric")}
    start_epoch, seconds = 0, 0.0
    if saved is not None:
        model.load_params(saved[0])
        opt.load_state_dict(saved[1])
        rng.bit_generator.state = saved[2]["rng"]
        history, start_epoch, seconds = saved[2]["history"], saved[2]["epoch"], saved[2]["seconds"]
        print(f"resumed from {ckpt_path} at epoch {start_epoch}")
        if start_epoch >= cfg.epochs:
            raise ValueError(f"checkpoint is at epoch {start_epoch}; pass --epochs above that")

    metric_name = "test_mse" if data.task == "regression" else "test_accuracy"
    n, bs = len(X), cfg.batch_size
    steps_per_epoch = math.ceil(n / bs)
    total = cfg.epochs * steps_per_epoch
    eval_every = max(1, cfg.epochs // 50)  # curves get about 50 points
    report_every = eval_every * max(1, cfg.epochs // (10 * eval_every))  # print + checkpoint
    bar = tqdm(
        range(start_epoch, cfg.epochs),
        desc="train",
        unit="epoch",
        initial=start_epoch,
        total=cfg.epochs,
    )
    for epoch in bar:
        t0 = time.perf_counter()
        perm = rng.permutation(n)
        running = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * bs : (i + 1) * bs]
            opt.lr = lr_at(opt.t, cfg.lr, cfg.schedule, total, cfg.step_size, cfg.gamma)
            loss = loss_fn.forward(model.forward(X[idx]), y[idx])
            if not math.isfinite(loss):
                raise NonFiniteLoss(stop_message(loss, f"update {opt.t + 1}", ckpt_path))
            model.backward(loss_fn.backward())
            opt.step(model.grads)
            running += loss
        dt = time.perf_counter() - t0
        seconds += dt
        last = epoch + 1 == cfg.epochs
        if (epoch + 1) % eval_every and not last:
            continue
        test_loss, test_metric = evaluate(model, Xt, yt, data.task)
        if not math.isfinite(test_loss):  # finite batches can still leave non-finite weights
            raise NonFiniteLoss(
                stop_message(test_loss, f"the test set, epoch {epoch + 1}", ckpt_path)
            )
        _, train_metric = evaluate(model, X, y, data.task)
        for k, v in zip(
            history, (epoch + 1, running / steps_per_epoch, test_loss, train_metric, test_metric)
        ):
            history[k].append(v)
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.4f}", test=f"{test_metric:.4f}")
        if (epoch + 1) % report_every == 0 or last:
            meta = {"config": asdict(cfg), "epoch": epoch + 1, "rng": rng.bit_generator.state}
            meta.update(
                history=history, seconds=seconds, task=data.task, n_features=data.n_features
            )
            save_checkpoint(ckpt_path, model, opt, meta)
            bar.write(
                f"epoch {epoch + 1} | loss {history['train_loss'][-1]:.4f} | "
                f"train {train_metric:.4f} | test {test_metric:.4f} | "
                f"{1000 * dt / steps_per_epoch:.2f} ms/step"
            )
    bar.close()

    if cfg.figures:
        plots.curves(history, out_dir / "loss_curves.png", metric_name.split("_", 1)[1])
        draw_task_figure(model, data, cfg, out_dir)
    metrics = {
        "project": "backprop",
        "dataset": cfg.dataset,
        "metric": metric_name,
        "value": history["test_metric"][-1],
        "higher_is_better": data.task != "regression",
        "seconds": round(seconds, 3),
        "steps": opt.t,
        "epochs": cfg.epochs,
        "device": "cpu",
        "seed": cfg.seed,
        "train_metric": history["train_metric"][-1],
        "train_loss": history["train_loss"][-1],
        "test_loss": history["test_loss"][-1],
        "config": asdict(cfg),
    }
    tmp = out_dir / "metrics.json.tmp"  # atomic, like the checkpoint
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    os.replace(tmp, out_dir / "metrics.json")
    print(
        f"{metric_name} {metrics['value']:.4f} after {opt.t} updates, {seconds:.1f} s -> {out_dir}"
    )
    return metrics


def draw_task_figure(model, data, cfg, out_dir, points=None, name=None):
    """The picture that explains the task: boundary, regression fit or image predictions."""
    dtype = np.dtype(cfg.dtype)
    if data.name in TOYS_2D:
        plots.decision_boundary(
            lambda G: to_labels(predict(model, G.astype(dtype), data.task), data.task),
            data.X_test,
            data.y_test,
            out_dir / (name or "decision_boundary.png"),
            f"{data.name}: MLP {list(cfg.hidden)} {cfg.activation}",
            points,
        )
    elif data.task == "regression":
        f = lambda G: predict(model, G.astype(dtype), data.task)
        plots.regression_fit(f, data.X_test, data.y_test, out_dir / (name or "fit.png"), data.name)
    else:
        X = data.X_test[:16].astype(dtype)
        pred = to_labels(predict(model, X, data.task), data.task)
        names = CLASS_NAMES.get(data.name)
        plots.image_grid(X, data.y_test[:16], pred, out_dir / (name or "predictions.png"), names)


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv=None):
    p = Parser(
        description="Train a NumPy MLP with hand-written backprop.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = p.add_argument
    choice = lambda flag, default, options: add(
        flag, default=default, choices=options, metavar="NAME", help=f"one of: {', '.join(options)}"
    )
    choice("--dataset", "spirals", DATASETS)
    add(
        "--data-dir", default="data", help="real datasets, torchvision layout: DIR/FashionMNIST/raw"
    )
    add("--download", action="store_true", help="allow fetching mnist/fashion-mnist to --data-dir")
    add(
        "--hidden",
        type=int,
        nargs="+",
        help="hidden widths; None = preset (64 64 / 128 128 / 256 256)",
    )
    choice("--activation", "relu", tuple(ACTIVATIONS))
    choice("--init", "he", INITS)
    add("--dropout", type=float, default=0.0, help="drop probability after each hidden activation")
    choice("--optimizer", "adam", OPTIMIZERS)
    add(
        "--lr", type=float, help="learning rate; None = preset (0.01 2-D/sine, 0.001 digits/images)"
    )
    add("--weight-decay", type=float, default=0.0, help="L2 coefficient added to every gradient")
    choice("--schedule", "cosine", SCHEDULES)
    add("--step-size", type=int, default=1000, help="updates between lr drops (--schedule step)")
    add("--gamma", type=float, default=0.5, help="lr factor per drop (--schedule step)")
    add("--epochs", type=int, help="None = preset (200 2-D/sine, 20 digits, 10 images)")
    add("--batch-size", type=int, help="None = preset (64; 128 for images)")
    add(
        "--n-train", type=int, default=1000, help="generated datasets: training points (test: half)"
    )
    add("--dtype", default="float32", choices=("float32", "float64"))
    add("--threads", type=int, default=1, help="BLAS threads (0 = library default); small nets: 1")
    add("--seed", type=int, default=0, help="weights, shuffling and dropout masks")
    add(
        "--device",
        default="auto",
        choices=("auto", "cpu"),
        help="NumPy runs on the CPU; auto = cpu",
    )
    add("--out-dir", default="runs", help="checkpoint.npz, metrics.json, PNGs")
    add(
        "--resume",
        action="store_true",
        help="continue OUT_DIR/checkpoint.npz: weights, optimizer, RNG",
    )
    add("--smoke", action="store_true", help="2 epochs on a few hundred points, in seconds")
    add("--no-figures", dest="figures", action="store_false", help="skip the PNGs")
    args = p.parse_args(argv)
    for name in ("lr", "epochs", "batch_size", "n_train", "step_size"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {v}")
    if args.threads < 0:
        p.error(f"--threads must be >= 0, got {args.threads}")
    if not 0 <= args.dropout < 1:
        p.error(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.hidden is not None and min(args.hidden) <= 0:
        p.error("--hidden widths must be positive")
    names = {f.name for f in fields(Config)}
    return Config(**{k: v for k, v in vars(args).items() if k in names})


def main(argv=None):
    cfg = parse_args(argv)
    try:
        train(cfg)
    except (DataError, OSError, NonFiniteLoss, ValueError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit(f"interrupted; continue with: python train.py --resume --out-dir {cfg.out_dir}")


if __name__ == "__main__":
    main()
