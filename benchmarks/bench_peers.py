"""Benchmark: `jaxlearn.fit` against other ways of training the same model, in one process.

Every workload is trained by each available peer from the *same* initial weights (the jaxlearn
init, copied into the PyTorch and flax modules), with the same architecture, optimizer (Adam),
learning rate, batch size and number of steps, on data reshuffled every epoch:

- ``jaxlearn``: ``jl.fit`` (no callbacks: all epochs in one compiled program).
- ``jax one-scan floor``: the whole run in one ``lax.scan`` (``bench_fit.floor_program``).
- ``jax.jit per step``: our layers' ``apply`` + optax in one jitted step, called from a Python
  loop over host (numpy) batches.
- ``flax nnx per step``: the model as an ``nnx.Module``, ``optax.adam`` in an ``nnx.Optimizer``,
  an ``@nnx.jit`` train step called from the same Python loop.
- ``pytorch eager``: ``nn.Linear``/``nn.Conv1d`` modules, ``torch.optim.Adam``, eager mode; one
  row per ``--torch-threads`` value (default 1 and all CPUs: on 2 cores the tiny models are often
  faster on one thread). The targets use the fastest row.
- ``sklearn MLPClassifier`` (MLP workloads only): adam, ``alpha=0``, same hidden widths, as many
  epochs as the others; its own init, no residual connection, and a partial last batch per epoch
  when ``batch_size`` does not divide ``n``.

Optional peers (torch, flax, scikit-learn) are skipped with a note when not installed. Train times
are medians over ``--repeats`` runs (peers interleaved within each repeat); compile / warm-up time
is measured apart and not in the train time. ``ratio`` is peer time / jaxlearn time (> 1: jaxlearn
is faster). GFLOP/s is XLA's FLOP count of one training step (forward, backward, Adam) times the
steps, over the train time, set against the measured fp32 matmul ceiling of the machine.

Run:  python benchmarks/bench_peers.py [--repeats 3] [--workloads mlp cnn ...] [--peers ...]
      python benchmarks/bench_peers.py --quick      (smoke run: few steps, one repeat)
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from bench_fit import BATCH, LR, STEPS, floor_program, models

import jaxlearn as jl

CE = jl.losses.SOFTMAX_CE_INT
CE_FN = jl.losses.softmax_cross_entropy_with_integer_labels
REFERENCE_CNN_CONVS = ((5, 2, 1), (3, 2, 1), (3, 2, 1))  # (kernel, stride, padding), as bench_fit
PEERS = ("jaxlearn", "jax one-scan floor", "jax.jit per step", "flax nnx per step",
         "pytorch eager", "sklearn MLPClassifier")
WORKLOADS = ("logistic", "mlp", "cnn", "digits_mlp", "big_mlp")
# Targets of issue 6 (2-core CPU): peer time / jaxlearn time at least this much.
TARGETS = {("mlp", "pytorch eager"): 4.0, ("cnn", "pytorch eager"): 3.0,
           ("mlp", "flax nnx per step"): 10.0, ("cnn", "flax nnx per step"): 10.0}


class Workload(NamedTuple):
    """A model, its data and its recipe. ``hidden`` are the MLP's hidden widths (``()`` for
    logistic regression, ``None`` for the CNN, whose geometry is ``convs``)."""

    name: str
    description: str
    model: jl.nn.Layer
    data: jl.data.Dataset
    steps: int
    batch_size: int
    learning_rate: float
    hidden: tuple[int, ...] | None
    residual: bool
    convs: tuple[tuple[int, int, int], ...] | None = None


class Run(NamedTuple):
    train_time: float
    compile_time: float | None
    accuracy: float


# ------------------------------------------------------------------------------ workloads

def _synthetic(key, n_train: int, n_test: int, dim: int) -> jl.data.Dataset:
    """Gaussian inputs labelled by a random one-hidden-layer tanh teacher (10 classes)."""
    k_x, k_1, k_2 = jax.random.split(key, 3)
    x = jax.random.normal(k_x, (n_train + n_test, dim), jnp.float32)
    w1 = jax.random.normal(k_1, (dim, 64)) / math.sqrt(dim)
    w2 = jax.random.normal(k_2, (64, 10))
    y = jnp.argmax(jnp.tanh(x @ w1) @ w2, axis=1).astype(jnp.int32)
    x, y = np.array(x), np.array(y)  # writable copies: torch.from_numpy shares memory
    return jl.data.Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def make_workloads(names, quick: bool) -> list[Workload]:
    reference = models()
    out = []
    for name in names:
        if name in ("logistic", "mlp", "cnn"):
            steps = 400 if quick else STEPS
            hidden = {"logistic": (), "mlp": (100, 100), "cnn": None}[name]
            out.append(Workload(
                name, f"MNIST-1D {name} (4000 train), reference recipe",
                reference[name], jl.data.load_mnist1d(), steps, BATCH, LR, hidden,
                name == "mlp", REFERENCE_CNN_CONVS if name == "cnn" else None))
        elif name == "digits_mlp":
            x, y = jl.data.load_digits()
            data = jl.data.train_test_split(jax.random.key(0), x, y, test_size=447)
            out.append(Workload(
                name, "8x8 digits (1350 train), MLP 64-100-100-10 residual",
                jl.nn.mlp((100, 100), 10, residual=True), data, 130 if quick else 1300,
                BATCH, LR, (100, 100), True))
        elif name == "big_mlp":
            data = _synthetic(jax.random.key(0), 10240, 2048, 256)
            out.append(Workload(
                name, "synthetic (10240 x 256), MLP 4 x 1024, batch 256, lr 1e-3",
                jl.nn.mlp((1024,) * 4, 10), data, 40 if quick else 400, 256, 1e-3,
                (1024,) * 4, False))
    return out


def _layers(params) -> list[dict]:
    """The ``{"w", "b"}`` dicts of a serial model, in order (parameter-free layers hold ``()``)."""
    return jax.tree.leaves(params, is_leaf=lambda t: isinstance(t, dict))


def _residual_flags(w: Workload) -> list[bool]:
    """Which dense layers carry a skip connection, as in ``jl.nn.mlp(..., residual=True)``."""
    hidden = w.hidden or ()
    flags = [w.residual and i > 0 and hidden[i - 1] == h for i, h in enumerate(hidden)]
    return [*flags, False]


def _epoch_batches(n: int, batch_size: int, steps: int, seed: int):
    """Yields index arrays ``[batch_size]``: a fresh permutation each epoch, drop-last."""
    rng = np.random.default_rng(seed)
    per_epoch = n // batch_size
    done = 0
    while done < steps:
        perm = rng.permutation(n)
        for s in range(min(per_epoch, steps - done)):
            yield perm[s * batch_size:(s + 1) * batch_size]
        done += per_epoch


def _accuracy(logits, y) -> float:
    return float(np.mean(np.argmax(np.asarray(logits), axis=1) == np.asarray(y)))


# ---------------------------------------------------------------------------- jax peers

def _make_step(apply: Callable, optimizer):
    def step(params, opt_state, xb, yb):
        value, grads = jax.value_and_grad(lambda p: jnp.mean(CE_FN(apply(p, xb), yb)))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step


def step_flops(w: Workload, params0) -> float:
    """XLA's FLOP count of one training step (forward, backward, Adam) on one batch."""
    optimizer = optax.adam(w.learning_rate)
    xb, yb = w.data.x_train[:w.batch_size], w.data.y_train[:w.batch_size]
    lowered = jax.jit(_make_step(w.model.apply, optimizer)).lower(
        params0, optimizer.init(params0), xb, yb)
    cost = lowered.compile().cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per device program
        cost = cost[0]
    return float(cost["flops"])


