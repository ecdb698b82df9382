"""Vanilla RNN, LSTM and GRU in NumPy, with backpropagation through time written by hand.

Read top to bottom: sigmoid -> Embedding -> Linear -> Dropout -> softmax cross-entropy ->
Recurrent (the shared unrolled loop) -> RNN, LSTM, GRU (one cell each: forward step and backward
step) -> ModelConfig, CharRNN (embedding, a stack of cells, a linear head) -> sample
(temperature, top-k, prompt).

Papers: Elman, "Finding structure in time" (1990); Werbos, "Backpropagation through time" (1990);
Hochreiter & Schmidhuber, "Long short-term memory" (1997); Gers, Schmidhuber & Cummins,
"Learning to forget" (2000); Cho et al., GRU, https://arxiv.org/abs/1406.1078 (sec. 2.3);
Graves, "Generating sequences with recurrent neural networks", https://arxiv.org/abs/1308.0850.

Layout: time-major, x is (T, B, D) like torch.nn.RNN/LSTM/GRU with batch_first=False, and the
weights use torch's names, shapes and gate order (LSTM: i, f, g, o; GRU: r, z, n, with r applied
to (W_hn h + b_hn)), so they copy 1:1. Every layer keeps `params` and `grads` dicts with the same
keys; recurrent layers take and return their state: forward(x, state) -> (y, state) and
backward(dy, dstate) -> (dx, dstate0). tests/ hold every backward against centred finite
differences (float64, random upstream gradients) and against torch.nn.RNN/LSTM/GRU autograd.
"""

from dataclasses import dataclass

import numpy as np


def sigmoid(a):
    # sigma(a) = 1 / (1 + e^-a) = (1 + tanh(a / 2)) / 2: the tanh form never overflows
    return 0.5 * (np.tanh(0.5 * a) + 1.0)


class Embedding:
    """x_t = E[id_t]: a table lookup, the same as one-hot(id_t) @ E without the zeros."""

    def __init__(self, vocab_size, n_embd, rng, dtype=np.float32):
        self.params = {"W": rng.standard_normal((vocab_size, n_embd)).astype(dtype)}
        self.grads = {"W": np.zeros_like(self.params["W"])}

    def forward(self, ids):  # ids (T, B) int -> (T, B, E)
        self.ids = ids
        return self.params["W"][ids]

    def backward(self, dout):  # dout (T, B, E); integer inputs have no gradient
        # dE[v] = sum of dout over every position whose id is v
        self.grads["W"].fill(0)
        np.add.at(self.grads["W"], self.ids.ravel(), dout.reshape(-1, dout.shape[-1]))
        return None


class Linear:
    """y = x W^T + b over the last axis (torch.nn.Linear's layout and initialisation)."""

    def __init__(self, n_in, n_out, rng, dtype=np.float32):
        k = 1.0 / np.sqrt(n_in)
        self.params = {
            "W": rng.uniform(-k, k, (n_out, n_in)).astype(dtype),
            "b": rng.uniform(-k, k, n_out).astype(dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x):  # (..., n_in) -> (..., n_out)
        self.x = x
        return x @ self.params["W"].T + self.params["b"]

    def backward(self, dout):  # dout (..., n_out) -> dx (..., n_in)
        # dW = dout^T x, db = sum dout, dx = dout W, summed over every leading position
        W = self.params["W"]
        x2, d2 = self.x.reshape(-1, W.shape[1]), dout.reshape(-1, W.shape[0])  # (N, in), (N, out)
        self.grads["W"][...] = d2.T @ x2  # (out, N) @ (N, in)
        self.grads["b"][...] = d2.sum(0)
        return dout @ W


class Dropout:
    """Inverted dropout (Srivastava et al. 2014; never on the recurrent connections, as Zaremba et
    al., https://arxiv.org/abs/1409.2329): in training each unit is zeroed with probability p and the
    survivors are scaled by 1 / (1 - p), so the expected output equals the input and evaluation,
    which keeps every unit, needs no rescaling.  forward: y = x * m;  backward: dx = dy * m, with
    the same mask m (0 or 1 / (1 - p)).
    """

    def __init__(self, p=0.0):
        self.p, self.mask = p, None

    def forward(self, x, rng=None):  # rng None (evaluation, sampling) or p = 0: the identity
        if rng is None or self.p == 0:
            self.mask = None
            return x
        keep = rng.random(x.shape) >= self.p
        self.mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.p)
        return x * self.mask

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask


