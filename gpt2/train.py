"""Train GPT (model.py) on text: one CPU, one GPU, or many GPUs and nodes through torchrun.

The recipe is GPT-2's / GPT-3's (Brown et al. 2020, https://arxiv.org/abs/2005.14165, appendix
B): AdamW (Loshchilov & Hutter, https://arxiv.org/abs/1711.05101) with weight decay on matrices
only, linear warm-up then cosine decay of the learning rate, gradient-norm clipping at 1.0,
gradient accumulation to reach a large batch, bf16 autocast on GPU (fp16 with a GradScaler where
bf16 is missing), and data parallelism: every process holds the whole model, takes its own slice
of the global batch, and gradients are averaged across processes before each step (DDP).

    python train.py                                   # offline default, ~3 min on 2 CPU cores
    torchrun --nproc_per_node=8 train.py --preset gpt2 --data input.txt --tokenizer bpe

Tests (tests/test_train.py, tests/test_ddp.py): a tiny model overfits a short text below a stated
loss; N steps equal N/2 + --resume + N/2 bitwise; 2 gloo processes end with identical parameters
and the loss of a single process with the same global batch.
"""

import argparse
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import torch.distributed as dist
from data import DATASETS, get_batch, load_text, prepare
from model import GPT, PRESETS, GPTConfig
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
    decay_steps: int | None = None  # cosine reaches min_lr here; None: = steps
    warmup_steps: int = 100
    batch_size: int = 12  # per process and micro-step
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 200
    eval_iters: int = 20
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    compile: bool = False
    seed: int = 0
    device: str = "auto"
    out_dir: str = "runs"
    resume: bool = False
    smoke: bool = False
    progress: bool = True


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = (
            "cuda"
            if torch.cuda.is_available()
            else "mps"
            if torch.backends.mps.is_available()
            else "cpu"
        )
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to lr, then lr_t = min_lr + (lr - min_lr) (1 + cos(pi t / T_decay)) / 2."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay = cfg.decay_steps or cfg.steps
    if step >= decay:
        return cfg.min_lr
    ratio = (step - cfg.warmup_steps) / max(1, decay - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr - cfg.min_lr)


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
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=device.type == "cuda")


def peak_flops(device: torch.device) -> float:
    """Dense bf16 peak of known GPUs; elsewhere the best measured float32 matmul rate here."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, flops in (("H100", 989e12), ("H200", 989e12), ("A100", 312e12), ("L4", 121e12)):
            if key in name:
                return flops
    a = torch.full((512, 512), 0.5, device=device)  # no random draw: leaves the RNG as it was
    best = 0.0
    for _ in range(10):  # best of 10 short windows: a busy machine deflates the peak less
        t0 = time.perf_counter()
        for _ in range(3):
            a @ a
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 3 * 2 * 512**3 / (time.perf_counter() - t0))
    return best


def save_checkpoint(path: Path, state: dict):
    """Atomic write: a crash mid-save leaves the previous checkpoint intact."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: run train.py first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RuntimeError(
            f"cannot read checkpoint {path} ({type(e).__name__}): corrupt?"
        ) from None


@torch.no_grad()
def estimate_loss(model: GPT, splits: dict, cfg: TrainConfig, device, ctx) -> dict:
    """Mean loss over eval_iters batches per split, the same batches at every evaluation."""
    model.eval()
    out = {}
    for name, tokens in splits.items():
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        losses = []
        for _ in range(cfg.eval_iters):
            x, y = get_batch(tokens, cfg.batch_size, model.config.block_size, gen)
            with ctx:
                losses.append(model(x.to(device), y.to(device))[1].item())
        out[name] = sum(losses) / len(losses)
    model.train()
    return out


