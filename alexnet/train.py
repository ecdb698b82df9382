"""Train AlexNet (model.py) with the paper's recipe: SGD with momentum and weight decay, dropout,
random crops and flips, PCA colour noise, and a learning rate divided by 10 on plateaus.

Krizhevsky et al. 2012, https://papers.nips.cc/paper/4824, Section 5: batch 128, momentum 0.9,
weight decay 5e-4, lr 0.01 divided by 10 when the validation error stopped improving (three
times). Cosine decay (Loshchilov & Hutter, https://arxiv.org/abs/1608.03983) is the default
here because a short run has no plateau to wait for.

    python train.py                                  # offline shapes, about 4 min on 2 CPU cores
    python train.py --dataset fashion-mnist --data-dir ~/data --download --steps 9000 --fancy-pca 0 --pool-kernel 2 --dropout 0.3 --hidden 1024

Tests (tests/test_train.py): a small run reaches a stated accuracy on the shapes; N steps equal
N/2 steps + --resume bitwise; the schedule's horizon is kept on resume; bad flags are one line.
"""

import argparse
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace

import harness
import torch
import torch.nn.functional as F
from augment import center_crop, fancy_pca, fancy_pca_basis, random_crop_flip, ten_crop_probs
from data import DATASETS, IMAGENET_MEAN, IMAGENET_STD, DataError, channel_stats, load
from model import PRESETS, AlexNet, AlexNetConfig, count_params


@dataclass
class TrainConfig:
    dataset: str = "shapes"
    data_dir: str = "data"
    download: bool = False
    num_classes: int = 0  # imagefolder: keep the first N class folders (0: all)
    preset: str = "small"
    image_size: int = 0  # crop side; 0: the dataset's (32; 224 for imagefolder)
    activation: str = "relu"
    dropout: float = 0.5
    lrn: bool = True
    pool_kernel: int = 3  # max-pooling window (stride 2): 3 overlapping, 2 non-overlapping
    hidden: int = 0  # width of fc6 and fc7; 0: the preset's (256 for small, 4096)
    augment: bool = True  # random crops and flips
    fancy_pca: float = 0.1  # std of the PCA colour noise alpha (0: off)
    ten_crop: bool = False  # also report the ten-crop test accuracy at the end
    steps: int = 1500
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | step (divide by 10 on a plateau, the paper's)
    warmup_steps: int = 100
    schedule_steps: int = 0  # horizon of the schedule; 0: this run's --steps
    grad_clip: float = 0.0  # 0: off
    eval_every: int = 250
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
    "preset": f"one of {', '.join(PRESETS)}",
    "activation": "relu or tanh (the paper's Figure 1)",
    "pool_kernel": "max-pooling window, stride 2: 3 overlapping (the paper's), 2 non-overlapping",
    "schedule": "cosine, or step: lr / 10 after 2 evaluations without a better val accuracy",
    "smoke": "a few steps on a few images: seconds",
}


def lr_at(step, cfg, val_accuracy=()):
    """Linear warm-up, then cosine to lr/100 at schedule_steps, or the paper's plateau steps.

    step: lr * 0.1^d, d = times (at most 3) the val accuracy went 2 evaluations without a new best.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "step":
        drops, best, since = 0, -1.0, 0
        for acc in val_accuracy:
            best, since = (acc, 0) if acc > best else (best, since + 1)
            if since == 2 and drops < 3:
                drops, since = drops + 1, 0
        return cfg.lr * 0.1**drops
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.schedule_steps - cfg.warmup_steps))
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def topk_correct(logits, y, k):
    """How many rows have their label among the k largest logits."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(dim=1).sum().item()


class Pipeline:
    """uint8 (B, C, S, S) -> normalised float crops: train (augmented) or test (centre)."""

    def __init__(self, cfg, data, crop, device):
        train_x = data["train"][0]
        imagenet = cfg.dataset == "imagefolder"
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet else channel_stats(train_x)
        self.mean = torch.tensor(mean, device=device)[:, None, None]
        self.std = torch.tensor(std, device=device)[:, None, None]
        # the colour covariance over (up to) 2000 training images, at the crop's centre
        sample = center_crop(train_x[:2000], crop).float() / 255
        self.values, self.vectors = fancy_pca_basis(sample)
        self.cfg, self.crop, self.device = cfg, crop, device
        self.stats = {"mean": list(mean), "std": list(std), "crop": crop}

    def train(self, x):
        x = x.float() / 255
        x = random_crop_flip(x, self.crop) if self.cfg.augment else center_crop(x, self.crop)
        if self.cfg.fancy_pca > 0:
            x = fancy_pca(x, self.values, self.vectors, self.cfg.fancy_pca)
        return self.normalise(x)

    def normalise(self, x):
        return (x.to(self.device, non_blocking=True) - self.mean) / self.std

    def test(self, x):
        return self.normalise(center_crop(x.float() / 255, self.crop))


