"""Train the VAE on the ELBO; report test -ELBO, IWAE NLL, KL, reconstruction and active units.

    python train.py          # binarised sklearn digits, offline: about a minute on an idle 2-core CPU
    python train.py --dataset fashion-mnist --data-dir ~/data --download --arch conv

Kingma and Welling, https://arxiv.org/abs/1312.6114 (Algorithm 1: minibatch SGVB with one
sample of z per image); the test NLL is the k = 1000 importance-weighted bound of Burda et al.,
https://arxiv.org/abs/1509.00519, and "active units" their Section 5.2 criterion.
tests/test_train.py holds it to a stated test -ELBO on digits and to bitwise resume.
"""

import argparse
import dataclasses
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import harness
import torch
from data import DATASETS, Pixels, load_dataset
from model import VAE, VAEConfig

DYNAMIC_BINARY = {"mnist", "fashion-mnist", "imagefolder"}  # digits keep one fixed threshold
CONTINUOUS = {"fashion-mnist", "imagefolder"}  # --likelihood auto: Gaussian on these


@dataclass
class TrainConfig:
    dataset: str = "digits"
    data_dir: str = "data"
    download: bool = False
    test_set_only: bool = False
    image_size: int = 32
    likelihood: str = "auto"
    arch: str = "mlp"
    latent_dim: int = 16
    hidden: int = 256
    n_layer: int = 2
    conv_channels: int = 32
    steps: int = 6000
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    schedule_steps: int = 0
    beta: float = 1.0
    kl_warmup_steps: int = 0
    free_bits: float = 0.0
    eval_every: int = 500
    eval_samples: int = 10
    iwae_k: int = 1000
    seed: int = 0
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False
    device: str = "auto"
    threads: int = 0
    precision: str = "auto"


HELP = {
    "dataset": f"one of {', '.join(DATASETS)}",
    "data_dir": "where mnist/fashion-mnist IDX files are (DIR/MNIST/raw), or the image folder",
    "test_set_only": "mnist/fashion-mnist: split the 10k test files 7,000/1,000/2,000",
    "image_size": "imagefolder only: every image is resized to this square size",
    "likelihood": "auto (bernoulli for digits/mnist, gaussian otherwise) | bernoulli | gaussian",
    "arch": "mlp | conv (conv needs a height and width divisible by 4)",
    "schedule_steps": "cosine learning-rate horizon (0: this run's --steps)",
    "beta": "weight of the KL term (beta-VAE); 1 is the ELBO",
    "kl_warmup_steps": "the KL weight rises linearly from 0 to --beta over this many steps",
    "free_bits": "nats per latent unit below which the KL is not penalised (0: off)",
    "eval_samples": "z samples per image for the validation and test ELBO",
    "iwae_k": "importance samples of the final test NLL (the k sweep goes up to it)",
    "precision": "auto (bf16 on cuda, fp32 elsewhere) | fp32 | bf16 | fp16",
}
SMOKE = dict(steps=40, eval_every=20, hidden=32, latent_dim=4, iwae_k=10, eval_samples=2)


