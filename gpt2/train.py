"""Train GPT (model.py) on text: one CPU, one GPU, or many GPUs and nodes through torchrun.

The recipe is GPT-2's / GPT-3's (Brown et al. 2020, https://arxiv.org/abs/2005.14165, appendix
B): AdamW (Loshchilov & Hutter, https://arxiv.org/abs/1711.05101) with weight decay on matrices
only, linear warm-up then cosine decay of the learning rate, gradient-norm clipping at 1.0,
gradient accumulation to reach a large batch, bf16 autocast on GPU (hardware.py), and data
parallelism: every process holds the whole model, takes its own rows of the global batch, and
gradients are averaged across processes before each step (distributed.py).

    python train.py                                   # offline default, minutes on a 2-core CPU
    torchrun --nproc_per_node=8 train.py --preset gpt2 --data input.txt --tokenizer bpe

Flags, checkpoint, metrics.json and errors follow the run contract (harness.py). Tests
(tests/test_train.py, tests/test_ddp.py): a tiny model memorises a short text below a stated
loss; N steps equal N/2 + --resume to N bitwise; 2 gloo processes end with identical parameters
and the losses of one process with the same global batch.
"""

import argparse
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import distributed
import flags
import hardware
import harness
import torch
from data import get_batch, load_text, prepare, windows
from model import GPT, GPTConfig
from tqdm import tqdm


@dataclass
class TrainConfig:
    dataset: str = "pydoc"
    data_dir: str = "data"
    data: str | None = None  # any text file; overrides --dataset
    download: bool = False
    tokenizer: str = "char"
    bpe_vocab_size: int = 512
    preset: str = "cpu-small"
    n_layer: int | None = None  # None: the preset's value
    n_head: int | None = None
    n_embd: int | None = None
    block_size: int | None = None
    dropout: float = 0.0
    fused_attention: bool = False
    init_from: str | None = None  # gpt2 | gpt2-medium | ... | PATH (official weights)
    steps: int = 1000
    schedule_steps: int = 0  # the cosine reaches min_lr here; 0: this run's --steps
    warmup_steps: int = 100
    batch_size: int = 12  # per process and micro-step
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    weight_decay: float = 0.1
    beta2: float = 0.99  # AdamW's second-moment decay: 0.99 for batches of 768 tokens (GPT-3: 0.95)
    grad_clip: float = 1.0
    eval_every: int = 200
    eval_iters: int = 20
    eval_full: bool = False  # at the end, also the loss over the whole validation split
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    compile: bool = False
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False
    progress: bool = True


def lr_at(step: int, *, lr: float, min_lr: float, warmup_steps: int, schedule_steps: int) -> float:
    """Linear warm-up to lr, then lr_t = min_lr + (lr - min_lr) (1 + cos(pi t / T)) / 2, t and T
    counted after the warm-up; min_lr from schedule_steps on."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if step >= schedule_steps:
        return min_lr
    ratio = (step - warmup_steps) / max(1, schedule_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay only on the Linear weight matrices (not norms, biases, embeddings)."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    decay, no_decay = [], []
    for p in model.parameters():  # a tied parameter appears once
        (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # fused: one kernel updates every tensor (CUDA and CPU), 4x faster than the per-tensor loop
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2), fused=fused)


@torch.no_grad()
def estimate_loss(model: GPT, tokens, cfg: TrainConfig, device, ctx) -> float:
    """Mean loss over eval_iters batches of one split, the same batches at every evaluation."""
    model.eval()
    gen, losses = torch.Generator().manual_seed(cfg.seed + 1), []
    for _ in range(cfg.eval_iters):
        x, y = get_batch(tokens, cfg.batch_size, model.config.block_size, gen)
        with ctx:
            losses.append(model(x.to(device), y.to(device))[1].item())
    model.train()
    return sum(losses) / len(losses)


@torch.no_grad()
def full_loss(model: GPT, tokens, batch_size: int, device, ctx) -> float:
    """Mean loss per token over a whole split, in non-overlapping block_size windows
    (data.windows): sum over windows of (loss x tokens) / all tokens, every token counted once."""
    model.eval()
    x, y = windows(tokens, model.config.block_size)
    total = 0.0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
        with ctx:
            total += model(xb, yb)[1].item() * yb.numel()
    model.train()
    return total / y.numel()


def train(cfg: TrainConfig, given: set | None = None) -> dict:
    """Train and return metrics. given: the flags typed on the command line (for --resume);
    None means every field that differs from TrainConfig's defaults."""
    if given is None:
        given = {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != f.default}
    flags.validate(cfg)
    out = harness.prepare_out_dir(cfg.out_dir)
    cfg, ckpt = flags.resolve(cfg, given, out)
    world, rank, device = distributed.setup(cfg.device)
    try:
        return _train(cfg, ckpt, out, world, rank, device)
    finally:
        distributed.teardown(world)


