"""Parameter counts of every preset, per module, tied weights counted once.

    python show_params.py              # every preset, totals
    python show_params.py gpt2         # one preset, per-module table

GPT-2 small (preset gpt2) has 124,439,808 parameters; the README works the number by hand and
tests/test_model.py asserts it. Models are built on the "meta" device: shapes without memory, so
gpt2-xl (1.56B) costs nothing to count.
"""

import argparse

import torch
from model import GPT, PRESETS, GPTConfig


def build(name: str) -> GPT:
    with torch.device("meta"):
        return GPT(GPTConfig.from_preset(name, vocab_size=PRESETS[name].get("vocab_size", 128)))


def module_table(model: GPT) -> list[tuple[str, tuple, int]]:
    """(name, shape, count) of each distinct parameter, in registration order."""
    return [(n, tuple(p.shape), p.numel()) for n, p in model.named_parameters()]


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("preset", nargs="?", choices=list(PRESETS), help="show one preset per module")
    args = p.parse_args(argv)
    if args.preset:
        model = build(args.preset)
        print(f"{'parameter':<40} {'shape':>16} {'count':>14}")
        rows = module_table(model)
        blocks = [r for r in rows if r[0].startswith("transformer.h.")]
        for name, shape, n in rows:
            if not name.startswith("transformer.h.") or name.startswith("transformer.h.0."):
                print(f"{name:<40} {str(shape):>16} {n:>14,}")
        per_block = sum(n for name, _, n in blocks if name.startswith("transformer.h.0."))
        c = model.config
        print(
            f"{'(blocks 1..' + str(c.n_layer - 1) + ' repeat block 0)':<40} {'':>16} {per_block * (c.n_layer - 1):>14,}"
        )
        print(f"{'lm_head.weight':<40} {'tied to wte':>16} {0:>14,}")
        print(f"{'total':<40} {'':>16} {model.num_params():>14,}")
        return
    groups = ("wte", "wpe", "attn", "mlp", "ln")
    print(f"{'preset':<12} {'L':>3} {'H':>3} {'C':>5} {'T':>5} " + "".join(f"{g:>13}" for g in groups)
          + f"{'total':>15}")  # fmt: skip
    for name in PRESETS:
        m = build(name)
        c = m.config
        count = dict.fromkeys(groups, 0)
        for pname, _, n in module_table(m):
            count[next(g for g in groups if f".{g}" in pname or pname.startswith(g))] += n
        print(f"{name:<12} {c.n_layer:>3} {c.n_head:>3} {c.n_embd:>5} {c.block_size:>5} "
              + "".join(f"{count[g]:>13,}" for g in groups) + f"{m.num_params():>15,}")  # fmt: skip
    print(
        "wte is also the LM head (tied, counted once); ln = all LayerNorms; cpu-* presets shown\n"
        "with a 128-token vocabulary (training sets it from the tokenizer)"
    )


if __name__ == "__main__":
    main()