CHOICES = {
    "dataset": DATASETS,
    "likelihood": ("auto", "bernoulli", "gaussian"),
    "arch": ("mlp", "conv"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
}
AT_LEAST_ONE = "latent_dim hidden n_layer conv_channels steps batch_size eval_every eval_samples iwae_k image_size"
NOT_NEGATIVE = "weight_decay grad_clip free_bits kl_warmup_steps schedule_steps threads"


def validate(c, given):
    """Every flag value that cannot work is one line before any work (CONTRIBUTING.md 6)."""
    check, flag = harness.check, lambda name: "--" + name.replace("_", "-")
    for name, options in CHOICES.items():
        value = getattr(c, name)
        check(value in options, f"{flag(name)} {value!r}: choose from {', '.join(options)}")
    for name in AT_LEAST_ONE.split():
        check(getattr(c, name) >= 1, f"{flag(name)} {getattr(c, name)}: must be at least 1")
    for name in ("lr", "beta"):
        value = getattr(c, name)
        check(math.isfinite(value) and value > 0, f"--{name} {value}: must be a positive number")
    for name in NOT_NEGATIVE.split():
        value = getattr(c, name)
        check(math.isfinite(value) and value >= 0, f"{flag(name)} {value}: must be 0 or more")
    imagefolder, idx = c.dataset == "imagefolder", c.dataset in ("mnist", "fashion-mnist")
    check(
        imagefolder or "image_size" not in given,
        "--image-size applies to --dataset imagefolder only",
    )
    check(idx or not c.test_set_only, "--test-set-only applies to mnist and fashion-mnist only")


def model_config(config, data):
    """The model's shape from the data; its sizes from the flags of the same names."""
    likelihood = config.likelihood
    if likelihood == "auto":
        likelihood = "gaussian" if config.dataset in CONTINUOUS else "bernoulli"
    C, H, W = data.shape
    sizes = {
        k: getattr(config, k) for k in ("arch", "latent_dim", "hidden", "n_layer", "conv_channels")
    }
    return VAEConfig(channels=C, height=H, width=W, likelihood=likelihood, **sizes)


def lr_at(step, config):
    """Cosine decay from --lr to 0 over schedule_steps; constant at 0 past it."""
    t = min(step / config.schedule_steps, 1.0)
    return config.lr * 0.5 * (1 + math.cos(math.pi * t))


def kl_weight(step, config):
    """KL warm-up (Bowman et al. 2016; Sonderby et al. 2016): beta * min(1, step / warm-up)."""
    if config.kl_warmup_steps == 0:
        return config.beta
    return config.beta * min(1.0, step / config.kl_warmup_steps)


@torch.no_grad()
def evaluate(model, x, n_samples, k=0, seed=0, batch=500):
    """-ELBO, KL, -log p(x|z) (nats per image), active units and, if k, the IWAE NLL of x.

    Its own generator: evaluation never moves the training RNG (resume stays bitwise).
    Active units (Burda et al. Section 5.2): A_u = Cov_x(E_q(z|x)[z_u]) > 0.01.
    """
    model.eval()
    g = torch.Generator(device=x.device).manual_seed(seed)
    sums, mus = {"nelbo": 0.0, "kl": 0.0, "distortion": 0.0, "nll": 0.0}, []
    for xb in x.split(batch):
        mu = model.encode(xb)[0]
        eps = torch.randn((n_samples, *mu.shape), generator=g, device=x.device)
        out = model.elbo(xb, eps=eps)
        sums["nelbo"] -= out["elbo"].sum().item()
        sums["kl"] += out["kl"].sum().item()
        sums["distortion"] -= out["recon"].sum().item()
        if k:
            sums["nll"] -= model.iwae_bound(xb, k, generator=g).sum().item()
        mus.append(mu.float())
    model.train()
    result = {key: v / len(x) for key, v in sums.items()}
    result["active_units"] = int((torch.cat(mus).var(0, correction=0) > 0.01).sum())
    return result


def mixed_precision(config, device):
    """--precision auto: bf16 autocast on CUDA, fp32 elsewhere; fp16 adds a GradScaler."""
    name = config.precision
    if name == "auto":
        name = "bf16" if device.type == "cuda" else "fp32"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    return autocast, torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def setup(config, given):
    """The run's config (resumed or new), data, model, optimizer, step, history, device, threads."""
    validate(config, given)
    out = harness.prepare_out_dir(config.out_dir)
    ckpt = None
    if config.resume:
        ckpt = harness.load_checkpoint(out / harness.CHECKPOINT)
        config = harness.resume_train_config(ckpt["train_config"], config, given)
    if config.smoke and not config.resume:
        config = dataclasses.replace(config, **{k: v for k, v in SMOKE.items() if k not in given})
    if config.schedule_steps == 0:
        config = dataclasses.replace(config, schedule_steps=config.steps)
    torch.manual_seed(config.seed)
    c = config
    data = load_dataset(c.dataset, c.data_dir, c.download, c.test_set_only, c.image_size)
    mc = model_config(config, data)
    n = len(data.train.labels)
    harness.check(c.batch_size <= n, f"--batch-size {c.batch_size} is more than the {n} training images")  # fmt: skip
    harness.check(
        mc.arch == "mlp" or (mc.height % 4 == 0 and mc.width % 4 == 0),
        f"--arch conv needs a height and width divisible by 4; the data is {mc.height}x{mc.width}",
    )
    threads = harness.set_threads(config.threads)
    device = harness.pick_device(config.device)
    model = VAE(mc).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, history = 0, harness.new_history("val_kl", "val_distortion", "active_units")
    if ckpt is not None:
        harness.check(
            ckpt["model_config"] == dataclasses.asdict(mc),
            f"the checkpoint models {ckpt['model_config']}, not this data: start a new --out-dir",
        )
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history = ckpt["step"], ckpt["history"]
        harness.set_rng_state(ckpt["rng"])
        if config.steps > config.schedule_steps:
            print(
                f"warning: --steps {config.steps} is past the schedule's horizon "
                f"{config.schedule_steps}: the learning rate stays at its end value, 0"
            )
    return config, out, data, model, opt, step, history, device, threads


def train(config, given=()):
    config, out, data, model, opt, step, history, device, threads = setup(config, given)
    mc = model.config
    pixels = Pixels(mc.likelihood, data.n_levels, dynamic=config.dataset in DYNAMIC_BINARY)
    train_levels, x_val = data.train.levels.to(device), pixels.fixed(data.val.levels.to(device), 1)
    autocast, scaler = mixed_precision(config, device)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"vae: {config.dataset} {data.shape} {mc.likelihood}, train {len(train_levels)} / val "
        f"{len(x_val)} / test {len(data.test.levels)}, {mc.arch} {n_params:,} parameters, "
        f"device {device}, {threads} threads"
    )
    save = lambda: harness.save_checkpoint(
        out / harness.CHECKPOINT, model=model, optimizer=opt, model_config=mc,
        train_config=config, step=step, history=history,
    )  # fmt: skip

    n, B = len(train_levels), config.batch_size
    order, t0 = None, time.time()
    while step < config.steps:
        # one fixed permutation per (seed, epoch): a resumed run draws the same batches
        epoch, i = divmod(step, n // B)
        if order is None or i == 0:
            g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
            order = torch.randperm(n, generator=g).to(device)
        x = pixels(train_levels[order[i * B : (i + 1) * B]])  # (B, C, H, W)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config)
        with autocast():
            loss = model.elbo(x, beta=kl_weight(step, config), free_bits=config.free_bits)["loss"]
        harness.check_finite(loss.item(), step + 1, out)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(opt)
        scaler.update()
        step += 1
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        if step % config.eval_every == 0 or step == config.steps:
            ev = evaluate(model, x_val, config.eval_samples)
            history["eval_step"].append(step)
            for key, name in (("val_loss", "nelbo"), ("val_kl", "kl"), ("val_distortion", "distortion"), ("active_units", "active_units")):  # fmt: skip
                history[key].append(ev[name])
            ms = 1000 * (time.time() - t0) / max(1, len(history["step"]))
            print(
                f"step {step:5d} | loss {loss.item():.3f} | val -ELBO {ev['nelbo']:.3f} (KL "
                f"{ev['kl']:.2f}, -log p(x|z) {ev['distortion']:.2f}) | active "
                f"{ev['active_units']}/{mc.latent_dim} | {ms:.1f} ms/step"
            )
            save()
    seconds = time.time() - t0
    harness.plot_loss(history, out / "loss.png", title=f"vae on {config.dataset}: -ELBO")
    return report(model, pixels, data, config, out, steps=step, seconds=seconds, threads=threads)


def report(model, pixels, data, config, out, **run):
    """The final model on the test set: -ELBO, the IWAE NLL and its k sweep -> metrics.json."""
    device, mc = next(model.parameters()).device, model.config
    x_test = pixels.fixed(data.test.levels.to(device), seed=2)
    test = evaluate(model, x_test, config.eval_samples, k=config.iwae_k, seed=3)
    sweep = {str(k): evaluate(model, x_test, 1, k=k, seed=4 + k)["nll"] for k in (1, 10, 100, 1000) if k < config.iwae_k}  # fmt: skip
    sweep[str(config.iwae_k)] = test["nll"]
    extra = {}
    if mc.likelihood == "gaussian":
        D = math.prod(data.shape)
        extra = {
            "test_nelbo_bpd": pixels.bits_per_dim(test["nelbo"], D),
            "test_iwae_bpd": pixels.bits_per_dim(test["nll"], D),
        }
    print(
        f"test: -ELBO {test['nelbo']:.3f} nats | IWAE(k={config.iwae_k}) NLL {test['nll']:.3f} "
        f"nats | KL {test['kl']:.3f} | -log p(x|z) {test['distortion']:.3f} | active units "
        f"{test['active_units']}/{mc.latent_dim}"
        + "".join(f" | {k} {v:.4f}" for k, v in extra.items())
    )
    print("IWAE bound by k: " + ", ".join(f"k={k}: {v:.3f}" for k, v in sweep.items()))
    harness.write_metrics(
        out / "metrics.json", project="vae", dataset=config.dataset, metric="test_nelbo",
        value=test["nelbo"], unit="nats/image", higher_is_better=False, selection="final",
        n_params=sum(p.numel() for p in model.parameters()), device=device.type,
        device_name=harness.device_name(device), seed=config.seed, test_iwae_nll=test["nll"],
        iwae_k=config.iwae_k, test_kl=test["kl"], test_distortion=test["distortion"],
        active_units=test["active_units"], latent_dim=mc.latent_dim, beta=config.beta,
        likelihood=mc.likelihood, iwae_sweep=sweep, test_images=len(x_test), **run, **extra,
    )  # fmt: skip
    return {"test_nelbo": test["nelbo"], "test_iwae_nll": test["nll"], "iwae_sweep": sweep, **run, **test}  # fmt: skip


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    harness.add_config_flags(parser, TrainConfig, HELP)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    given = harness.given_flags(argv)

    def run():
        train(harness.config_from_args(TrainConfig, args), given)

    return harness.run_main(run, lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