def run_jaxlearn(w: Workload, params0, seed: int) -> Run:
    result = jl.fit(w.model.apply, params0, w.data.x_train, w.data.y_train, loss=CE,
                    optimizer=optax.adam(w.learning_rate), key=jax.random.key(seed),
                    batch_size=w.batch_size, steps=w.steps)
    jax.block_until_ready(result.params)
    acc = jl.evaluate(w.model.apply, result.params, w.data.x_test, w.data.y_test)["accuracy"]
    return Run(result.train_time, result.compile_time, float(acc))


def run_floor(w: Workload, params0, seed: int) -> Run:
    x, y = jnp.asarray(w.data.x_train), jnp.asarray(w.data.y_train)
    key = jax.random.key(seed)
    program = floor_program(w.model.apply, CE_FN, optax.adam(w.learning_rate), x.shape[0],
                            w.steps, w.batch_size)
    t0 = time.perf_counter()
    compiled = program.lower(params0, x, y, key).compile()
    compile_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    params, _ = compiled(params0, x, y, key)
    jax.block_until_ready(params)
    train_time = time.perf_counter() - t0
    acc = jl.evaluate(w.model.apply, params, w.data.x_test, w.data.y_test)["accuracy"]
    return Run(train_time, compile_time, float(acc))


def run_jit_per_step(w: Workload, params0, seed: int) -> Run:
    optimizer = optax.adam(w.learning_rate)
    x, y = w.data.x_train, w.data.y_train
    params = jax.tree.map(jnp.array, params0)  # a copy: the step donates its inputs
    opt_state = optimizer.init(params)
    t0 = time.perf_counter()
    step = jax.jit(_make_step(w.model.apply, optimizer), donate_argnums=(0, 1)).lower(
        params, opt_state, x[:w.batch_size], y[:w.batch_size]).compile()
    compile_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    for idx in _epoch_batches(x.shape[0], w.batch_size, w.steps, seed):
        params, opt_state, _ = step(params, opt_state, x[idx], y[idx])
    jax.block_until_ready(params)
    train_time = time.perf_counter() - t0
    acc = jl.evaluate(w.model.apply, params, w.data.x_test, w.data.y_test)["accuracy"]
    return Run(train_time, compile_time, float(acc))


