"""Checks shared by the experiment tests (``test_experiments_*.py``): an experiment's outcome must
hold with evidence attached, and its progress callback must run from 0 to 100 % without going
back. Imported as a plain module (pytest puts ``tests/`` on ``sys.path``)."""

import math

import numpy as np

from jaxlearn.report import Outcome


def check_outcome(outcome: Outcome, name: str, *, min_checks: int = 2) -> None:
    """The claim holds, on evidence: at least ``min_checks`` measured checks, each a finite
    number that passes its threshold, with the figures and tables that show them."""
    assert isinstance(outcome, Outcome)
    assert outcome.name == name
    assert outcome.error is None
    assert len(outcome.checks) >= min_checks, [c.as_dict() for c in outcome.checks]
    for c in outcome.checks:
        assert np.ndim(c.value) == 0 and math.isfinite(float(c.value)), c.as_dict()
    failed = [(c.what, c.value, c.op, c.threshold) for c in outcome.checks if not c.passed]
    assert outcome.verdict == "holds", failed
    assert outcome.figures and outcome.tables


def progress_recorder():
    """``(calls, progress)``: ``progress(done, total)`` appends to ``calls``."""
    calls = []
    return calls, lambda done, total: calls.append((done, total))


def check_progress(calls):
    assert calls, "progress was never called"
    assert calls[-1][0] == calls[-1][1]                          # ends at 100 %
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)  # never goes back
