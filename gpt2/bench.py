"""Benchmark, in one process: ours against Hugging Face's GPT2LMHeadModel, like with like.

    python bench.py --threads 1        # two model sizes; prints ratios (and --json PATH)
    python bench.py --smoke            # tiny models, one repetition: seconds

1. Four models hold the same weights: ours with the hand-written attention and HF with
   attn_implementation="eager" (its own hand-written attention), and ours with
   --fused-attention and HF with "sdpa" (both F.scaled_dot_product_attention). For each pair,
   at the small CPU configuration and a larger one: a training step (forward, backward,
   gradient clipping, the AdamW step of train.py) and a forward, as the ratio ours / HF
   (aim: <= 1.0 for both pairs);
2. generation of 256 new tokens with and without the KV cache: tokens/s and the speed-up
   (aim: >= 5x);
3. MFU of our training step: training FLOPs/s (model.flops_per_token) over the device's peak
   (on CPU: the measured float32 matmul rate, see hardware.peak_flops).

Repetitions alternate between the four models, the order rotating every round, and report
medians, so a machine whose load changes affects every side alike. Ratios, not absolute times,
are the result.

With `--nanogpt-dir DIR` (a local clone of github.com/karpathy/nanoGPT; nothing is
downloaded) nanoGPT's own GPT class, imported from DIR/model.py, joins the round with the same
weights and the same optimizer, and both of ours are held to it: ours / nanoGPT per training
step ("ms per iteration" at equal work) and per forward. nanoGPT is not a package, so this is
the only way to build its model class here. Its MLP computes the exact (erf) GELU, not GPT-2's
tanh approximation, and PyTorch's erf kernel is the cheaper of the two, so the round also holds
"nanogpt_tanh", the same class with GPT-2's GELU: ours_fused / nanogpt_tanh is the same work.

`--compile` wraps every model of the rounds in torch.compile (the warm-up round compiles), so
the ratios compare the compiled kernels of each side: written-out LayerNorm and GELU fused by
the compiler against nanoGPT's and HF's calls of the library's kernels.
"""

import argparse
import contextlib
import importlib.util
import io
import statistics
import sys
import time
from pathlib import Path

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


PAIRS = (("ours", "hf_eager"), ("ours_fused", "hf_sdpa"))  # (ours, the HF model it is held to)
# nanogpt: its class as it is (exact erf GELU, nn.GELU()); nanogpt_tanh: the same class with
# GPT-2's tanh GELU, the function ours and HF compute, so that pair is the same work
NANOGPT_PAIRS = (("ours", "nanogpt"), ("ours_fused", "nanogpt"), ("ours_fused", "nanogpt_tanh"))


def nanogpt_model(directory: str, cfg: GPTConfig, tanh_gelu: bool = False) -> torch.nn.Module:
    """nanoGPT's GPT class from DIR/model.py of a local clone, at our configuration.

    nanoGPT's MLP uses the exact GELU (nn.GELU(), erf); GPT-2 used the tanh approximation, which
    ours and HF compute. tanh_gelu=True swaps each block's `mlp.gelu` for
    nn.GELU(approximate="tanh"), so the model computes GPT-2's function, as ours does.
    """
    path = Path(directory).expanduser() / "model.py"
    harness.check(
        path.is_file(), f"--nanogpt-dir {directory}: no model.py there (a clone of nanoGPT)"
    )
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shape = dict(
        n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=cfg.block_size
    )
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
        model = module.GPT(
            module.GPTConfig(**shape, vocab_size=cfg.vocab_size, dropout=0.0, bias=True)
        )
    if tanh_gelu:
        for block in model.transformer.h:
            harness.check(
                isinstance(getattr(block.mlp, "gelu", None), torch.nn.GELU),
                f"--nanogpt-dir {directory}: its MLP has no nn.GELU named gelu to swap",
            )
            block.mlp.gelu = torch.nn.GELU(approximate="tanh")
    return model