def train(cfg: TrainConfig, on_end=None) -> dict:
    """Train and return metrics; on_end(model, rank), if given, sees the final model on each rank."""
    if cfg.smoke:
        cfg = replace(
            cfg,
            preset="cpu-tiny",
            steps=min(cfg.steps, 20),
            eval_interval=10,
            eval_iters=2,
            warmup_steps=min(cfg.warmup_steps, 5),
            batch_size=min(cfg.batch_size, 8),
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(cfg.device, local_rank)
    if world > 1:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    master = rank == 0
    log = print if master else (lambda *a, **k: None)
    try:
        return _train(cfg, world, rank, device, master, log, on_end)
    finally:
        if world > 1:
            dist.destroy_process_group()


def _train(cfg, world, rank, device, master, log, on_end) -> dict:
    log(f"device: {device}" + (f" x {world} processes" if world > 1 else ""))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    ckpt_path = out / "checkpoint.pt"
    ckpt = load_checkpoint(ckpt_path) if cfg.resume else None

    # --- model and tokenizer ---
    given_tok, init_model = None, None
    if cfg.init_from and ckpt is not None:  # resuming a fine-tune: GPT-2's tokenizer, as saved
        from tokenizer import load_tokenizer

        given_tok = load_tokenizer(str(out / "tokenizer.json"))
    elif cfg.init_from:
        from convert import load_pretrained
        from tokenizer import BPETokenizer

        init_model, hf_dir = load_pretrained(cfg.init_from)
        given_tok = BPETokenizer.from_gpt2_files(
            str(hf_dir / "vocab.json"), str(hf_dir / "merges.txt")
        )
    text = load_text(cfg.dataset, cfg.data_dir, cfg.data, cfg.download)
    args = (text, out, cfg.tokenizer, cfg.bpe_vocab_size, given_tok)
    if master:
        tok, train_tokens, val_tokens = prepare(*args)
    if world > 1:
        dist.barrier()  # rank 0 has written the token files; the others read them
    if not master:
        tok, train_tokens, val_tokens = prepare(*args)
    if ckpt is not None:
        model = GPT(GPTConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        if model.config.vocab_size != tok.vocab_size:
            raise ValueError("the checkpoint's vocabulary does not match this data; drop --resume")
    elif init_model is not None:
        model = init_model
    else:
        overrides = {
            k: getattr(cfg, k)
            for k in ("n_layer", "n_head", "n_embd", "block_size")
            if getattr(cfg, k)
        }
        model = GPT(
            GPTConfig.from_preset(
                cfg.preset,
                vocab_size=tok.vocab_size,
                dropout=cfg.dropout,
                fused_attention=cfg.fused_attention,
                **overrides,
            )
        )
    model.to(device)
    T, B = model.config.block_size, cfg.batch_size
    log(f"model: {model.num_params():,} parameters, {model.config}")

    # --- precision, optimizer, parallelism ---
    dtype = cfg.dtype
    if dtype == "auto":
        dtype = (
            "float32"
            if device.type != "cuda"
            else "bfloat16"
            if torch.cuda.is_bf16_supported()
            else "float16"
        )
    if dtype != "float32" and device.type != "cuda":
        raise ValueError(f"--dtype {dtype} needs a CUDA device; use float32 on {device.type}")
    ctx = (
        torch.autocast("cuda", dtype=getattr(torch, dtype)) if dtype != "float32" else nullcontext()
    )
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == "float16")
    optimizer = make_optimizer(model, cfg, device)
    data_gen = torch.Generator().manual_seed(cfg.seed)  # same on every rank: one global batch
    step, history = 0, {"step": [], "loss": [], "eval_step": [], "train": [], "val": []}
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        step, history = ckpt["step"], ckpt["history"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        data_gen.set_state(ckpt["rng"]["data"])
        if device.type == "cuda" and "cuda" in ckpt["rng"]:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        log(f"resumed from {ckpt_path} at step {step}")
    raw = model
    if cfg.compile:
        model = torch.compile(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    def checkpoint():
        rng = {"torch": torch.get_rng_state(), "data": data_gen.get_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        save_checkpoint(ckpt_path, {
            "model": raw.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "model_config": raw.config.to_dict(), "train_config": asdict(cfg), "step": step,
            "rng": rng, "history": history,
        })  # fmt: skip

    # --- the loop ---
    peak = peak_flops(device)
    tokens_per_step = B * T * cfg.grad_accum  # per process
    t_train, n_timed, last = 0.0, 0, {}
    bar = tqdm(total=cfg.steps, initial=step, disable=not (master and cfg.progress), unit="step")
    t_start = time.time()
    while step < cfg.steps:
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        X, Y = get_batch(train_tokens, B * cfg.grad_accum * world, T, data_gen)  # global batch
        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            rows = slice((micro * world + rank) * B, (micro * world + rank + 1) * B)  # this rank's
            sync = world == 1 or micro == cfg.grad_accum - 1  # all-reduce grads on the last only
            with nullcontext() if sync else model.no_sync(), ctx:
                _, loss = model(X[rows].to(device), Y[rows].to(device))
                loss = loss / cfg.grad_accum
            scaler.scale(loss).backward()
            loss_sum += loss.detach()
        if world > 1:
            dist.all_reduce(loss_sum)
            loss_sum /= world
        loss_value = loss_sum.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"loss is {loss_value} at step {step + 1}: stopping; the last good checkpoint is kept at {ckpt_path}"
            )
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        t_train, n_timed = t_train + dt, n_timed + 1
        step += 1
        history["step"].append(step)
        history["loss"].append(loss_value)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}")
        if step % cfg.eval_interval == 0 or step == cfg.steps:
            ms = 1000 * t_train / n_timed
            tok_s = tokens_per_step / (t_train / n_timed)
            last = {
                "ms_per_step": ms,
                "tokens_per_s": tok_s * world,
                "mfu": raw.flops_per_token(T) * tok_s / peak,
            }
            if master:
                losses = estimate_loss(
                    raw, {"train": train_tokens, "val": val_tokens}, cfg, device, ctx
                )
                history["eval_step"].append(step)
                history["train"].append(losses["train"])
                history["val"].append(losses["val"])
                bar.write(
                    f"step {step} | loss {loss_value:.4f} | train {losses['train']:.4f} | "
                    f"val {losses['val']:.4f} | lr {lr_at(step - 1, cfg):.2e} | {ms:.1f} ms/step | "
                    f"{last['tokens_per_s']:,.0f} tok/s | MFU {100 * last['mfu']:.2f}%"
                )
                checkpoint()
            t_train, n_timed = 0.0, 0
    bar.close()
    seconds = time.time() - t_start
    if on_end is not None:
        on_end(raw, rank)
    metrics = {
        "project": "gpt2", "dataset": Path(cfg.data).name if cfg.data else cfg.dataset,
        "metric": "val_loss", "value": history["val"][-1] if history["val"] else None,
        "higher_is_better": False, "seconds": round(seconds, 2), "steps": step,
        "device": str(device), "seed": cfg.seed, "train_loss": history["train"][-1] if history["train"] else None,
        "last_step_loss": history["loss"][-1] if history["loss"] else None,
        "params": raw.num_params(), "tokenizer": type(tok).__name__, "vocab_size": tok.vocab_size,
        "world_size": world, **last,
    }  # fmt: skip
    if master:
        (out / "metrics.json.tmp").write_text(json.dumps(metrics, indent=1))
        os.replace(out / "metrics.json.tmp", out / "metrics.json")  # atomic, as the checkpoint
        plot_losses(history, out / "loss.png")
        log(
            f"done: val loss {metrics['value']} in {seconds:.1f} s; wrote {out}/checkpoint.pt, metrics.json, loss.png"
        )
    return metrics


def plot_losses(history: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(history["step"], history["loss"], lw=0.6, alpha=0.5, label="train (batch)")
    ax.plot(history["eval_step"], history["train"], "o-", ms=3, label="train (eval)")
    ax.plot(history["eval_step"], history["val"], "o-", ms=3, label="validation")
    ax.set(xlabel="step", ylabel="cross-entropy (nats/token)", title="GPT training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


HELP = {
    "dataset": "built-in text (pydoc is offline)",
    "data_dir": "where real data lives (DIR/text/tinyshakespeare.txt)",
    "data": "any UTF-8 text file; overrides --dataset",
    "download": "allow fetching tinyshakespeare into --data-dir",
    "tokenizer": "characters, or byte-level BPE trained on the text",
    "preset": "model size (cpu-* train on a laptop; gpt2* are OpenAI's sizes)",
    "n_layer": "override the preset", "n_head": "override the preset", "n_embd": "override the preset",
    "block_size": "context length; override the preset",
    "fused_attention": "use F.scaled_dot_product_attention instead of the hand-written attention",
    "init_from": "start from official weights: gpt2 | gpt2-medium | gpt2-large | gpt2-xl | PATH to a Hugging Face directory",
    "decay_steps": "step where the cosine reaches --min-lr (default: --steps)",
    "batch_size": "sequences per process and micro-step",
    "grad_accum": "micro-steps per optimizer step",
    "grad_clip": "max global gradient norm (0: off)",
    "dtype": "auto: bf16 on CUDA, else float32; float16 uses a GradScaler",
    "compile": "torch.compile the model",
    "device": "auto picks cuda, then mps, then cpu",
    "resume": "continue from OUT_DIR/checkpoint.pt (model, optimizer, step, RNG, data position)",
    "smoke": "a tiny model for 20 steps, in seconds",
    "progress": "show the progress bar",
    "bpe_vocab_size": "vocabulary size of --tokenizer bpe",
    "dropout": "dropout probability (0 for small data and short runs)",
    "steps": "optimizer steps",
    "warmup_steps": "linear learning-rate warm-up steps",
    "lr": "peak learning rate", "min_lr": "final learning rate of the cosine",
    "weight_decay": "AdamW decay on weight matrices",
    "eval_interval": "steps between evaluations and checkpoints",
    "eval_iters": "batches per evaluation",
    "seed": "seeds torch and the batch sampler",
    "out_dir": "checkpoint, metrics.json, loss.png and the tokenised data go here",
}  # fmt: skip


CHOICES = {
    "dataset": DATASETS, "tokenizer": ("char", "bpe"), "preset": tuple(PRESETS),
    "dtype": ("auto", "float32", "bfloat16", "float16"), "device": ("auto", "cpu", "cuda", "mps"),
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type is bool or f.type == "bool":
            p.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=f.default, help=HELP[f.name]
            )
            continue
        kind = int if "int" in str(f.type) else float if "float" in str(f.type) else str
        p.add_argument(
            flag, type=kind, default=f.default, choices=CHOICES.get(f.name), help=HELP[f.name]
        )
    return p


def main(argv=None):
    parser = build_parser()
    cfg = TrainConfig(**vars(parser.parse_args(argv)))
    if not (cfg.lr > 0 and cfg.steps > 0 and cfg.batch_size > 0 and cfg.grad_accum > 0):
        parser.error("--lr, --steps, --batch-size and --grad-accum must be positive")
    try:
        train(cfg)
    except (ValueError, RuntimeError, FileNotFoundError, FloatingPointError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: continue with --resume")


if __name__ == "__main__":
    main()
