"""Benchmark: `jaxlearn.fit` against a hand-written single-`lax.scan` training loop.

The floor is the fastest way to write the same training in JAX: every step of the run (all epochs,
shuffling included) in one `lax.scan` inside one `jit`, no callbacks, no NaN guard, no host sync.
`fit` without callbacks runs all full epochs as one program too (NaN guard on); with a callback
(here a no-op) it calls one compiled epoch scan per epoch and runs Python in between. Both are
timed.
Both train the MNIST-1D reference recipes (Adam lr 1e-2, batch 100, 6000 steps, 4000 train
samples) from the same init; the table gives medians over repeats and the ratio fit / floor.
Compile time is measured apart (ahead-of-time lower + compile) and not in the run times.

Run:  python benchmarks/bench_fit.py [--repeats 3] [--models mlp cnn]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import jaxlearn as jl

STEPS, BATCH, LR = 6000, 100, 1e-2


def floor_program(apply, loss_fn, optimizer, n: int, steps: int, batch_size: int):
    """The whole run as one scan: per-epoch permutations drawn inside the compiled program."""
    steps_per_epoch = n // batch_size
    n_epochs = -(-steps // steps_per_epoch)

    def run(params, x, y, key):
        keys = jax.random.split(key, n_epochs)
        used = steps_per_epoch * batch_size
        perms = jax.vmap(lambda k: jax.random.permutation(k, n)[:used])(keys)
        batches = perms.reshape(n_epochs * steps_per_epoch, batch_size)[:steps]
        opt_state = optimizer.init(params)

        def step(carry, idx):
            params, opt_state = carry
            value, grads = jax.value_and_grad(
                lambda p: jnp.mean(loss_fn(apply(p, x[idx]), y[idx])))(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, _), values = jax.lax.scan(step, (params, opt_state), batches)
        return params, values

    return jax.jit(run)


def models():
    return {
        "logistic": jl.nn.dense(10),
        "mlp": jl.nn.mlp((100, 100), 10, residual=True),
        "cnn": jl.nn.serial(
            jl.nn.reshape((40, 1)),
            jl.nn.conv1d(25, 5, stride=2, padding=1), jl.nn.relu,
            jl.nn.conv1d(25, 3, stride=2, padding=1), jl.nn.relu,
            jl.nn.conv1d(25, 3, stride=2, padding=1), jl.nn.relu,
            jl.nn.flatten(), jl.nn.dense(10)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--steps", type=int, default=STEPS,
                        help="training steps (the recipe: 6000; fewer only for a smoke run)")
    args = parser.parse_args(argv)
    steps = args.steps

    data = jl.data.load_mnist1d()
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    loss_fn = jl.losses.softmax_cross_entropy_with_integer_labels
    rows = []
    for name in args.models:
        model = models()[name]
        _, params = model.init(jax.random.key(0), (40,))
        key = jax.random.key(1)
        opt = optax.adam(LR)

        floor = floor_program(model.apply, loss_fn, opt, x.shape[0], steps, BATCH)
        t0 = time.perf_counter()
        floor_c = floor.lower(params, x, y, key).compile()
        floor_compile = time.perf_counter() - t0
        floor_times, fit_times, fit_compiles, cb_times = [], [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            p_floor, _ = floor_c(params, x, y, key)
            jax.block_until_ready(p_floor)
            floor_times.append(time.perf_counter() - t0)
            result = jl.fit(model.apply, params, x, y,
                            loss="softmax_cross_entropy_with_integer_labels",
                            optimizer=opt, key=key, batch_size=BATCH, steps=steps)
            jax.block_until_ready(result.params)
            fit_times.append(result.train_time)
            fit_compiles.append(result.compile_time)
            per_epoch = jl.fit(model.apply, params, x, y,
                               loss="softmax_cross_entropy_with_integer_labels",
                               optimizer=opt, key=key, batch_size=BATCH, steps=steps,
                               callbacks=[lambda epoch, logs, params: None])
            cb_times.append(per_epoch.train_time)
        acc_fit = jl.evaluate(model.apply, result.params, data.x_test, data.y_test)["accuracy"]
        acc_floor = jl.evaluate(model.apply, p_floor, data.x_test, data.y_test)["accuracy"]
        f, s = statistics.median(fit_times), statistics.median(floor_times)
        c = statistics.median(cb_times)
        # fit reuses its compiled program across calls: the first call's compile time is the cost.
        rows.append((name, s, f, f / s, c, c / s, floor_compile, fit_compiles[0],
                     acc_floor, acc_fit))

    print(f"MNIST-1D, {steps} steps, batch {BATCH}, Adam lr {LR}; median of {args.repeats} "
          f"runs on {jax.devices()[0].platform} ({jax.device_count()} device(s))")
    print("| model | floor: one scan (s) | fit (s) | fit / floor | fit + callback (s) "
          "| (fit + callback) / floor | compile floor (s) | compile fit (s) | test acc floor "
          "| test acc fit |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, s, f, ratio, c, c_ratio, cs, cf, a_s, a_f in rows:
        print(f"| {name} | {s:.2f} | {f:.2f} | {ratio:.2f}x | {c:.2f} | {c_ratio:.2f}x "
              f"| {cs:.2f} | {cf:.2f} | {a_s:.3f} | {a_f:.3f} |")


if __name__ == "__main__":
    main()