@torch.no_grad()
def evaluate(model, pipe, x, y, batch_size, ctx, ten_crop=False):
    """{loss, accuracy, top5[, ten_crop_accuracy]} over (x, y), in eval mode, centre crops."""
    model.eval()
    loss = correct = top5 = ten = 0.0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size].to(pipe.device)
        with ctx:
            logits = model(pipe.test(xb)).float()
        loss += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += topk_correct(logits, yb, 1)
        top5 += topk_correct(logits, yb, 5)
        if ten_crop:
            full = pipe.normalise(xb.float() / 255)
            with ctx:
                ten += (ten_crop_probs(model, full, pipe.crop).argmax(1) == yb).sum().item()
    model.train()
    n = len(y)
    out = {"loss": loss / n, "accuracy": correct / n, "top5": top5 / n}
    return out | ({"ten_crop_accuracy": ten / n} if ten_crop else {})


def validate(cfg):
    for name, ok, what in [
        ("dataset", cfg.dataset in DATASETS, f"one of {', '.join(DATASETS)}"),
        ("preset", cfg.preset in PRESETS, f"one of {', '.join(PRESETS)}"),
        ("schedule", cfg.schedule in ("cosine", "step"), "cosine or step"),
        ("activation", cfg.activation in ("relu", "tanh"), "relu or tanh"),
        ("steps", cfg.steps > 0, "positive"),
        ("batch_size", cfg.batch_size > 0, "positive"),
        ("lr", cfg.lr > 0 and math.isfinite(cfg.lr), "positive"),
        ("eval_every", cfg.eval_every > 0, "positive"),
        ("dropout", 0 <= cfg.dropout < 1, "in [0, 1)"),
        ("fancy_pca", 0 <= cfg.fancy_pca < 10, "in [0, 10)"),
        ("weight_decay", cfg.weight_decay >= 0, "non-negative"),
        ("momentum", 0 <= cfg.momentum < 1, "in [0, 1)"),
        ("warmup_steps", cfg.warmup_steps >= 0, "non-negative"),
        ("schedule_steps", cfg.schedule_steps >= 0, "non-negative"),
        ("grad_clip", cfg.grad_clip >= 0, "non-negative (0: off)"),
        ("image_size", cfg.image_size >= 0, "non-negative (0: the dataset's)"),
        ("num_classes", cfg.num_classes >= 0, "non-negative (0: all)"),
        ("hidden", cfg.hidden >= 0, "non-negative (0: the preset's)"),
    ]:
        harness.check(ok, f"--{name.replace('_', '-')} {getattr(cfg, name)}: expected {what}")
    harness.check(
        cfg.num_classes == 0 or cfg.dataset == "imagefolder",
        "--num-classes applies to --dataset imagefolder only",
    )


