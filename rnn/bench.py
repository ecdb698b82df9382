"""Time one BPTT step (forward over T steps, then backward) of our NumPy cells against
torch.nn.RNN/LSTM/GRU on the CPU, in one process, float32, and print the ratios.

Default shape: batch 32, sequence 64, input 256, hidden 256 (issue 5 asks for at most 2x torch).
Both libraries get the same number of threads (--threads); rounds alternate ours/torch so that a
change in machine load hits both. Run: python bench.py [--threads 1] [--repeats 20]
"""

import argparse
import os
import time

import numpy as np
import torch
from model import CELLS

TORCH = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def bench_cell(cell, B, T, D, H, repeats):
    rng = np.random.default_rng(0)
    ours = CELLS[cell](D, H, rng, np.float32)
    ref = TORCH[cell](D, H)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    xt, dyt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

    def run_ours():
        ours.forward(x)
        ours.backward(dy)

    def run_torch():
        ref.zero_grad(set_to_none=True)
        y, _ = ref(xt)
        y.backward(dyt)

    run_ours(), run_torch()  # warm-up
    t_ours, t_torch = [], []
    for _ in range(repeats):
        for fn, acc in ((run_ours, t_ours), (run_torch, t_torch)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return 1000 * np.median(t_ours), 1000 * np.median(t_torch)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--batch-size", type=int, default=32, help="B")
    p.add_argument("--seq-len", type=int, default=64, help="T")
    p.add_argument("--n-in", type=int, default=256, help="input size D")
    p.add_argument("--n-hidden", type=int, default=256, help="hidden size H")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads for NumPy and torch")
    p.add_argument("--repeats", type=int, default=20, help="timed rounds (median)")
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated")
    args = p.parse_args(argv)
    cells = args.cells.split(",")
    if not set(cells) <= set(CELLS):
        p.error(f"--cells {args.cells!r}: choose from {', '.join(CELLS)}")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads, user_api="blas")
    except ImportError:
        print("threadpoolctl missing: NumPy uses its default BLAS threads")
    torch.set_num_threads(args.threads)
    env = {k: os.environ.get(k, "unset") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(
        f"B={args.batch_size} T={args.seq_len} D={args.n_in} H={args.n_hidden} float32, "
        f"{args.threads} thread(s), numpy {np.__version__}, torch {torch.__version__}, {env}"
    )
    print("| cell | ours (ms) | torch (ms) | ours / torch |\n|---|---|---|---|")
    for cell in cells:
        ours, ref = bench_cell(
            cell, args.batch_size, args.seq_len, args.n_in, args.n_hidden, args.repeats
        )
        print(f"| {cell} | {ours:.1f} | {ref:.1f} | {ours / ref:.2f}x |")


if __name__ == "__main__":
    main()
