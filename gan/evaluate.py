"""Scoring a GAN during and after a run: held-out losses, sample metrics, frames, metrics.json.

2-D mixtures: modes covered and the high-quality share (metrics.mode_stats); images: the
judge's metrics (judge.py: judge-FID with its real-vs-real floor, classes, precision/recall).
With --ema the EMA G is the headline and the raw G is scored beside it on the same noise
(keys ending in _no_ema).
Every evaluation uses the same fixed noise and held-out real points, and no global RNG, so a
resumed run equals an uninterrupted one (tests/test_train.py).
"""

import harness
import torch
import visualize
from data import MODE_STD
from metrics import mode_stats
from model import D_LOSSES, G_LOSSES


@torch.no_grad()
def evaluate(model, G_eval, loss, data, fixed_z, scorer):
    """Held-out D loss (no penalty), G loss, and the sample metrics of G_eval on fixed noise."""
    model.eval()
    G_eval.eval()
    n = len(data.eval_x)
    fake = torch.cat([G_eval(z) for z in fixed_z.split(500)])
    x_real = data.eval_x.to(fixed_z.device)
    d_real, d_fake = model.D(x_real[:500]), model.D(fake[:500])
    out = {
        "val_loss": D_LOSSES[loss](d_real, d_fake).item(),
        "val_g_loss": G_LOSSES[loss](d_fake).item(),
    }
    if data.mixture:
        centers = data.centers.double().numpy()
        out |= mode_stats(fake.cpu().double().numpy(), centers, MODE_STD)
        if G_eval is not model.G:  # an EMA run: the raw G's numbers too, on the same noise
            raw = mode_stats(model.G(fixed_z).cpu().double().numpy(), centers, MODE_STD)
            out |= {"modes_covered_no_ema": raw["modes_covered"], "high_quality_no_ema": raw["high_quality"]}  # fmt: skip
    else:
        out |= scorer.score(fake[: max(n, 1)])
        if G_eval is not model.G:
            raw = torch.cat([model.G(z) for z in fixed_z[: max(n, 1)].split(500)])
            out |= {k + "_no_ema": v for k, v in scorer.score(raw).items() if k != "judge_fid_floor"}  # fmt: skip
    model.train()
    G_eval.train()
    return out


def progress_frame(model, G_eval, data, fixed_z):
    """One progress frame: 2-D: G's points and D's scores on a 64x64 grid; images: 32 samples."""
    with torch.no_grad():
        model.eval()
        G_eval.eval()
        if data.mixture:
            lim = float(data.centers.abs().max()) + 1.5
            g = torch.linspace(-lim, lim, 64)
            grid = (
                torch.stack(torch.meshgrid(g, g, indexing="xy"), -1)
                .reshape(-1, 2)
                .to(fixed_z.device)
            )
            out = {
                "fake": G_eval(fixed_z[:1000]).cpu(),
                "surface": model.D(grid).reshape(64, 64).cpu(),
                "lim": lim,
            }
        else:
            out = {"fake": G_eval(fixed_z[:32]).cpu().float()}
        model.train()
        G_eval.train()
    return out


def write_results(run, metrics, step, seconds, history, frames, settings):
    """metrics.json (the contract's keys + the variant and its sample metrics), loss.png,
    curves.png, and the progress strip: game.png (2-D) or progress.png (images)."""
    c, mc, model, data, scorer, out = run
    lr, betas, n_critic, gp_lambda = settings
    device = next(model.parameters()).device
    common = dict(
        project="gan", dataset=c.dataset, selection="final", steps=step, seconds=round(seconds, 2),
        n_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        device=device.type, device_name=harness.device_name(device), seed=c.seed,
        threads=torch.get_num_threads(), loss=c.loss, spectral_norm=c.spectral_norm, lr=lr,
        betas=list(betas), n_critic=n_critic, ema=c.ema,
        gp_lambda=gp_lambda if c.loss == "wgan-gp" else None,
    )  # fmt: skip
    if data.mixture:
        value, k = float(metrics["modes_covered"]), len(data.centers)
        headline = dict(
            metric="modes_covered", value=value, unit=f"modes of {k}", higher_is_better=True
        )
        keys = ("modes_covered", "high_quality", "mode_counts", "modes_covered_no_ema", "high_quality_no_ema")  # fmt: skip
        extra = {key: metrics[key] for key in keys if key in metrics}
        title = f"{c.loss}{' + SN' if c.spectral_norm else ''} on {c.dataset}"
        visualize.game_strip(frames, data.centers.numpy(), out / "game.png", title)
    else:
        value, unit = float(metrics["judge_fid"]), "judge-FID (the judge's features, not Inception)"
        headline = dict(metric="judge_fid", value=value, unit=unit, higher_is_better=False)
        extra = {k: v for k, v in metrics.items() if k not in ("val_loss", "val_g_loss")}
        extra["judge_test_accuracy"] = scorer.test_accuracy
        visualize.progress_strip(frames, out / "progress.png")
    harness.write_metrics(out / "metrics.json", **headline, **common, **extra)
    title = "discriminator loss (validation: held-out batch, no penalty)"
    harness.plot_loss(history, out / "loss.png", title)
    visualize.plot_curves(history, out / "curves.png")
    print(
        f"{headline['metric']} {value:.4g} ({headline['unit']}), {step} steps, {seconds:.1f} s -> {out}"
    )
    return {**headline, **common, **extra}
