"""Train a ResNet, its plain twin, or a baseline (model.py) with the paper's CIFAR recipe.

He et al. 2016, https://arxiv.org/abs/1512.03385, Section 4.2: SGD with momentum 0.9, weight
decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k of 64k iterations (`--schedule
step`: at 50% and 75% of the horizon), 4-pixel pad-crop and flip augmentation. Cosine decay
(Loshchilov & Hutter, https://arxiv.org/abs/1608.03983) is the default for short runs.
Mixed precision on CUDA; DDP through torchrun (distributed.py).

    python train.py                                        # digits, ResNet-20: 99.3%, about 2 CPU-minutes
    python train.py --arch plain-56 --dataset fashion-mnist --data-dir ~/data --download
    torchrun --nproc_per_node=8 train.py --arch resnet18 --stem cifar --dataset cifar100 --data-dir ~/data

Tests (tests/test_train.py, test_ddp.py): a short run reaches a stated accuracy on digits; N
steps equal N/2 steps + --resume bitwise; 2 gloo processes equal 1 with the same global batch;
bad flags, an unknown arch, weights of another arch, too-small images are one line.
"""

import argparse
import math
import os
import time
from dataclasses import asdict, dataclass, replace

import distributed
import harness
import torch
import torch.nn.functional as F
from data import DATASETS, DataError, channel_stats, load, pad_crop_flip
from model import (
    ARCH_HELP,
    BatchNorm2d,
    ModelConfig,
    build_model,
    count_params,
    load_torchvision,
    parse_arch,
)

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@dataclass
class TrainConfig:
    dataset: str = "digits"
    data_dir: str = "data"
    download: bool = False
    image_size: int = 0  # resize every image once (0: the dataset's own; imagefolder: 64)
    n_train: int = 0  # keep the first N training images (0: all)
    n_val: int = 0  # keep the first N validation images (0: all)
    arch: str = "resnet-20"
    width: int = 0  # first-stage channels (0: the paper's 16 / 64)
    stem: str = ""  # imagenet | cifar ("": imagenet for resnet18/34/50, cifar for resnet-N)
    shortcut: str = ""
    init_from: str = ""  # torchvision: start from a torchvision ResNet state dict (--weights)
    weights: str = ""
    augment: str = "auto"  # crop-flip | crop | none (auto: crop for digits, crop-flip otherwise)
    steps: int = 300
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 0
    schedule_steps: int = 0  # horizon of the schedule; 0: this run's --steps
    grad_clip: float = 0.0  # 0: off
    eval_every: int = 50
    n_eval_train: int = (
        1000  # training images for the train_error column (eval mode, no augmentation)
    )
    sync_bn: bool = False  # under torchrun: BatchNorm statistics over all processes' rows
    amp: bool = True  # CUDA only: bf16 autocast (fp16 + GradScaler without bf16), channels_last
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False


HELP = {
    "dataset": f"one of {', '.join(DATASETS)}",
    "data_dir": "where --dataset lives in torchvision's layout (imagefolder: DIR/train/CLASS/*)",
    "arch": ARCH_HELP,
    "shortcut": "A (zero-padded identity, the paper's CIFAR choice) or B (1x1 projection); '': A for resnet-N, B for resnet18/34/50 (torchvision's)",
    "weights": "with --init-from torchvision: the state dict file (e.g. resnet18-f37072fd.pth)",
    "schedule": "cosine, or step: lr / 10 at 50%% and 75%% of the horizon (the paper's)",
    "batch_size": "images per process (the global batch is this x the torchrun processes)",
    "smoke": "a few steps on a few images: seconds",
}


