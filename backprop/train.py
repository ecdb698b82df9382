"""Train the NumPy MLP of model.py on a toy or real dataset.

    python train.py                          # 3-class spirals, seconds on a CPU
    python train.py --dataset digits         # sklearn 8x8 digits
    python train.py --dataset fashion-mnist --data-dir ~/data --download

The loop is the whole of supervised learning: forward, loss, backward (the
chain rule, model.py), update (optim.py). Writes to --out-dir (the run contract,
CONTRIBUTING.md): checkpoint.npz, metrics.json, loss.png and the task picture,
decision_boundary.png (2-D data), fit.png (regression) or predictions.png
(images). Tests (tests/test_train.py): accuracy gates on XOR, spirals, moons
and digits; N epochs == N/2 + --resume + N/2, bitwise; bad-input messages.
"""

import argparse
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import harness
import numpy as np
import plots
from data import DATASETS, IMAGES, load_dataset
from model import ACTIVATIONS, INITS, LOSSES, ModelConfig, build_model, predict, to_labels
from optim import OPTIMIZERS, SCHEDULES, lr_at, make_optimizer
from tqdm import tqdm

# per-dataset defaults for the flags left at 0: (hidden, epochs, batch_size, lr)
PRESETS = {
    "toy": ((64, 64), 200, 64, 0.01),
    "digits": ((128, 128), 20, 64, 0.001),
    "image": ((256, 256), 10, 128, 0.001),
}
SMOKE_EPOCHS = {"toy": 30, "digits": 3, "image": 2}


@dataclass
class TrainConfig:
    dataset: str = "spirals"
    data_dir: str = "data"
    download: bool = False
    hidden: tuple = ()  # (): the dataset's preset
    activation: str = "relu"
    init: str = "he"
    dropout: float = 0.0
    optimizer: str = "adam"
    lr: float = 0.0  # 0: the dataset's preset
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    schedule_steps: int = 0  # the schedule's horizon in updates; 0: this run's length
    step_size: int = 1000  # updates between lr drops, schedule "step"
    gamma: float = 0.5
    epochs: int = 0  # 0: the dataset's preset
    batch_size: int = 0  # 0: the dataset's preset
    n_train: int = 1000  # points drawn for the generated datasets (test: half as many)
    dtype: str = "float32"
    threads: int = 1  # BLAS threads; 0 = the library's default
    seed: int = 0
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False
    figures: bool = True  # loss.png and the task picture


HELP = {
    "dataset": "generated 2-D toys, sine (regression), sklearn digits, or IDX images",
    "data_dir": "real datasets in torchvision's layout: DIR/FashionMNIST/raw",
    "download": "allow fetching mnist/fashion-mnist into --data-dir",
    "hidden": "hidden widths; () = preset (64 64 / 128 128 / 256 256)",
    "dropout": "drop probability after each hidden activation, in [0, 1)",
    "lr": "learning rate; 0 = preset (0.01 2-D/sine, 0.001 digits/images)",
    "weight_decay": "L2 coefficient added to every gradient",
    "warmup_steps": "linear warm-up updates before the schedule",
    "schedule_steps": "the schedule's horizon in updates (0: this run's length; kept on --resume)",
    "step_size": "updates between lr drops (--schedule step)",
    "gamma": "lr factor per drop (--schedule step)",
    "epochs": "passes over the training set; 0 = preset (200 2-D/sine, 20 digits, 10 images)",
    "batch_size": "0 = preset (64; 128 for images)",
    "n_train": "generated datasets: training points (test: half as many)",
    "threads": "BLAS threads (0 = library default); small nets: 1",
    "seed": "one generator draws the weights, the shuffles and the dropout masks",
    "out_dir": "checkpoint.npz, metrics.json, PNGs",
    "resume": "continue OUT_DIR/checkpoint.npz with its flags; only --epochs may grow",
    "smoke": "a few epochs on a few hundred points, seconds",
    "figures": "write loss.png and the task picture",
}
CHOICES = {
    "dataset": DATASETS,
    "activation": tuple(ACTIVATIONS),
    "init": INITS,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "dtype": ("float32", "float64"),
}


def kind_of(dataset):
    return "image" if dataset in IMAGES else "digits" if dataset == "digits" else "toy"


