"""Benchmark: the medical cases' 2-D CNN on data of DermaMNIST's real sizes, on this machine.

Issue 17 asks that a 28x28x3 DermaMNIST (10,015 images: 7007 train, 1003 val, 2005 test) or its
64x64 variant train on a 2-core CPU in minutes, within the memory check. Without a network the
real file is not here, so this writes a fake one of exactly the real shapes and dtypes
(``tests/fake_data.write_fake_medmnist``: uint8 images, the real keys) and measures, per size:

- **load**: ``jl.datasets.load_medmnist`` (``verify=False``: a fake file has no published MD5), its
  decoded float32 size against ``jl.datasets.memory_budget()`` (``check_fits`` passes or the
  row says it refused);
- **fit**: ``jl.fit`` of ``experiments.real_data.cnn(7)`` with Adam, batch 128, ``--steps``
  steps on the 7007 training images: compile and train seconds, steps per second, the full
  mode's 2000 steps extrapolated, and test accuracy (the fake classes differ in mean colour, so
  it should be near 1: a sanity check that the run learnt);
- **peak memory** of the process (``ru_maxrss``) after each size.

Run:  python benchmarks/bench_real_sizes.py [--sizes 28 64] [--steps 300]
      python benchmarks/bench_real_sizes.py --sizes 28 --steps 20 --n 700 100 200  (smoke run)
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

import jax
import optax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from fake_data import write_fake_medmnist  # noqa: E402

import jaxlearn as jl  # noqa: E402
from experiments.real_data import cnn  # noqa: E402

FULL_STEPS = 2000     # experiments.real_data's full mode


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(size: int, n: tuple[int, int, int], steps: int, folder: str) -> dict:
    path = write_fake_medmnist(folder, flag="dermamnist", size=size, n=n, n_channels=3,
                               n_classes=7, seed=0)
    start = time.perf_counter()
    data = jl.datasets.load_medmnist(path, verify=False)     # a fake file: no published MD5
    load_s = time.perf_counter() - start
    decoded = sum(a.nbytes for a in data)
    model = cnn(7)
    _, params = model.init(jax.random.key(0), data.x_train.shape[1:])
    result = jl.fit(model.apply, params, data.x_train, data.y_train,
                    loss="softmax_cross_entropy_with_integer_labels",
                    optimizer=optax.adam(1e-3), key=jax.random.key(1), batch_size=128,
                    steps=steps)
    accuracy = jl.evaluate(model.apply, result.params, data.x_test, data.y_test)["accuracy"]
    return {"size": size, "n": n, "load_s": load_s, "decoded_mib": decoded / 2 ** 20,
            "budget_mib": jl.datasets.memory_budget() / 2 ** 20,
            "compile_s": result.compile_time, "train_s": result.train_time,
            "steps": steps, "accuracy": float(accuracy), "peak_mib": _peak_mib()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 64])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--n", type=int, nargs=3, default=[7007, 1003, 2005],
                        metavar=("TRAIN", "VAL", "TEST"))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            rows.append(measure(size, tuple(args.n), args.steps, folder))
    print(f"device: {jax.devices()[0].platform}, {os.cpu_count()} cores; "
          f"{args.n[0]} training images, batch 128, Adam")
    print("| image | load s | decoded MiB | memory budget MiB | compile s | train s "
          "| steps/s | 2000 steps, est. s | test accuracy | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rate = r["steps"] / r["train_s"]
        print(f"| {r['size']}x{r['size']}x3 | {r['load_s']:.2f} | {r['decoded_mib']:.0f} "
              f"| {r['budget_mib']:.0f} | {r['compile_s']:.1f} | {r['train_s']:.1f} "
              f"| {rate:.1f} | {r['compile_s'] + FULL_STEPS / rate:.0f} "
              f"| {r['accuracy']:.3f} | {r['peak_mib']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