def lr_at(step, cfg):
    """Linear warm-up, then cosine to 0 at schedule_steps, or lr * 0.1^(drops at 50%, 75%)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.schedule_steps - cfg.warmup_steps))
    if cfg.schedule == "step":
        return cfg.lr * 0.1 ** ((t >= 0.5) + (t >= 0.75))
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate(model, x, y, norm, ctx, batch_size=500):
    """{loss, error, accuracy, top5} over uint8 images x, in eval mode (BN's running statistics)."""
    was_training = model.training
    model.eval()
    loss = correct = top5 = 0.0
    for i in range(0, len(y), batch_size):
        yb = y[i : i + batch_size].to(norm.device)
        with ctx:
            logits = model(norm(x[i : i + batch_size])).float()
        loss += F.cross_entropy(logits, yb, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct += (top[:, 0] == yb).sum().item()
        top5 += (top == yb[:, None]).any(1).sum().item()
    model.train(was_training)
    n = len(y)
    return {"loss": loss / n, "accuracy": correct / n, "error": 1 - correct / n, "top5": top5 / n}


class Normalise:
    """uint8 (B, C, S, S) on the CPU -> (x / 255 - mean) / std on the device."""

    def __init__(self, mean, std, device):
        self.mean = torch.tensor(mean, device=device)[:, None, None]
        self.std = torch.tensor(std, device=device)[:, None, None]
        self.device = device

    def __call__(self, x):
        return (x.to(self.device).float() / 255 - self.mean) / self.std


def validate(cfg):
    for name, ok, what in [
        ("dataset", cfg.dataset in DATASETS, f"one of {', '.join(DATASETS)}"),
        ("schedule", cfg.schedule in ("cosine", "step"), "cosine or step"),
        (
            "augment",
            cfg.augment in ("auto", "crop-flip", "crop", "none"),
            "auto, crop-flip, crop or none",
        ),  # fmt: skip
        ("init_from", cfg.init_from in ("", "torchvision"), "torchvision (or nothing)"),
        ("steps", cfg.steps > 0, "positive"),
        ("batch_size", cfg.batch_size > 0, "positive"),
        ("lr", cfg.lr > 0 and math.isfinite(cfg.lr), "positive"),
        ("eval_every", cfg.eval_every > 0, "positive"),
        ("momentum", 0 <= cfg.momentum < 1, "in [0, 1)"),
        ("weight_decay", cfg.weight_decay >= 0, "non-negative"),
        ("warmup_steps", cfg.warmup_steps >= 0, "non-negative"),
        ("schedule_steps", cfg.schedule_steps >= 0, "non-negative"),
        ("grad_clip", cfg.grad_clip >= 0, "non-negative (0: off)"),
        ("image_size", cfg.image_size >= 0, "non-negative (0: the dataset's)"),
        ("n_train", cfg.n_train >= 0, "non-negative (0: all)"),
        ("n_val", cfg.n_val >= 0, "non-negative (0: all)"),
        ("n_eval_train", cfg.n_eval_train > 0, "positive"),
    ]:
        harness.check(ok, f"--{name.replace('_', '-')} {getattr(cfg, name)}: expected {what}")
    try:
        parse_arch(cfg.arch)
    except ValueError as e:
        raise harness.UserError(str(e)) from None
    harness.check(not cfg.nesterov or cfg.momentum > 0, "--nesterov needs --momentum > 0")
    harness.check(bool(cfg.weights) == bool(cfg.init_from), "--init-from torchvision and --weights PATH go together")  # fmt: skip
    harness.check(cfg.resume or not cfg.weights or os.path.isfile(cfg.weights), f"--weights {cfg.weights}: no such file")  # fmt: skip


def train(cfg: TrainConfig, given=None):
    """Train, checkpoint, write metrics.json and loss.png under out_dir; return the metrics."""
    validate(cfg)
    out = harness.prepare_out_dir(cfg.out_dir)
    ckpt = None
    if cfg.resume:
        ckpt = harness.load_checkpoint(out / harness.CHECKPOINT)
        defaults = asdict(TrainConfig())
        given = given if given is not None else {k for k, v in asdict(cfg).items() if v != defaults[k]}  # fmt: skip
        cfg = harness.resume_train_config(ckpt["train_config"], cfg, given)
        if cfg.steps > cfg.schedule_steps:
            print(f"warning: --steps {cfg.steps} is past the schedule's horizon ({cfg.schedule_steps}): the learning rate stays at the schedule's end value")  # fmt: skip
    if cfg.smoke:
        cfg = replace(cfg, steps=min(cfg.steps, 6), batch_size=min(cfg.batch_size, 32), eval_every=3, n_eval_train=min(cfg.n_eval_train, 128))  # fmt: skip
    if not cfg.schedule_steps:
        cfg = replace(cfg, schedule_steps=cfg.steps)
    world, rank, device = distributed.setup(cfg.device)
    try:
        return _train(cfg, ckpt, out, world, rank, device)
    finally:
        distributed.teardown(world)


def _train(cfg, ckpt, out, world, rank, device):
    master = rank == 0
    log = print if master else (lambda *a, **k: None)
    threads = harness.set_threads(cfg.threads)
    log(f"device: {device} ({harness.device_name(device)})" + (f" x {world} processes" if world > 1 else "") + f", {threads} threads")  # fmt: skip
    torch.manual_seed(cfg.seed)
    try:
        data = load(cfg.dataset, cfg.data_dir, cfg.download, cfg.image_size, cfg.n_train, cfg.n_val)
    except DataError as e:
        raise harness.UserError(str(e)) from None
    if cfg.smoke:  # a few hundred images: the pipeline end to end in seconds
        data |= {
            k: (data[k][0][:n], data[k][1][:n])
            for k, n in (("train", 256), ("val", 128), ("test", 128))
        }
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = data["train"], data["val"], data["test"]
    try:
        mcfg = ModelConfig(arch=cfg.arch, num_classes=len(data["classes"]), in_channels=train_x.shape[1],
                           image_size=train_x.shape[-1], width=cfg.width, stem=cfg.stem, shortcut=cfg.shortcut)  # fmt: skip
    except ValueError as e:
        raise harness.UserError(str(e)) from None
    model = build_model(mcfg)
    if cfg.init_from and ckpt is None:
        try:
            load_torchvision(model, torch.load(cfg.weights, map_location="cpu", weights_only=True))
        except (ValueError, OSError, RuntimeError) as e:
            raise harness.UserError(f"--weights {cfg.weights}: {str(e).splitlines()[0]}") from None
    for bn in (m for m in model.modules() if isinstance(m, BatchNorm2d)):
        bn.sync = cfg.sync_bn
    model.to(device)
    cuda = device.type == "cuda"
    if cuda and cfg.amp:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)  # fmt: skip
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    ctx = torch.autocast("cuda", dtype=amp_dtype) if cuda and cfg.amp else torch.autocast("cpu", enabled=False)  # fmt: skip
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and cfg.amp and amp_dtype == torch.float16)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if cfg.init_from else channel_stats(train_x)
    norm = Normalise(mean, std, device)
    augment = {"auto": "crop" if cfg.dataset == "digits" else "crop-flip"}.get(cfg.augment, cfg.augment)  # fmt: skip
    fixed_train = slice(0, min(cfg.n_eval_train, len(train_y)))  # the train_error column's images

    history, step = harness.new_history("val_accuracy", "train_error"), 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        history, step = ckpt["history"], ckpt["step"]
        harness.set_rng_state(ckpt["rng"])
    raw, model = model, distributed.wrap(model, world, device)
    extras = {"data": {"dataset": cfg.dataset, "classes": list(data["classes"]), "mean": list(mean), "std": list(std)}}  # fmt: skip

    def save():
        harness.save_checkpoint(
            out / harness.CHECKPOINT, model=raw, optimizer=opt, model_config=mcfg, train_config=cfg,
            step=step, history=history, scaler=scaler.state_dict(), seconds=before + time.time() - t0, **extras,
        )  # fmt: skip

    n_params, G = count_params(raw), cfg.batch_size * world  # G: the global batch
    log(f"{cfg.arch}: {n_params:,} parameters, {train_x.shape[-1]}x{train_x.shape[-1]} images, {len(train_y)} training images")  # fmt: skip
    per_epoch = len(train_y) // G
    harness.check(per_epoch > 0, f"--batch-size {cfg.batch_size}: the global batch {G} is larger than the {len(train_y)} training images")  # fmt: skip
    t0, before = time.time(), (ckpt or {}).get("seconds", 0.0)  # training seconds of earlier runs
    # ---------------------------------------------------------------- the loop
    model.train()
    while step < cfg.steps:
        epoch, i = divmod(step, per_epoch)  # the epoch's order depends on (seed, epoch) only
        order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))  # fmt: skip
        idx = order[i * G : (i + 1) * G]
        x = train_x[idx]  # (G, C, S, S) uint8: the same global batch and crops on every process
        if augment != "none":
            x = pad_crop_flip(x, flip=augment == "crop-flip")
        rows = slice(rank * cfg.batch_size, (rank + 1) * cfg.batch_size)  # this process's rows
        x, y = norm(x[rows]), train_y[idx][rows].to(device)
        if cuda and cfg.amp:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        with ctx:
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # DDP: gradients averaged over processes here
        if cfg.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        step += 1
        loss_value = distributed.mean(loss.detach(), world).item()
        harness.check_finite(loss_value, step, out)
        history["step"].append(step)
        history["train_loss"].append(loss_value)
        if master and (step % cfg.eval_every == 0 or step == cfg.steps):
            v = evaluate(raw, val_x, val_y, norm, ctx)
            tr = evaluate(raw, train_x[fixed_train], train_y[fixed_train], norm, ctx)
            for key, value in (("eval_step", step), ("val_loss", v["loss"]), ("val_accuracy", v["accuracy"]), ("train_error", tr["error"])):  # fmt: skip
                history[key].append(value)
            ms = (
                (time.time() - t0)
                / max(1, len(history["step"]) - (ckpt or {}).get("step", 0))
                * 1000
            )
            print(f"step {step} | loss {loss_value:.4f} | train err {tr['error']:.4f} | val {v['loss']:.4f} | val acc {v['accuracy']:.4f} | lr {lr:.2e} | {ms:.0f} ms/step")  # fmt: skip
            save()
    seconds = before + time.time() - t0
    distributed.check_replicas(raw, world)  # parameters; then rank 0's BN statistics everywhere
    if not master:  # rank 0 evaluates and writes the files
        return {"rank": rank, "steps": step}
    # ---------------------------------------------------------------- the end
    t = evaluate(raw, test_x, test_y, norm, ctx)
    print(f"test accuracy {t['accuracy']:.4f} (top-5 {t['top5']:.4f}), final train error {history['train_error'][-1]:.4f}")  # fmt: skip
    save()
    harness.plot_loss(history, out / "loss.png", f"{cfg.arch} on {cfg.dataset}")
    metrics = dict(
        project="resnet", dataset=cfg.dataset, metric="test_accuracy", value=t["accuracy"],
        unit="fraction", higher_is_better=True, selection="final", n_params=n_params,
        steps=step, seconds=seconds, device=device.type, device_name=harness.device_name(device),
        seed=cfg.seed, threads=threads, arch=cfg.arch, test_top5=t["top5"], test_loss=t["loss"],
        train_error=history["train_error"][-1], world_size=world,
    )  # fmt: skip
    harness.write_metrics(out / "metrics.json", **metrics)
    return metrics


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    harness.add_config_flags(parser, TrainConfig, HELP)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    cfg = harness.config_from_args(TrainConfig, args)
    return harness.run_main(lambda: train(cfg, harness.given_flags(argv)) and 0, lambda: args.out_dir)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