def resolve(cfg):
    """Fill the 0 fields from the dataset's preset; --smoke shrinks the run."""
    kind = kind_of(cfg.dataset)
    hidden, epochs, batch_size, lr = PRESETS[kind]
    epochs = SMOKE_EPOCHS[kind] if cfg.smoke else epochs
    cfg = replace(
        cfg,
        hidden=tuple(cfg.hidden or hidden),
        epochs=cfg.epochs or epochs,
        batch_size=cfg.batch_size or batch_size,
        lr=cfg.lr or lr,
    )
    return replace(cfg, n_train=min(cfg.n_train, 300)) if cfg.smoke else cfg


def validate(cfg):
    """Flag values that cannot work: one line before any work."""
    for name in ("lr", "epochs", "batch_size", "n_train", "step_size"):
        v = getattr(cfg, name)
        harness.check(v >= 0 if name in ("lr", "epochs", "batch_size") else v > 0,
                      f"--{name.replace('_', '-')} must be positive, got {v}")  # fmt: skip
    for name in ("threads", "warmup_steps", "schedule_steps", "weight_decay"):
        v = getattr(cfg, name)
        harness.check(v >= 0, f"--{name.replace('_', '-')} must be >= 0, got {v}")
    harness.check(0 <= cfg.dropout < 1, f"--dropout must be in [0, 1), got {cfg.dropout}")
    harness.check(all(h > 0 for h in cfg.hidden), f"--hidden widths must be positive: {cfg.hidden}")
    harness.check(
        math.isfinite(cfg.lr) and math.isfinite(cfg.gamma), "--lr and --gamma must be finite"
    )


def loss_for(task):
    return LOSSES[{"binary": "bce", "multiclass": "softmax_ce", "regression": "mse"}[task]]()


def evaluate(model, X, y, task):
    """(mean loss, metric): accuracy for classification, MSE for regression."""
    out = predict(model, X)
    loss = loss_for(task).forward(out, y)
    return loss, (loss if task == "regression" else float(np.mean(to_labels(out, task) == y)))


def load_data(cfg):
    data = load_dataset(
        cfg.dataset, cfg.seed, cfg.data_dir, cfg.download, cfg.n_train, cfg.n_train // 2
    )
    if cfg.smoke and cfg.dataset in IMAGES + ("digits",):
        data.X_train, data.y_train = data.X_train[:512], data.y_train[:512]
        data.X_test, data.y_test = data.X_test[:256], data.y_test[:256]
    return data


# ---------------------------------------------------------------- training


def train(cfg, given=None):
    """Train (checkpointing about ten times), write plots and metrics.json; return the metrics.

    given: the flags the user typed (main() knows them); by default the fields that differ
    from their defaults. On --resume only the length (--epochs) and where things go may differ.
    """
    with harness.blas_threads(cfg.threads):
        return _train(cfg, harness.changed_fields(cfg) if given is None else given)


