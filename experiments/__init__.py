"""The course's claims as experiments, one module each.

Every module here defines ``CLAIM`` (the lecture's claim, one sentence) and
``run(*, quick=False, seeds=None, seed_offset=0, progress=None) -> jaxlearn.report.Outcome``.
``seeds`` is how many seeds each measurement uses (``None``: the experiment's own default for the
mode, chosen so that its checks can decide within the time budget stated in its docstring);
the seeds are ``seed_offset, ..., seed_offset + seeds - 1`` (:func:`seed_list`), so a second
run with another ``seed_offset`` repeats the experiment on fresh randomness. ``progress``, when
given, is called as ``progress(done, total)`` as the experiment advances. The command line
(``jaxlearn list / run / reproduce``) discovers them with :func:`discover`.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

# Order of the lecture; modules not listed here are appended alphabetically.
ORDER = ("unit_circle", "representations", "gradient_descent", "sgd", "xor",
         "universal_approximation", "backprop", "losses", "ridge", "dropout", "mnist1d",
         "data_needs", "compute_cost",
         # The limits (issue 4): black boxes that can be fooled, shortcuts, honest uncertainty.
         "adversarial", "adversarial_training", "shortcut_token", "erased_object",
         "uncertainty_shift", "conformal_prediction", "saliency_sanity",
         "attribution_faithfulness",
         # Learning with few labels (issue 5).
         "transfer", "augmentation", "few_shot", "taxonomy")


def seed_list(seeds: int | None, seed_offset: int = 0, *, quick: bool,
              default: tuple[int, int] = (2, 3)) -> tuple[int, ...]:
    """The seed values an experiment runs: ``seeds`` of them from ``seed_offset`` on.

    ``seeds=None`` takes the experiment's ``default``: ``(quick, full)`` counts.

    >>> seed_list(None, quick=True), seed_list(3, 100, quick=False)
    ((0, 1), (100, 101, 102))
    """
    n = (default[0] if quick else default[1]) if seeds is None else seeds
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`seeds` must be None or an int >= 1, got {seeds!r}")
    if isinstance(seed_offset, bool) or not isinstance(seed_offset, int) or seed_offset < 0:
        raise ValueError(f"`seed_offset` must be an int >= 0, got {seed_offset!r}")
    return tuple(range(seed_offset, seed_offset + n))


def discover() -> dict[str, ModuleType]:
    """All experiment modules of this package, by name, in the lecture's order."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "run") and hasattr(module, "CLAIM"):
            found[info.name] = module
    ordered = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    return {n: found[n] for n in ordered}