# --------------------------------------------------------------------------- flax nnx peer

def _nnx_model(w: Workload, params0):
    """The workload as an ``nnx.Module`` whose weights are ``params0`` (same layouts as ours)."""
    from flax import nnx

    def const(value):
        return lambda key, shape, dtype=jnp.float32: jnp.asarray(value, dtype)

    layers = _layers(params0)
    rngs = nnx.Rngs(0)

    class Net(nnx.Module):
        def __init__(self):
            convs = []
            if w.convs is not None:
                for (kernel, stride, pad), p in zip(w.convs, layers):
                    c_in, c_out = p["w"].shape[-2:]
                    convs.append(nnx.Conv(c_in, c_out, (kernel,), (stride,),
                                          padding=((pad, pad),), kernel_init=const(p["w"]),
                                          bias_init=const(p["b"]), rngs=rngs))
            self.convs = nnx.List(convs)
            self.denses = nnx.List([
                nnx.Linear(*p["w"].shape, kernel_init=const(p["w"]), bias_init=const(p["b"]),
                           rngs=rngs) for p in layers[len(convs):]])
            self.skip = tuple(_residual_flags(w)) if w.convs is None else (False,)

        def __call__(self, x):
            if self.convs:
                x = x.reshape(x.shape[0], -1, 1)
                for conv in self.convs:
                    x = jax.nn.relu(conv(x))
                x = x.reshape(x.shape[0], -1)
            last = len(self.denses) - 1
            for i, (dense, skip) in enumerate(zip(self.denses, self.skip)):
                h = dense(x) if i == last else jax.nn.relu(dense(x))
                x = x + h if skip else h
            return x

    return Net()


