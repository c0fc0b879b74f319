"""The ``jaxlearn`` command: list, run and reproduce the course's experiments.

    jaxlearn list
    jaxlearn run NAME [NAME ...] [--quick] [--out DIR] [--seeds N] [--seed-offset K] [...]
    jaxlearn reproduce [--quick] [--out DIR] [--seeds N] [--seed-offset K] [--no-compilation-cache]

``reproduce`` runs every experiment with a progress bar each, and writes ``DIR/report.md``,
``DIR/report.html`` (figures embedded), one PNG per figure and ``DIR/results.json``. The report is
rewritten after each experiment, so an interrupted run keeps what it finished; an experiment that
raises is reported as failed and the others still run. Each figure is rendered to its PNG once,
when its experiment ends, and then closed.

``run`` and ``reproduce`` turn on JAX's persistent compilation cache
(:func:`jaxlearn.enable_compilation_cache`: ``$JAXLEARN_CACHE_DIR`` or the per-user cache folder),
so a second run loads its compiled programs instead of compiling them again;
``--no-compilation-cache`` (or ``JAXLEARN_NO_COMPILATION_CACHE=1``) turns it off.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence

from jaxlearn import report
from jaxlearn.compilation_cache import enable_compilation_cache


class _ArgumentError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxlearn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments and their claims")
    for name, help_ in (("run", "run the named experiments"),
                        ("reproduce", "run every experiment and write the report")):
        p = sub.add_parser(name, help=help_)
        if name == "run":
            p.add_argument("names", nargs="+", metavar="NAME")
        p.add_argument("--quick", action="store_true",
                       help="small settings: the whole reproduce takes minutes on a laptop CPU")
        p.add_argument("--out", default="results", help="output folder (default: results/)")
        p.add_argument("--seeds", type=int, default=None,
                       help="seeds per measurement (default: each experiment's own, enough "
                            "for its checks to decide in full mode, fewer with --quick)")
        p.add_argument("--seed-offset", type=int, default=0,
                       help="first seed (default 0): another offset reruns every experiment on "
                            "fresh randomness")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
        p.add_argument("--no-compilation-cache", action="store_true",
                       help="do not use the persistent XLA compilation cache (on by default; "
                            "$JAXLEARN_CACHE_DIR sets its folder)")
    return parser


def _check_out_dir(out: str) -> None:
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as err:
        raise _ArgumentError(
            f"--out {out!r} is not a writable folder: {err.strerror or err}") from err


def _progress_factory(enabled: bool):
    if not enabled:
        return lambda name: (lambda done, total: None), (lambda: None)
    from tqdm.auto import tqdm
    state = {}

    def make(name):
        bar = tqdm(desc=f"{name:<24}", unit="stage", leave=True, file=sys.stderr)
        state["bar"] = bar

        def progress(done, total):
            bar.total = total
            bar.n = done
            bar.refresh()

        return progress

    def close():
        if "bar" in state:
            state["bar"].close()

    return make, close


def _free_compiled_programs() -> None:
    """Drops the compiled programs that the experiment just ended left in memory.

    Each experiment builds its own models, so the next ones seldom reuse its programs (and a
    rerun reads them from the persistent compilation cache); kept, they pile up over a
    ``reproduce``: 3.2 GB peak memory for ``--quick``, against 1.3 GB when dropped after each
    experiment, for the same run time.
    """
    import jax

    from jaxlearn.train import clear_compile_cache

    clear_compile_cache()
    jax.clear_caches()
    gc.collect()


def run_experiments(names: Sequence[str], *, quick: bool, seeds: int | None, out: str,
                    progress: bool = True, seed_offset: int = 0) -> list[report.Outcome]:
    """Runs the named experiments, rewriting the report in ``out`` after each one.

    An experiment's figures are rendered to PNGs (and closed) as soon as it ends, and its compiled
    programs are dropped; a figure that fails to render fails its experiment, not the run.
    """
    import experiments
    available = experiments.discover()
    outcomes: list[report.Outcome] = []
    make_bar, close_bar = _progress_factory(progress)
    meta = {"mode": "quick" if quick else "full",
            "seeds": "each experiment's default" if seeds is None else seeds,
            "seed offset": seed_offset,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "python": platform.python_version()}
    from importlib import metadata

    import jax

    for package in ("jax", "jaxlib", "optax", "flax", "jaxlearn"):
        try:
            meta[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            meta[package] = "not installed"
    device = jax.devices()[0]
    meta["device"] = f"{device.platform} ({getattr(device, 'device_kind', '?')}), " \
                     f"{jax.device_count()} device(s)"
    run_start = time.perf_counter()
    for name in names:
        module = available[name]
        start = time.perf_counter()
        try:
            outcome = module.run(quick=quick, seeds=seeds, seed_offset=seed_offset,
                                 progress=make_bar(name))
            outcome.seconds = time.perf_counter() - start
            report.render_figures(outcome, out)
        except Exception:  # an experiment that fails is reported, the others still run
            outcome = report.Outcome(name=name, claim=module.CLAIM, checks=[],
                                     error=traceback.format_exc(),
                                     seconds=time.perf_counter() - start)
        finally:
            close_bar()
            _free_compiled_programs()
        outcomes.append(outcome)
        meta["total time"] = f"{time.perf_counter() - run_start:.1f} s"
        report.write_report(outcomes, out, meta=meta)
        print(f"{name}: {outcome.verdict} ({outcome.seconds:.1f} s)", file=sys.stderr)
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        import experiments
        available = experiments.discover()
        if args.command == "list":
            for name, module in available.items():
                print(f"{name:<24} {module.CLAIM}")
            return 0
        names = list(available) if args.command == "reproduce" else args.names
        unknown = [n for n in names if n not in available]
        if unknown:
            raise _ArgumentError(f"unknown experiment {unknown[0]!r}; `jaxlearn list` shows the "
                                 f"{len(available)} experiments: {', '.join(available)}")
        seeds = args.seeds
        if seeds is not None and seeds < 1:
            raise _ArgumentError(f"--seeds must be >= 1, got {seeds}")
        if args.seed_offset < 0:
            raise _ArgumentError(f"--seed-offset must be >= 0, got {args.seed_offset}")
        _check_out_dir(args.out)
    except _ArgumentError as err:
        print(f"jaxlearn: error: {err}", file=sys.stderr)
        return 2
    if not args.no_compilation_cache:
        enable_compilation_cache()
    outcomes = run_experiments(names, quick=args.quick, seeds=seeds, out=args.out,
                               progress=not args.no_progress, seed_offset=args.seed_offset)
    failed = [o.name for o in outcomes if o.verdict == "failed"]
    print(f"wrote {os.path.join(args.out, 'report.md')}, report.html, results.json; "
          f"{sum(o.verdict == 'holds' for o in outcomes)}/{len(outcomes)} claims hold"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