def _train(cfg, ckpt, out, world, rank, device) -> dict:
    master = rank == 0
    log = print if master else (lambda *a, **k: None)
    threads = harness.set_threads(cfg.threads)
    dtype, ctx, scaler = hardware.precision(cfg.dtype, device)
    log(f"device: {device} ({harness.device_name(device)})" + (f" x {world} processes" if world > 1 else "")
        + f", {threads} threads, {dtype}")  # fmt: skip
    torch.manual_seed(cfg.seed)

    # --- tokenizer, data, model ---
    given_tok, model = None, None
    if cfg.init_from and ckpt is not None:  # resuming a fine-tune: GPT-2's tokenizer, as saved
        from tokenizer import tokenizer_from_dict

        given_tok = tokenizer_from_dict(ckpt["tokenizer"], "checkpoint")
    elif cfg.init_from:
        from convert import load_pretrained, pretrained_tokenizer

        model, hf_dir = load_pretrained(cfg.init_from)
        given_tok = pretrained_tokenizer(hf_dir)
    text = load_text(cfg.dataset, cfg.data_dir, cfg.data, cfg.download)
    args = (text, out, cfg.tokenizer, cfg.bpe_vocab_size, given_tok)
    if not master:
        distributed.barrier(world)  # rank 0 writes the token files; the others then read them
    tok, train_tokens, val_tokens = prepare(*args)
    if master:
        distributed.barrier(world)
    if ckpt is not None:
        harness.check(
            tok.to_dict() == ckpt["tokenizer"],
            "the text or tokenizer differs from the checkpoint's run",
        )
        model = GPT(GPTConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
    elif model is None:
        model = GPT(flags.model_config(cfg, tok.vocab_size))
    model.to(device)
    T, B = model.config.block_size, cfg.batch_size
    log(f"model: {model.num_params():,} parameters, {model.config}")

    # --- optimizer, state, parallelism ---
    optimizer = make_optimizer(model, cfg, device)
    data_gen = torch.Generator().manual_seed(cfg.seed)  # same on every rank: one global batch
    step, history = 0, harness.new_history("eval_train_loss")
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        step, history = ckpt["step"], ckpt["history"]
        harness.set_rng_state(ckpt["rng"], {"data": data_gen})
        log(f"resumed from {out / harness.CHECKPOINT} at step {step}")
    raw = model
    model = distributed.wrap(torch.compile(model) if cfg.compile else model, world, device)
    schedule = {k: getattr(cfg, k) for k in ("lr", "min_lr", "warmup_steps", "schedule_steps")}

    def checkpoint():
        harness.save_checkpoint(
            out / harness.CHECKPOINT, model=raw, optimizer=optimizer, model_config=raw.config,
            train_config=cfg, step=step, history=history, generators={"data": data_gen},
            scaler=scaler.state_dict(), tokenizer=tok.to_dict(),
        )  # fmt: skip

    def evaluate(ms):
        val = estimate_loss(raw, val_tokens, cfg, device, ctx)
        tr = estimate_loss(raw, train_tokens, cfg, device, ctx)
        for key, value in (("eval_step", step), ("val_loss", val), ("eval_train_loss", tr)):
            history[key].append(value)
        bar.write(f"step {step} | loss {loss_value:.4f} | train {tr:.4f} | val {val:.4f} | "
                  f"lr {lr_at(step - 1, **schedule):.2e} | {ms:.1f} ms/step | {last['tokens_per_s']:,.0f} tok/s | MFU {100 * last['mfu']:.2f}%")  # fmt: skip
        checkpoint()

    # --- the loop ---
    peak, tokens_per_step = hardware.peak_flops(device), B * T * cfg.grad_accum  # per process
    t_train, n_timed, last, loss_value = 0.0, 0, {"tokens_per_s": 0.0, "mfu": 0.0}, float("nan")
    bar = tqdm(total=cfg.steps, initial=step, disable=not (master and cfg.progress), unit="step")
    t_start = time.time()
    while step < cfg.steps:
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, **schedule)
        X, Y = get_batch(train_tokens, B * cfg.grad_accum * world, T, data_gen)  # global batch
        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            rows = slice((micro * world + rank) * B, (micro * world + rank + 1) * B)  # this rank's
            with distributed.no_sync_unless(micro == cfg.grad_accum - 1, model, world), ctx:
                _, loss = model(X[rows].to(device), Y[rows].to(device))
                loss = loss / cfg.grad_accum
            scaler.scale(loss).backward()
            loss_sum += loss.detach()
        loss_value = distributed.mean(loss_sum, world).item()
        harness.check_finite(loss_value, step + 1, out)
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t_train, n_timed, step = t_train + time.perf_counter() - t0, n_timed + 1, step + 1
        history["step"].append(step)
        history["train_loss"].append(loss_value)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            tok_s = tokens_per_step * n_timed / t_train
            last = {"ms_per_step": 1000 * t_train / n_timed, "tokens_per_s": tok_s * world,
                    "mfu": raw.flops_per_token(T) * tok_s / peak}  # fmt: skip
            if master:
                evaluate(last["ms_per_step"])
            t_train, n_timed = 0.0, 0
    bar.close()
    seconds = time.time() - t_start
    distributed.check_replicas(raw, world)
    if not master:  # rank 0 evaluates and writes the files
        return {"rank": rank, "steps": step}
    metrics = dict(
        project="gpt2", dataset=Path(cfg.data).name if cfg.data else cfg.dataset, metric="val_loss",
        value=history["val_loss"][-1], unit="nats/token", higher_is_better=False, selection="final",
        n_params=raw.num_params(), steps=step, seconds=round(seconds, 2), device=device.type,
        device_name=harness.device_name(device), seed=cfg.seed, threads=threads,
        train_loss=history["eval_train_loss"][-1], tokenizer=type(tok).__name__,
        vocab_size=tok.vocab_size, world_size=world, dtype=dtype, **last,
    )  # fmt: skip
    if cfg.eval_full:
        metrics["val_loss_full"] = full_loss(raw, val_tokens, cfg.batch_size, device, ctx)
        log(
            f"whole validation split ({len(val_tokens):,} tokens): loss {metrics['val_loss_full']:.4f}"
        )
    harness.write_metrics(out / "metrics.json", **metrics)
    harness.plot_loss(history, out / "loss.png", "GPT training loss", "cross-entropy (nats/token)")
    log(
        f"done: val loss {metrics['value']:.4f} in {seconds:.1f} s; wrote {out}/checkpoint.pt, metrics.json, loss.png"
    )
    return metrics


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    harness.add_config_flags(p, TrainConfig, flags.HELP, choices=flags.CHOICES)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = harness.config_from_args(TrainConfig, args)

    def run():
        train(config, harness.given_flags(argv))

    return harness.run_main(run, lambda: args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
