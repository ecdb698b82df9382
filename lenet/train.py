"""Train LeNet-5 (NumPy, forward and backward by hand) on digits, MNIST or Fashion-MNIST.

Paper: LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998 (https://doi.org/10.1109/5.726791); Adam: https://arxiv.org/abs/1412.6980.

    python train.py                      # sklearn digits, offline, about a minute on 2 cores
    python train.py --dataset fashion-mnist --data-dir ../../shared/data --epochs 15

Writes under --out-dir: checkpoint.npz (params, optimizer state, step, RNG state, config as JSON),
metrics.json, curves.png, confusion.png, misclassified.png. tests/test_train.py runs train() on
tiny data: it must reach a stated accuracy, and a resumed run must equal an uninterrupted one.
"""

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from data import CLASS_NAMES, DATASETS, DataError, load_dataset, random_shift
from model import LeNet5, softmax_cross_entropy
from optim import lr_at, make_optimizer
from tqdm import tqdm


@dataclass
class TrainConfig:
    dataset: str = "digits"
    data_dir: str = "data"
    download: bool = False
    test_set_only: bool = False  # mnist/fashion-mnist: split the 10k test images 8,000/2,000
    variant: str = "modern"
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_steps: int = 50
    shift: int = 2  # augmentation: random shifts of up to this many pixels (0 = off)
    seed: int = 0
    device: str = "auto"
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False
    limit_train: int = 0  # use only the first N training images (0 = all)
    stop_after: int = 0  # stop (with a checkpoint) after this many steps in total (0 = never)


class TrainingError(Exception):
    """Training cannot go on (non-finite loss, unusable checkpoint); printed as one line."""


def normalize(x, mean, std):
    return (x - np.float32(mean)) / np.float32(std)


def predict_logits(model, x, batch=500):
    """Logits for x (N, 1, 32, 32), already normalised, in batches."""
    return np.concatenate([model.forward(x[i : i + batch]) for i in range(0, len(x), batch)])


def evaluate(model, x, y):
    logits = predict_logits(model, x)
    loss, _ = softmax_cross_entropy(logits, y)
    return loss, float(np.mean(logits.argmax(axis=1) == y)), logits.argmax(axis=1)


def save_checkpoint(path, model, optimizer, config, state, perm):
    """Plain arrays + JSON strings in one .npz, written to a temp file then os.replace'd."""
    arrays = {f"param.{k}": v for k, v in model.params().items()}
    arrays.update({f"opt.{k}": v for k, v in optimizer.state.items()})
    arrays["config"] = np.array(json.dumps(asdict(config)))
    arrays["state"] = np.array(json.dumps(state))
    arrays["perm"] = perm
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def load_checkpoint(path):
    """-> (params, optimizer state, config dict, state dict, perm); one clear error if unusable."""
    if not Path(path).exists():
        raise TrainingError(f"no checkpoint at {path}; run train.py first")
    try:
        with np.load(path, allow_pickle=False) as z:
            params = {k[6:]: z[k] for k in z.files if k.startswith("param.")}
            opt = {k[4:]: z[k] for k in z.files if k.startswith("opt.")}
            config, state = json.loads(str(z["config"])), json.loads(str(z["state"]))
            return params, opt, config, state, z["perm"]
    except Exception as e:  # zip, JSON and key errors all mean "not our checkpoint"
        raise TrainingError(f"{path} is not a readable LeNet checkpoint ({e})") from None


def prepare_data(cfg):
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.download, cfg.test_set_only, cfg.seed)
    if cfg.limit_train:
        data["train"] = tuple(a[: cfg.limit_train] for a in data["train"])
    if cfg.smoke:
        data = {k: v if v is None else tuple(a[:200] for a in v) for k, v in data.items()} | {
            "train": tuple(a[:512] for a in data["train"])
        }
    return data


