"""Train the Transformer: translation (encoder-decoder) or classification (encoder only).

Paper: Vaswani et al. 2017, https://arxiv.org/abs/1706.03762, section 5 (training): teacher
forcing, label smoothing eps_ls = 0.1 (Szegedy et al. 2015, https://arxiv.org/abs/1512.00567),
Adam(beta1 0.9, beta2 0.98, eps 1e-9), warm-up then inverse-square-root learning rate,
batches grouped by length. Gradient clipping as in most reference implementations.
tests/test_train.py: label-smoothed loss vs a hand-computed value, a copy task learned in
seconds, resume == uninterrupted run (bitwise). The run contract (checkpoint, metrics.json,
flags, errors) lives in harness.py.

    python train.py                      # English -> French grammar, characters, ~3 min CPU
    python train.py --task classify      # 5 synthetic topics, encoder only
    python train.py --dataset tatoeba --data-dir ~/data --download --tokenizer word   # real pairs
"""

import argparse
import math
import sys
import time
from dataclasses import asdict

import data as D
import harness
import torch
from config import HELP, MODEL_FIELDS, TrainConfig, settle_config
from metrics import evaluate
from model import ClassifierEncoder, Transformer, TransformerConfig
from tqdm import tqdm


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


def batch_loss(model, batch, cfg, device):
    """Teacher forcing: the label-smoothed loss of a list of encoded examples."""
    src = torch.tensor(D.pad_batch([s for s, _ in batch]), device=device)  # (B, S)
    if cfg.task == "classify":
        target, ignore = torch.tensor([y for _, y in batch], device=device), -100  # (B,)
        logits = model(src)  # (B, n_classes); class 0 is a label, not padding
    else:
        tgt = torch.tensor(D.pad_batch([t for _, t in batch]), device=device)  # (B, T + 1)
        logits = model(src, tgt[:, :-1])  # (B, T, V): every position at once
        target, ignore = tgt[:, 1:], D.PAD  # (B, T): the next token at every position
    flat = logits.reshape(-1, logits.shape[-1])
    return label_smoothed_loss(flat, target.reshape(-1), cfg.label_smoothing, ignore)


def build_model(task_name: str, mcfg: TransformerConfig):
    return ClassifierEncoder(mcfg) if task_name == "classify" else Transformer(mcfg)


