"""Checks shared by the experiment tests (``test_experiments_*.py``): an experiment's outcome must
hold with evidence attached, and its progress callback must run from 0 to 100 % without going
back. Imported as a plain module (pytest puts ``tests/`` on ``sys.path``).

:func:`quick_run` runs each experiment's quick mode once per test session; the experiment's own
tests and the whole-report test in ``test_cli.py`` share that run (the runs are deterministic
functions of their seeds, so sharing changes nothing they check, and it saves running all 25
experiments twice).
"""

import math

import numpy as np

import experiments
from jaxlearn.cli import _free_compiled_programs
from jaxlearn.report import Outcome

_QUICK_RUNS: dict = {}
_DISCOVER = experiments.discover  # the real modules, even where a test replaces `discover`

#: Checks that do not hold on our data, in full runs at two seed offsets, and that their
#: experiment states as a finding in its notes: experiment -> the start of each check's ``what``.
#: A finding may read "does not hold" (or "inconclusive" on few quick seeds); nothing else may.
FINDINGS = {
    # tanh's error rises from width 32 to 128 (Adam, fixed steps): the optimiser's floor.
    "universal_approximation": ("tanh: log10 sup error, width",),
    "sgd": ("final training loss: momentum (lr 0.005) / plain SGD (lr 0.05), same effective step",),
    "saliency_sanity": ("gradient x input: rank correlation on the digit's pixels",
                        "integrated gradients: rank correlation on the digit's pixels"),
    # Partitioned training is ~1.5 points *worse* than direct on our stand-in (30 seeds, offsets
    # 0 and 100), against Esteva et al.'s +2.7 with 757 classes and an ImageNet-pretrained net.
    "taxonomy": ("3-way accuracy: partitioned - direct", "mean AUC: partitioned - direct"),
}


def is_finding(name: str, check) -> bool:
    """Whether ``check`` of experiment ``name`` is one of its stated :data:`FINDINGS`."""
    return any(check.what.startswith(prefix) for prefix in FINDINGS.get(name, ()))


def quick_run(name: str):
    """``(outcome, progress_calls)`` of ``run(quick=True)`` (the experiment's own quick seeds, as
    ``jaxlearn reproduce --quick`` runs it) for the experiment ``name``, computed on first use
    and shared for the rest of the session.

    Its compiled programs are dropped afterwards, as ``jaxlearn reproduce`` does. A consumer
    that renders the figures (the report test) moves them from ``outcome.figures`` to
    ``outcome.pngs``; :func:`check_outcome` accepts either.
    """
    if name not in _QUICK_RUNS:
        calls, progress = progress_recorder()
        try:
            outcome = _DISCOVER()[name].run(quick=True, progress=progress)
        finally:
            _free_compiled_programs()
        _QUICK_RUNS[name] = (outcome, calls)
    return _QUICK_RUNS[name]


def check_outcome(outcome: Outcome, name: str, *, min_checks: int = 2) -> None:
    """The claim holds on evidence, or stays inconclusive where a few quick seeds cannot decide:
    at least ``min_checks`` checks, each a finite number; a check over seeds holds or is
    inconclusive (never "does not hold"), every other check (an exact sanity check or a single
    measurement) holds, except the experiment's stated :data:`FINDINGS`, which must not hold (or
    stay inconclusive); at least one check besides the sanity checks; the figures and tables that
    show them exist."""
    assert isinstance(outcome, Outcome)
    assert outcome.name == name
    assert outcome.error is None
    assert len(outcome.checks) >= min_checks, [c.as_dict() for c in outcome.checks]
    for c in outcome.checks:
        assert np.ndim(c.value) == 0 and math.isfinite(float(c.value)), c.as_dict()
    findings = [c for c in outcome.checks if is_finding(name, c)]
    assert len(findings) == len(FINDINGS.get(name, ())), [c.what for c in findings]
    assert all(c.verdict in ("does not hold", "inconclusive") for c in findings), \
        [c.as_dict() for c in findings]
    wrong = [c.as_dict() for c in outcome.checks if not is_finding(name, c)
             and (c.verdict == "does not hold" or (c.kind != "interval" and not c.passed))]
    assert not wrong, wrong
    assert outcome.verdict in ("holds", "inconclusive") or findings
    assert any(c.kind != "sanity" for c in outcome.checks), "only sanity checks: no evidence"
    assert (outcome.figures or outcome.pngs) and outcome.tables


def progress_recorder():
    """``(calls, progress)``: ``progress(done, total)`` appends to ``calls``."""
    calls = []
    return calls, lambda done, total: calls.append((done, total))


def check_progress(calls):
    assert calls, "progress was never called"
    assert calls[-1][0] == calls[-1][1]                          # ends at 100 %
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)  # never goes back
