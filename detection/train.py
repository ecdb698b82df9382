"""Train one of the three detectors of model.py (--detector sliding|two-stage|one-stage) and
report its mAP on held-out images.

Adam with a linear warm-up and a cosine decay (a short CPU run; the papers used SGD with
momentum: Faster R-CNN Section 3.1.3, YOLO Section 2.2), random horizontal flips.

    python train.py                                   # two-stage on generated scenes, ~4 min on 2 CPU cores
    python train.py --detector one-stage
    python train.py --dataset voc --data-dir ~/data --download --image-size 128 --steps 5000

Tests (tests/test_train.py): a short run of each detector reaches a stated mAP@0.5 on the
scenes; N steps equal N/2 steps + --resume bitwise; bad flags, bad annotations and a
non-finite loss are one `error:` line.
"""

import argparse
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace

import harness
import torch
from data import DATASETS, DataError, load
from metrics import evaluate
from model import DETECTORS, DetectorConfig, build_detector, count_params


@dataclass
class TrainConfig:
    dataset: str = "scenes"
    data_dir: str = "data"
    download: bool = False
    detector: str = "two-stage"
    image_size: int = 64
    width: int = 32
    steps: int = 500
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    schedule_steps: int = 0  # horizon of the cosine; 0: this run's --steps
    grad_clip: float = 10.0  # 0: off
    flip: bool = True  # random horizontal flips
    eval_every: int = 250
    n_eval: int = 100  # validation images per evaluation (0: all)
    n_test: int = 0  # test images evaluated at the end (0: all)
    amp: bool = True  # CUDA only: bf16 autocast (fp16 + GradScaler without bf16)
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False


HELP = {
    "dataset": f"one of {', '.join(DATASETS)}",
    "data_dir": "voc: DIR/Annotations/*.xml + DIR/JPEGImages/ (or DIR/VOCdevkit/VOC2007/...); coco-json: DIR/annotations.json + DIR/images/",  # fmt: skip
    "download": "voc only: fetch VOC 2007 trainval with torchvision into --data-dir",
    "detector": f"one of {', '.join(DETECTORS)}",
    "image_size": "images are resized to this square side (a multiple of 8)",
    "smoke": "a few steps on a few scenes: seconds",
}


def lr_at(step, cfg):
    """Linear warm-up to lr, then cosine to lr/100 at schedule_steps (held there after)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.schedule_steps - cfg.warmup_steps))
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def batch(x, targets, idx, device, flip=False, size=64):
    """uint8 images and their targets at idx -> float images in [0, 1] and targets, on device;
    with flip, each image is mirrored with probability 1/2 (x -> S - x for its boxes)."""
    images = x[idx].to(device).float() / 255
    out = [{k: v.to(device) for k, v in targets[i].items()} for i in idx.tolist()]
    if flip:
        mirror = torch.rand(len(idx)) < 0.5
        images[mirror] = images[mirror].flip(-1)
        for t, m in zip(out, mirror.tolist()):
            if m:
                t["boxes"] = torch.stack([size - t["boxes"][:, 2], t["boxes"][:, 1], size - t["boxes"][:, 0], t["boxes"][:, 3]], 1)  # fmt: skip
    return images, out


@torch.no_grad()
def detect_all(model, x, targets, device, ctx, batch_size=32):
    """Detections for every image of x (eval mode) and the seconds they took."""
    model.eval()
    preds, t0 = [], time.time()
    for i in range(0, len(x), batch_size):
        images, _ = batch(x, targets, torch.arange(i, min(i + batch_size, len(x))), device)
        with ctx:
            preds += model.detect(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    model.train()
    return preds, time.time() - t0


@torch.no_grad()
def val_loss(model, x, targets, device, ctx, batch_size=32):
    """The training loss on held-out images; its sampling on a fixed seed and outside the run's RNG."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        total = 0.0
        for i in range(0, len(x), batch_size):
            images, t = batch(x, targets, torch.arange(i, min(i + batch_size, len(x))), device)
            with ctx:
                total += model.loss(images, t)[0].item() * len(t)
    return total / len(x)