def run_nnx(w: Workload, params0, seed: int) -> Run:
    from flax import nnx

    @nnx.jit
    def train_step(model, optimizer, xb, yb):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean(CE_FN(m(xb), yb)))(model)
        optimizer.update(model, grads)
        return loss

    x, y = w.data.x_train, w.data.y_train
    tx = optax.adam(w.learning_rate)
    # Compile on a throwaway copy: the timed model then hits nnx.jit's cache (same graph).
    warm = _nnx_model(w, params0)
    t0 = time.perf_counter()
    jax.block_until_ready(train_step(warm, nnx.Optimizer(warm, tx, wrt=nnx.Param),
                                     x[:w.batch_size], y[:w.batch_size]))
    compile_time = time.perf_counter() - t0
    model = _nnx_model(w, params0)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    t0 = time.perf_counter()
    for idx in _epoch_batches(x.shape[0], w.batch_size, w.steps, seed):
        loss = train_step(model, optimizer, x[idx], y[idx])
    jax.block_until_ready(loss)
    train_time = time.perf_counter() - t0
    return Run(train_time, compile_time, _accuracy(model(w.data.x_test), w.data.y_test))


# ---------------------------------------------------------------------------- pytorch peer

def _torch_model(w: Workload, params0):
    """The workload as a ``torch.nn.Module`` whose weights are ``params0``, transposed to
    PyTorch's layouts (``Linear``: [out, in]; ``Conv1d``: [c_out, c_in, k], channels first)."""
    import torch

    layers = _layers(params0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = torch.nn.ModuleList()
            if w.convs is not None:
                for (kernel, stride, pad), p in zip(w.convs, layers):
                    c_in, c_out = p["w"].shape[-2:]
                    conv = torch.nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad)
                    conv.weight.data = torch.from_numpy(np.transpose(np.asarray(p["w"]),
                                                                     (2, 1, 0)).copy())
                    conv.bias.data = torch.from_numpy(np.array(p["b"]))
                    self.convs.append(conv)
            self.denses = torch.nn.ModuleList()
            for i, p in enumerate(layers[len(self.convs):]):
                weight = np.asarray(p["w"])
                if i == 0 and w.convs is not None:
                    # Ours flattens [length, channels] (length-major), PyTorch [channels, length].
                    c = layers[len(self.convs) - 1]["w"].shape[-1]
                    weight = weight.reshape(-1, c, weight.shape[-1]).transpose(1, 0, 2)
                    weight = weight.reshape(-1, weight.shape[-1])
                linear = torch.nn.Linear(*weight.shape)
                linear.weight.data = torch.from_numpy(weight.T.copy())
                linear.bias.data = torch.from_numpy(np.array(p["b"]))
                self.denses.append(linear)
            self.skip = _residual_flags(w) if w.convs is None else [False]

        def forward(self, x):
            if len(self.convs):
                x = x.view(x.shape[0], 1, -1)
                for conv in self.convs:
                    x = conv(x).relu()
                x = x.flatten(1)
            last = len(self.denses) - 1
            for i, (dense, skip) in enumerate(zip(self.denses, self.skip)):
                h = dense(x) if i == last else dense(x).relu()
                x = x + h if skip else h
            return x

    return Net()


def run_torch(w: Workload, params0, seed: int, threads: int) -> Run:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    x, y = torch.from_numpy(w.data.x_train), torch.from_numpy(w.data.y_train).long()

    def train(model, steps):
        optimizer = torch.optim.Adam(model.parameters(), lr=w.learning_rate)
        for idx in _epoch_batches(x.shape[0], w.batch_size, steps, seed):
            idx = torch.from_numpy(idx)
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()

    # Warm-up (allocator, kernel selection) on a throwaway copy, reported as "compile".
    t0 = time.perf_counter()
    train(_torch_model(w, params0), 5)
    warmup = time.perf_counter() - t0
    model = _torch_model(w, params0)
    t0 = time.perf_counter()
    train(model, w.steps)
    train_time = time.perf_counter() - t0
    with torch.no_grad():
        logits = model(torch.from_numpy(w.data.x_test)).numpy()
    return Run(train_time, warmup, _accuracy(logits, w.data.y_test))


