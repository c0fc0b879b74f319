"""Profile: where the time of an MNIST-1D training run goes, part by part.

Each row is one compiled program run over the recipe's 6000 steps (batch 100, Adam lr 1e-2, 4000
training samples, so 150 epochs), adding one part at a time, so the differences between rows
are the cost of each part:

- ``forward``: loss of a batch only (params nudged by the loss so nothing is dead code);
- ``+ backward (SGD)``: ``value_and_grad`` and a plain SGD update;
- ``+ Adam``: ``optax.adam`` instead of SGD, batch indices drawn up front (no shuffle in the run);
- ``+ shuffle (floor)``: the hand-written floor of ``bench_fit.py``: a fresh
  ``jax.random.permutation`` per epoch inside the program;
- ``fit``: ``jl.fit`` (NaN guard, per-step keys, Python after the program);
- ``150 permutations alone``: just the shuffles.

Also printed: the XLA ops (kernels) in one compiled training step and the step's FLOP count. On
CPU every kernel of these small models costs microseconds of dispatch and memory traffic, and
the 4000-sample permutation is a sort (``jax.random.permutation`` sorts random keys, twice for
this size): about as much as six MLP training steps, per epoch of 40.

Run:  python benchmarks/profile_step.py [--models mlp cnn] [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import jax
import jax.numpy as jnp
import optax
from bench_fit import BATCH, LR, STEPS, floor_program, models

import jaxlearn as jl

_NOT_KERNELS = ("parameter", "constant", "tuple", "get-tuple-element", "bitcast")


def _median_time(compiled, args, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _scan_program(apply, loss_fn, kind):
    opt = optax.adam(LR)

    def run(params, x, y, idxs):
        state = opt.init(params) if kind == "adam" else None

        def step(carry, idx):
            p, s = carry
            xb, yb = x[idx], y[idx]

            def objective(p):
                return jnp.mean(loss_fn(apply(p, xb), yb))

            if kind == "forward":
                v = objective(p)
                return (jax.tree.map(lambda a: a + 1e-9 * v, p), s), v
            v, g = jax.value_and_grad(objective)(p)
            if kind == "sgd":
                return (jax.tree.map(lambda a, b: a - LR * b, p, g), s), v
            updates, s = opt.update(g, s, p)
            return (optax.apply_updates(p, updates), s), v

        (params, _), values = jax.lax.scan(step, (params, state), idxs)
        return params, values

    return jax.jit(run)


def _step_kernels(apply, loss_fn, params, xb, yb):
    """XLA ops that run per training step (Adam), and the step's FLOPs, from the compiled HLO."""
    opt = optax.adam(LR)

    def step(p, s, xb, yb):
        g = jax.grad(lambda p: jnp.mean(loss_fn(apply(p, xb), yb)))(p)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s

    compiled = jax.jit(step).lower(params, opt.init(params), xb, yb).compile()
    text = compiled.as_text()
    entry = text[text.index("\nENTRY"):]
    entry = entry[: entry.index("\n}")]
    ops = [m.group(1) for line in entry.splitlines()[1:] if " = " in line
           for m in [re.search(r" ([a-z][a-z0-9-]*)\(", line.split(" = ", 1)[1])] if m]
    kernels = [op for op in ops if op not in _NOT_KERNELS]
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return len(kernels), float(cost.get("flops", float("nan")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=STEPS,
                        help="training steps, a multiple of 40 (the recipe: 6000)")
    args = parser.parse_args(argv)

    data = jl.data.load_mnist1d()
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    n = x.shape[0]
    steps = args.steps
    if steps < 1 or steps % (n // BATCH):
        parser.error(f"--steps must be a positive multiple of {n // BATCH} (whole epochs), "
                     f"got {steps}")
    n_epochs = steps // (n // BATCH)
    loss_fn = jl.losses.softmax_cross_entropy_with_integer_labels
    key = jax.random.key(1)
    perm_keys = jax.random.split(key, n_epochs)
    idxs = jax.vmap(lambda k: jax.random.permutation(k, n))(perm_keys).reshape(steps, BATCH)

    perms = jax.jit(lambda ks: jax.vmap(lambda k: jax.random.permutation(k, n))(ks))
    perms = perms.lower(perm_keys).compile()
    t_perm = _median_time(perms, (perm_keys,), args.repeats)

    print(f"MNIST-1D, {steps} steps of batch {BATCH} ({n_epochs} epochs of {n} samples), "
          f"median of {args.repeats}, {jax.devices()[0].platform}")
    for name in args.models:
        model = models()[name]
        _, params = model.init(jax.random.key(0), (40,))
        n_kernels, flops = _step_kernels(model.apply, loss_fn, params, x[:BATCH], y[:BATCH])
        rows = []
        for label, kind in [("forward", "forward"), ("+ backward (SGD)", "sgd"),
                            ("+ Adam", "adam")]:
            program = _scan_program(model.apply, loss_fn, kind)
            compiled = program.lower(params, x, y, idxs).compile()
            rows.append((label, _median_time(compiled, (params, x, y, idxs), args.repeats)))
        floor = floor_program(model.apply, loss_fn, optax.adam(LR), n, steps, BATCH)
        floor = floor.lower(params, x, y, key).compile()
        rows.append(("+ shuffle (floor)", _median_time(floor, (params, x, y, key), args.repeats)))
        fit_times = []
        for _ in range(args.repeats):
            result = jl.fit(model.apply, params, x, y, loss=loss_fn, optimizer=optax.adam(LR),
                            key=key, batch_size=BATCH, steps=steps)
            fit_times.append(result.train_time)
        rows.append(("fit", statistics.median(fit_times)))
        rows.append((f"{n_epochs} permutations alone", t_perm))

        print(f"\n{name}: {n_kernels} XLA kernels per Adam step, {flops / 1e6:.2f} MFLOP per step")
        print("| part | run (s) | per step (us) | added (s) | GFLOP/s (Adam rows) |")
        print("|---|---|---|---|---|")
        previous = None
        for label, t in rows:
            added = "" if previous is None or label.endswith("alone") else f"{t - previous:+.3f}"
            rate = f"{flops * steps / t / 1e9:.1f}" if label in ("+ Adam", "+ shuffle (floor)",
                                                                  "fit") else ""
            print(f"| {label} | {t:.3f} | {t / steps * 1e6:.0f} | {added} | {rate} |")
            if not label.endswith("alone"):
                previous = t


if __name__ == "__main__":
    main()
