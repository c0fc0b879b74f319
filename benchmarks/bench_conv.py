"""Benchmark: jaxlearn's two convolutions, im2col + einsum against XLA's `conv_general_dilated`.

`jl.nn.conv1d` / `conv2d` compute the same function two ways (`impl=`): "im2col" stacks the
strided slices of the input and contracts them with the kernel in one einsum; "xla" calls
`lax.conv_general_dilated` (cuDNN on a GPU). `impl="auto"` picks one per backend
(`jl.nn.conv_impl`); this script measures both so that the choice rests on numbers.

Two models, each timed as a compiled `lax.scan` of steps (so that Python dispatch does not
count), median of `--repeats` runs (fewer when one run takes over `SLOW_RUN` seconds: XLA's
convolution backward pass on CPU can take seconds per step), compile time measured apart:

- `mnist1d_cnn`: the MNIST-1D reference CNN (three strided conv1d of 25 channels, kernels 5, 3, 3,
  then dense(10)) on batches of 100 sequences of length 40; 100 steps per program;
- `cnn2d_28x28`: a 2-D CNN on 28x28 single-channel images (conv 3x3 32, conv 3x3 64 stride 2,
  conv 3x3 64 stride 2, all SAME, then dense(10)), batches of 128; 10 steps per program.

Per model and implementation: forward only (ms per step), forward + backward (the gradient of the
mean cross-entropy w.r.t. the params, ms per step) and compile times, at JAX's default precision
(which may use TF32 on a recent GPU). Then a check per model: the largest difference between the
two implementations' gradients relative to the largest gradient entry, in float32 at "highest"
precision (sums of the same products in another order: ~1e-6 expected); above `CHECK_TOL` the
script exits with an error.

Run:  python benchmarks/bench_conv.py [--repeats 5] [--models mnist1d_cnn cnn2d_28x28]
      python benchmarks/bench_conv.py --steps 2 --repeats 1      (smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxlearn as jl

IMPLS = ("im2col", "xla")
STEPS = {"mnist1d_cnn": 100, "cnn2d_28x28": 10}   # steps per timed program, by model
SLOW_RUN = 10.0  # seconds: a run slower than this is timed once after the warm-up
# float32 sums of <= 3 * 3 * 64 products in another order: ~1e-6 relative; 1e-4 flags a real error.
CHECK_TOL = 1e-4


def models(impl: str) -> dict[str, tuple[jl.nn.Layer, tuple[int, ...], int]]:
    """``name -> (model, input shape of one example, batch size)`` using convolution ``impl``."""
    return {
        "mnist1d_cnn": (jl.nn.serial(
            jl.nn.reshape((40, 1)),
            jl.nn.conv1d(25, 5, stride=2, padding=1, impl=impl), jl.nn.relu,
            jl.nn.conv1d(25, 3, stride=2, padding=1, impl=impl), jl.nn.relu,
            jl.nn.conv1d(25, 3, stride=2, padding=1, impl=impl), jl.nn.relu,
            jl.nn.flatten(), jl.nn.dense(10)), (40,), 100),
        "cnn2d_28x28": (jl.nn.serial(
            jl.nn.conv2d(32, 3, padding="SAME", impl=impl), jl.nn.relu,
            jl.nn.conv2d(64, 3, stride=2, padding="SAME", impl=impl), jl.nn.relu,
            jl.nn.conv2d(64, 3, stride=2, padding="SAME", impl=impl), jl.nn.relu,
            jl.nn.flatten(), jl.nn.dense(10)), (28, 28, 1), 128),
    }


def _loss(model, params, x, y):
    logits = model.apply(params, x)
    return jnp.mean(jl.losses.softmax_cross_entropy_with_integer_labels(logits, y))


def programs(model, steps: int):
    """Two jitted programs of ``steps`` steps each over a stack of batches ``xs [steps, B, ...]``:
    the forward pass alone, and forward + backward with an SGD update (so no step can be hoisted
    out of the loop)."""

    def forward(params, xs):
        def step(total, x):
            return total + jnp.sum(model.apply(params, x)), None
        return jax.lax.scan(step, jnp.zeros((), jnp.float32), xs)[0]

    def forward_backward(params, xs, ys):
        def step(params, batch):
            grads = jax.grad(lambda p: _loss(model, p, *batch))(params)
            return jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads), None
        return jax.lax.scan(step, params, (xs, ys))[0]

    return jax.jit(forward), jax.jit(forward_backward)


def _time(fn, args, repeats: int) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))  # warm up (buffers, first-call work)
    if time.perf_counter() - t0 > SLOW_RUN:
        repeats = 1
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _compile(fn, *args):
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def relative_grad_diff(name: str, params, x, y) -> float:
    """``max |g_im2col - g_xla| / max |g_xla|`` of the loss gradient on one batch, in full float32
    (no TF32 on GPU: its ~1e-3 rounding would hide the comparison)."""
    grads = []
    for impl in IMPLS:
        model = models(impl)[name][0]
        with jax.default_matmul_precision("highest"):
            grads.append(jax.jit(jax.grad(lambda p, m=model: _loss(m, p, x, y)))(params))
    leaves_a, leaves_b = (jax.tree.leaves(g) for g in grads)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(leaves_a, leaves_b))
    return diff / max(float(jnp.max(jnp.abs(b))) for b in leaves_b)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None,
                        help=f"steps per timed program (default: {STEPS})")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", choices=list(models("im2col")),
                        default=list(models("im2col")))
    args = parser.parse_args(argv)
    if (args.steps is not None and args.steps < 1) or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")

    rng = np.random.default_rng(0)
    rows, checks = [], {}
    for name in args.models:
        _, shape, batch = models("im2col")[name]
        steps = args.steps or STEPS[name]
        xs = jnp.asarray(rng.normal(size=(steps, batch, *shape)), jnp.float32)
        ys = jnp.asarray(rng.integers(0, 10, size=(steps, batch)), jnp.int32)
        _, params = models("im2col")[name][0].init(jax.random.key(0), shape)
        timings = {}
        for impl in IMPLS:
            model = models(impl)[name][0]
            forward, forward_backward = programs(model, steps)
            fwd, fwd_compile = _compile(forward, params, xs)
            both, both_compile = _compile(forward_backward, params, xs, ys)
            timings[impl] = (1e3 * _time(fwd, (params, xs), args.repeats) / steps,
                             1e3 * _time(both, (params, xs, ys), args.repeats) / steps,
                             fwd_compile, both_compile)
        checks[name] = relative_grad_diff(name, params, xs[0], ys[0])
        for impl in IMPLS:
            fwd_ms, both_ms, fwd_compile, both_compile = timings[impl]
            rows.append((name, steps, impl, fwd_ms, both_ms, both_ms / timings["im2col"][1],
                         fwd_compile, both_compile))

    device = jax.devices()[0]
    print(f"convolution: im2col + einsum vs lax.conv_general_dilated; median of {args.repeats} "
          f"runs (1 when a run takes > {SLOW_RUN:g} s); jax {jax.__version__} on "
          f"{device.platform} ({device.device_kind}); impl='auto' picks "
          f"{jl.nn.conv_impl('auto')!r} here")
    print("| model | steps | impl | forward (ms/step) | forward + backward (ms/step) "
          "| fwd+bwd / im2col | compile fwd (s) | compile fwd+bwd (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, steps, impl, fwd_ms, both_ms, ratio, c_fwd, c_both in rows:
        print(f"| {name} | {steps} | {impl} | {fwd_ms:.3f} | {both_ms:.3f} | {ratio:.2f}x "
              f"| {c_fwd:.2f} | {c_both:.2f} |")
    print()
    for name, diff in checks.items():
        print(f"check {name}: max |grad im2col - grad xla| / max |grad xla| = {diff:.1e} "
              f"(tolerance {CHECK_TOL:.0e})")
    failed = [name for name, diff in checks.items() if not diff <= CHECK_TOL]
    if failed:
        raise SystemExit(f"the two convolutions disagree on {failed}")


if __name__ == "__main__":
    main()