# ---------------------------------------------------------------- training
def train(cfg: TrainConfig, given=None) -> dict:
    """given: the flags typed by hand (harness.given_flags); None = those unlike the defaults."""
    if given is None:
        given = {k for k, v in asdict(cfg).items() if v != getattr(TrainConfig(), k)}
    out = harness.prepare_out_dir(cfg.out_dir)
    ckpt_path = out / harness.CHECKPOINT
    ckpt = harness.load_checkpoint(ckpt_path) if cfg.resume else None
    cfg = settle_config(cfg, given, ckpt)
    threads, device = harness.set_threads(cfg.threads), harness.pick_device(cfg.device)
    print(f"device: {device.type} ({harness.device_name(device)}), {threads} threads")
    torch.manual_seed(cfg.seed)
    task = D.load_task(cfg)
    classify = cfg.task == "classify"
    mcfg = TransformerConfig(src_vocab=len(task["src_tok"]), tgt_vocab=len(task["tgt_tok"] or ""),
                             n_classes=len(task["classes"] or ""), **{k: getattr(cfg, k) for k in MODEL_FIELDS})  # fmt: skip
    examples = D.encode_examples(task["train"], task, mcfg.max_len)
    held_out = D.encode_examples(task["test"][:200], task, mcfg.max_len)
    model, avg_model = (
        build_model(cfg.task, mcfg).to(device),
        build_model(cfg.task, mcfg).to(device),
    )
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}  # averaged weights
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9)
    head = "val_accuracy" if classify else "val_exact_match"
    step, history = 0, harness.new_history(head)
    if ckpt is not None:
        if ckpt["model_config"] != asdict(mcfg):
            raise harness.UserError(f"{ckpt_path} holds another model than these flags build")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        ema = {k: v.to(device) for k, v in ckpt["ema"].items()}
        step, history = ckpt["step"], ckpt["history"]
        harness.set_rng_state(ckpt["rng"])
        print(f"resumed from {ckpt_path} at step {step}")
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(
        f"{task['dataset']}: {len(examples)} train / {len(task['test'])} test | {n_params:,} parameters"
    )
    tgt_tok = task["tgt_tok"]
    shown = [[x, task["classes"][y] if classify else tgt_tok.join(tgt_tok.split(y))]
             for x, y in task["test"][:50]]  # fmt: skip  # held-out examples for inference.py

    def save():
        harness.save_checkpoint(ckpt_path, model=model, optimizer=opt, model_config=mcfg,
                                train_config=cfg, step=step, history=history, ema=ema, examples=shown,
                                classes=task["classes"], tokenizers={"src": task["src_tok"].to_dict(),
                                "tgt": tgt_tok.to_dict() if tgt_tok else None})  # fmt: skip

    lengths = [len(s) + (0 if classify else len(t)) for s, t in examples]
    n_batches, order = math.ceil(len(examples) / cfg.batch_size), {}
    amp, scaler = harness.autocast(device)
    model.train()
    t0, start_step, tokens, eval_s = time.time(), step, 0, 0.0
    bar = tqdm(total=cfg.steps, initial=step, desc="train", dynamic_ncols=True)
    while step < cfg.steps:
        epoch = step // n_batches
        if epoch not in order:  # the batch order depends only on (seed, epoch): resumable
            order = {epoch: D.length_batches(lengths, cfg.batch_size, cfg.seed * 100003 + epoch)}
        batch = [examples[i] for i in order[epoch][step % n_batches]]
        lr = learning_rate(step + 1, cfg.lr, cfg.warmup_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        with amp:  # bf16 (or fp16 with a scaler) on CUDA, full precision elsewhere
            loss = batch_loss(model, batch, cfg, device)
        harness.check_finite(loss.item(), step + 1, out)
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt) if scaler else opt.step()
        if scaler:
            scaler.update()
        with torch.no_grad():  # theta_avg <- d theta_avg + (1 - d) theta (paper 6.1 averages)
            for k, v in model.state_dict().items():
                ema[k].lerp_(v, 1 - cfg.ema) if v.is_floating_point() else ema[k].copy_(v)
        step += 1
        tokens += sum(len(s) + (0 if classify else len(t)) for s, t in batch)
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            ms = 1000 * (time.time() - t0 - eval_s) / max(step - start_step, 1)  # training only
            t_eval = time.time()
            avg_model.load_state_dict(ema)
            with torch.no_grad():
                val_loss = batch_loss(avg_model.eval(), held_out, cfg, device).item()
            ev = evaluate(avg_model, task, task["test"][:200], device)
            history["eval_step"].append(step)
            history["val_loss"].append(val_loss)
            history[head].append(ev["accuracy" if classify else "exact_match"])
            tqdm.write(f"step {step} | loss {loss.item():.4f} | val {val_loss:.4f} | "
                       f"{head} {history[head][-1]:.3f} | {ms:.0f} ms/step")  # fmt: skip
            save()
            eval_s += time.time() - t_eval
    bar.close()
    seconds = time.time() - t0
    avg_model.load_state_dict(ema)
    return finish(cfg, task, avg_model, device, out, history, head,
                  dict(n_params=n_params, steps=step, seconds=round(seconds, 1), threads=threads,
                       train_tokens_per_s=round(tokens / max(seconds, 1e-9))))  # fmt: skip


def finish(cfg, task, avg_model, device, out, history, head, run):
    """The held-out figures of the averaged weights, metrics.json and the pictures."""
    final = evaluate(avg_model, task, task["test"], device)
    classify = cfg.task == "classify"
    harness.write_metrics(
        out / "metrics.json", project="transformer", dataset=task["dataset"],
        metric="test_accuracy" if classify else "bleu",
        value=final["accuracy"] if classify else final["bleu"],
        unit="fraction" if classify else "sacreBLEU (13a, 0-100)", higher_is_better=True,
        selection="final", device=device.type, device_name=harness.device_name(device),
        seed=cfg.seed, **run, weights="ema" if cfg.ema else "raw", task=cfg.task,
        tokenizer=cfg.tokenizer, n_test=len(task["test"]),
        **{k: v for k, v in final.items() if k not in ("samples", "accuracy", "bleu")},
    )  # fmt: skip
    for src_text, hyp, ref in final.get("samples", []):
        print(f"  {src_text}\n    -> {hyp}\n    ref {ref}")
    name = "test_accuracy" if classify else "bleu"
    print(f"{task['dataset']}: {name} {final['accuracy' if classify else 'bleu']:.4f} "
          f"after {run['steps']} steps, {run['seconds']} s; wrote {out}")  # fmt: skip
    if cfg.plots:
        ylabel = "label-smoothed cross-entropy (nats/token)"
        harness.plot_loss(
            history, out / "loss.png", f"{task['dataset']}: train vs held-out", ylabel, head
        )
    if cfg.plots and not classify and not cfg.smoke:  # inference.py draws them for a smoke run
        from visualize import save_attention_maps

        save_attention_maps(
            avg_model, task["src_tok"], task["tgt_tok"], task["test"][0][0], out, device
        )
    return {"metric": name, "value": final["accuracy" if classify else "bleu"],
            "dataset": task["dataset"], **final}  # fmt: skip


# ---------------------------------------------------------------- command line
def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    harness.add_config_flags(p, TrainConfig, HELP)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    given = harness.given_flags(argv)
    cfg = harness.config_from_args(TrainConfig, args)
    return harness.run_main(lambda: train(cfg, given) and None, lambda: args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
