"""Train LeNet-5 (NumPy, forward and backward by hand) on digits, MNIST or Fashion-MNIST.

Paper: LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998 (https://doi.org/10.1109/5.726791); Adam: https://arxiv.org/abs/1412.6980.

    python train.py                      # sklearn digits, offline, about a minute on 2 cores
    python train.py --dataset fashion-mnist --data-dir ~/data --download --epochs 15

Writes under --out-dir (the run contract, CONTRIBUTING.md): checkpoint.npz, metrics.json,
loss.png, confusion.png, misclassified.png. tests/test_train.py runs train() on tiny data: it
must reach a stated accuracy, and a resumed run must equal an uninterrupted one.
"""

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import harness
import numpy as np
from data import CLASS_NAMES, DATASETS, load_dataset, random_shift
from model import LeNet5, ModelConfig, softmax_cross_entropy
from optim import OPTIMIZERS, SCHEDULES, lr_at, make_optimizer
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
    schedule_steps: int = 0  # the schedule's horizon in steps; 0: this run's length
    shift: int = 2  # augmentation: random shifts of up to this many pixels (0 = off)
    limit_train: int = 0  # use only the first N training images (0 = all)
    seed: int = 0
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False
    figures: bool = True  # loss.png, confusion.png, misclassified.png


HELP = {
    "dataset": "digits is built in and offline; mnist, fashion-mnist read IDX files",
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
    "schedule_steps": "the cosine horizon in steps (0: this run's length; kept on --resume)",
    "shift": "augmentation: random shifts of up to N pixels (0 turns it off)",
    "limit_train": "train on the first N training images only (0: all)",
    "seed": "seeds the weights, the split, the batch order and the augmentation",
    "out_dir": "checkpoint.npz, metrics.json and the plots go here",
    "resume": "continue OUT_DIR/checkpoint.npz with its flags; only --epochs may grow",
    "smoke": "one short epoch on 512 images: seconds",
    "figures": "write loss.png, confusion.png and misclassified.png",
}
CHOICES = {
    "dataset": DATASETS,
    "variant": ("modern", "classic"),
    "optimizer": tuple(OPTIMIZERS),
    "schedule": SCHEDULES,
}


def validate(cfg):
    for name in ("epochs", "batch_size"):
        harness.check(getattr(cfg, name) >= 1, f"--{name.replace('_', '-')} must be at least 1")
    harness.check(cfg.lr > 0 and np.isfinite(cfg.lr), f"--lr must be positive, got {cfg.lr}")
    for name in ("shift", "warmup_steps", "schedule_steps", "limit_train", "weight_decay", "momentum"):  # fmt: skip
        harness.check(getattr(cfg, name) >= 0, f"--{name.replace('_', '-')} must not be negative")


def normalize(x, mean, std):
    return (x - np.float32(mean)) / np.float32(std)


def predict_logits(model, x, batch=500):
    """Logits for x (N, 1, 32, 32), already normalised, in batches."""
    return np.concatenate([model.forward(x[i : i + batch]) for i in range(0, len(x), batch)])


def evaluate(model, x, y):
    logits = predict_logits(model, x)
    loss, _ = softmax_cross_entropy(logits, y)
    return loss, float(np.mean(logits.argmax(axis=1) == y)), logits.argmax(axis=1)


def prepare_data(cfg):
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.download, cfg.test_set_only, cfg.seed)
    if cfg.limit_train:
        data["train"] = tuple(a[: cfg.limit_train] for a in data["train"])
    if cfg.smoke:
        data = {k: v if v is None else tuple(a[:200] for a in v) for k, v in data.items()} | {
            "train": tuple(a[:512] for a in data["train"])
        }
    return data


def train(cfg, given=None):
    """Train, evaluate on the test split, write plots and metrics.json; returns the metrics.

    given: the flags the user typed (main() knows them); by default the fields that differ
    from their defaults. On --resume only the length (--epochs) and --out-dir may differ.
    """
    with harness.blas_threads(1):
        return _train(cfg, harness.changed_fields(cfg) if given is None else given)