def build_models(cfg: GPTConfig, device, nanogpt_dir: str | None = None, compile=False) -> dict:
    """The four models of PAIRS (and nanoGPT's), every one with the same weights (a random HF init)."""
    import transformers

    def hf(impl):
        hf_cfg = transformers.GPT2Config(
            n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, n_positions=cfg.block_size,
            vocab_size=cfg.vocab_size, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=None, eos_token_id=None, attn_implementation=impl,
        )  # fmt: skip
        return transformers.GPT2LMHeadModel(hf_cfg)

    models = {"hf_eager": hf("eager"), "hf_sdpa": hf("sdpa")}
    state = models["hf_eager"].state_dict()
    models["hf_sdpa"].load_state_dict(state)
    for name, fused in (("ours", False), ("ours_fused", True)):
        models[name] = GPT(GPTConfig(**{**cfg.to_dict(), "fused_attention": fused}))
        models[name].load_state_dict(hf_to_ours(state))
    if nanogpt_dir:  # its names and layout are ours (nn.Linear, tied lm_head)
        for name, tanh in (("nanogpt", False), ("nanogpt_tanh", True)):
            models[name] = nanogpt_model(nanogpt_dir, cfg, tanh_gelu=tanh)
            models[name].load_state_dict(hf_to_ours(state))
    assert models["hf_eager"].config._attn_implementation == "eager"
    assert models["hf_sdpa"].config._attn_implementation == "sdpa"
    models = {k: m.to(device) for k, m in models.items()}
    return {k: torch.compile(m) for k, m in models.items()} if compile else models


