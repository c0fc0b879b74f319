"""Benchmark: `jaxlearn.fit_many` (N models in one vmapped program) against N sequential `fit`s.

Each of the N members is the MNIST-1D reference MLP (``bench_fit.models()["mlp"]``) with its own
init key and shuffling key, trained with the reference recipe (Adam lr 1e-2, batch 100, 6000
steps). ``fit_many`` trains all N at once from ``jl.nn.init_stacked``; the baseline calls
``jl.fit`` N times in a Python loop with member i's params and key, which compiles its epoch
program on every call. The table gives train time (compile excluded), compile time, their sum,
the speedup of ``fit_many`` on each, and how far the two sets of trained params are apart,
with the test accuracies of both.

Agreement: member i of ``fit_many`` takes the same batches as ``fit`` with ``key=fit_keys[i]``,
so the two differ only by float rounding of batched vs. single matmuls. Over thousands of Adam
steps at lr 1e-2 that rounding is amplified (ReLU boundaries flip) until the params differ by a
few percent while the accuracies stay equal; so the script also checks, for each N, that after
one epoch (40 steps) the first members of the N-wide ``fit_many`` equal their sequential fits to
a relative ``CHECK_TOL``, and exits with an error if not.

With large N (``--n-models 1000`` on a GPU) the N sequential fits would take hours:
``--sequential-members K`` fits only the first K members sequentially and scales their times by
N / K (marked "extrapolated"); the param and accuracy differences are then over those K members.

Run:  python benchmarks/bench_fit_many.py [--n-models 8 32] [--repeats 1] [--steps 6000]
      python benchmarks/bench_fit_many.py --quick      (smoke run: N = 2 and 4, 400 steps)
      python benchmarks/bench_fit_many.py --n-models 1000 --sequential-members 8
"""

from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import optax
from bench_fit import BATCH, LR, STEPS, models

import jaxlearn as jl

CE = jl.losses.SOFTMAX_CE_INT
# fp32 rounding is ~1e-7 relative; 40 Adam steps grow it ~3x here (measured 1.8e-7): 50x slack.
CHECK_TOL = 1e-5
CHECK_MEMBERS = 4


def run_many(model, params, data, fit_keys, steps):
    """``fit_many`` of the stacked ``params`` (member i trained with ``fit_keys[i]``)."""
    return jl.fit_many(model.apply, params, data.x_train, data.y_train, loss=CE,
                       optimizer=optax.adam(LR), keys=fit_keys, batch_size=BATCH, steps=steps)


def run_sequential(model, params, data, fit_keys, steps):
    """``fit`` of each member in turn; returns (stacked params, train time, compile time)."""
    trained, train_time, compile_time = [], 0.0, 0.0
    for i in range(fit_keys.shape[0]):
        member = jax.tree.map(lambda p, i=i: p[i], params)
        result = jl.fit(model.apply, member, data.x_train, data.y_train, loss=CE,
                        optimizer=optax.adam(LR), key=fit_keys[i], batch_size=BATCH, steps=steps)
        jax.block_until_ready(result.params)
        trained.append(result.params)
        train_time += result.train_time
        compile_time += result.compile_time
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *trained)
    return stacked, train_time, compile_time