def _train(cfg, given):
    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / harness.CHECKPOINT
    ckpt = None
    if cfg.resume:
        ckpt = harness.load_checkpoint(ckpt_path)
        cfg = harness.resume_train_config(ckpt["train_config"], cfg, given)
    validate(cfg)
    cfg = resolve(cfg)
    harness.prepare_out_dir(out_dir)
    data = load_data(cfg)
    dtype = np.dtype(cfg.dtype)
    X, y = data.X_train.astype(dtype), data.y_train
    Xt, yt = data.X_test.astype(dtype), data.y_test
    if data.task == "regression":
        y, yt = y.astype(dtype), yt.astype(dtype)
    n, bs = len(X), cfg.batch_size
    steps_per_epoch = math.ceil(n / bs)
    total = cfg.epochs * steps_per_epoch
    if not cfg.resume and cfg.schedule_steps == 0:
        cfg = replace(cfg, schedule_steps=total)  # stored: a resumed run keeps this horizon
    harness.warn_past_horizon(total, cfg.schedule_steps, cfg.schedule)
    print(f"NumPy on the CPU | dataset {cfg.dataset}: {n} train, {len(Xt)} test")

    # one generator drives initialisation, shuffling and dropout masks
    rng = np.random.default_rng(cfg.seed)
    sizes = (data.n_features, *cfg.hidden, data.n_classes)
    mcfg = ModelConfig(sizes, cfg.activation, cfg.init, cfg.dropout, cfg.dtype, data.task)
    model = build_model(mcfg, rng)
    loss_fn = loss_for(data.task)
    opt = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    metric = "test_mse" if data.task == "regression" else "test_accuracy"
    history = harness.new_history("val_metric", "train_metric")
    step, seconds = 0, 0.0
    if ckpt is not None:
        harness.load_params(model.params, ckpt["model"], ckpt_path)
        opt.load_state_dict(ckpt["optimizer"])
        rng.bit_generator.state = ckpt["rng"]
        step, history, seconds = ckpt["step"], ckpt["history"], ckpt["seconds"]
        harness.check(step < total, f"{ckpt_path} is at update {step}: pass --epochs above {step // steps_per_epoch}")  # fmt: skip
        print(f"resumed from {ckpt_path} at epoch {step // steps_per_epoch}")

    def save():
        harness.save_checkpoint(ckpt_path, model=model, optimizer=opt, model_config=mcfg,
                                train_config=cfg, step=step, rng=rng, history=history,
                                seconds=seconds)  # fmt: skip

    eval_every = max(1, cfg.epochs // 50)  # curves get about 50 points
    save_every = eval_every * max(1, cfg.epochs // (10 * eval_every))
    start = step // steps_per_epoch
    bar = tqdm(
        range(start, cfg.epochs), desc="train", unit="epoch", initial=start, total=cfg.epochs
    )
    for epoch in bar:
        t0 = time.perf_counter()
        perm = rng.permutation(n)
        for i in range(steps_per_epoch):
            idx = perm[i * bs : (i + 1) * bs]
            opt.lr = lr_at(step, lr=cfg.lr, warmup_steps=cfg.warmup_steps,
                           schedule_steps=cfg.schedule_steps, schedule=cfg.schedule,
                           step_size=cfg.step_size, gamma=cfg.gamma)  # fmt: skip
            loss = loss_fn.forward(model.forward(X[idx]), y[idx])
            harness.check_finite(loss, step + 1, out_dir)
            model.backward(loss_fn.backward())
            opt.step(model.grads)
            step += 1
            history["step"].append(step)
            history["train_loss"].append(loss)
        dt = time.perf_counter() - t0
        seconds += dt
        last = epoch + 1 == cfg.epochs
        if (epoch + 1) % eval_every and not last:
            continue
        test_loss, test_metric = evaluate(model, Xt, yt, data.task)
        harness.check_finite(test_loss, step, out_dir)  # finite batches can leave bad weights
        train_metric = evaluate(model, X, y, data.task)[1]
        for k, v in zip(("eval_step", "val_loss", "val_metric", "train_metric"),
                        (step, test_loss, test_metric, train_metric)):  # fmt: skip
            history[k].append(v)
        bar.set_postfix(loss=f"{loss:.4f}", test=f"{test_metric:.4f}")
        if (epoch + 1) % save_every == 0 or last:
            save()
            bar.write(f"epoch {epoch + 1} | loss {loss:.4f} | train {train_metric:.4f} | "
                      f"test {test_metric:.4f} | {1000 * dt / steps_per_epoch:.2f} ms/step")  # fmt: skip
    bar.close()

    if cfg.figures:
        title = f"{cfg.dataset}: MLP {list(sizes)}"
        harness.plot_loss(history, out_dir / "loss.png", title, eval_label="test (held out)")
        plots.draw_task_figure(model, data, mcfg, out_dir)
    metrics = harness.write_metrics(
        out_dir / "metrics.json",
        project="backprop",
        dataset=cfg.dataset,
        metric=metric,
        value=history["val_metric"][-1],
        unit="fraction" if data.task != "regression" else "squared error",
        higher_is_better=data.task != "regression",
        selection="final",
        n_params=sum(p.size for p in model.params.values()),
        steps=step,
        seconds=round(seconds, 3),
        seed=cfg.seed,
        epochs=cfg.epochs,
        train_metric=history["train_metric"][-1],
        test_loss=history["val_loss"][-1],
    )
    print(f"{metric} {metrics['value']:.4f} after {step} updates, {seconds:.1f} s -> {out_dir}")
    return metrics


def build_parser():
    p = argparse.ArgumentParser(
        description="Train a NumPy MLP with hand-written backprop.",
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
