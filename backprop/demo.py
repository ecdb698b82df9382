"""Backpropagation by hand on XOR: a 2-2-1 network, one step printed in full.

    python demo.py

Prints one forward pass and one backward pass over the four XOR points with
every intermediate value and gradient, each line naming the chain-rule step
it applies; checks one gradient by finite differences; then trains with plain
gradient descent until all four points are classified correctly.

XOR is the function a single-layer perceptron cannot represent (Minsky &
Papert 1969); a hidden layer of two units can, and backpropagation (Rumelhart,
Hinton & Williams 1986) finds the weights. Tests (tests/test_demo.py) run the
walkthrough and assert its printed gradients equal the layers' and that
training solves XOR.
"""

import argparse

import numpy as np
from model import BCEWithLogits, Linear, Sequential, Tanh, sigmoid
from optim import SGD

X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # (4, 2)
Y = np.array([[0.0], [1.0], [1.0], [0.0]])  # (4, 1): x1 XOR x2


def show(name, value, note=""):
    text = np.array2string(np.asarray(value), precision=4, suppress_small=True, separator=" ")
    pad = "\n" + " " * 26
    print(f"  {name:<22}= {text.replace(chr(10), pad)}" + (f"    <- {note}" if note else ""))


def build(seed):
    rng = np.random.default_rng(seed)
    return Linear(2, 2, "xavier", rng), Tanh(), Linear(2, 1, "xavier", rng), BCEWithLogits()


def walkthrough(seed=0):
    """One forward and one backward pass, printed; returns the hand-derived gradients."""
    fc1, act, fc2, loss_fn = build(seed)
    W1, b1, W2, b2 = fc1.params["W"], fc1.params["b"], fc2.params["W"], fc2.params["b"]
    print("FORWARD (all four points at once, N = 4)")
    show("x", X, "inputs, (4, 2)")
    show("W1", W1, "Xavier init, (out 2, in 2)")
    show("b1", b1)
    z1 = fc1.forward(X)
    show("z1 = x W1^T + b1", z1, "hidden pre-activation, (4, 2)")
    h = act.forward(z1)
    show("h = tanh(z1)", h, "hidden activation")
    show("W2", W2, "(out 1, in 2)")
    show("b2", b2)
    z2 = fc2.forward(h)
    show("z2 = h W2^T + b2", z2, "output logit, (4, 1)")
    p = sigmoid(z2)
    show("p = sigmoid(z2)", p, "P(y = 1)")
    show("y", Y, "targets")
    L = loss_fn.forward(z2, Y)
    show("L = mean BCE(z2, y)", L, "-mean[y log p + (1-y) log(1-p)]")

    print("\nBACKWARD (chain rule, from the loss back to the inputs)")
    dz2 = loss_fn.backward()
    show("dL/dz2", dz2, "BCE after sigmoid: (p - y) / N")
    dh = fc2.backward(dz2)
    show("dL/dW2", fc2.grads["W"], "z2 = h W2^T + b2  =>  dL/dW2 = dL/dz2^T h")
    show("dL/db2", fc2.grads["b"], "dL/db2 = sum over points of dL/dz2")
    show("dL/dh", dh, "dL/dh = dL/dz2 W2")
    dz1 = act.backward(dh)
    show("dL/dz1", dz1, "h = tanh(z1)  =>  dL/dz1 = dL/dh * (1 - h^2)")
    dx = fc1.backward(dz1)
    show("dL/dW1", fc1.grads["W"], "z1 = x W1^T + b1  =>  dL/dW1 = dL/dz1^T x")
    show("dL/db1", fc1.grads["b"], "dL/db1 = sum over points of dL/dz1")
    show("dL/dx", dx, "dL/dx = dL/dz1 W1 (unused: x is data)")

    # the same derivative, measured: nudge one weight both ways
    eps, old = 1e-6, W1[0, 0]
    W1[0, 0] = old + eps
    lp = loss_fn.forward(fc2.forward(act.forward(fc1.forward(X))), Y)
    W1[0, 0] = old - eps
    lm = loss_fn.forward(fc2.forward(act.forward(fc1.forward(X))), Y)
    W1[0, 0] = old
    print(f"\n  check: (L(W1[0,0]+e) - L(W1[0,0]-e)) / 2e = {(lp - lm) / (2 * eps):.8f}")
    print(f"         backprop's dL/dW1[0,0]             = {fc1.grads['W'][0, 0]:.8f}")
    # by hand, without the layers: the formulas printed above
    dW1 = ((((p - Y) / len(X)) @ W2) * (1 - h**2)).T @ X
    return {
        "dW1": dW1,
        "layers_dW1": fc1.grads["W"],
        "dW2": ((p - Y) / len(X)).T @ h,
        "layers_dW2": fc2.grads["W"],
    }


def solve(seed=0, lr=0.5, max_steps=5000, every=500):
    """Full-batch gradient descent until all four points are right; -> steps or None."""
    fc1, act, fc2, loss_fn = build(seed)
    net = Sequential([fc1, act, fc2])
    opt = SGD(net.params, lr=lr)
    print(f"\nTRAINING: gradient descent, lr {lr}, full batch")
    for step in range(1, max_steps + 1):
        z2 = net.forward(X)
        L = loss_fn.forward(z2, Y)
        net.backward(loss_fn.backward())
        opt.step(net.grads)
        solved = np.array_equal(z2 > 0, Y > 0.5) and L < 0.1
        if step % every == 0 or solved:
            print(f"  step {step:5d} | loss {L:.4f} | p = {np.round(sigmoid(z2[:, 0]), 3)}")
        if solved:
            print(f"solved at step {step}: every point on the right side, loss < 0.1")
            return step
    print(f"not solved in {max_steps} steps: a local minimum; try another --seed")
    return None


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=5000, help="most training steps")
    args = p.parse_args(argv)
    np.set_printoptions(linewidth=60)
    walkthrough(args.seed)
    solve(args.seed, args.lr, args.steps)


if __name__ == "__main__":
    main()
