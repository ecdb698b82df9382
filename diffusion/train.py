"""Train the DDPM U-Net (model.py) with L_simple (schedule.py); judge its DDIM samples at the end.

Ho et al. 2020 (arXiv 2006.11239), Algorithm 1: take x_0 from the data, t uniformly from
0..T-1 and eps ~ N(0, I); step on || eps - eps_theta(sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps, t) ||^2.
Class labels are dropped to a "null" label with probability --label-dropout so that the one
network also learns the unconditional model that classifier-free guidance needs (Ho & Salimans
2022, arXiv 2207.12598, Algorithm 1). An EMA of the weights (decay warmed up from 0) is what
gets sampled and judged.

    python train.py                        # sklearn digits, class-conditional, ~5 min on 2 cores
    torchrun --nproc_per_node=2 train.py   # DDP: each process a slice of the same global batch

The flags and their checks are config.py's; the sampler table is evaluate.py's.

Tests: tests/test_train.py (a tiny run's loss gate, resume equals an uninterrupted run, the LR
horizon), tests/test_ddp.py (two gloo processes equal one with the same global batch).
"""

import argparse
import copy
import math
import time
from dataclasses import replace

import data as datasets
import harness
import torch
import torch.distributed as dist
from config import HELP, TrainConfig, model_config, validate
from harness import UserError
from judge import judge_model
from sample import sample
from schedule import Schedule


