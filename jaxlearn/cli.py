"""The ``jaxlearn`` command: list, run and reproduce the course's experiments.

    jaxlearn list
    jaxlearn run NAME [NAME ...] [--quick] [--out DIR] [--seeds N] [--seed-offset K] [...]
    jaxlearn reproduce [--quick] [--out DIR] [--seeds N] [--seed-offset K] [--jobs J]
                       [--data DIR] [--no-compilation-cache]

``reproduce`` runs every experiment with a progress bar each, and writes ``DIR/report.md``,
``DIR/report.html`` (figures embedded), one PNG per figure and ``DIR/results.json``. With
``--data DIR`` the lecture's medical cases also run on the MedMNIST files in ``DIR``
(:mod:`experiments.real_data`). The report is
rewritten after each experiment, so an interrupted run keeps what it finished; an experiment that
raises is reported as failed and the others still run. Each figure is rendered to its PNG once,
when its experiment ends, and then closed.

On a CPU the experiments run in ``--jobs`` worker processes at once (default: one per core, at most
4; XLA compiles each program on one core, and compilation is most of a quick run's time). Each
experiment seeds its own keys, so its numbers do not depend on the process it ran in or on the
others (tested: a run with two workers gives bitwise the numbers of the in-process runs). On a
GPU or TPU the default is one job, in this process: several processes would each reserve the
accelerator's memory.

``run`` and ``reproduce`` turn on JAX's persistent compilation cache
(:func:`jaxlearn.enable_compilation_cache`: ``$JAXLEARN_CACHE_DIR`` or the per-user cache folder),
so a second run loads its compiled programs instead of compiling them again;
``--no-compilation-cache`` (or ``JAXLEARN_NO_COMPILATION_CACHE=1``) turns it off.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import gc
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from typing import NamedTuple

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
        p.add_argument("--jobs", type=int, default=None,
                       help="experiments run at once, each in its own worker process (default: "
                            "one per CPU core, at most 4, on a CPU; 1 on an accelerator)")
        p.add_argument("--data", default=None, metavar="DIR",
                       help="a folder of MedMNIST files (dermamnist.npz, pneumoniamnist.npz, or "
                            "their _64/_128/_224 sizes): the medical cases also run on them, "
                            "each right after its synthetic version; absent files are skipped")
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


def default_jobs() -> int:
    """Experiments run at once by default: one per CPU core, at most 4, when JAX runs on the CPU;
    1 on an accelerator (each process would reserve its memory)."""
    import jax

    if jax.default_backend() != "cpu":
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def _run_one(run, claim: str, name: str, data: str, *, quick: bool, seeds: int | None,
             seed_offset: int, out: str, progress) -> report.Outcome:
    """Runs one experiment (``run`` is its module's ``run``), renders its figures and drops its
    compiled programs; an experiment that raises (or whose figure cannot be rendered) comes back
    as a failed outcome. ``data`` names the experiment's data where its outcome does not."""
    start = time.perf_counter()
    try:
        outcome = run(quick=quick, seeds=seeds, seed_offset=seed_offset, progress=progress)
        outcome.seconds = time.perf_counter() - start
        outcome.data = outcome.data or data
        report.render_figures(outcome, out)
    except Exception:  # an experiment that fails is reported, the others still run
        outcome = report.Outcome(name=name, claim=claim, checks=[],
                                 error=traceback.format_exc(), data=data,
                                 seconds=time.perf_counter() - start)
    finally:
        _free_compiled_programs()
    return outcome


def _worker_init(cache_folder: str | None) -> None:
    if cache_folder is not None:
        enable_compilation_cache(cache_folder)


def _worker_run(run, claim: str, name: str, data: str, quick: bool, seeds: int | None,
                seed_offset: int, out: str) -> report.Outcome:
    """An experiment in a worker process; ``run`` is its module's ``run`` (sent by reference)."""
    return _run_one(run, claim, name, data, quick=quick, seeds=seeds, seed_offset=seed_offset,
                    out=out, progress=lambda done, total: None)


class _Job(NamedTuple):
    name: str        # the outcome's name in the report
    run: Callable    # run(*, quick, seeds, seed_offset, progress) -> Outcome
    claim: str
    data: str


def _jobs(names: Sequence[str], data_dir: str | None) -> tuple[list[_Job], list[str]]:
    """The experiments to run, each real-data case right after its synthetic twin, and one line
    per real-data case skipped because its files are absent from ``data_dir``."""
    import experiments
    from experiments import real_data

    available = experiments.discover()
    jobs, skipped = [], []
    for name in names:
        module = available[name]
        jobs.append(_Job(name, module.run, module.CLAIM, getattr(module, "DATA", "")))
        if data_dir is None or name not in real_data.CASES:
            continue
        if real_data.missing(name, data_dir):
            skipped.append(real_data.skip_note(name, data_dir))
        else:
            jobs.append(_Job(real_data.outcome_name(name),
                             functools.partial(real_data.run, name, data_dir),
                             f"{name} on the real files in {data_dir}", ""))
    return jobs, skipped


def _meta(quick: bool, seeds: int | None, seed_offset: int, jobs: int,
          data_dir: str | None) -> dict:
    from importlib import metadata

    import jax

    meta = {"mode": "quick" if quick else "full",
            "seeds": "each experiment's default" if seeds is None else seeds,
            "seed offset": seed_offset, "jobs": jobs,
            **({} if data_dir is None else {"real data": os.path.abspath(data_dir)}),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "python": platform.python_version()}
    for package in ("jax", "jaxlib", "optax", "flax", "jaxlearn"):
        try:
            meta[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            meta[package] = "not installed"
    device = jax.devices()[0]
    meta["device"] = f"{device.platform} ({getattr(device, 'device_kind', '?')}), " \
                     f"{jax.device_count()} device(s)"
    return meta


def run_experiments(names: Sequence[str], *, quick: bool, seeds: int | None, out: str,
                    progress: bool = True, seed_offset: int = 0, jobs: int = 1,
                    cache_folder: str | None = None,
                    data_dir: str | None = None) -> list[report.Outcome]:
    """Runs the named experiments, rewriting the report in ``out`` after each one.

    An experiment's figures are rendered to PNGs (and closed) as soon as it ends, and its compiled
    programs are dropped; a figure that fails to render fails its experiment, not the run. With
    ``jobs`` > 1 the experiments run in that many spawned worker processes (which use the
    compilation cache in ``cache_folder`` when given); the report keeps the order of ``names``
    and is rewritten as each experiment ends, whatever the order they end in. With ``data_dir``,
    each experiment that has a real-data case (:data:`experiments.real_data.CASES`) is followed
    by that case on the MedMNIST files in ``data_dir``, or by a "skipped" line when they are
    absent.
    """
    todo, skipped = _jobs(names, data_dir)
    jobs = max(1, min(jobs, len(todo)))
    meta = _meta(quick, seeds, seed_offset, jobs, data_dir)
    done: dict[str, report.Outcome] = {}
    run_start = time.perf_counter()

    def record(name: str, outcome: report.Outcome) -> None:
        done[name] = outcome
        meta["total time"] = f"{time.perf_counter() - run_start:.1f} s"
        report.write_report([done[j.name] for j in todo if j.name in done], out, meta=meta,
                            skipped=skipped)
        print(f"{name}: {outcome.verdict} ({outcome.seconds:.1f} s)", file=sys.stderr)

    for line in skipped:
        print(line, file=sys.stderr)
    if jobs == 1:
        make_bar, close_bar = _progress_factory(progress)
        for job in todo:
            try:
                outcome = _run_one(job.run, job.claim, job.name, job.data, quick=quick,
                                   seeds=seeds, seed_offset=seed_offset, out=out,
                                   progress=make_bar(job.name))
            finally:
                close_bar()
            record(job.name, outcome)
        return [done[j.name] for j in todo]

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(desc=f"{jobs} workers", total=len(todo), unit="experiment", file=sys.stderr)
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init, initargs=(cache_folder,))
    try:
        futures = {pool.submit(_worker_run, job.run, job.claim, job.name, job.data, quick, seeds,
                               seed_offset, out): job
                   for job in todo}
        for future in concurrent.futures.as_completed(futures):
            job = futures[future]
            try:
                outcome = future.result()
            except Exception:  # the worker process died (killed, out of memory): say so
                outcome = report.Outcome(name=job.name, claim=job.claim, checks=[],
                                         error="its worker process died:\n"
                                               + traceback.format_exc(), data=job.data,
                                         seconds=time.perf_counter() - run_start)
            record(job.name, outcome)
            if bar is not None:
                bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return [done[j.name] for j in todo]


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
        if args.jobs is not None and args.jobs < 1:
            raise _ArgumentError(f"--jobs must be >= 1, got {args.jobs}")
        if args.data is not None and not os.path.isdir(args.data):
            raise _ArgumentError(f"--data {args.data!r} is not a folder: give the folder that "
                                 "holds the MedMNIST .npz files (see the README)")
        _check_out_dir(args.out)
    except _ArgumentError as err:
        print(f"jaxlearn: error: {err}", file=sys.stderr)
        return 2
    cache_folder = None if args.no_compilation_cache else enable_compilation_cache()
    jobs = default_jobs() if args.jobs is None else args.jobs
    outcomes = run_experiments(names, quick=args.quick, seeds=seeds, out=args.out,
                               progress=not args.no_progress, seed_offset=args.seed_offset,
                               jobs=jobs, cache_folder=cache_folder, data_dir=args.data)
    failed = [o.name for o in outcomes if o.verdict == "failed"]
    print(f"wrote {os.path.join(args.out, 'report.md')}, report.html, results.json; "
          f"{sum(o.verdict == 'holds' for o in outcomes)}/{len(outcomes)} claims hold"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