def _interleaved(device, fns: dict, reps: int) -> dict:
    """Median seconds of each fn, alternating between them with a rotating order."""
    names, times = list(fns), {k: [] for k in fns}
    for r in range(reps + 1):  # one warm-up round
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t = _time(device, fns[name])
            if r >= 1:
                times[name].append(t)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_pairs(cfg: GPTConfig, batch: int, reps: int, device, nanogpt_dir=None, compile=False):
    """Training step and forward seconds of the four models, and the ratio of each pair."""
    from train import TrainConfig, make_optimizer

    models = build_models(cfg, device, nanogpt_dir, compile)
    pairs = PAIRS + (NANOGPT_PAIRS if nanogpt_dir else ())
    idx = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device)

    def loss_of(name):
        m = models[name]
        return m(idx, labels=idx).loss if name.startswith("hf") else m(idx, idx)[1]

    def train_step(name, opt):
        loss_of(name).backward()
        torch.nn.utils.clip_grad_norm_(models[name].parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def forward(name):
        loss_of(name)

    opts = {k: make_optimizer(m, TrainConfig(), device) for k, m in models.items()}
    train = _interleaved(device, {k: lambda k=k: train_step(k, opts[k]) for k in models}, reps)
    for m in models.values():
        m.eval()
    fwd = _interleaved(device, {k: lambda k=k: forward(k) for k in models}, reps)
    tokens = batch * cfg.block_size
    flops = models["ours"].flops_per_token(cfg.block_size) * tokens / train["ours"]
    peak = peak_flops(device)
    out = {"config": cfg.to_dict(), "batch": batch, "reps": reps, "compiled": compile}
    for phase, med in (("train", train), ("forward", fwd)):
        out |= {f"ms_{phase}_{k}": 1e3 * v for k, v in med.items()}
        out |= {f"ratio_{phase}_{a}_over_{b}": med[a] / med[b] for a, b in pairs}
    return out | {"pairs": pairs} | {"tokens_per_s": tokens / train["ours"], "flops_per_s": flops, "peak_flops": peak,
                  "mfu": flops / peak}  # fmt: skip


def print_pairs(name: str, r: dict):
    c = r["config"]
    print(f"{name} ({c['n_layer']} layers x {c['n_head']} heads x {c['n_embd']}, context "
          f"{c['block_size']}, vocabulary {c['vocab_size']}), batch {r['batch']}, median of {r['reps']}"
          f"{', every model torch.compile-d' if r['compiled'] else ''}:")  # fmt: skip
    for phase, what in (("train", "training step (fwd + bwd + AdamW)"), ("forward", "forward")):
        for a, b in r["pairs"]:
            ratio = r[f"ratio_{phase}_{a}_over_{b}"]
            print(f"  {what:34s} {a:10s} {r[f'ms_{phase}_{a}']:8.1f} ms | {b:8s} "
                  f"{r[f'ms_{phase}_{b}']:8.1f} ms | {a}/{b} {ratio:.2f}x "
                  f"({'met' if ratio <= 1.0 else 'NOT met'}: aim <= 1.0)")  # fmt: skip
    print(f"  ours: {r['tokens_per_s']:,.0f} tokens/s training, {r['flops_per_s'] / 1e9:.1f} GFLOP/s "
          f"of a {r['peak_flops'] / 1e9:.1f} GFLOP/s peak: MFU {100 * r['mfu']:.1f}%")  # fmt: skip


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
    for name in (
        "vocab_size",
        "batch_size",
        "large_batch_size",
        "repeats",
        "max_new_tokens",
        "gen_repeats",
    ):
        harness.check(getattr(args, name) >= 1, f"--{name.replace('_', '-')} must be at least 1")
    harness.check(args.threads >= 0, "--threads must be >= 0")
    if args.smoke:  # tiny models, one repetition: checks that the benchmark runs
        args.preset, args.large_preset, args.gen_preset = "cpu-tiny", "cpu-tiny", "cpu-tiny"
        args.repeats, args.gen_repeats, args.batch_size, args.max_new_tokens = 1, 1, 2, 16
    threads = harness.set_threads(args.threads)
    device = harness.pick_device(args.device)
    torch.manual_seed(0)
    print(
        f"device: {device} ({harness.device_name(device)}), {threads} threads, torch {torch.__version__}"
    )
    result = {"device": device.type, "threads": threads, "pairs": {}}
    sizes = [(args.preset, args.batch_size)]
    if args.large_preset != "none":
        sizes.append((args.large_preset, args.large_batch_size))
    for preset, batch in sizes:
        cfg = GPTConfig.from_preset(preset, vocab_size=args.vocab_size)
        result["pairs"][preset] = r = bench_pairs(
            cfg, batch, args.repeats, device, args.nanogpt_dir, args.compile
        )
        print_pairs(preset, r)
    gen_cfg = GPTConfig.from_preset(
        args.gen_preset, vocab_size=args.vocab_size, block_size=args.max_new_tokens + 1
    )
    result["generation"] = ge = bench_generation(
        gen_cfg, args.max_new_tokens, args.gen_repeats, device
    )
    print(
        f"generation, {args.gen_preset}, {args.max_new_tokens} new tokens: "
        f"KV cache {ge['tokens_per_s_cache']:,.0f} tok/s | no cache "
        f"{ge['tokens_per_s_no_cache']:,.0f} tok/s | speed-up {ge['speedup']:.1f}x"
    )
    if args.json:
        harness.write_json(result, args.json)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    presets = list(PRESETS)
    p.add_argument("--preset", default="cpu-small", choices=presets, help="the small model of the ours/HF timings")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=12, help="its sequences per step")
    p.add_argument("--large-preset", default="cpu-medium", choices=[*presets, "none"], help="the larger model (none: skip)")  # fmt: skip
    p.add_argument("--large-batch-size", type=int, default=2, help="its sequences per step")
    p.add_argument("--vocab-size", type=int, default=65, help="tinyshakespeare's 65 characters")
    p.add_argument("--repeats", type=int, default=10, help="timed repetitions per model (median)")
    p.add_argument("--gen-preset", default="cpu-medium", choices=presets, help="model for the generation timing")  # fmt: skip
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens to generate")
    p.add_argument("--gen-repeats", type=int, default=2, help="timed generations (median)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: half the cores)")
    p.add_argument("--device", default="auto", help="auto: cuda, then mps, then cpu")
    p.add_argument("--nanogpt-dir", default=None, help="a local nanoGPT clone: hold ours to its GPT class too")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="torch.compile every model of the rounds (the timed steps then run compiled kernels)")  # fmt: skip
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--smoke", action="store_true", help="tiny models, one repetition, in seconds")
    args = p.parse_args(argv)
    return harness.run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
