"""Are the full report's verdicts stable? The full ``jaxlearn reproduce`` twice, two seed offsets.

    python benchmarks/verdict_stability.py                        # offsets 0 and 100, full mode
    python benchmarks/verdict_stability.py --offsets 0 100 --only sgd xor
    python benchmarks/verdict_stability.py --compare DIR_A DIR_B  # two existing results folders

Each run uses fresh randomness for every seed (``--seed-offset``: seeds ``K, K+1, ...``). The
script prints one row per check: the verdict and the mean with its 95% interval in each run, and
whether the verdicts agree. It exits 1 if any check's verdict differs between the runs, or if any
check of a claim is "does not hold" in both (a claim the report calls stable must hold in both).
Findings that the report states as not holding on our data are listed, not hidden.

The full report takes tens of minutes on a 2-core CPU, so the test suite never runs this (a
nightly-style check); the figures of a run go to ``benchmarks/RESULTS.md`` by hand.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(offset: int, out: Path, quick: bool, only: list[str] | None) -> float:
    cmd = [sys.executable, "-m", "jaxlearn.cli"]
    cmd += ["run", *only] if only else ["reproduce"]
    cmd += ["--seed-offset", str(offset), "--no-progress", "--out", str(out)]
    cmd += ["--quick"] if quick else []
    start = time.perf_counter()
    subprocess.run(cmd, check=False)
    return time.perf_counter() - start


def _checks(folder: Path) -> dict[tuple[str, str], dict]:
    results = json.loads((folder / "results.json").read_text())
    found = {}
    for e in results["experiments"]:
        if e.get("error"):
            found[(e["name"], "(experiment failed)")] = {"verdict": "failed"}
        for c in e["checks"]:
            found[(e["name"], c["what"])] = c
    return found


def _measured(c: dict | None) -> str:
    if c is None:
        return "missing"
    if "ci" in c:
        lo, hi = c["ci"]
        return f"{c['value']:.4g} [{lo:.3g}, {hi:.3g}] n={c['n']}"
    return f"{c.get('value', float('nan')):.4g} ({c.get('kind', '?')})"


def compare(a: Path, b: Path) -> int:
    ca, cb = _checks(a), _checks(b)
    rows, unstable, failing = [], [], []
    for key in list(ca) + [k for k in cb if k not in ca]:
        va, vb = (c.get(key, {}).get("verdict", "missing") for c in (ca, cb))
        same = va == vb
        rows.append((key[0], key[1], va, _measured(ca.get(key)), vb, _measured(cb.get(key)),
                     "yes" if same else "NO"))
        if not same:
            unstable.append(key)
        elif va in ("does not hold", "failed"):
            failing.append(key)
    print(f"| experiment | check | verdict ({a.name}) | measured | verdict ({b.name}) | measured "
          "| same |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |")
    n = len(rows)
    print(f"\n{n - len(unstable)}/{n} checks give the same verdict in both runs; "
          f"{sum(r[2] == 'holds' and r[4] == 'holds' for r in rows)} hold in both; "
          f"{sum(r[2] == 'inconclusive' and r[4] == 'inconclusive' for r in rows)} inconclusive "
          f"in both; {len(failing)} do not hold (or failed) in both.")
    for key in unstable:
        print(f"UNSTABLE: {key[0]}: {key[1]}")
    for key in failing:
        print(f"DOES NOT HOLD in both runs: {key[0]}: {key[1]}")
    return 1 if unstable or failing else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offsets", type=int, nargs=2, default=(0, 100))
    parser.add_argument("--only", nargs="+", default=None, help="experiment names")
    parser.add_argument("--quick", action="store_true", help="quick mode (for a smoke test)")
    parser.add_argument("--out", default=None, help="folder for the two runs (default: temp)")
    parser.add_argument("--compare", nargs=2, type=Path, default=None, metavar="DIR")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    root = Path(args.out or tempfile.mkdtemp(prefix="jaxlearn-stability-"))
    folders = [root / f"offset{k}" for k in args.offsets]
    for k, folder in zip(args.offsets, folders):
        seconds = _run(k, folder, args.quick, args.only)
        print(f"seed offset {k}: {seconds:.0f} s -> {folder}", file=sys.stderr)
    return compare(*folders)


if __name__ == "__main__":
    sys.exit(main())