def relative_diff(a, b) -> float:
    """``max |a - b| / max |b|`` over all leaves of two params pytrees."""
    diff = max(float(jnp.max(jnp.abs(x - y))) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    return diff / max(float(jnp.max(jnp.abs(y))) for y in jax.tree.leaves(b))


def one_epoch_check(model, params, data, fit_keys) -> float:
    """Relative param difference after one epoch between the N-wide ``fit_many`` and sequential
    fits of its first ``CHECK_MEMBERS`` members."""
    epoch = data.x_train.shape[0] // BATCH
    many = run_many(model, params, data, fit_keys, epoch)
    m = min(CHECK_MEMBERS, fit_keys.shape[0])
    head = jax.tree.map(lambda p: p[:m], params)
    seq_params, _, _ = run_sequential(model, head, data, fit_keys[:m], epoch)
    return relative_diff(jax.tree.map(lambda p: p[:m], many.params), seq_params)


def accuracies(model, stacked, data) -> np.ndarray:
    """Test accuracy of each member of stacked params, ``[N]``."""
    logits = jax.vmap(lambda p: model.apply(p, data.x_test))(stacked)
    return np.asarray(jnp.mean(jnp.argmax(logits, -1) == data.y_test, axis=-1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-models", type=int, nargs="+", default=None,
                        help="values of N (default 8 32; 2 4 with --quick)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None,
                        help=f"steps per member (default {STEPS}; 400 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run; timings not meaningful")
    parser.add_argument("--sequential-members", type=int, default=None, metavar="K",
                        help="fit only the first K members sequentially and scale their times "
                             "by N / K (default: all N)")
    args = parser.parse_args(argv)
    n_models = args.n_models or ([2, 4] if args.quick else [8, 32])
    steps = args.steps or (400 if args.quick else STEPS)
    if args.repeats < 1 or steps < 1 or min(n_models) < 1:
        parser.error("--repeats, --steps and --n-models must be >= 1")
    if args.sequential_members is not None and args.sequential_members < 1:
        parser.error("--sequential-members must be >= 1")

    data = jl.data.load_mnist1d()
    model = models()["mlp"]
    rows, extrapolated = [], []
    for n in n_models:
        init_keys, fit_keys = jax.random.split(jax.random.key(0), (2, n))
        params = jl.nn.init_stacked(model, init_keys, (40,))
        n_seq = min(n, args.sequential_members or n)
        head = jax.tree.map(lambda p, k=n_seq: p[:k], params)
        many_train, many_compile, seq_train, seq_compile = [], [], [], []
        for _ in range(args.repeats):
            many = run_many(model, params, data, fit_keys, steps)
            jax.block_until_ready(many.params)
            many_train.append(many.train_time)
            many_compile.append(many.compile_time)
            seq_params, t_train, t_compile = run_sequential(model, head, data,
                                                            fit_keys[:n_seq], steps)
            seq_train.append(t_train * n / n_seq)
            seq_compile.append(t_compile * n / n_seq)
        many_head = jax.tree.map(lambda p, k=n_seq: p[:k], many.params)
        acc_many = accuracies(model, many.params, data)
        acc_seq = accuracies(model, seq_params, data)
        if n_seq < n:
            extrapolated.append(f"N = {n}: sequential times extrapolated from the first {n_seq} "
                                f"members (x {n / n_seq:g}); param diff, max acc diff and mean "
                                f"acc seq over those members")
        mt, mc = statistics.median(many_train), statistics.median(many_compile)
        st, sc = statistics.median(seq_train), statistics.median(seq_compile)
        rows.append((n, st, sc, mt, mc, st / mt, (st + sc) / (mt + mc),
                     relative_diff(many_head, seq_params),
                     float(np.max(np.abs(acc_many[:n_seq] - acc_seq))), acc_seq.mean(),
                     acc_many.mean(),
                     one_epoch_check(model, params, data, fit_keys)))

    print(f"fit_many vs N sequential fits: MNIST-1D MLP, {steps} steps of batch {BATCH}, Adam lr "
          f"{LR}; median of {args.repeats} run(s) on {jax.devices()[0].platform} "
          f"({jax.device_count()} device(s)){' (--quick)' if args.quick else ''}")
    print("| N | sequential train (s) | sequential compile (s) | fit_many train (s) "
          "| fit_many compile (s) | speedup train | speedup train + compile "
          "| param diff | max acc diff | mean acc seq | mean acc many | param diff, 1 epoch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, st, sc, mt, mc, sp, sp_all, diff, dacc, a_s, a_m, check in rows:
        print(f"| {n} | {st:.2f} | {sc:.2f} | {mt:.2f} | {mc:.2f} | {sp:.2f}x | {sp_all:.2f}x "
              f"| {diff:.1e} | {dacc:.3f} | {a_s:.3f} | {a_m:.3f} | {check:.1e} |")
    print("param diff: max |many - seq| / max |seq| over all params and members.")
    for note in extrapolated:
        print(f"{note}.")
    failed = [row[0] for row in rows if not row[-1] <= CHECK_TOL]
    if failed:
        raise SystemExit(f"fit_many disagrees with sequential fit after one epoch for N = {failed} "
                         f"(tolerance {CHECK_TOL:.0e} relative)")
    print(f"check: after one epoch fit_many equals sequential fit to {CHECK_TOL:.0e} relative "
          f"(first {CHECK_MEMBERS} members of every N).")


if __name__ == "__main__":
    main()