def softmax_cross_entropy(logits, targets):
    """Mean of -log softmax(logits)[target] over every position; returns (loss, dlogits).

    logits (..., V), targets (...) int. The loss is in nats per prediction (per character).
    dL/dlogits = (softmax(logits) - onehot(target)) / N.
    """
    V = logits.shape[-1]
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))  # log-softmax, (..., V)
    logp2, t = logp.reshape(-1, V), targets.ravel()  # (N, V), (N,)
    N = t.size
    loss = -logp2[np.arange(N), t].mean()
    dlogits = np.exp(logp2)
    dlogits[np.arange(N), t] -= 1.0
    return float(loss), (dlogits / N).reshape(logits.shape)


class Recurrent:
    """The unrolled loop shared by the three cells; a subclass writes one step, forward and back.

    Every cell computes gate pre-activations a_t = (W_ih x_t + b_ih) + (W_hh h_{t-1} + b_hh).
    The input half does not depend on the recurrence, so it is one big matmul over all T steps;
    likewise in the backward pass dW_ih, dW_hh and dx are one matmul each over all steps once the
    per-step gradients dgx_t = dL/d(W_ih x_t + b_ih) and dgh_t = dL/d(W_hh h_{t-1} + b_hh) are known.

    weight_drop p (DropConnect on W_hh, the weight-dropped LSTM of Merity et al.,
    https://arxiv.org/abs/1708.02182): in training each chunk uses W_hh * M, one inverted-dropout
    mask M of W_hh's shape for every step and stream, and dL/dW_hh = dL/d(W_hh * M) * M. It
    regularises the recurrence itself while the carried state is never zeroed.
    """

    n_gates = 1  # rows of W_ih per hidden unit (LSTM 4, GRU 3)
    n_states = 1  # (h,) or, for the LSTM, (h, c)

    def __init__(self, n_in, n_hidden, rng, dtype=np.float32, weight_drop=0.0):
        k = 1.0 / np.sqrt(n_hidden)  # torch's U(-1/sqrt(H), 1/sqrt(H)) for every weight
        G = self.n_gates * n_hidden
        u = lambda *shape: rng.uniform(-k, k, shape).astype(dtype)
        self.params = {"W_ih": u(G, n_in), "W_hh": u(G, n_hidden), "b_ih": u(G), "b_hh": u(G)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.n_hidden, self.drop_hh = n_hidden, Dropout(weight_drop)

    def init_state(self, batch):
        dtype = self.params["W_hh"].dtype
        return tuple(np.zeros((batch, self.n_hidden), dtype) for _ in range(self.n_states))

    def forward(self, x, state=None, rng=None):
        """x (T, B, D), state: tuple of (B, H) -> y (T, B, H) = h_1..h_T, final state.
        rng (training) draws the weight-drop mask; None (evaluation) uses W_hh itself."""
        T, B, D = x.shape
        p = self.params
        state = self.init_state(B) if state is None else state
        self.x, self.W_hh = x, self.drop_hh.forward(p["W_hh"], rng)  # what the steps use
        gx = (x.reshape(T * B, D) @ p["W_ih"].T + p["b_ih"]).reshape(T, B, -1)  # (T, B, G)
        self.h = np.empty((T + 1, B, self.n_hidden), x.dtype)  # h[0] = h_0, h[t] = h_t
        self.h[0] = state[0]
        return self._forward_steps(gx, state)

    def backward(self, dy, dstate=None):
        """dy (T, B, H) = dL/dh_t from above, dstate = dL/d(final state) -> dx, dL/d(state_0)."""
        T, B, D = self.x.shape
        p, g = self.params, self.grads
        dstate = tuple(np.zeros_like(s) for s in self.init_state(B)) if dstate is None else dstate
        dgx, dgh, dstate0 = self._backward_steps(dy, dstate)  # (T, B, G) each
        dgx2, dgh2 = dgx.reshape(T * B, -1), dgh.reshape(T * B, -1)  # (T*B, G)
        g["W_ih"][...] = dgx2.T @ self.x.reshape(T * B, D)  # (G, T*B) @ (T*B, D)
        dW_hh = dgh2.T @ self.h[:-1].reshape(T * B, -1)  # (G, T*B) @ (T*B, H): h_{t-1}
        g["W_hh"][...] = self.drop_hh.backward(dW_hh)  # times the mask, if W_hh was dropped
        g["b_ih"][...] = dgx2.sum(0)
        g["b_hh"][...] = dgh2.sum(0)
        dx = (dgx2 @ p["W_ih"]).reshape(T, B, D)  # (T*B, G) @ (G, D)
        return dx, dstate0


class RNN(Recurrent):
    """Elman cell: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)  (torch.nn.RNN, tanh)."""

    def _forward_steps(self, gx, state):
        W_hh, b_hh, h = self.W_hh, self.params["b_hh"], self.h
        for t in range(gx.shape[0]):
            h[t + 1] = np.tanh(gx[t] + h[t] @ W_hh.T + b_hh)  # (B, H) @ (H, H)
        return h[1:], (h[-1],)

    def _backward_steps(self, dy, dstate):
        # da_t = (dy_t + dh_t) * (1 - h_t^2);  dh_{t-1} = da_t W_hh
        W_hh, h = self.W_hh, self.h
        da = np.empty_like(dy)
        dh = dstate[0]
        for t in reversed(range(dy.shape[0])):
            da[t] = (dy[t] + dh) * (1.0 - h[t + 1] ** 2)
            dh = da[t] @ W_hh  # (B, H) @ (H, H)
        return da, da, (dh,)


class LSTM(Recurrent):
    """LSTM cell (torch.nn.LSTM, gate order i, f, g, o):

    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)
    forget_bias (Gers et al. 2000; Jozefowicz et al. 2015) starts b_f at a positive value so the
    cell remembers by default; None keeps torch's initialisation.
    """

    n_gates, n_states = 4, 2

    def __init__(self, n_in, n_hidden, rng, dtype=np.float32, weight_drop=0.0, forget_bias=None):
        super().__init__(n_in, n_hidden, rng, dtype, weight_drop)
        if forget_bias is not None:
            H = n_hidden
            self.params["b_ih"][H : 2 * H] = forget_bias
            self.params["b_hh"][H : 2 * H] = 0.0

    def _forward_steps(self, gx, state):
        W_hh, b_hh, h, H = self.W_hh, self.params["b_hh"], self.h, self.n_hidden
        T, B, _ = gx.shape
        self.c = c = np.empty((T + 1, B, H), gx.dtype)
        self.gates = gates = np.empty_like(gx)  # (T, B, 4H): i, f, g, o after their squashing
        self.tanh_c = np.empty((T, B, H), gx.dtype)
        c[0] = state[1]
        for t in range(T):
            a = gates[t]
            np.add(gx[t], h[t] @ W_hh.T + b_hh, out=a)  # (B, H) @ (H, 4H)
            a[:, : 2 * H] = sigmoid(a[:, : 2 * H])
            a[:, 2 * H : 3 * H] = np.tanh(a[:, 2 * H : 3 * H])
            a[:, 3 * H :] = sigmoid(a[:, 3 * H :])
            i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
            c[t + 1] = f * c[t] + i * g
            self.tanh_c[t] = np.tanh(c[t + 1])
            h[t + 1] = o * self.tanh_c[t]
        return h[1:], (h[-1], c[-1])

    def _backward_steps(self, dy, dstate):
        # dh = dy_t + dh_next;  dc = dc_next + dh * o * (1 - tanh(c_t)^2)
        # da_i = dc g i(1-i);  da_f = dc c_{t-1} f(1-f);  da_g = dc i (1-g^2);  da_o = dh tanh(c_t) o(1-o)
        # dc_{t-1} = dc * f;   dh_{t-1} = da W_hh
        W_hh, H, c = self.W_hh, self.n_hidden, self.c
        da = np.empty_like(self.gates)
        dh, dc = dstate
        for t in reversed(range(dy.shape[0])):
            a, tc = self.gates[t], self.tanh_c[t]
            i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
            dh = dy[t] + dh
            dc = dc + dh * o * (1.0 - tc * tc)
            da[t, :, :H] = dc * g * i * (1.0 - i)
            da[t, :, H : 2 * H] = dc * c[t] * f * (1.0 - f)
            da[t, :, 2 * H : 3 * H] = dc * i * (1.0 - g * g)
            da[t, :, 3 * H :] = dh * tc * o * (1.0 - o)
            dc = dc * f
            dh = da[t] @ W_hh  # (B, 4H) @ (4H, H)
        return da, da, (dh, dc)


class GRU(Recurrent):
    """GRU cell in torch's convention (torch.nn.GRU, gate order r, z, n):

    r = sigmoid(a_r);  z = sigmoid(a_z);  n = tanh(W_in x + b_in + r * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}
    (Cho et al. put r inside the matmul, W (r * h); torch puts it outside, as here.)
    """

    n_gates = 3

    def _forward_steps(self, gx, state):
        W_hh, b_hh, h, H = self.W_hh, self.params["b_hh"], self.h, self.n_hidden
        T, B, _ = gx.shape
        self.rzn = np.empty_like(gx)  # (T, B, 3H): r, z, n
        self.ghn = np.empty((T, B, H), gx.dtype)  # W_hn h_{t-1} + b_hn
        for t in range(T):
            gh = h[t] @ W_hh.T + b_hh  # (B, H) @ (H, 3H)
            rz = sigmoid(gx[t, :, : 2 * H] + gh[:, : 2 * H])
            r, z = rz[:, :H], rz[:, H:]
            n = np.tanh(gx[t, :, 2 * H :] + r * gh[:, 2 * H :])
            self.rzn[t, :, : 2 * H], self.rzn[t, :, 2 * H :] = rz, n
            self.ghn[t] = gh[:, 2 * H :]
            h[t + 1] = n + z * (h[t] - n)
        return h[1:], (h[-1],)

    def _backward_steps(self, dy, dstate):
        # dn = dh (1 - z);  dz = dh (h_{t-1} - n);  da_n = dn (1 - n^2)
        # da_r = da_n ghn r(1-r);  da_z = dz z(1-z)
        # input side gets (da_r, da_z, da_n), hidden side (da_r, da_z, da_n * r)
        # dh_{t-1} = dh z + [da_r, da_z, da_n r] W_hh
        W_hh, H, h = self.W_hh, self.n_hidden, self.h
        dgx, dgh = np.empty_like(self.rzn), np.empty_like(self.rzn)
        dh = dstate[0]
        for t in reversed(range(dy.shape[0])):
            rzn = self.rzn[t]
            r, z, n = rzn[:, :H], rzn[:, H : 2 * H], rzn[:, 2 * H :]
            dh = dy[t] + dh
            dan = dh * (1.0 - z) * (1.0 - n * n)
            dgx[t, :, :H] = dan * self.ghn[t] * r * (1.0 - r)
            dgx[t, :, H : 2 * H] = dh * (h[t] - n) * z * (1.0 - z)
            dgx[t, :, 2 * H :] = dan
            dgh[t, :, : 2 * H] = dgx[t, :, : 2 * H]
            dgh[t, :, 2 * H :] = dan * r
            dh = dh * z + dgh[t] @ W_hh  # (B, 3H) @ (3H, H)
        return dgx, dgh, (dh,)


CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


@dataclass
class ModelConfig:
    """What inference.py needs to rebuild CharRNN (stored in the checkpoint): CharRNN(**fields)."""

    vocab_size: int = 64
    cell: str = "lstm"
    n_embd: int = 32
    n_hidden: int = 128
    n_layer: int = 1
    forget_bias: float = 1.0
    seed: int = 0  # draws the initial weights
    dropout: float = 0.0  # training only: evaluation and sampling keep every unit
    weight_drop: float = 0.0  # DropConnect on W_hh, training only


class CharRNN:
    """Character language model: Embedding -> n_layer recurrent cells -> Linear head -> logits.

    With dropout p > 0, forward(ids, states, rng) drops units of every layer's output (the
    inputs of the next layer and of the head), never the carried state; with weight_drop > 0 it
    drops weights of every W_hh (Recurrent).

    Defaults are the small CPU configuration trained by `python train.py`. `params`/`grads` are
    properties: flat dicts ("layer0.W_ih", ...) of the very arrays of the layers, so an optimiser
    that updates params in place updates the model (as in backprop/ and lenet/).
    """

    def __init__(
        self,
        vocab_size,
        cell="lstm",
        n_embd=32,
        n_hidden=128,
        n_layer=1,
        forget_bias=1.0,
        seed=0,
        dropout=0.0,
        weight_drop=0.0,
        dtype=np.float32,
    ):
        if cell not in CELLS:
            raise ValueError(f"unknown cell type {cell!r}: choose one of {', '.join(CELLS)}")
        rng = np.random.default_rng(seed)
        self.embed = Embedding(vocab_size, n_embd, rng, dtype)
        self.layers = []
        for l in range(n_layer):
            n_in = n_embd if l == 0 else n_hidden
            extra = {"forget_bias": forget_bias} if cell == "lstm" else {}
            self.layers.append(CELLS[cell](n_in, n_hidden, rng, dtype, weight_drop, **extra))
        self.head = Linear(n_hidden, vocab_size, rng, dtype)
        # one dropout after each layer (each keeps its own mask)
        self.dropouts = [Dropout(dropout) for _ in range(n_layer)]
        self.modules = [("embed", self.embed), ("head", self.head)]
        self.modules += [(f"layer{l}", layer) for l, layer in enumerate(self.layers)]

    @property
    def params(self):
        return {f"{n}.{k}": v for n, m in self.modules for k, v in m.params.items()}

    @property
    def grads(self):
        """dL/dparams of the last backward; each backward overwrites them (never accumulates)."""
        return {f"{n}.{k}": v for n, m in self.modules for k, v in m.grads.items()}

    def n_params(self):
        return sum(v.size for v in self.params.values())

    def init_state(self, batch):
        return [layer.init_state(batch) for layer in self.layers]

    def forward(self, ids, states=None, rng=None):
        """ids (T, B) int, states: one tuple per layer -> logits (T, B, V), final states.
        rng (a Generator) draws the dropout masks; None (evaluation, sampling) drops nothing."""
        states = self.init_state(ids.shape[1]) if states is None else states
        x = self.embed.forward(ids)  # (T, B, E)
        new_states = []
        for layer, drop, state in zip(self.layers, self.dropouts, states):
            x, state = layer.forward(x, state, rng)  # (T, B, H)
            x = drop.forward(x, rng)
            new_states.append(state)
        return self.head.forward(x), new_states

    def backward(self, dlogits, dstates=None):
        """Fills self.grads; returns dL/d(initial state) per layer. dstates=None is truncation:
        no gradient arrives from the future chunk."""
        dstates = [None] * len(self.layers) if dstates is None else dstates
        dx = self.head.backward(dlogits)  # (T, B, H)
        dstates0 = []
        for layer, drop, dstate in zip(
            reversed(self.layers), reversed(self.dropouts), reversed(dstates)
        ):
            dx, dstate0 = layer.backward(drop.backward(dx), dstate)
            dstates0.insert(0, dstate0)
        self.embed.backward(dx)
        return dstates0


def sample(model, prime_ids, n_samples, max_len, rng, temperature=1.0, top_k=0, stop_id=None):
    """Draw n_samples continuations of prime_ids in parallel; each stops at stop_id or max_len.

    p(next) = softmax(logits / temperature) restricted to the top_k largest logits (0: all);
    temperature 0 is greedy decoding: always the most likely id (its limit as T -> 0).
    Returns a list of lists of ids (the continuation only).
    """
    x = np.repeat(np.asarray(prime_ids, np.int64)[:, None], n_samples, axis=1)  # (T, n)
    logits, states = model.forward(x)
    out, done = [[] for _ in range(n_samples)], np.zeros(n_samples, bool)
    for _ in range(max_len):
        if temperature == 0:
            nxt = logits[-1].argmax(1)  # (n,)
        else:
            z = logits[-1].astype(np.float64) / temperature  # (n, V)
            if 0 < top_k < z.shape[1]:
                kth = np.sort(z, axis=1)[:, -top_k][:, None]
                z = np.where(z < kth, -np.inf, z)
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            nxt = np.array([rng.choice(p.shape[1], p=row) for row in p])
        for k in np.flatnonzero(~done):
            if nxt[k] == stop_id:
                done[k] = True
            else:
                out[k].append(int(nxt[k]))
        if done.all():
            break
        logits, states = model.forward(nxt[None, :], states)
    return out
