"""Time to value: the test suite and the quick report, with a cold and a warm compilation cache.

    python benchmarks/bench_suite.py                      # both, cold then warm
    python benchmarks/bench_suite.py --only tests         # just `python -m pytest -q`
    python benchmarks/bench_suite.py --only reproduce     # just `jaxlearn reproduce --quick`
    python benchmarks/bench_suite.py --pytest-args "tests/test_nn.py -x"

Each command runs twice in a fresh ``JAXLEARN_CACHE_DIR`` (a temporary folder, deleted at the end):
the first run compiles every XLA program and writes it to the persistent compilation cache
(*cold*, as in a fresh clone), the second reads them back (*warm*, as in every later run). The
table gives wall seconds, the peak resident memory of the largest process, the size of the cache
and the exit code. Issue 12's targets on a 2-core machine: tests 10 min cold / 4 warm, the quick
report 3 min cold / 1 warm.

It takes as long as the commands it times (tens of minutes on 2 cores), so the test suite never
runs it; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs a command and prints the peak RSS (KiB on Linux) of its largest descendant, last line.
_PEAK = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
         "sys.exit(rc)")


def _folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """(wall seconds, peak MiB, exit code); output goes to ``log``."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-c", _PEAK, *cmd], cwd=ROOT, env=env,
                              stdout=out, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    lines = proc.stderr.strip().splitlines()
    with open(log, "a") as out:
        out.write("\n".join(lines[:-1]))
    peak_mb = int(lines[-1]) / 1024 if lines and lines[-1].isdigit() else float("nan")
    return wall, peak_mb, proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("tests", "reproduce"), default=None)
    parser.add_argument("--pytest-args", default="-q", help="arguments for `python -m pytest`")
    parser.add_argument("--runs", type=int, default=2,
                        help="runs per command in the same cache: 1 cold, then warm (default 2)")
    args = parser.parse_args(argv)

    commands = {}
    if args.only in (None, "tests"):
        commands["python -m pytest " + args.pytest_args] = [
            sys.executable, "-m", "pytest", *shlex.split(args.pytest_args)]
    if args.only in (None, "reproduce"):
        commands["jaxlearn reproduce --quick"] = [
            sys.executable, "-m", "jaxlearn.cli", "reproduce", "--quick", "--no-progress"]

    logs = Path(tempfile.gettempdir()) / "jaxlearn-bench-suite"
    logs.mkdir(exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="jaxlearn-bench-") as tmp:
        for label, cmd in commands.items():
            cache = Path(tmp) / f"cache-{len(rows)}"
            env = dict(os.environ, JAXLEARN_CACHE_DIR=str(cache))
            env.pop("JAXLEARN_NO_COMPILATION_CACHE", None)
            for run in range(args.runs):
                out = Path(tmp) / f"out-{len(rows)}"
                full = [*cmd, "--out", str(out)] if "reproduce" in cmd else cmd
                log = logs / f"run-{len(rows)}.log"
                wall, peak, code = _timed(full, env, log)
                state = "cold" if run == 0 else "warm"
                rows.append((label, state, wall, peak, _folder_mb(cache), code))
                print(f"{label} ({state}): {wall:.0f} s, exit {code}, log {log}", flush=True)

    print()
    print(f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}")
    print()
    print("| command | cache | wall (min:s) | peak memory (MiB) | cache size (MiB) | exit |")
    print("|---|---|---|---|---|---|")
    for label, state, wall, peak, size, code in rows:
        print(f"| `{label}` | {state} | {int(wall // 60)}:{wall % 60:04.1f} | {peak:.0f} | "
              f"{size:.0f} | {code} |")
    return max((r[-1] for r in rows), default=0)


if __name__ == "__main__":
    raise SystemExit(main())
