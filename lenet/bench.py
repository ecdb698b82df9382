"""Benchmark: one training step of the NumPy LeNet-5 against the identical torch.nn LeNet-5.

One step = forward, softmax cross-entropy, backward, SGD-momentum update; batch 64 of 1x32x32,
float32, CPU. Both run in this process on the same data and weights, interleaved (A, B, A, B...)
so that a busy machine slows both alike; the medians and their ratio are printed, for 1 thread
and for the default thread count. Then the loop convolution (`conv2d_naive`) and loop max-pool
against the vectorised ones, to show what im2col buys. Not a test: timings depend on the machine.

    python bench.py            # about a minute
"""

import argparse
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from model import LeNet5, MaxPool2D, conv2d_naive, maxpool2d_naive, softmax_cross_entropy
from optim import SGD
from threadpoolctl import threadpool_limits


def torch_twin(model):
    """torch.nn LeNet-5 (modern) holding a copy of our weights."""
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 120, 5), nn.ReLU(), nn.Flatten(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )  # fmt: skip
    params = model.params
    for name, m in zip(
        ["C1", "C3", "C5", "F6", "output"], [net[0], net[3], net[6], net[9], net[11]]
    ):
        m.weight.data = torch.tensor(params[f"{name}.W"].copy())
        m.bias.data = torch.tensor(params[f"{name}.b"].copy())
    return net


def step_timers(batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    model = LeNet5("modern", seed=seed)
    net = torch_twin(model)
    opt = SGD(model.params, lr=0.01, momentum=0.9)
    topt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.tensor(x), torch.tensor(y)
    # same weights, same batch: the first losses agree (to float32 rounding)
    ours, ref = softmax_cross_entropy(model.forward(x), y)[0], F.cross_entropy(net(xt), yt).item()
    assert abs(ours - ref) < 1e-4, (ours, ref)

    def numpy_step():
        loss, dlogits = softmax_cross_entropy(model.forward(x), y)
        model.backward(dlogits, need_dx=False)
        opt.step(model.grads)

    def torch_step():
        topt.zero_grad(set_to_none=True)
        F.cross_entropy(net(xt), yt).backward()
        topt.step()

    return numpy_step, torch_step


def interleaved(fa, fb, reps, warmup=5, clock=time.perf_counter):
    """Median time of fa and of fb, run alternately. clock=time.process_time counts the CPU
    time of this process only, which a busy machine inflates far less than wall time."""
    for _ in range(warmup):
        fa(), fb()
    ta, tb = [], []
    for _ in range(reps):
        t = clock()
        fa()
        ta.append(clock() - t)
        t = clock()
        fb()
        tb.append(clock() - t)
    return float(np.median(ta)), float(np.median(tb))


def once(f, reps=3):
    """Best CPU time of this process over reps calls."""
    best = float("inf")
    for _ in range(reps):
        t = time.process_time()
        f()
        best = min(best, time.process_time() - t)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per training step")
    p.add_argument("--repeats", type=int, default=50, help="timed steps per implementation")
    p.add_argument("--seed", type=int, default=0, help="weights and data")
    args = p.parse_args(argv)
    B = args.batch_size
    default_threads = torch.get_num_threads()
    print(
        f"one training step, batch {B} x 1x32x32, float32, median of {args.repeats} (interleaved)"
    )
    print(
        f"{'threads':>8} | {'numpy ms':>9} | {'torch ms':>9} | {'ratio':>6} | {'numpy img/s':>11} | {'torch img/s':>11}"
    )
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        with threadpool_limits(threads, user_api="blas"):
            a, b = interleaved(*step_timers(B, args.seed), reps=args.repeats)
        print(
            f"{threads:>8} | {a * 1e3:9.2f} | {b * 1e3:9.2f} | {a / b:5.2f}x | {B / a:11,.0f} | {B / b:11,.0f}"
        )
    torch.set_num_threads(1)
    with threadpool_limits(1, user_api="blas"):
        a, b = interleaved(*step_timers(B, args.seed), reps=args.repeats, clock=time.process_time)
    print(
        f"CPU time of this process, 1 thread: numpy {a * 1e3:.2f} ms, torch {b * 1e3:.2f} ms, ratio {a / b:.2f}x"
    )
    torch.set_num_threads(default_threads)

    print("\nwhat vectorisation buys (1 BLAS thread, best CPU time of 3):")
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((B, 1, 32, 32)).astype(np.float32)
    model = LeNet5("modern", seed=args.seed)
    c1 = model.layers[0][1]
    W, b = c1.params["W"], c1.params["b"]
    with threadpool_limits(1, user_api="blas"):
        t_naive = once(lambda: conv2d_naive(x, W, b), reps=1)
        t_vec = once(lambda: c1.forward(x))
        np.testing.assert_allclose(conv2d_naive(x[:2], W, b), c1.forward(x[:2]), atol=1e-4)
        h = rng.standard_normal((B, 6, 28, 28)).astype(np.float32)
        t_pool_naive = once(lambda: maxpool2d_naive(h, 2, 2))
        t_pool_vec = once(lambda: MaxPool2D(2).forward(h))
    print(
        f"C1 forward  6@5x5 on {B}x1x32x32: loops {t_naive * 1e3:9.1f} ms | im2col + matmul {t_vec * 1e3:6.2f} ms | {t_naive / t_vec:,.0f}x"
    )
    print(
        f"S2 max-pool 2x2 on {B}x6x28x28:   loops {t_pool_naive * 1e3:9.1f} ms | im2col + max    {t_pool_vec * 1e3:6.2f} ms | {t_pool_naive / t_pool_vec:,.1f}x"
    )
    print(
        "(maxpool2d_naive loops over output positions only; conv2d_naive over every output value)"
    )


if __name__ == "__main__":
    main()