def _train(cfg, given):
    out = Path(cfg.out_dir)
    ckpt_path = out / harness.CHECKPOINT
    ckpt = None
    if cfg.resume:
        ckpt = harness.load_checkpoint(ckpt_path)
        cfg = harness.resume_train_config(ckpt["train_config"], cfg, given)
    if cfg.smoke:
        cfg = replace(cfg, epochs=1)
    validate(cfg)
    harness.prepare_out_dir(out)
    print("NumPy on the CPU")
    data = prepare_data(cfg)
    x_train, y_train = data["train"]
    norm = (
        ckpt["normalize"] if ckpt else {"mean": float(x_train.mean()), "std": float(x_train.std())}
    )
    x_train = normalize(x_train, **norm)
    # the validation split, or the test split where there is none (--test-set-only)
    x_val, y_val = data["val"] if data["val"] is not None else data["test"]
    x_val, (x_test, y_test) = normalize(x_val, **norm), data["test"]
    x_test = normalize(x_test, **norm)

    mcfg = ModelConfig(cfg.variant, seed=cfg.seed)
    model = LeNet5(**vars(mcfg))
    optimizer = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr,
                               weight_decay=cfg.weight_decay, momentum=cfg.momentum)  # fmt: skip
    rng = np.random.default_rng(cfg.seed)  # batch order and shifts
    steps_per_epoch = int(np.ceil(len(y_train) / cfg.batch_size))
    total_steps = cfg.epochs * steps_per_epoch
    if not cfg.resume and cfg.schedule_steps == 0:
        cfg = replace(cfg, schedule_steps=total_steps)  # stored: a resumed run keeps it
    harness.warn_past_horizon(total_steps, cfg.schedule_steps, cfg.schedule)
    history = harness.new_history("val_accuracy")
    step, seconds = 0, 0.0
    if ckpt is not None:
        harness.load_params(model.params, ckpt["model"], ckpt_path)
        optimizer.load_state_dict(ckpt["optimizer"])
        rng.bit_generator.state = ckpt["rng"]
        step, history, seconds = ckpt["step"], ckpt["history"], ckpt["seconds"]
        harness.check(step < total_steps, f"{ckpt_path} is at epoch {step // steps_per_epoch}: pass a larger --epochs")  # fmt: skip
        print(f"resumed from {ckpt_path} at step {step}")
    counts = model.param_counts()
    print(f"LeNet-5 ({cfg.variant}) parameters per layer:")
    for name, count in counts:
        print(f"  {name:7s} {count:7,d}")
    print(f"  total   {sum(c for _, c in counts):7,d}")
    print(f"{cfg.dataset}: {len(y_train)} train, {len(y_val)} val, {len(y_test)} test")

    for epoch in range(step // steps_per_epoch, cfg.epochs):
        t0 = time.time()
        perm = rng.permutation(len(y_train))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=cfg.smoke)  # fmt: skip
        for b in bar:
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            xb = random_shift(x_train[idx], rng, cfg.shift) if cfg.shift else x_train[idx]
            optimizer.lr = lr_at(step, lr=cfg.lr, warmup_steps=cfg.warmup_steps,
                                 schedule_steps=cfg.schedule_steps, schedule=cfg.schedule)  # fmt: skip
            loss, dlogits = softmax_cross_entropy(model.forward(xb), y_train[idx])
            harness.check_finite(loss, step + 1, out)
            model.backward(dlogits, need_dx=False)
            optimizer.step(model.grads)
            step += 1
            history["step"].append(step)
            history["train_loss"].append(loss)
            bar.set_postfix(loss=f"{loss:.4f}")
        seconds += time.time() - t0
        if not all(np.isfinite(p).all() for p in model.params.values()):
            # the last step's loss was finite but its update was not: keep the last good file
            harness.check_finite(float("nan"), step, out)
        val_loss, val_acc, _ = evaluate(model, x_val, y_val)
        for k, v in zip(("eval_step", "val_loss", "val_accuracy"), (step, val_loss, val_acc)):
            history[k].append(v)
        ms = 1000 * (time.time() - t0) / steps_per_epoch
        print(f"epoch {epoch + 1} | step {step} | loss {np.mean(history['train_loss'][-steps_per_epoch:]):.4f} | "
              f"val loss {val_loss:.4f} acc {val_acc:.4f} | {ms:.0f} ms/step")  # fmt: skip
        harness.save_checkpoint(ckpt_path, model=model, optimizer=optimizer, model_config=mcfg,
                                train_config=cfg, step=step, rng=rng, history=history,
                                seconds=seconds, normalize=norm)  # fmt: skip

    test_loss, test_acc, pred = evaluate(model, x_test, y_test)
    metrics = harness.write_metrics(
        out / "metrics.json",
        project="lenet",
        dataset=cfg.dataset + (" (t10k split 8000/2000)" if cfg.test_set_only else ""),
        metric="test_accuracy",
        value=test_acc,
        unit="fraction",
        higher_is_better=True,
        selection="final",
        n_params=sum(c for _, c in counts),
        steps=step,
        seconds=round(seconds, 1),
        seed=cfg.seed,
        variant=cfg.variant,
        epochs=cfg.epochs,
        test_loss=test_loss,
        test_errors=int(np.sum(pred != y_test)),
        test_samples=len(y_test),
        train_samples=len(y_train),
        val_accuracy=history["val_accuracy"][-1],
    )
    if cfg.figures:
        from visualize import plot_confusion, plot_misclassified

        names = CLASS_NAMES[cfg.dataset]
        eval_label = "validation" if data["val"] is not None else "test"
        harness.plot_loss(history, out / "loss.png", f"LeNet-5 ({cfg.variant}) on {cfg.dataset}", eval_label, "cross-entropy")  # fmt: skip
        plot_confusion(y_test, pred, names, out / "confusion.png")
        plot_misclassified(data["test"][0], y_test, pred, names, out / "misclassified.png")
    print(f"test accuracy {test_acc:.4f} ({metrics['test_errors']} errors in {len(y_test)}) | "
          f"{metrics['seconds']:.0f} s training | wrote {out}/")  # fmt: skip
    return metrics


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    harness.add_config_flags(p, TrainConfig, HELP, CHOICES)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = harness.config_from_args(TrainConfig, args)
    return harness.run_main(
        lambda: train(config, harness.given_flags(argv)) and None, lambda: args.out_dir
    )


if __name__ == "__main__":
    raise SystemExit(main())