def validate(cfg):
    for name, ok, what in [
        ("dataset", cfg.dataset in DATASETS, f"one of {', '.join(DATASETS)}"),
        ("detector", cfg.detector in DETECTORS, f"one of {', '.join(DETECTORS)}"),
        ("steps", cfg.steps > 0, "positive"),
        ("batch_size", cfg.batch_size > 0, "positive"),
        ("lr", cfg.lr > 0 and math.isfinite(cfg.lr), "positive"),
        ("eval_every", cfg.eval_every > 0, "positive"),
        ("n_eval", cfg.n_eval >= 0, "non-negative (0: all)"),
        ("n_test", cfg.n_test >= 0, "non-negative (0: all)"),
        ("weight_decay", cfg.weight_decay >= 0, "non-negative"),
        ("warmup_steps", cfg.warmup_steps >= 0, "non-negative"),
        ("schedule_steps", cfg.schedule_steps >= 0, "non-negative"),
        ("grad_clip", cfg.grad_clip >= 0, "non-negative (0: off)"),
        (
            "image_size",
            cfg.image_size >= 16 and cfg.image_size % 8 == 0,
            "a multiple of 8, at least 16",
        ),  # fmt: skip
        ("width", cfg.width > 0, "positive"),
    ]:
        harness.check(ok, f"--{name.replace('_', '-')} {getattr(cfg, name)}: expected {what}")
    harness.check(not cfg.download or cfg.dataset == "voc", f"--download applies to --dataset voc only (not {cfg.dataset})")  # fmt: skip


def download_voc(data_dir):
    import torchvision

    try:
        torchvision.datasets.VOCDetection(data_dir, year="2007", image_set="trainval", download=True)  # fmt: skip
    except Exception as e:  # network errors come in many kinds
        raise harness.UserError(f"VOC download into {data_dir} failed ({type(e).__name__}: {e})") from None  # fmt: skip


