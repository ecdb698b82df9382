"""Train latent diffusion end to end: the autoencoder, then the text encoder + U-Net on latents.

Rombach et al. 2022 (https://arxiv.org/abs/2112.10752): stage 1 learns a compressed
latent space (autoencoder.py); stage 2 learns to denoise latents given the caption,
    L = E_{z0, caption, eps, t} || eps - eps_theta(z_t, t, tau_theta(caption)) ||^2,
with the caption replaced by "" with probability p_uncond so that one network learns both the
conditional and the unconditional prediction that classifier-free guidance combines.

    python train.py                       # digits: both stages, then the judge's figures
    python train.py --stage diffusion     # stage 2 only, on runs/autoencoder.pt
    python train.py --resume              # continue each stage where it stopped
    torchrun --nproc_per_node 2 train.py  # DDP: each process its rows of one global batch

Writes under --out-dir: autoencoder.pt, checkpoint.pt, judge.pt (each in the run contract's
layout), metrics.json, loss.png, autoencoder_loss.png, samples.png.
The flags (TrainConfig) and the checks of their values are in train_config.py; the latent
scale factor's encode_all in autoencoder.py; the judge's figures in evaluate.py:report.
"""

import argparse
import time
from pathlib import Path

import distributed
import torch
import torch.nn.functional as F
from autoencoder import Autoencoder, AutoencoderConfig, encode_all, reconstruction_error
from data import (
    attribute_thresholds,
    attribute_words,
    attributes_of,
    captions_for,
    load_images,
    vocabulary,
)
from harness import (
    UserError,
    add_config_flags,
    check_finite,
    config_from_args,
    given_flags,
    load_checkpoint,
    new_history,
    pick_device,
    plot_loss,
    prepare_out_dir,
    resume_train_config,
    run_main,
    save_checkpoint,
    set_rng_state,
    set_threads,
)  # fmt: skip
from pipeline import DiffusionConfig, LatentDiffusion, load_autoencoder, tokenizer_state
from sample import Schedule
from text import Tokenizer
from tqdm import tqdm
from train_config import EVAL_IMAGES, HELP, SCALE_IMAGES, TrainConfig, checked, smoke_models


def fused_optimizer(device):
    """Adam's fused kernel (one pass updates every tensor; CUDA and CPU): on the CPU the
    per-tensor loop took 14% of a diffusion step here."""
    return device.type in ("cuda", "cpu")


def lr_at(step, lr, warmup_steps):
    return lr * min(1.0, (step + 1) / max(1, warmup_steps))


def train_autoencoder(config, data, device, out_dir, world=1, rank=0):
    """Stage 1: reconstruction (L1 + MSE) + kl_weight * KL; ends with the latent scale factor.
    world, rank: under torchrun (distributed.py); rank 0 evaluates and writes the checkpoint."""
    x_train, _, x_test, _ = data
    x_test = x_test[:EVAL_IMAGES]
    path = out_dir / "autoencoder.pt"
    model_config = smoke_models()[0] if config.smoke else AutoencoderConfig()
    ae = Autoencoder(model_config).to(device)
    opt = torch.optim.Adam(ae.parameters(), lr=config.ae_lr, fused=fused_optimizer(device))
    step, history = 0, new_history("val_psnr")
    if config.resume and path.exists():
        ckpt = load_checkpoint(path, device)
        ae.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        step, history = ckpt["step"], ckpt["history"]
    net, n = distributed.wrap(ae, world, device), config.batch_size * world
    mine = distributed.my_rows(config.batch_size, rank)
    with torch.no_grad():
        z_shape = ae.encode(x_train[:1].to(device))[0].shape[1:]
    bar = tqdm(range(step, config.ae_steps), desc="autoencoder", disable=config.smoke or rank > 0)
    for step in bar:
        # the global batch from the RNG every process shares; this process takes its rows
        xb = x_train[torch.randint(len(x_train), (n,))[mine]].to(device)
        eps = torch.randn((n, *z_shape), device=device)[mine]
        recon, kl = net(xb, eps)
        loss = F.l1_loss(recon, xb) + F.mse_loss(recon, xb) + config.kl_weight * kl.mean()
        logged = distributed.mean(loss, world).item()
        check_finite(logged, step, out_dir)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log(history, step=step + 1, train_loss=logged)
        if rank == 0 and ((step + 1) % config.eval_every == 0 or step + 1 == config.ae_steps):
            mse, psnr = reconstruction_error(ae, x_test.to(device))
            log(history, eval_step=step + 1, val_loss=mse, val_psnr=psnr)
            bar.set_postfix(loss=f"{logged:.4f}", psnr=f"{psnr:.2f}")
            scale = 1.0 / encode_all(ae, x_train[:SCALE_IMAGES], device).std().item()
            save_stage(path, ae, opt, model_config, config, step + 1, history, scale_factor=scale)
    distributed.check_replicas(ae, world)
    distributed.barrier(world)  # the others read rank 0's autoencoder.pt
    if config.ae_steps == 0 or not path.exists():
        raise UserError("--ae-steps must be > 0 for a new autoencoder")
    if rank == 0:
        plot_loss(history, out_dir / "autoencoder_loss.png", "autoencoder: L1 + MSE + KL")
    return load_autoencoder(path, device)