# ---------------------------------------------------------------------------- sklearn peer

def run_sklearn(w: Workload, params0, seed: int) -> Run:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    epochs = math.ceil(w.steps / (w.data.x_train.shape[0] // w.batch_size))
    clf = MLPClassifier(hidden_layer_sizes=w.hidden, activation="relu", solver="adam",
                        alpha=0.0, batch_size=w.batch_size, learning_rate_init=w.learning_rate,
                        max_iter=epochs, shuffle=True, random_state=seed, tol=0.0,
                        n_iter_no_change=epochs + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.fit(w.data.x_train, w.data.y_train)
        train_time = time.perf_counter() - t0
    return Run(train_time, None, float(clf.score(w.data.x_test, w.data.y_test)))


RUNNERS = {"jaxlearn": run_jaxlearn, "jax one-scan floor": run_floor,
           "jax.jit per step": run_jit_per_step, "flax nnx per step": run_nnx,
           "pytorch eager": run_torch, "sklearn MLPClassifier": run_sklearn}


def _configurations(peers, torch_threads) -> dict[str, Callable[..., Run]]:
    """Row label -> runner: one row per peer, PyTorch once per thread count."""
    out = {}
    for peer in peers:
        if peer == "pytorch eager":
            for t in torch_threads:
                out[f"pytorch eager ({t} thread{'s' if t > 1 else ''})"] = functools.partial(
                    run_torch, threads=t)
        else:
            out[peer] = RUNNERS[peer]
    return out


# ---------------------------------------------------------------------------------- checks

def _missing(peer: str) -> str | None:
    """Why ``peer`` cannot run here (a missing optional package), or None."""
    module = {"flax nnx per step": "flax.nnx", "pytorch eager": "torch",
              "sklearn MLPClassifier": "sklearn.neural_network"}.get(peer)
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError:
        return f"{module} is not installed"
    return None


def _applies(peer: str, w: Workload) -> bool:
    return peer != "sklearn MLPClassifier" or bool(w.hidden)


def check_same_function(w: Workload, params0, peers) -> None:
    """The torch and nnx models must compute jaxlearn's function at init (same weights)."""
    x = w.data.x_test[:64]
    ref = np.asarray(w.model.apply(params0, x))
    outs = {}
    if "flax nnx per step" in peers:
        outs["flax nnx"] = np.asarray(_nnx_model(w, params0)(x))
    if "pytorch eager" in peers:
        import torch

        with torch.no_grad():
            outs["pytorch"] = _torch_model(w, params0)(torch.from_numpy(x)).numpy()
    for name, out in outs.items():
        # fp32 sums of <= 1024 terms of O(1) values in another order: ~1e-5 relative.
        err = float(np.max(np.abs(out - ref)) / (np.max(np.abs(ref)) + 1e-12))
        if err > 1e-4:
            raise RuntimeError(f"{w.name}: the {name} model differs from jaxlearn's at init "
                               f"(max relative error {err:.2e}); the benchmark would compare "
                               "different models")


def matmul_ceiling(n: int = 2048, repeats: int = 5) -> float:
    """Measured fp32 GFLOP/s of one ``n x n`` by ``n x n`` jitted ``jnp.dot`` (median)."""
    k_a, k_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(k_a, (n, n), jnp.float32)
    b = jax.random.normal(k_b, (n, n), jnp.float32)
    dot = jax.jit(jnp.dot).lower(a, b).compile()
    jax.block_until_ready(dot(a, b))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(dot(a, b))
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times) / 1e9


# ------------------------------------------------------------------------------------ main

def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per peer and workload (default 3; 1 with --quick)")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: ~15x fewer steps, one repeat; timings not meaningful")
    n_cpus = len(os.sched_getaffinity(0))
    parser.add_argument("--torch-threads", type=int, nargs="+",
                        default=sorted({1, n_cpus}),
                        help="torch.set_num_threads values, one row each (default: 1 and the "
                             "CPUs available; the fastest counts for the targets)")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    if min(args.torch_threads) < 1:
        parser.error("--torch-threads must be >= 1")

    notes, peers = [], []
    for peer in args.peers:
        reason = _missing(peer)
        if reason is None:
            peers.append(peer)
        else:
            notes.append(f"skipped {peer}: {reason} (pip install it to compare)")
    if "jaxlearn" not in peers:
        peers.insert(0, "jaxlearn")  # every ratio is to jaxlearn
    torch_info = "-"
    if "pytorch eager" in peers:
        import torch

        torch_info = torch.__version__

    ceiling = matmul_ceiling()
    workloads = make_workloads(args.workloads, args.quick)
    rows, flops, targets = [], {}, []
    for w in workloads:
        _, params0 = w.model.init(jax.random.key(0), w.data.x_train.shape[1:])
        check_same_function(w, params0, peers)
        flops[w.name] = step_flops(w, params0)
        active = _configurations([p for p in peers if _applies(p, w)], args.torch_threads)
        runs: dict[str, list[Run]] = {label: [] for label in active}
        for r in range(repeats):
            for label, runner in active.items():
                runs[label].append(runner(w, params0, seed=r + 1))
        base = statistics.median(run.train_time for run in runs["jaxlearn"])
        ratios = {}
        for label in active:
            t = statistics.median(run.train_time for run in runs[label])
            compiles = [run.compile_time for run in runs[label] if run.compile_time is not None]
            gflops = flops[w.name] * w.steps / t / 1e9
            rows.append((w.name, label, t, t / base,
                         statistics.median(compiles) if compiles else None,
                         statistics.median(run.accuracy for run in runs[label]),
                         gflops, 100 * gflops / ceiling))
            ratios[label] = t / base
        for (name, peer), wanted in TARGETS.items():
            measured = [r for label, r in ratios.items() if label.startswith(peer)]
            if name == w.name and measured:
                targets.append((name, peer, wanted, min(measured)))

    print(f"jaxlearn vs peers, median of {repeats} run(s){' (--quick)' if args.quick else ''}; "
          f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}, torch {torch_info}")
    print(f"fp32 matmul ceiling (2048^3 jnp.dot, median of 5): {ceiling:.1f} GFLOP/s")
    for w in workloads:
        print(f"- {w.name}: {w.description}; {w.steps} steps of batch {w.batch_size}; "
              f"{flops[w.name] / 1e6:.2f} MFLOP per step (XLA)")
    for note in notes:
        print(f"- {note}")
    print()
    print("| workload | peer | train (s) | peer / jaxlearn | compile (s) | test acc "
          "| GFLOP/s | % of ceiling |")
    print("|---|---|---|---|---|---|---|---|")
    for name, peer, t, ratio, comp, acc, gflops, frac in rows:
        print(f"| {name} | {peer} | {t:.3f} | {ratio:.2f}x | {_fmt(comp, '.2f')} | {acc:.3f} "
              f"| {gflops:.2f} | {frac:.1f} |")
    if targets:
        print()
        print("| target (fastest configuration of the peer) | wanted | measured | met |")
        print("|---|---|---|---|")
        for name, peer, wanted, ratio in targets:
            print(f"| {name}: {peer} / jaxlearn | >= {wanted:.0f}x | {ratio:.2f}x "
                  f"| {'yes' if ratio >= wanted else 'no'} |")


if __name__ == "__main__":
    main()
