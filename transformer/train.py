"""Train the Transformer: translation (encoder-decoder) or classification (encoder only).

Paper: Vaswani et al. 2017, https://arxiv.org/abs/1706.03762, section 5 (training): teacher
forcing, label smoothing eps_ls = 0.1 (Szegedy et al. 2015, https://arxiv.org/abs/1512.00567),
Adam(beta1 0.9, beta2 0.98, eps 1e-9), warm-up then inverse-square-root learning rate,
batches grouped by length. Gradient clipping as in most reference implementations.
tests/test_train.py: label-smoothed loss vs a hand-computed value, a copy task learned in
seconds, resume == uninterrupted run (bitwise).

    python train.py                      # English -> French grammar, characters, ~3 min CPU
    python train.py --task classify      # 5 synthetic topics, encoder only
    python train.py --data ../../shared/data/text/fra-eng.zip --tokenizer word   # Tatoeba
"""

import argparse
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import data as D
import torch
from metrics import evaluate
from model import ClassifierEncoder, Transformer, TransformerConfig
from tqdm import tqdm


@dataclass
class TrainConfig:
    task: str = "translate"  # translate | classify
    dataset: str = "auto"  # auto: grammar (translate) / topics (classify); tatoeba; csv
    data: str = ""  # a file: tab-separated pairs (translate) or a text,label CSV (classify)
    data_dir: str = "../../shared/data"
    download: bool = False
    tokenizer: str = "char"  # char | word
    max_words: int = 10
    n_train: int = 100000
    n_test: int = 1000
    steps: int = 1200
    batch_size: int = 64
    lr: float = 3e-3  # peak learning rate, reached at step = warmup
    warmup: int = 200
    label_smoothing: float = 0.1
    clip: float = 1.0
    eval_every: int = 500
    ema: float = 0.995  # evaluate an exponential moving average of the weights; 0 = off
    seed: int = 0
    device: str = "auto"
    out_dir: str = "runs"
    resume: bool = False
    plots: bool = True  # loss.png and attention maps (tests switch them off for speed)
    model: TransformerConfig = field(default_factory=TransformerConfig)


class NonFiniteLossError(RuntimeError):
    pass


# ---------------------------------------------------------------- loss and schedule
def label_smoothed_loss(logits, target, eps: float, ignore_index: int = D.PAD):
    """Cross-entropy against q = (1 - eps) one_hot(y) + eps / V, averaged over non-pad targets:
    loss = -(1 - eps) log p_y - (eps / V) sum_k log p_k.  logits (N, V), target (N,)."""
    logp = torch.log_softmax(logits.float(), dim=-1)  # (N, V)
    keep = target != ignore_index  # (N,)
    nll = -logp.gather(1, target.clamp(min=0)[:, None])[:, 0]  # (N,)
    uniform = -logp.mean(dim=-1)  # (N,)
    loss = (1 - eps) * nll + eps * uniform
    return (loss * keep).sum() / keep.sum().clamp(min=1)


def learning_rate(step: int, peak: float, warmup: int) -> float:
    """Paper: d^-0.5 min(step^-0.5, step warmup^-1.5), rescaled so lr(warmup) = peak."""
    step = max(step, 1)
    return peak * min(step / warmup, math.sqrt(warmup / step))


# ---------------------------------------------------------------- checkpoints and device
def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
        print(f"device: {name} (auto)")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but CUDA is not available")
    mps = getattr(torch.backends, "mps", None)
    if name == "mps" and not (mps and mps.is_available()):
        raise ValueError("--device mps but MPS is not available")
    return torch.device(name)


def save_checkpoint(path: Path, state: dict):
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a crash never leaves half a checkpoint


def build_model(task_name: str, mcfg: TransformerConfig):
    return ClassifierEncoder(mcfg) if task_name == "classify" else Transformer(mcfg)


