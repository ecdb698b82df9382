"""Architecture benchmark: RNN, LSTM and GRU with about the same number of parameters, trained
the same way on the same corpus; one PNG of validation loss vs step and a Markdown table of
best / final validation loss (nats/char), parameters and ms per step.

The LSTM's hidden size sets the budget; the RNN and GRU get the hidden size whose parameter
count is closest (an RNN unit costs 1/4 of an LSTM unit's recurrent weights, a GRU unit 3/4).

    python compare.py --dataset names --data-dir ~/data --download --steps 2000
"""

import argparse
import json
import time
from dataclasses import fields
from pathlib import Path

import harness
import numpy as np
from data import DataError, Vocab, load_text
from model import CELLS
from train import TrainConfig, train


def n_params(cell, vocab_size, n_embd, n_hidden, n_layer):
    """Embedding V E + per layer G H (n_in + H) + 2 G H (weights, two biases) + head H V + V."""
    G, H = CELLS[cell].n_gates, n_hidden
    layers = sum(G * H * ((n_embd if l == 0 else H) + H) + 2 * G * H for l in range(n_layer))
    return vocab_size * n_embd + layers + H * vocab_size + vocab_size


def matched_hidden(cell, budget, vocab_size, n_embd, n_layer):
    """The hidden size whose model has the parameter count closest to budget."""
    return min(
        range(4, 2049), key=lambda h: abs(n_params(cell, vocab_size, n_embd, h, n_layer) - budget)
    )


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    d = TrainConfig()
    p.add_argument("--dataset", default=d.dataset, help="corpus, as in train.py")
    p.add_argument("--data", default="", help="any UTF-8 text file, e.g. names.txt")
    p.add_argument("--data-dir", default=d.data_dir, help="for names/shakespeare")
    p.add_argument("--download", action="store_true", help="fetch names/shakespeare")
    p.add_argument("--lstm-hidden", type=int, default=d.n_hidden, help="sets the parameter budget")
    p.add_argument("--n-layer", type=int, default=1, help="layers of every model")
    p.add_argument("--n-embd", type=int, default=d.n_embd, help="embedding size of every model")
    p.add_argument("--steps", type=int, default=2000, help="steps per model")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="parallel streams B")
    p.add_argument("--seq-len", type=int, default=d.seq_len, help="truncated-BPTT length T")
    p.add_argument("--eval-every", type=int, default=100, help="steps between val losses")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--dropout", type=float, default=d.dropout, help="on every layer's output")
    p.add_argument("--weight-drop", type=float, default=d.weight_drop, help="DropConnect on W_hh")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="decoupled, matrices")
    p.add_argument(
        "--schedule", default=d.schedule, choices=["constant", "cosine"], help="lr schedule"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every run")
    p.add_argument("--out-dir", default="runs/compare", help="one run folder per cell, table")
    p.add_argument("--figure", default="figures/compare.png", help="validation-loss PNG")
    args = p.parse_args(argv)
    sizes = ("lstm_hidden", "n_layer", "n_embd", "steps", "batch_size", "seq_len", "eval_every")
    for name in sizes:
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.lr > 0:
        p.error("--lr must be positive")
    for name in ("dropout", "weight_drop"):
        if not 0 <= getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be in [0, 1)")
    if not 0 <= args.weight_decay * args.lr < 1:
        p.error("--weight-decay must be >= 0 and --lr times it below 1")
    harness.blas_threads(1)  # threadpoolctl applies the limit when it is created
    try:
        text, _ = load_text(args.dataset, args.data or None, args.data_dir, args.download)
    except DataError as e:
        p.error(str(e))
    V = len(Vocab(text))
    budget = n_params("lstm", V, args.n_embd, args.lstm_hidden, args.n_layer)
    names = {f.name for f in fields(TrainConfig)}
    rows, curves = [], {}
    t0 = time.perf_counter()
    for cell in CELLS:
        H = matched_hidden(cell, budget, V, args.n_embd, args.n_layer)
        kw = {k: v for k, v in vars(args).items() if k in names and k != "out_dir"}
        cfg = TrainConfig(**kw, cell=cell, n_hidden=H, out_dir=f"{args.out_dir}/{cell}")
        try:
            m = train(cfg)
        except (harness.UserError, harness.TrainingError) as e:
            p.error(str(e))
        h = harness.load_checkpoint(Path(cfg.out_dir) / harness.CHECKPOINT)["history"]
        curves[cell] = list(zip(h["eval_step"], h["val_loss"]))
        rows.append((cell, H, m["n_params"], m["best_val_loss"], m["value"], m["ms_per_step"]))
    name = Path(args.data).name if args.data else args.dataset
    table = [
        f"{name}, {args.steps} steps of batch {args.batch_size} x {args.seq_len}, Adam lr {args.lr} ({args.schedule}), dropout {args.dropout}, weight drop {args.weight_drop}, weight decay {args.weight_decay}:",
        "",
        "| cell | hidden | parameters | best val loss | final val loss | ms/step |",
        "|---|---|---|---|---|---|",
    ]
    table += [f"| {c} | {h} | {n:,} | {b:.4f} | {f:.4f} | {ms:.0f} |" for c, h, n, b, f, ms in rows]
    print("\n".join(table))
    print(f"total {time.perf_counter() - t0:.0f} s")
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.out_dir) / "compare.md").write_text("\n".join(table) + "\n")
    (Path(args.out_dir) / "compare.json").write_text(json.dumps({"rows": rows, "curves": curves}))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for (cell, H, n, *_), c in zip(rows, CELLS):
        s, v = np.array(curves[c]).T
        ax.plot(s, v, label=f"{cell} (hidden {H}, {n:,} params)")
    ax.set(
        xlabel="step", ylabel="validation loss (nats/char)", title=f"RNN vs LSTM vs GRU on {name}"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=100)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