def train(cfg: TrainConfig, given=None):
    """Train, checkpoint, write metrics.json and loss.png under out_dir; return the metrics."""
    out = harness.prepare_out_dir(cfg.out_dir)
    ckpt_path = out / harness.CHECKPOINT
    ckpt = None
    if cfg.resume:
        ckpt = harness.load_checkpoint(ckpt_path)
        defaults = asdict(TrainConfig())
        given = given if given is not None else {k for k, v in asdict(cfg).items() if v != defaults[k]}  # fmt: skip
        cfg = harness.resume_train_config(ckpt["train_config"], cfg, given)
        if cfg.steps > cfg.schedule_steps:
            print(f"warning: --steps {cfg.steps} is past the schedule's horizon ({cfg.schedule_steps}): the learning rate stays at the schedule's end value")  # fmt: skip
    if cfg.smoke:
        cfg = replace(cfg, steps=min(cfg.steps, 4), batch_size=min(cfg.batch_size, 4), eval_every=2, n_eval=4, warmup_steps=min(cfg.warmup_steps, 2))  # fmt: skip
    if not cfg.schedule_steps:
        cfg = replace(cfg, schedule_steps=cfg.steps)
    validate(cfg)
    device = harness.pick_device(cfg.device)
    threads = harness.set_threads(cfg.threads)
    print(f"device: {device} ({harness.device_name(device)}), {threads} threads")
    torch.manual_seed(cfg.seed)

    try:
        if cfg.download:
            download_voc(cfg.data_dir)
        data = load(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.smoke)
    except DataError as e:
        raise harness.UserError(str(e)) from None
    (train_x, train_t), (val_x, val_t), (test_x, test_t) = data["train"], data["val"], data["test"]
    n_test = 8 if cfg.smoke else cfg.n_test
    if n_test:
        test_x, test_t = test_x[:n_test], test_t[:n_test]
    if cfg.n_eval:
        val_x, val_t = val_x[: cfg.n_eval], val_t[: cfg.n_eval]
    mcfg = DetectorConfig(detector=cfg.detector, num_classes=len(data["classes"]), image_size=cfg.image_size, width=cfg.width)  # fmt: skip
    model = build_detector(mcfg).to(device)
    cuda = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    ctx = torch.autocast("cuda", dtype=amp_dtype) if cuda and cfg.amp else nullcontext()
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and cfg.amp and amp_dtype == torch.float16)

    history, step = harness.new_history("val_map50"), 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        history, step = ckpt["history"], ckpt["step"]
        harness.set_rng_state(ckpt["rng"])
    extras = {"data": {"dataset": cfg.dataset, "classes": list(data["classes"])}}

    def save():
        harness.save_checkpoint(
            ckpt_path, model=model, optimizer=opt, model_config=mcfg, train_config=cfg,
            step=step, history=history, scaler=scaler.state_dict(),
            seconds=before + time.time() - t0, **extras,
        )  # fmt: skip

    n_params = count_params(model)
    print(f"{cfg.detector} detector: {n_params:,} parameters, {len(train_x)} training images of {cfg.image_size}x{cfg.image_size}, {len(data['classes'])} classes")  # fmt: skip
    per_epoch = len(train_x) // cfg.batch_size
    harness.check(per_epoch > 0, f"--batch-size {cfg.batch_size}: larger than the {len(train_x)} training images")  # fmt: skip
    t0, before = time.time(), (ckpt or {}).get("seconds", 0.0)  # training seconds of earlier runs
    # ---------------------------------------------------------------- the loop
    model.train()
    while step < cfg.steps:
        epoch, i = divmod(step, per_epoch)  # the epoch's order depends on (seed, epoch) only
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))  # fmt: skip
        images, targets = batch(train_x, train_t, order[i * cfg.batch_size : (i + 1) * cfg.batch_size], device, cfg.flip, cfg.image_size)  # fmt: skip
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        with ctx:
            loss, parts = model.loss(images, targets)
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
        if step % cfg.eval_every == 0 or step == cfg.steps:
            preds, _ = detect_all(model, val_x, val_t, device, ctx)
            v = evaluate(preds, val_t, mcfg.num_classes)
            history["eval_step"].append(step)
            history["val_loss"].append(val_loss(model, val_x, val_t, device, ctx))
            history["val_map50"].append(v["map50"])
            ms = (time.time() - t0) / max(1, len(history["step"])) * 1000
            terms = " ".join(f"{k} {x.item():.3f}" for k, x in parts.items())
            print(f"step {step} | loss {loss.item():.4f} ({terms}) | val {history['val_loss'][-1]:.4f} | val mAP@0.5 {v['map50']:.4f} | lr {lr:.2e} | {ms:.0f} ms/step")  # fmt: skip
            save()
    seconds = before + time.time() - t0
    # ---------------------------------------------------------------- the end
    preds, detect_seconds = detect_all(model, test_x, test_t, device, ctx)
    t = evaluate(preds, test_t, mcfg.num_classes)
    ips = len(test_x) / detect_seconds
    print(f"test mAP@0.5 {t['map50']:.4f} | mAP@[.5:.95] {t['map']:.4f} | VOC 11-point mAP@0.5 {t['map50_voc11']:.4f} | {ips:.1f} images/s")  # fmt: skip
    save()
    harness.plot_loss(history, out / "loss.png", f"{cfg.detector} detector on {cfg.dataset}")
    metrics = dict(
        project="detection", dataset=cfg.dataset, metric="test_map50", value=t["map50"],
        unit="fraction", higher_is_better=True, interpolation="COCO 101-point",
        selection="final", n_params=n_params, steps=step, seconds=seconds, device=device.type,
        device_name=harness.device_name(device), seed=cfg.seed, threads=threads,
        detector=cfg.detector, test_map=t["map"], test_map75=t["map75"],
        test_map50_voc11=t["map50_voc11"], test_ap50_per_class={c: None if math.isnan(a) else a for c, a in zip(data["classes"], t["ap50"])},
        images_per_second=ips, n_test=len(test_x),
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
