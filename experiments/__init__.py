"""The course's claims as experiments, one module each.

Every module here defines ``CLAIM`` (the lecture's claim, one sentence) and
``run(*, quick=False, seeds=3, progress=None) -> jaxlearn.report.Outcome``. ``progress``, when
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
         "adversarial", "shortcut_token", "erased_object", "uncertainty_shift", "saliency_sanity",
         # Learning with few labels (issue 5).
         "transfer", "augmentation", "few_shot", "taxonomy")


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
