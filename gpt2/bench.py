"""Benchmark, in one process: ours against Hugging Face's GPT2LMHeadModel, and the KV cache.

    python bench.py                    # the small config; prints ratios (and --json PATH)
    python bench.py --smoke            # tiny models, one repetition: seconds

1. forward + backward time per batch, ours (hand-written attention, and the fused flag) over
   transformers' GPT2LMHeadModel (its default attention) holding the same weights: the ratio
   ours / HF (aim: <= 1.1);
2. generation of 256 new tokens with and without the KV cache: tokens/s and the speed-up
   (aim: >= 5x);
3. MFU: training FLOPs/s (model.flops_per_token) over the device's peak (on CPU: the measured
   float32 matmul rate, see hardware.peak_flops).

Timings alternate ours/theirs repetition by repetition and report medians, so a machine whose
load changes affects both sides alike. Ratios, not absolute times, are the result.
"""

import argparse
import statistics
import sys
import time

import harness
import torch
from convert import hf_to_ours
from hardware import peak_flops
from model import GPT, PRESETS, GPTConfig


def _time(device, fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench_train_step(cfg: GPTConfig, batch: int, reps: int, device) -> dict:
    """Median forward+backward seconds of ours, ours fused, and HF on the same weights."""
    import transformers

    hf_cfg = transformers.GPT2Config(
        n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, n_positions=cfg.block_size,
        vocab_size=cfg.vocab_size, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    hf = transformers.GPT2LMHeadModel(hf_cfg).to(device)
    ours = GPT(cfg).to(device)
    fused = GPT(GPTConfig(**{**cfg.to_dict(), "fused_attention": True})).to(device)
    for m in (ours, fused):
        m.load_state_dict(hf_to_ours(hf.state_dict()))
    idx = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device)

    def step(model, is_hf):
        if is_hf:
            loss = model(idx, labels=idx).loss
        else:
            loss = model(idx, idx)[1]
        loss.backward()
        model.zero_grad(set_to_none=True)

    runs = {"ours": (ours, False), "ours_fused": (fused, False), "hf": (hf, True)}
    times = {k: [] for k in runs}
    names = list(runs)
    for r in range(reps + 2):
        for name in names[r % 3 :] + names[: r % 3]:  # rotate who goes first
            t = _time(device, step, *runs[name])
            if r >= 2:  # two warm-up rounds
                times[name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    tokens = batch * cfg.block_size
    flops = ours.flops_per_token(cfg.block_size) * tokens / med["ours"]
    peak = peak_flops(device)
    return {
        "config": cfg.to_dict(), "batch": batch, "ms_ours": 1e3 * med["ours"],
        "ms_ours_fused": 1e3 * med["ours_fused"], "ms_hf": 1e3 * med["hf"],
        "ratio_ours_over_hf": med["ours"] / med["hf"],
        "ratio_fused_over_hf": med["ours_fused"] / med["hf"],
        "tokens_per_s": tokens / med["ours"], "flops_per_s": flops, "peak_flops": peak, "mfu": flops / peak,
    }  # fmt: skip


def bench_generation(cfg: GPTConfig, new_tokens: int, reps: int, device) -> dict:
    """Tokens/s generating new_tokens after a 1-token prompt, with and without the KV cache."""
    model = GPT(cfg).to(device).eval()
    prompt = torch.zeros(1, 1, dtype=torch.long, device=device)
    out = {}
    for use_cache in (True, False):
        ts = []
        for _ in range(reps):
            gen = torch.Generator(device=device).manual_seed(0)
            kw = dict(use_cache=use_cache, generator=gen)
            ts.append(_time(device, model.generate, prompt, new_tokens, **kw))
        out["cache" if use_cache else "no_cache"] = new_tokens / statistics.median(ts)
    return {
        "config": cfg.to_dict(), "new_tokens": new_tokens, "tokens_per_s_cache": out["cache"],
        "tokens_per_s_no_cache": out["no_cache"], "speedup": out["cache"] / out["no_cache"],
    }  # fmt: skip


def run(args):
    for name in ("vocab_size", "batch_size", "repeats", "max_new_tokens", "gen_repeats"):
        harness.check(getattr(args, name) >= 1, f"--{name.replace('_', '-')} must be at least 1")
    harness.check(args.threads >= 0, "--threads must be >= 0")
    if args.smoke:  # tiny models, one repetition: checks that the benchmark runs
        args.preset, args.gen_preset, args.max_new_tokens = "cpu-tiny", "cpu-tiny", 16
        args.repeats, args.gen_repeats, args.batch_size = 1, 1, 2
    threads = harness.set_threads(args.threads)
    device = harness.pick_device(args.device)
    torch.manual_seed(0)
    print(
        f"device: {device} ({harness.device_name(device)}), {threads} threads, torch {torch.__version__}"
    )
    cfg = GPTConfig.from_preset(args.preset, vocab_size=args.vocab_size)
    gen_cfg = GPTConfig.from_preset(
        args.gen_preset, vocab_size=args.vocab_size, block_size=args.max_new_tokens + 1
    )
    tr = bench_train_step(cfg, args.batch_size, args.repeats, device)
    print(
        f"forward+backward, {args.preset}, batch {args.batch_size} x {cfg.block_size}: "
        f"ours {tr['ms_ours']:.1f} ms | ours fused {tr['ms_ours_fused']:.1f} ms | "
        f"HF {tr['ms_hf']:.1f} ms | ours/HF {tr['ratio_ours_over_hf']:.2f}x | "
        f"fused/HF {tr['ratio_fused_over_hf']:.2f}x"
    )
    print(
        f"  {tr['tokens_per_s']:,.0f} tokens/s, {tr['flops_per_s'] / 1e9:.1f} GFLOP/s of a "
        f"{tr['peak_flops'] / 1e9:.1f} GFLOP/s peak: MFU {100 * tr['mfu']:.1f}%"
    )
    ge = bench_generation(gen_cfg, args.max_new_tokens, args.gen_repeats, device)
    print(
        f"generation, {args.gen_preset}, {args.max_new_tokens} new tokens: "
        f"KV cache {ge['tokens_per_s_cache']:,.0f} tok/s | no cache "
        f"{ge['tokens_per_s_no_cache']:,.0f} tok/s | speed-up {ge['speedup']:.1f}x"
    )
    if args.json:
        result = {"train_step": tr, "generation": ge, "device": device.type, "threads": threads}
        harness.write_json(result, args.json)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    presets = list(PRESETS)
    p.add_argument("--preset", default="cpu-small", choices=presets, help="model for the forward+backward timing")  # fmt: skip
    p.add_argument("--vocab-size", type=int, default=65, help="tinyshakespeare's 65 characters")
    p.add_argument("--batch-size", type=int, default=12, help="sequences per forward+backward")
    p.add_argument("--repeats", type=int, default=10, help="timed forward+backward repetitions (median)")  # fmt: skip
    p.add_argument("--gen-preset", default="cpu-medium", choices=presets, help="model for the generation timing")  # fmt: skip
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens to generate")
    p.add_argument("--gen-repeats", type=int, default=2, help="timed generations (median)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: half the cores)")
    p.add_argument("--device", default="auto", help="auto: cuda, then mps, then cpu")
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--smoke", action="store_true", help="tiny models, one repetition, in seconds")
    args = p.parse_args(argv)
    return harness.run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