def one_blas_thread():
    """LeNet's matmuls are small: a second BLAS thread gains little on an idle CPU and, on a busy
    one, waiting threads can make one matmul 100x slower. threadpoolctl ships with scikit-learn."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def train(cfg: TrainConfig) -> dict:
    """Train, evaluate on the test split, write plots and metrics.json; returns the metrics."""
    with one_blas_thread():
        return _train(cfg)


def _train(cfg):
    t0 = time.time()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.npz"
    if cfg.smoke:
        cfg.epochs = 1
    print("device: cpu (NumPy runs on the CPU)")
    data = prepare_data(cfg)
    x_train, y_train = data["train"]
    mean, std = float(x_train.mean()), float(x_train.std())
    x_train = normalize(x_train, mean, std)
    x_val, y_val = data["val"] if data["val"] is not None else (None, None)
    x_test, y_test = data["test"]
    x_val = None if x_val is None else normalize(x_val, mean, std)
    x_test = normalize(x_test, mean, std)

    model = LeNet5(cfg.variant, n_classes=10, seed=cfg.seed)
    optimizer = make_optimizer(
        cfg.optimizer, model.params(), cfg.lr, cfg.weight_decay, cfg.momentum
    )
    rng = np.random.default_rng(cfg.seed)
    steps_per_epoch = int(np.ceil(len(y_train) / cfg.batch_size))
    total_steps = cfg.epochs * steps_per_epoch
    state = {
        "step": 0,
        "epoch": 0,
        "batch": 0,
        "seconds": 0.0,
        "history": [],
        "mean": mean,
        "std": std,
    }
    perm = rng.permutation(len(y_train))
    if cfg.resume:
        params, opt_state, saved_cfg, state, perm = load_checkpoint(ckpt_path)
        # batch_size and smoke fix which images the saved batch order and position point at
        for key in (
            "dataset",
            "variant",
            "optimizer",
            "limit_train",
            "test_set_only",
            "seed",
            "batch_size",
            "smoke",
        ):
            if saved_cfg[key] != getattr(cfg, key):
                raise TrainingError(f"--resume: checkpoint has {key}={saved_cfg[key]!r}")
        model.load_params(params)
        for k, v in opt_state.items():
            optimizer.state[k][...] = v
        rng.bit_generator.state = state["rng"]
        print(f"resumed from {ckpt_path} at step {state['step']}")
    print(f"LeNet-5 ({cfg.variant}) parameters per layer:")
    for name, count in model.param_counts():
        print(f"  {name:7s} {count:7,d}")
    print(f"  total   {sum(c for _, c in model.param_counts()):7,d}")
    print(
        f"{cfg.dataset}: {len(y_train)} train, {0 if y_val is None else len(y_val)} val, {len(y_test)} test"
    )

    def checkpoint():
        nonlocal t_mark
        state["seconds"] += time.time() - t_mark
        t_mark = time.time()
        state["rng"] = rng.bit_generator.state
        if not all(np.isfinite(p).all() for p in model.params().values()):
            # the last step's loss was finite but its update was not: keep the last good file
            raise TrainingError(
                f"parameters became non-finite at step {state['step']}; stopped "
                f"(last good checkpoint: {ckpt_path}); try a smaller --lr"
            )
        save_checkpoint(ckpt_path, model, optimizer, cfg, state, perm)

    t_mark = time.time()
    run = state.setdefault("run", {"loss_sum": 0.0, "batches": 0, "correct": 0, "seen": 0})
    while state["epoch"] < cfg.epochs:
        epoch, t_epoch, first = state["epoch"], time.time(), state["batch"]
        bar = tqdm(
            range(first, steps_per_epoch),
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=cfg.smoke,
        )
        for b in bar:
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            xb = random_shift(x_train[idx], rng, cfg.shift) if cfg.shift else x_train[idx]
            optimizer.lr = lr_at(state["step"], total_steps, cfg.lr, cfg.schedule, cfg.warmup_steps)
            logits = model.forward(xb)
            loss, dlogits = softmax_cross_entropy(logits, y_train[idx])
            if not np.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss} at step {state['step']}; stopped "
                    f"(last good checkpoint: {ckpt_path}); try a smaller --lr"
                )
            model.backward(dlogits, need_dx=False)
            optimizer.step(model.params(), model.grads())
            run["loss_sum"] += loss
            run["batches"] += 1
            run["correct"] += int(np.sum(logits.argmax(axis=1) == y_train[idx]))
            run["seen"] += len(idx)
            state["step"], state["batch"] = state["step"] + 1, b + 1
            bar.set_postfix(loss=f"{loss:.4f}")
            if cfg.stop_after and state["step"] >= cfg.stop_after and state["step"] < total_steps:
                checkpoint()
                print(f"stopped after step {state['step']} (--stop-after); continue with --resume")
                return {"stopped": True, "steps": state["step"]}
        entry = {
            "epoch": epoch + 1,
            "step": state["step"],
            "train_loss": run["loss_sum"] / max(1, run["batches"]),
            "train_acc": run["correct"] / max(1, run["seen"]),
        }
        if x_val is not None:
            entry["val_loss"], entry["val_acc"], _ = evaluate(model, x_val, y_val)
        state["history"].append(entry)
        state["epoch"], state["batch"] = epoch + 1, 0
        run.update(loss_sum=0.0, batches=0, correct=0, seen=0)
        perm = rng.permutation(len(y_train))
        val = (
            f" | val loss {entry['val_loss']:.4f} acc {entry['val_acc']:.4f}"
            if x_val is not None
            else ""
        )
        ms = 1000 * (time.time() - t_epoch) / max(1, steps_per_epoch - first)
        print(
            f"epoch {epoch + 1} | step {state['step']} | loss {entry['train_loss']:.4f} | train acc {entry['train_acc']:.4f}{val} | {ms:.0f} ms/step"
        )
        checkpoint()

    test_loss, test_acc, pred = evaluate(model, x_test, y_test)
    metrics = {
        "project": "lenet",
        "dataset": cfg.dataset + (" (t10k split 8000/2000)" if cfg.test_set_only else ""),
        "metric": "test_accuracy",
        "value": test_acc,
        "higher_is_better": True,
        "seconds": round(state["seconds"], 1),
        "steps": state["step"],
        "device": "cpu",
        "seed": cfg.seed,
        "variant": cfg.variant,
        "epochs": cfg.epochs,
        "test_loss": test_loss,
        "test_errors": int(np.sum(pred != y_test)),
        "test_samples": len(y_test),
        "train_samples": len(y_train),
        "val_accuracy": state["history"][-1].get("val_acc"),
        "parameters": sum(c for _, c in model.param_counts()),
        "wall_seconds": round(time.time() - t0, 1),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    from visualize import plot_confusion, plot_curves, plot_misclassified

    names = CLASS_NAMES[cfg.dataset]
    plot_curves(state["history"], out / "curves.png")
    plot_confusion(y_test, pred, names, out / "confusion.png")
    plot_misclassified(data["test"][0], y_test, pred, names, out / "misclassified.png")
    print(
        f"test accuracy {test_acc:.4f} ({metrics['test_errors']} errors in {len(y_test)}) | {metrics['seconds']:.0f} s training | wrote {out}/"
    )
    return metrics


HELP = {
    "dataset": f"one of: {', '.join(DATASETS)} (digits is built in and offline)",
    "data_dir": "IDX files in torchvision's layout: DIR/MNIST/raw/, DIR/FashionMNIST/raw/",
    "download": "allow fetching MNIST/Fashion-MNIST into --data-dir (torchvision, network)",
    "test_set_only": "use only the 10k t10k images: stratified 8,000 train / 2,000 test",
    "variant": "modern: ReLU + max pooling; classic: tanh + average pooling (1998)",
    "epochs": "passes over the training set",
    "batch_size": "images per step",
    "optimizer": "adam, or sgd (with momentum)",
    "lr": "peak learning rate",
    "momentum": "SGD momentum",
    "weight_decay": "L2 weight decay on the weights (not the biases)",
    "schedule": "learning-rate schedule",
    "warmup_steps": "linear warm-up steps (cosine schedule)",
    "shift": "augmentation: random shifts of up to N pixels (0 turns it off)",
    "seed": "seeds the weights, the split, the batch order and the augmentation",
    "device": "NumPy runs on the CPU: auto and cpu both mean the CPU",
    "out_dir": "checkpoint.npz, metrics.json and the plots go here",
    "resume": "continue from OUT_DIR/checkpoint.npz (weights, optimizer, step, RNG)",
    "smoke": "one short epoch on 512 images: seconds, for tests",
    "limit_train": "train on the first N training images only (0: all)",
    "stop_after": "stop after N steps in total, keeping a checkpoint (0: run to the end)",
}
CHOICES = {
    "dataset": None,  # checked in main() for a clearer message
    "variant": ["modern", "classic"],
    "optimizer": ["adam", "sgd"],
    "schedule": ["cosine", "constant"],
    "device": ["auto", "cpu"],
}


def build_parser():
    """One flag per TrainConfig field: --batch-size for batch_size, with its default."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            p.add_argument(flag, action="store_true", help=HELP[f.name])
        else:
            kind = type(f.default)
            p.add_argument(
                flag, type=kind, default=f.default, choices=CHOICES.get(f.name), help=HELP[f.name]
            )
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dataset not in DATASETS:
        parser.error(f"unknown dataset {args.dataset!r}; choose from {', '.join(DATASETS)}")
    for name in ("epochs", "batch_size", "lr"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    for name in ("shift", "warmup_steps", "limit_train", "stop_after"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    try:
        train(cfg)
    except (DataError, TrainingError, OSError) as e:  # OSError: e.g. an unwritable --out-dir
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit(f"interrupted; the last checkpoint (end of the last epoch) is in {cfg.out_dir}/")


if __name__ == "__main__":
    main()