def lr_at(step, *, lr, warmup_steps, schedule_steps):
    """Linear warm-up, then cosine from lr to lr/10 at schedule_steps (and lr/10 after)."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, schedule_steps - warmup_steps))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def ema_update(ema, model, step, decay):
    """theta_ema <- d theta_ema + (1 - d) theta,  d = min(decay, (1+step)/(10+step)): parameters only."""
    d = min(decay, (1 + step) / (10 + step))
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p.detach().float(), 1 - d)


@torch.no_grad()
def val_loss(model, schedule, data, cfg, device, n=512):
    """L_simple on the test split with fixed t and noise, so evaluations are comparable."""
    g = torch.Generator().manual_seed(1234)
    x0, y = data["test_x"][:n], data["test_y"][:n]
    t = torch.randint(schedule.T, (len(x0),), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    y = y.to(device) if cfg.conditional else None
    return schedule.loss(
        model, x0.to(device), t.to(device), noise.to(device), y, cfg.prediction
    ).item()


def train(cfg: TrainConfig, given=frozenset()):
    out = harness.prepare_out_dir(cfg.out_dir)
    ckpt_path = out / harness.CHECKPOINT
    state = None
    if cfg.resume:
        state = harness.load_checkpoint(ckpt_path)
        cfg = harness.resume_train_config(state["train_config"], cfg, given)
    validate(cfg)
    if cfg.smoke:
        small = dict(steps=20, batch_size=32, eval_every=10, eval_ddim_steps=10, judge_steps=30)
        cfg = replace(
            cfg, num_eval_samples=40, **{k: min(getattr(cfg, k), v) for k, v in small.items()}
        )
    threads = harness.set_threads(cfg.threads)
    device = harness.pick_device(cfg.device)
    world, rank, device = harness.setup_distributed(device)
    try:
        data = datasets.load(cfg.dataset, cfg.data_dir, cfg.download)
    except ValueError as e:
        raise UserError(str(e)) from None
    if rank == 0:
        print(
            f"device {device} | threads {threads} | processes {world} | {cfg.dataset} {tuple(data['train_x'].shape)}"
        )

    torch.manual_seed(cfg.seed)
    mc, model = model_config(cfg, data)
    model.to(device)
    ema = copy.deepcopy(model).float().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp_dtype = harness.autocast_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    schedule = Schedule(cfg.timesteps, cfg.beta_schedule)
    history, step = harness.new_history(), 0
    horizon = cfg.schedule_steps or cfg.steps
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"]) if state.get("scaler") else None
        history, step = state["history"], state["step"]
        horizon = state["train_config"]["schedule_steps"] or state["train_config"]["steps"]
        harness.set_rng_state(state["rng"])
        if cfg.steps > horizon and rank == 0:
            print(
                f"warning: --steps {cfg.steps} runs past the LR schedule's horizon ({horizon}): the learning rate stays at its end value"
            )
    cfg.schedule_steps = horizon
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    def save():
        if rank == 0:
            harness.save_checkpoint(ckpt_path, model=model, optimizer=opt, model_config=mc, train_config=cfg, step=step,
                                    history=history, ema=ema.state_dict(), scaler=scaler.state_dict() if scaler.is_enabled() else {})  # fmt: skip

    grids, x_all, y_all = [], data["train_x"], data["train_y"]
    t0, n_global = time.time(), cfg.batch_size * world
    while step < cfg.steps:
        # the global batch from the RNG every process shares; this process takes its slice
        i = torch.randint(len(x_all), (n_global,))
        t = torch.randint(schedule.T, (n_global,))
        noise = torch.randn((n_global, *x_all.shape[1:]))
        drop = torch.rand(n_global) < cfg.label_dropout
        mine = slice(rank * cfg.batch_size, (rank + 1) * cfg.batch_size)
        x0, t, noise = x_all[i][mine].to(device), t[mine].to(device), noise[mine].to(device)
        y = (
            torch.where(drop, mc.num_classes, y_all[i])[mine].to(device)
            if cfg.conditional
            else None
        )
        for group in opt.param_groups:
            group["lr"] = lr_at(
                step, lr=cfg.lr, warmup_steps=cfg.warmup_steps, schedule_steps=horizon
            )
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = schedule.loss(net, x0, t, noise, y, cfg.prediction)
        logged = loss.detach().float()
        if world > 1:  # the global batch's loss on every process (and a NaN stops them all)
            dist.all_reduce(logged)
            logged /= world
        harness.check_finite(logged.item(), step, out)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        ema_update(ema, model, step, cfg.ema_decay)
        step += 1
        history["step"].append(step)
        history["train_loss"].append(logged.item())
        if rank == 0 and (step % cfg.eval_every == 0 or step == cfg.steps):
            ema.eval()
            v = val_loss(ema, schedule, data, cfg, device)
            history["eval_step"].append(step)
            history["val_loss"].append(v)
            y_grid = torch.arange(10, device=device) if cfg.conditional else None
            g = torch.Generator().manual_seed(99)  # the same x_T for every progress grid
            xg, _ = sample(
                ema,
                schedule,
                (10, *model.sample_shape),
                y_grid,
                steps=20,
                prediction=cfg.prediction,
                generator=g,
            )
            grids.append(xg.float().cpu())
            ms = (time.time() - t0) / max(1, step - (state["step"] if state else 0)) * 1000
            print(
                f"step {step} | loss {logged.item():.4f} | val {v:.4f} | {ms:.0f} ms/step",
                flush=True,
            )
            save()
    seconds = time.time() - t0
    save()
    if world > 1:
        dist.barrier()
    if rank != 0:
        dist.destroy_process_group()
        return {}
    n = cfg.num_eval_samples or len(data["test_x"])
    metrics = judge_model(
        ema,
        schedule,
        data,
        out / "judge.pt",
        n,
        cfg.eval_ddim_steps,
        cfg.guidance,
        cfg.prediction,
        cfg.judge_steps,
    )
    import visualize

    harness.plot_loss(history, out / "loss.png", f"diffusion on {cfg.dataset}")
    visualize.progress_strip(grids, history["eval_step"][-len(grids) :], out / "progress.png")
    metrics = dict(
        project="diffusion", dataset=cfg.dataset, metric="judge_fid", value=metrics["judge_fid"], unit="judge-FID",
        higher_is_better=False, selection="final", n_params=sum(p.numel() for p in model.parameters()), steps=step,
        seconds=round(seconds, 1), device=device.type, device_name=harness.device_name(device), seed=cfg.seed,
        threads=threads, world_size=world, cpu_seconds=round(time.process_time(), 1), **{k: v for k, v in metrics.items() if k != "judge_fid"},
    )  # fmt: skip
    harness.write_metrics(out / "metrics.json", **metrics)
    print(
        f"judge-FID {metrics['value']:.2f} (floor {metrics['judge_fid_floor']:.2f}) | judge accuracy {metrics.get('judge_accuracy', float('nan')):.3f} | {seconds:.0f} s training, {metrics['cpu_seconds']:.0f} CPU-s in all"
    )
    if world > 1:
        dist.destroy_process_group()
    return metrics


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    harness.add_config_flags(p, TrainConfig, HELP)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    given = harness.given_flags(argv)

    def run():
        train(harness.config_from_args(TrainConfig, args), given)

    return harness.run_main(run, lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
