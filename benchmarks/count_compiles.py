"""How many XLA programs each test file (or experiment) compiles, and how long that takes.

    python benchmarks/count_compiles.py                        # every test file, one pytest session
    python benchmarks/count_compiles.py tests/test_nn.py -k conv   # any pytest arguments
    python benchmarks/count_compiles.py --experiments [--full] [NAME ...]   # the experiments

Almost all of the suite's and the quick report's time is XLA compilation, so this is the number to
cut. The counts come from JAX's own monitoring events, not from timing:

- ``programs``: executables JAX asked XLA for (``/jax/core/compile/backend_compile_duration``);
- ``from cache``: of those, how many were read from the persistent compilation cache
  (``/jax/compilation_cache/cache_hits``); the rest were compiled;
- ``compile s``: seconds in XLA compilation, cache reads included; ``trace+lower s``: seconds
  tracing Python to jaxprs and lowering them to StableHLO, which the persistent cache does not
  save;
- ``wall s``: the file's (or experiment's) wall time.

Test files share one pytest session, as in ``python -m pytest``: a program that an earlier file
compiled is not compiled again, so a file's count is what it adds to the suite. Programs compiled
while pytest imports the test modules are shown as ``(collection)``.

By default the persistent cache is off (``JAXLEARN_NO_COMPILATION_CACHE=1``), so the counts are
those of a cold run; ``--warm`` keeps it on (``$JAXLEARN_CACHE_DIR``) and shows what a warm run
still compiles.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_COMPILE = "/jax/core/compile/backend_compile_duration"
_HIT = "/jax/compilation_cache/cache_hits"
_TRACE = ("/jax/core/compile/jaxpr_trace_duration",
          "/jax/core/compile/jaxpr_to_mlir_module_duration")


class Counter:
    """Sums JAX's compile events into the bucket named by ``current``."""

    def __init__(self):
        import jax.monitoring

        self.current = "(collection)"
        self.rows = defaultdict(lambda: {"programs": 0, "from cache": 0, "compile s": 0.0,
                                         "trace+lower s": 0.0, "wall s": 0.0})
        jax.monitoring.register_event_duration_secs_listener(self._duration)
        jax.monitoring.register_event_listener(self._event)

    def _duration(self, event, duration, **_):
        if event == _COMPILE:
            self.rows[self.current]["programs"] += 1
            self.rows[self.current]["compile s"] += duration
        elif event in _TRACE:
            self.rows[self.current]["trace+lower s"] += duration

    def _event(self, event, **_):
        if event == _HIT:
            self.rows[self.current]["from cache"] += 1

    def table(self, label: str) -> str:
        cols = ["programs", "from cache", "compile s", "trace+lower s", "wall s"]
        lines = [f"| {label} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        total = defaultdict(float)
        ordered = sorted(self.rows.items(), key=lambda kv: -kv[1]["compile s"])
        for name, row in ordered:
            cells = [f"{row[c]:.1f}" if c.endswith(" s") else str(row[c]) for c in cols]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
            for c in cols:
                total[c] += row[c]
        cells = [f"{total[c]:.1f}" if c.endswith(" s") else str(int(total[c])) for c in cols]
        lines.append("| **total** | " + " | ".join(f"**{c}**" for c in cells) + " |")
        return "\n".join(lines)


class _PytestPlugin:
    """Points the counter at the file of the test that is running."""

    def __init__(self, counter: Counter):
        self.counter = counter
        self._start = None

    def pytest_runtest_protocol(self, item, nextitem):
        self.counter.current = item.nodeid.split("::")[0]
        self._start = time.perf_counter()

    def pytest_runtest_logfinish(self, nodeid, location):
        if self._start is not None:
            self.counter.rows[self.counter.current]["wall s"] += time.perf_counter() - self._start
            self._start = None
        self.counter.current = "(between tests)"


def _tests(pytest_args: list[str]) -> int:
    import pytest

    counter = Counter()
    start = time.perf_counter()
    # -n 0: in this process (the counter sees no worker processes).
    code = pytest.main(["-q", "-p", "no:cacheprovider", "-n", "0", *pytest_args],
                       plugins=[_PytestPlugin(counter)])
    print(f"\npytest exit code {int(code)}, {time.perf_counter() - start:.0f} s wall\n")
    print(counter.table("test file"))
    return int(code)


def _experiments(names: list[str], quick: bool, seeds: int | None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import experiments

    counter = Counter()
    found = experiments.discover()
    unknown = sorted(set(names) - set(found))
    if unknown:
        print(f"unknown experiments: {', '.join(unknown)}; known: {', '.join(found)}")
        return 2
    kwargs = {"quick": quick}
    if seeds is not None:
        kwargs["seeds"] = seeds
    elif quick:
        kwargs["seeds"] = 2  # what `jaxlearn reproduce --quick` uses
    for name, module in found.items():
        if names and name not in names:
            continue
        counter.current = name
        start = time.perf_counter()
        module.run(**kwargs)
        counter.rows[name]["wall s"] = time.perf_counter() - start
        plt.close("all")
        print(f"{name}: {counter.rows[name]['programs']} programs, "
              f"{counter.rows[name]['compile s']:.1f} s compiling", flush=True)
    print()
    print(counter.table("experiment"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", action="store_true",
                        help="count per experiment (quick settings unless --full)")
    parser.add_argument("--full", action="store_true", help="experiments at full settings")
    parser.add_argument("--seeds", type=int, default=None, help="experiments: seeds each")
    parser.add_argument("--warm", action="store_true",
                        help="keep the persistent compilation cache on")
    args, rest = parser.parse_known_args(argv)
    if not args.warm:
        # Read by jaxlearn.enable_compilation_cache, which tests/conftest.py calls.
        os.environ["JAXLEARN_NO_COMPILATION_CACHE"] = "1"
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    if args.experiments:
        if args.warm:
            import jaxlearn as jl

            jl.enable_compilation_cache()
        return _experiments(rest, quick=not args.full, seeds=args.seeds)
    return _tests(rest or ["tests"])


if __name__ == "__main__":
    raise SystemExit(main())