# ---------------------------------------------------------------- training
def train(cfg: TrainConfig) -> dict:
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    task = D.load_task(cfg)
    mcfg = TransformerConfig(**asdict(cfg.model))
    mcfg.src_vocab = len(task["src_tok"])
    mcfg.tgt_vocab = len(task["tgt_tok"]) if task["tgt_tok"] else 1
    if task["classes"]:
        mcfg.n_classes = len(task["classes"])
    examples = D.encode_examples(task, cfg, mcfg.max_len)
    model = build_model(cfg.task, mcfg).to(device)
    avg_model = build_model(cfg.task, mcfg).to(device)  # the averaged weights, used to evaluate
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9)
    step, history = 0, {"step": [], "loss": [], "eval_step": [], "eval": []}
    if cfg.resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}; run train.py first")
        try:
            ck = torch.load(ckpt_path, weights_only=True, map_location=device)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            ema = ck["ema"]
        except Exception as e:  # corrupt, or written with other model flags / another task
            raise ValueError(
                f"cannot resume from {ckpt_path} ({type(e).__name__}): same flags as that run?"
            ) from None
        step, history = ck["step"], ck["history"]
        torch.set_rng_state(ck["rng"]["torch"])
        if device.type == "cuda" and "cuda" in ck["rng"]:
            torch.cuda.set_rng_state(ck["rng"]["cuda"])
        print(f"resumed from {ckpt_path} at step {step}")
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{task['dataset']}: {len(examples)} train / {len(task['test'])} test | {n_params:,} parameters"
    )

    def state():
        rng = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state()
        return {
            "model": model.state_dict(),
            "ema": ema,
            "optimizer": opt.state_dict(),
            "config": asdict(mcfg),
            "train_config": {k: v for k, v in asdict(cfg).items() if k != "model"},
            "task": cfg.task,
            "tokenizers": {
                "src": task["src_tok"].to_dict(),
                "tgt": task["tgt_tok"].to_dict() if task["tgt_tok"] else None,
            },
            "classes": task["classes"],
            "examples": shown,
            "step": step,
            "rng": rng,
            "history": history,
        }

    if task["tgt_tok"] is None:  # a few held-out examples for inference.py to show
        shown = [[x, task["classes"][y]] for x, y in task["test"][:50]]
    else:
        shown = [[x, task["tgt_tok"].join(task["tgt_tok"].split(y))] for x, y in task["test"][:50]]
    lengths = [len(s) + (len(t) if isinstance(t, list) else 0) for s, t in examples]
    n_batches = math.ceil(len(examples) / cfg.batch_size)
    epoch_cache = {}
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    model.train()
    t0, tokens, start_step = time.time(), 0, step
    bar = tqdm(total=cfg.steps, initial=step, desc="train", dynamic_ncols=True)
    while step < cfg.steps:
        epoch = step // n_batches
        if epoch not in epoch_cache:  # batch order depends only on (seed, epoch)
            epoch_cache = {
                epoch: D.length_batches(lengths, cfg.batch_size, cfg.seed * 100003 + epoch)
            }
        batch = [examples[i] for i in epoch_cache[epoch][step % n_batches]]
        src = torch.tensor(D.pad_batch([s for s, _ in batch]), device=device)  # (B, S)
        lr = learning_rate(step + 1, cfg.lr, cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        with amp:  # bf16 mixed precision on CUDA only
            if cfg.task == "classify":
                target = torch.tensor([y for _, y in batch], device=device)  # (B,)
                logits = model(src)  # (B, n_classes)
            else:
                tgt = torch.tensor(D.pad_batch([t for _, t in batch]), device=device)  # (B, T+1)
                logits = model(src, tgt[:, :-1])  # teacher forcing: (B, T, V)
                target = tgt[:, 1:]  # (B, T): the next token at every position
            ignore = -100 if cfg.task == "classify" else D.PAD  # class 0 is a label, not padding
            loss = label_smoothed_loss(
                logits.reshape(-1, logits.shape[-1]),
                target.reshape(-1),
                cfg.label_smoothing,
                ignore,
            )
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss at step {step + 1}; last good checkpoint kept at {ckpt_path}"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        with (
            torch.no_grad()
        ):  # theta_avg <- d theta_avg + (1 - d) theta (paper 6.1 averages checkpoints)
            for k, v in model.state_dict().items():
                ema[k].lerp_(v, 1 - cfg.ema) if v.is_floating_point() else ema[k].copy_(v)
        step += 1
        tokens += src.numel() + (target.numel() if cfg.task != "classify" else 0)
        history["step"].append(step)
        history["loss"].append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            avg_model.load_state_dict(ema)
            ev = evaluate(avg_model, task, task["test"][:200], device)
            head = "accuracy" if cfg.task == "classify" else "exact_match"
            history["eval_step"].append(step)
            history["eval"].append(ev[head])
            ms = 1000 * (time.time() - t0) / max(step - start_step, 1)  # steps of this run
            tqdm.write(
                f"step {step} | loss {loss.item():.4f} | val {head} {ev[head]:.3f} ({min(200, len(task['test']))}) | {ms:.0f} ms/step"
            )
            save_checkpoint(ckpt_path, state())
    bar.close()
    seconds = time.time() - t0
    save_checkpoint(ckpt_path, state())
    avg_model.load_state_dict(ema)
    final = evaluate(avg_model, task, task["test"], device)
    if cfg.task == "classify":
        metric, value = "test_accuracy", final["accuracy"]
    elif task["dataset"] == "en-fr-grammar":
        metric, value = "test_exact_match", final["exact_match"]
    else:
        metric, value = "test_bleu", final["bleu"]
    metrics = {
        "project": "transformer",
        "dataset": task["dataset"],
        "metric": metric,
        "value": value,
        "higher_is_better": True,
        "seconds": round(seconds, 1),
        "steps": step,
        "device": device.type,
        "seed": cfg.seed,
        "task": cfg.task,
        "tokenizer": cfg.tokenizer,
        "n_test": len(task["test"]),
        "parameters": n_params,
        "train_tokens_per_s": round(tokens / max(seconds, 1e-9)),
        **{k: v for k, v in final.items() if k != "samples"},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for src_text, hyp, ref in final.get("samples", []):
        print(f"  {src_text}\n    -> {hyp}\n    ref {ref}")
    print(json.dumps({k: metrics[k] for k in ("dataset", "metric", "value", "seconds", "steps")}))
    if cfg.plots:
        from visualize import plot_history

        plot_history(history, out / "loss.png", metric)
    if cfg.plots and cfg.task == "translate":
        from visualize import save_attention_maps

        save_attention_maps(
            avg_model, task["src_tok"], task["tgt_tok"], task["test"][0][0], out, device
        )
    return metrics


# ---------------------------------------------------------------- command line
def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    d, m = TrainConfig(), TransformerConfig()
    p.add_argument("--task", choices=["translate", "classify"], default=d.task)
    p.add_argument(
        "--dataset",
        default=d.dataset,
        help="auto | grammar | tatoeba (translate); auto | topics | csv (classify)",
    )
    p.add_argument(
        "--data",
        default=d.data,
        help="tab-separated sentence pairs (.txt or .zip, e.g. fra-eng.zip) or a text,label CSV",
    )
    p.add_argument(
        "--data-dir", default=d.data_dir, help="--dataset tatoeba reads DATA_DIR/text/fra-eng.zip"
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch fra-eng.zip from manythings.org into --data-dir if missing",
    )
    p.add_argument("--tokenizer", choices=["char", "word"], default=d.tokenizer)
    p.add_argument(
        "--max-words",
        type=int,
        default=d.max_words,
        help="keep pairs of at most this many words (--data)",
    )
    p.add_argument(
        "--n-train",
        type=int,
        default=d.n_train,
        help="generated training examples (grammar, topics)",
    )
    p.add_argument("--n-test", type=int, default=d.n_test, help="held-out examples")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (at step --warmup)")
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--clip", type=float, default=d.clip, help="max gradient norm")
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--ema", type=float, default=d.ema, help="weight averaging decay (0 = off)")
    p.add_argument("--d-model", type=int, default=m.d_model)
    p.add_argument("--n-head", type=int, default=m.n_head)
    p.add_argument(
        "--n-layers", type=int, default=m.n_enc_layers, help="encoder and decoder layers each"
    )
    p.add_argument("--d-ff", type=int, default=m.d_ff)
    p.add_argument("--dropout", type=float, default=m.dropout)
    p.add_argument("--max-len", type=int, default=m.max_len, help="longest sequence in tokens")
    p.add_argument("--pre-norm", action="store_true", help="LayerNorm before each sublayer")
    p.add_argument("--learned-pos", action="store_true", help="learned positional embeddings")
    p.add_argument(
        "--tie-embeddings", action="store_true", help="share decoder embedding and output layer"
    )
    p.add_argument(
        "--pooling", choices=["mean", "cls"], default=m.pooling, help="classify: pooling"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default=d.device)
    p.add_argument("--out-dir", default=d.out_dir)
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.pt")
    p.add_argument("--smoke", action="store_true", help="a tiny run in seconds (tests, CI)")
    a = p.parse_args(argv)
    for name in (
        "steps",
        "batch_size",
        "d_model",
        "n_head",
        "n_layers",
        "d_ff",
        "n_train",
        "n_test",
        "max_len",
        "warmup",
        "eval_every",
    ):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.d_model % a.n_head:
        p.error("--d-model must be divisible by --n-head")
    if not 0 <= a.ema < 1:
        p.error("--ema must be in [0, 1)")
    if not 0 <= a.dropout < 1 or not 0 <= a.label_smoothing < 1 or a.lr <= 0:
        p.error("need 0 <= --dropout < 1, 0 <= --label-smoothing < 1 and --lr > 0")
    mcfg = TransformerConfig(
        d_model=a.d_model, n_head=a.n_head, n_enc_layers=a.n_layers, n_dec_layers=a.n_layers, d_ff=a.d_ff,
        dropout=a.dropout, max_len=a.max_len, learned_pos=a.learned_pos, pre_norm=a.pre_norm,
        tie_embeddings=a.tie_embeddings, pooling=a.pooling,
    )  # fmt: skip
    keys = set(TrainConfig.__dataclass_fields__) - {"model"}
    cfg = TrainConfig(**{k: v for k, v in vars(a).items() if k in keys}, model=mcfg)
    if a.smoke:
        cfg.steps, cfg.n_train, cfg.n_test, cfg.eval_every, cfg.batch_size = 20, 400, 50, 10, 32
        cfg.max_words = min(cfg.max_words, 6)
    try:
        train(cfg)
    except (FileNotFoundError, ValueError, NonFiniteLossError, OSError, KeyboardInterrupt) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
