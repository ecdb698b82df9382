"""Benchmark: one training step of a 784-256-256-10 MLP, ours (NumPy) vs torch, CPU.

    python bench.py                       # batch 128, float32, Adam
    python bench.py --optimizer sgd --threads 1

One step = forward, softmax cross-entropy, backward, optimizer update, on the
same random batch, in the same process, alternating ours and torch's rounds so
that both see the same machine load. Prints the median time per step, steps/s
and the ratio ours / torch (the issue's aim: at most 1.5x). Not a test:
timings depend on the machine; README records measured figures with the load.
"""

import argparse
import os
import time

import numpy as np
import torch
from model import MLP, SoftmaxCrossEntropy
from optim import make_optimizer
from threadpoolctl import threadpool_info, threadpool_limits

SIZES = [784, 256, 256, 10]


def ours_step_fn(x, y, optimizer, lr):
    model = MLP(SIZES, "relu", "he", rng=np.random.default_rng(0), dtype=np.float32)
    loss_fn, opt = SoftmaxCrossEntropy(), make_optimizer(optimizer, model.params, lr=lr)

    def step():
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        opt.step(model.grads)

    return step


def torch_step_fn(x, y, optimizer, lr):
    torch.manual_seed(0)
    layers = [torch.nn.Linear(a, b) for a, b in zip(SIZES[:-1], SIZES[1:])]
    model = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])
    opts = {
        "sgd": lambda p: torch.optim.SGD(p, lr=lr),
        "momentum": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
        "nesterov": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True),
        "rmsprop": lambda p: torch.optim.RMSprop(p, lr=lr),
        "adam": lambda p: torch.optim.Adam(p, lr=lr),
    }
    opt, loss_fn = opts[optimizer](model.parameters()), torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xt), yt).backward()
        opt.step()

    return step


def time_steps(step, n):
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--optimizer", default="adam", choices=("sgd", "momentum", "nesterov", "rmsprop", "adam")
    )
    p.add_argument("--per-round", type=int, default=50, help="steps per timed round")
    p.add_argument(
        "--repeats", type=int, default=7, help="alternating timed rounds; the median is reported"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="BLAS and torch threads (None: library defaults)"
    )
    args = p.parse_args(argv)
    if args.threads:
        threadpool_limits(args.threads)
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, 784), dtype=np.float32)  # (B, 784)
    y = rng.integers(0, 10, args.batch_size)  # (B,)
    fns = {
        "ours": ours_step_fn(x, y, args.optimizer, 1e-3),
        "torch": torch_step_fn(x, y, args.optimizer, 1e-3),
    }
    for f in fns.values():
        time_steps(f, 10)  # warm-up: allocations, thread pools
    times = {k: [] for k in fns}
    for _ in range(args.repeats):
        for k, f in fns.items():
            times[k].append(time_steps(f, args.per_round))
    blas = ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info())
    print(
        f"MLP {SIZES}, batch {args.batch_size}, float32, {args.optimizer}; numpy BLAS: {blas}; torch threads {torch.get_num_threads()}"
    )
    print(
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} load average {os.getloadavg()[0]:.2f}"
    )
    med = {k: float(np.median(v)) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:>6}: {1000 * v:7.3f} ms/step  {1 / v:8.1f} steps/s")
    print(f"ratio ours / torch: {med['ours'] / med['torch']:.2f}x (aim: <= 1.5x)")


if __name__ == "__main__":
    main()