def log(history, **columns):
    for name, value in columns.items():
        history[name].append(value)


def save_stage(path, model, opt, model_config, config, step, history, **extras):
    kw = dict(model=model, optimizer=opt, model_config=model_config, train_config=config)
    save_checkpoint(path, **kw, step=step, history=history, **extras)


def train_diffusion(config, data, device, out_dir, ae, scale, world=1, rank=0):
    """Stage 2: eps-prediction on the (scaled) latents, captions generated per batch."""
    x_train, y_train, x_test, y_test = data
    x_test, y_test = x_test[:EVAL_IMAGES], y_test[:EVAL_IMAGES]
    path = out_dir / "checkpoint.pt"
    z_train, z_test = (
        encode_all(ae, x_train, device) * scale,
        encode_all(ae, x_test, device) * scale,
    )
    thresholds = attribute_thresholds(x_train, y_train, attributes_of(config.dataset))
    attrs = attribute_words(x_train, y_train, thresholds)
    tokenizer = Tokenizer(vocabulary(config.dataset))
    model_config = smoke_models()[1] if config.smoke else DiffusionConfig()
    model_config.text.vocab_size = len(tokenizer.vocab)
    model_config.latent_size = z_train.shape[-1]
    model = LatentDiffusion(model_config).to(device)
    ema = LatentDiffusion(model_config).to(device).eval()
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=0.0, fused=fused_optimizer(device)
    )
    schedule = Schedule()
    step, history = 0, new_history()
    if config.resume and path.exists():
        ckpt = load_checkpoint(path, device)
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        step, history = ckpt["step"], ckpt["history"]
    # validation: fixed t and noise on the test latents, the test images' own captions
    g = torch.Generator().manual_seed(1)
    val_t = torch.randint(schedule.num_steps, (len(z_test),), generator=g).to(device)
    val_noise = torch.randn(z_test.shape, generator=g).to(device)
    val_attrs = attribute_words(x_test, y_test, thresholds)
    val_text = tokenizer.encode(captions_for(y_test, val_attrs, config.dataset, g, 0.0))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    net, n = distributed.wrap(model, world, device), config.batch_size * world
    mine = distributed.my_rows(config.batch_size, rank)
    bar = tqdm(range(step, config.steps), desc="diffusion", disable=config.smoke or rank > 0)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config.lr, config.warmup_steps)
        # one global batch of n from the shared RNG (captions included); this process's rows
        idx = torch.randint(len(z_train), (n,))
        batch_attrs = [attrs[i] for i in idx.tolist()]
        captions = captions_for(y_train[idx], batch_attrs, config.dataset, None, config.p_uncond)
        ids, mask = (a[mine].to(device) for a in tokenizer.encode(captions))
        t = torch.randint(schedule.num_steps, (n,))[mine].to(device)
        noise = torch.randn(n, *z_train.shape[1:])[mine].to(device)
        z_t = schedule.q_sample(z_train[idx[mine]], t, noise)
        with autocast:
            eps = net(z_t, t, ids, mask)
            loss = F.mse_loss(eps.float(), noise)
        logged = distributed.mean(loss, world).item()
        check_finite(logged, step, out_dir)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        update_ema(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))
        log(history, step=step + 1, train_loss=logged)
        if rank == 0 and ((step + 1) % config.eval_every == 0 or step + 1 == config.steps):
            val = validation_loss(ema, schedule, z_test, val_t, val_noise, val_text, device)
            log(history, eval_step=step + 1, val_loss=val)
            bar.set_postfix(loss=f"{logged:.4f}", val=f"{val:.4f}")
            extras = dict(ema=ema.state_dict(), tokenizer=tokenizer_state(tokenizer))
            save_stage(path, model, opt, model_config, config, step + 1, history, **extras)
    distributed.check_replicas(model, world)
    distributed.barrier(world)
    if rank == 0:
        plot_loss(history, out_dir / "loss.png", "latent diffusion: eps-MSE (val: EMA model)")
    return step + 1, history