def train(cfg: TrainConfig, given=None):
    """Train, checkpoint, write metrics.json and loss.png under out_dir; return the metrics."""
    out = harness.prepare_out_dir(cfg.out_dir)
    ckpt_path = out / harness.CHECKPOINT
    ckpt = None
    if cfg.resume:
        ckpt = harness.load_checkpoint(ckpt_path)
        defaults = asdict(TrainConfig())
        given = (
            given if given is not None else {k for k, v in asdict(cfg).items() if v != defaults[k]}
        )
        cfg = harness.resume_train_config(ckpt["train_config"], cfg, given)
        if cfg.steps > cfg.schedule_steps:
            print(f"warning: --steps {cfg.steps} is past the schedule's horizon ({cfg.schedule_steps}): the learning rate stays at the schedule's end value")  # fmt: skip
    if cfg.smoke:
        cfg = replace(cfg, steps=min(cfg.steps, 6), batch_size=min(cfg.batch_size, 32), eval_every=3, warmup_steps=min(cfg.warmup_steps, 2))  # fmt: skip
    if not cfg.schedule_steps:
        cfg = replace(cfg, schedule_steps=cfg.steps)
    validate(cfg)
    device = harness.pick_device(cfg.device)
    threads = harness.set_threads(cfg.threads)
    print(f"device: {device} ({harness.device_name(device)}), {threads} threads")
    torch.manual_seed(cfg.seed)

    try:
        data = load(
            cfg.dataset, cfg.data_dir, cfg.download, cfg.image_size, cfg.num_classes, cfg.smoke
        )
    except DataError as e:
        raise harness.UserError(str(e)) from None
    if cfg.smoke:  # a few hundred images: the pipeline end to end in seconds
        data |= {k: (data[k][0][:256], data[k][1][:256]) for k in ("train", "val", "test")}
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = data["train"], data["val"], data["test"]
    crop = cfg.image_size or data["crop"]
    harness.check(crop < train_x.shape[-1], f"--image-size {crop}: must be smaller than the stored {train_x.shape[-1]}x{train_x.shape[-1]} images")  # fmt: skip
    try:
        mcfg = AlexNetConfig(
            preset=cfg.preset, num_classes=len(data["classes"]), in_channels=train_x.shape[1],
            image_size=crop, activation=cfg.activation, dropout=cfg.dropout, lrn=cfg.lrn,
            pool_kernel=cfg.pool_kernel, hidden=cfg.hidden,
        )  # fmt: skip
    except ValueError as e:
        raise harness.UserError(str(e)) from None
    model = AlexNet(mcfg).to(device)
    cuda = device.type == "cuda"
    if cuda and cfg.amp:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)  # fmt: skip
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    ctx = torch.autocast("cuda", dtype=amp_dtype) if cuda and cfg.amp else nullcontext()
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and cfg.amp and amp_dtype == torch.float16)
    pipe = Pipeline(cfg, data, crop, device)

    # train_accuracy: the share of training batches (augmented, dropout on) classified right
    # since the previous evaluation, one value per eval_step (the paper's Figure 1 curve)
    history, step = harness.new_history("val_accuracy", "train_accuracy"), 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        history, step = ckpt["history"], ckpt["step"]
        harness.set_rng_state(ckpt["rng"])
    extras = {"data": {"dataset": cfg.dataset, "classes": list(data["classes"]), "source": train_x.shape[-1], **pipe.stats}}  # fmt: skip

    def save():
        harness.save_checkpoint(
            ckpt_path, model=model, optimizer=opt, model_config=mcfg, train_config=cfg,
            step=step, history=history, scaler=scaler.state_dict(),
            seconds=before + time.time() - t0, **extras,
        )  # fmt: skip

    n_params = count_params(model)
    print(f"AlexNet preset {cfg.preset}: {n_params:,} parameters, {crop}x{crop} crops, {len(train_y)} training images")  # fmt: skip
    per_epoch = len(train_y) // cfg.batch_size
    harness.check(per_epoch > 0, f"--batch-size {cfg.batch_size}: larger than the {len(train_y)} training images")  # fmt: skip
    t0, before = time.time(), (ckpt or {}).get("seconds", 0.0)  # training seconds of earlier runs
    # ---------------------------------------------------------------- the loop
    model.train()
    seen = right = 0
    while step < cfg.steps:
        epoch, i = divmod(step, per_epoch)  # the epoch's order depends on (seed, epoch) only
        order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))  # fmt: skip
        idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        x, y = pipe.train(train_x[idx]), train_y[idx].to(device)
        if cuda and cfg.amp:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = lr_at(step, cfg, history["val_accuracy"])
        for group in opt.param_groups:
            group["lr"] = lr
        with ctx:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        step += 1
        harness.check_finite(loss.item(), step, out)
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        seen, right = seen + len(y), right + (logits.argmax(1) == y).sum().item()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            v = evaluate(model, pipe, val_x, val_y, 256, ctx)
            history["eval_step"].append(step)
            history["val_loss"].append(v["loss"])
            history["val_accuracy"].append(v["accuracy"])
            history["train_accuracy"].append(right / seen)
            seen = right = 0
            ms = (time.time() - t0) / max(1, len(history["step"])) * 1000
            print(f"step {step} | loss {loss.item():.4f} | val {v['loss']:.4f} | val acc {v['accuracy']:.4f} | lr {lr:.2e} | {ms:.0f} ms/step")  # fmt: skip
            save()
    seconds = before + time.time() - t0
    # ---------------------------------------------------------------- the end
    t = evaluate(model, pipe, test_x, test_y, 256, ctx, ten_crop=cfg.ten_crop)
    print(f"test accuracy {t['accuracy']:.4f} (top-5 {t['top5']:.4f})" + (f", ten-crop {t['ten_crop_accuracy']:.4f}" if cfg.ten_crop else ""))  # fmt: skip
    save()
    harness.plot_loss(history, out / "loss.png", f"AlexNet ({cfg.preset}) on {cfg.dataset}")
    metrics = dict(
        project="alexnet", dataset=cfg.dataset, metric="test_accuracy", value=t["accuracy"],
        unit="fraction", higher_is_better=True, selection="final", n_params=n_params,
        steps=step, seconds=seconds, device=device.type,
        device_name=harness.device_name(device), seed=cfg.seed, threads=threads,
        test_top5=t["top5"], test_loss=t["loss"], **({"test_ten_crop_accuracy": t["ten_crop_accuracy"]} if cfg.ten_crop else {}),
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
    return harness.run_main(
        lambda: train(cfg, harness.given_flags(argv)) and 0, lambda: args.out_dir
    )


if __name__ == "__main__":
    raise SystemExit(main())
