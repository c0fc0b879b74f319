"""Stand-in experiments for the CLI's worker processes (tests/test_cli.py): module-level
functions, so that a spawned worker can import them by name."""

import os

from matplotlib.figure import Figure

from jaxlearn import report


def _holding(name):
    def run(*, quick=False, seeds=None, seed_offset=0, progress=None):
        fig = Figure()
        fig.subplots().plot([0, 1], [0, 1])
        return report.Outcome(name=name, claim=f"{name} claim",
                              checks=[report.Check("value", 1.0, ">=", 0.5)],
                              numbers={"pid": os.getpid()}, figures={"plot": fig})
    run.__name__ = run.__qualname__ = name  # pickled by reference: cli_workers.<name>
    return run


holds = _holding("holds")
also_holds = _holding("also_holds")


def dies(*, quick=False, seeds=None, seed_offset=0, progress=None):
    os._exit(3)  # a worker killed mid-experiment (out of memory, a signal)