@torch.no_grad()
def update_ema(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)


@torch.no_grad()
def validation_loss(model, schedule, z, t, noise, text, device):
    ids, mask = text[0].to(device), text[1].to(device)
    eps = model.unet(schedule.q_sample(z, t, noise), t, model.text(ids, mask), mask)
    return F.mse_loss(eps, noise).item()


def train(config):
    config = checked(config)
    out_dir = prepare_out_dir(config.out_dir)
    world, rank, device = distributed.setup(pick_device(config.device))
    threads = set_threads(config.threads)
    torch.manual_seed(config.seed)
    if rank == 0:
        processes = f", {world} processes" if world > 1 else ""
        print(f"device {device.type}, {threads} threads{processes}")
    data = load_images(config.dataset, config.data_dir, config.download)
    t0 = time.time()
    if config.stage in ("autoencoder", "all"):
        ae, ae_ckpt = train_autoencoder(config, data, device, out_dir, world, rank)
        psnr = ae_ckpt["history"]["val_psnr"][-1]
        print(f"autoencoder: step {ae_ckpt['step']}, val PSNR {psnr:.2f} dB") if rank == 0 else None
    else:
        ae, ae_ckpt = load_autoencoder(out_dir / "autoencoder.pt", device)
    if config.stage == "autoencoder":
        return distributed.teardown(world)
    scale = ae_ckpt["scale_factor"]
    steps, _ = train_diffusion(config, data, device, out_dir, ae, scale, world, rank)
    seconds = time.time() - t0
    if rank > 0:  # rank 0 alone judges the EMA model
        return distributed.teardown(world)
    from evaluate import report  # the judge's figures for the EMA model: metrics.json

    metrics = report(config, out_dir, device, threads, seconds, steps, ae_ckpt, data, world)
    distributed.teardown(world)
    return metrics


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_config_flags(p, TrainConfig, HELP)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = config_from_args(TrainConfig, args)

    def run():
        c = config
        if c.resume:
            path = Path(c.out_dir) / (
                "autoencoder.pt" if c.stage == "autoencoder" else "checkpoint.pt"
            )
            if not path.exists():
                path = Path(c.out_dir) / "autoencoder.pt"
            c = resume_train_config(load_checkpoint(path)["train_config"], c, given_flags(argv) | {"resume"},
                                    may_change=("steps", "ae_steps", "stage", "device", "threads", "out_dir", "resume", "eval_every"))  # fmt: skip
        train(c)

    return run_main(run, lambda: config.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
