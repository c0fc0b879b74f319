"""Split conformal prediction for classification: prediction sets with a coverage guarantee.

A classifier's probabilities ``p(x) in [0, 1]^K`` are turned into a *set* of classes
``C(x) = {y : s(x, y) <= q_hat}`` by a score ``s`` (high means "y fits x badly") and a threshold
``q_hat`` fitted on ``n`` held-out calibration examples (Vovk et al. 2005; Angelopoulos & Bates
2021, "A Gentle Introduction to Conformal Prediction", section 1):

    q_hat = the k-th smallest of the calibration scores s(x_i, y_i),  k = ceil((n + 1)(1 - alpha))

(the ``ceil((n + 1)(1 - alpha)) / n`` empirical quantile: the finite-sample correction). If the
calibration and test examples are exchangeable (for instance i.i.d.), then for any model

    1 - alpha  <=  P(y_test in C(x_test))  <=  1 - alpha + 1 / (n + 1),

the upper bound when the scores have no ties (:func:`lac_scores` and randomised
:func:`aps_scores` / :func:`raps_scores` on continuous probabilities). The probability is over
the calibration set *and* the test point (marginal coverage), not per input; under distribution
shift (test inputs unlike the calibration ones) there is no guarantee at all. ``k <= n`` needs
``n >= 1 / alpha - 1`` calibration examples: with fewer, ``q_hat`` would be ``+inf`` (every set
is all ``K`` classes) and :func:`calibrate` refuses.

Scores (``[n, K]``: one per example and class):

* LAC, "score" in Angelopoulos & Bates (Sadinle et al. 2019): ``s(x, y) = 1 - p_y(x)``; the set
  keeps the classes with ``p_y >= 1 - q_hat`` (may be empty);
* APS (Romano et al. 2020): with the classes sorted by decreasing probability
  ``p_(1) >= p_(2) >= ...`` and ``y`` at rank ``r`` (1-based), ``s(x, y) = p_(1) + ... + p_(r)``,
  or randomised ``p_(1) + ... + p_(r-1) + u p_(r)`` with ``u ~ U[0, 1)`` per example;
* RAPS (Angelopoulos et al. 2021): APS plus ``lam * max(0, r - k_reg)``, a penalty on classes
  ranked beyond ``k_reg``; ``lam = 0`` is APS exactly.

Set rule: ``C(x) = {y : s(x, y) <= q_hat}`` for LAC and for randomised APS/RAPS (the exact
guarantee above). Non-randomised APS/RAPS (``key=None``) use Angelopoulos & Bates' rule: the
classes in rank order up to *and including* the first whose score exceeds ``q_hat``. This set
contains ``{y : s(x, y) <= q_hat}`` (so coverage is still ``>= 1 - alpha``), is never empty, and
is conservative: the upper bound does not hold. APS and RAPS sets are prefixes of the classes in
decreasing probability (the scores grow with the rank). Ties between probabilities are ranked by
class index (a stable sort).

Recipe: ``calibration = calibrate(probs_cal, y_cal, alpha=0.1, method="aps", key=k1)``, then
``sets = predict_sets(probs_test, calibration, key=k2)`` (a boolean ``[n, K]`` mask), then
:func:`coverage` and :func:`set_size`. Use different keys for calibration and test (split one).
The heavy parts are jitted; with a Python ``alpha``, the whole recipe also runs under ``jit`` and
``vmap`` (value checks are skipped on tracers), e.g. over many random calibration splits.

LAC with ``n = 4`` calibration examples at ``alpha = 0.2``: ``k = ceil(5 * 0.8) = 4``, the
largest calibration score::

    >>> probs_cal = jnp.array([[0.75, 0.25, 0.0], [0.5, 0.25, 0.25],
    ...                        [0.125, 0.875, 0.0], [0.25, 0.25, 0.5]])
    >>> y_cal = jnp.array([0, 1, 1, 2])                 # scores 1 - p_y: 0.25, 0.75, 0.125, 0.5
    >>> calibration = calibrate(probs_cal, y_cal, alpha=0.2)
    >>> calibration.threshold
    Array(0.75, dtype=float32)
    >>> predict_sets(jnp.array([[0.5, 0.375, 0.125]]), calibration)   # keeps p_y >= 0.25
    Array([[ True,  True, False]], dtype=bool)
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks, uncertainty
from jaxlearn._types import Array, PRNGKeyArray

METHODS = ("lac", "aps", "raps")
# Angelopoulos & Bates call LAC's 1 - p_y simply "the score"; both names are accepted.
_ALIASES = {"score": "lac"}


class Calibration(NamedTuple):
    """The conformal threshold and the settings it was fitted with (from :func:`calibrate`).

    Attributes:
      threshold: ``q_hat``, the ``k``-th smallest calibration score (a float scalar array).
      alpha: the miscoverage level; sets aim at coverage ``>= 1 - alpha``.
      method: ``"lac"``, ``"aps"`` or ``"raps"``.
      randomized: whether the APS/RAPS scores were randomised (a key was given).
      k_reg: RAPS's rank beyond which the penalty starts (0 for LAC and APS).
      lam: RAPS's penalty per rank beyond ``k_reg`` (0.0 for LAC and APS).
      n: number of calibration examples.
      k: ``ceil((n + 1)(1 - alpha))``, the order statistic taken.
      n_classes: ``K``; :func:`predict_sets` refuses probabilities with another ``K``.
    """

    threshold: Array
    alpha: float
    method: str
    randomized: bool
    k_reg: int
    lam: float
    n: int
    k: int
    n_classes: int


# ------------------------------------------------------------------------------------ checks

def _check_probs(name: str, probs: Any) -> Any:
    """Float ``[n, K >= 2]`` in ``[0, 1]``, rows summing to 1: the calibration metrics' checks."""
    return uncertainty._check_probs(name, probs, 2)


def _check_alpha(alpha: Any) -> Fraction:
    """``alpha`` in ``(0, 1)``, as the exact fraction of its decimal representation."""
    _checks.check_in_range("alpha", alpha, 0.0, 1.0, include_low=False)
    # str gives the shortest decimal that reads back as alpha (0.18, not 0.17999999999999999):
    # 18/100 exactly, so ceil((n + 1)(1 - alpha)) is not pushed up by one by float rounding.
    return Fraction(str(alpha))


def _rank(n: int, alpha: Fraction) -> int:
    return math.ceil((n + 1) * (1 - alpha))


def _check_enough(name: str, n: int, alpha: Any, alpha_exact: Fraction) -> int:
    """``n`` calibration examples must give ``k = ceil((n + 1)(1 - alpha)) <= n``; returns k."""
    k = _rank(n, alpha_exact)
    if k > n:
        n_min = math.ceil(1 / alpha_exact) - 1
        raise ValueError(f"`{name}` has n = {n} calibration examples, but alpha = {alpha} needs "
                         f"n >= {n_min} (n >= 1/alpha - 1): with fewer, ceil((n + 1)(1 - alpha)) "
                         f"= {k} > n and the conformal threshold is infinite (every set would "
                         "hold all classes); calibrate on more examples or raise alpha")
    return k


def _check_labels(name: str, y: Any, n_classes: int, probs_name: str, n: int) -> Any:
    y = _checks.as_array(name, y)
    _checks.check_ndim(name, y, 1)
    _checks.check_labels(name, y, n_classes)
    if y.shape[0] != n:
        raise ValueError(f"`{name}` has {y.shape[0]} labels but `{probs_name}` has {n} "
                         "examples; they must match")
    return y


def _check_method(method: Any) -> str:
    if not isinstance(method, str):
        raise TypeError(f"`method` must be a string, one of {list(METHODS)}, got "
                        f"{type(method).__name__} ({method!r})")
    method = _ALIASES.get(method, method)
    _checks.check_choice("method", method, METHODS)
    return method


def _check_penalty(method: str, k_reg: Any, lam: Any) -> tuple[int, float]:
    """RAPS needs ``k_reg >= 0`` (int) and ``lam >= 0``; the other methods take neither."""
    if method != "raps":
        if k_reg is not None or lam is not None:
            raise ValueError(f"`k_reg` and `lam` are RAPS's rank penalty; method={method!r} "
                             f"takes neither (got k_reg={k_reg!r}, lam={lam!r}); use "
                             "method='raps' (with lam=0 it equals APS)")
        return 0, 0.0
    if k_reg is None or lam is None:
        raise ValueError("method='raps' needs `k_reg` (an int >= 0: ranks up to k_reg are not "
                         f"penalised) and `lam` (>= 0: the penalty per rank beyond), got "
                         f"k_reg={k_reg!r}, lam={lam!r}")
    _checks.check_nonnegative("k_reg", k_reg, integer=True)
    _checks.check_nonnegative("lam", lam)
    return int(k_reg), float(lam)


def _check_score_key(method: str, key: Any) -> bool:
    """Whether the scores are randomised: APS/RAPS with a key. LAC takes no key."""
    if key is None:
        return False
    if method == "lac":
        raise ValueError("`key` randomises APS and RAPS scores; LAC's score 1 - p_y is "
                         "deterministic: pass key=None (or use method='aps' / 'raps')")
    _checks.check_key("key", key)
    return True


def _uniforms(key: PRNGKeyArray | None, n: int, dtype) -> Array:
    """``u ~ U[0, 1)`` per example, or zeros (unused) without a key."""
    if key is None:
        return jnp.zeros((n,), dtype)
    return jax.random.uniform(key, (n,), dtype)


# ------------------------------------------------------------------------------------- scores

# Up to this many classes the mass above each class is summed over a [n, K, K] comparison
# (fused by XLA); beyond it a sort is cheaper. On a CPU the comparison is ~3x faster at K = 10 and
# the two break even near K = 40.
_PAIRWISE_MAX_CLASSES = 32


def _mass_and_rank(probs: Array) -> tuple[Array, Array]:
    """``[n, K]`` each: ``p_(1) + ... + p_(r)`` and the 1-based rank ``r`` of every class, with the
    classes in decreasing probability, ties by class index (stable)."""
    n_classes = probs.shape[1]
    if n_classes <= _PAIRWISE_MAX_CLASSES:
        index = jnp.arange(n_classes)
        other, this = probs[:, None, :], probs[:, :, None]
        # at_or_above[i, y, j]: class j ranks at or above class y in row i.
        at_or_above = (other > this) | ((other == this)
                                        & (index[None, None, :] <= index[None, :, None]))
        mass = jnp.sum(jnp.where(at_or_above, other, 0.0), axis=2)
        return mass, jnp.sum(at_or_above, axis=2, dtype=jnp.int32)
    order = jnp.argsort(-probs, axis=1, stable=True)
    position = jnp.argsort(order, axis=1)
    mass = jnp.cumsum(jnp.take_along_axis(probs, order, axis=1), axis=1)
    return jnp.take_along_axis(mass, position, axis=1), (position + 1).astype(jnp.int32)


def _rank_scores(probs, u, k_reg, lam, randomized):
    """APS/RAPS scores ``[n, K]`` in class order, and the ranks."""
    mass, rank = _mass_and_rank(probs)
    if randomized:
        mass = (mass - probs) + u[:, None] * probs            # p_(1) + ... + p_(r-1) + u p_(r)
    return mass + lam * jnp.maximum(rank - k_reg, 0).astype(probs.dtype), rank


@functools.partial(jax.jit, static_argnames="randomized")
def _class_scores(probs, u, k_reg, lam, randomized):
    return _rank_scores(probs, u, k_reg, lam, randomized)[0]


def _scores(method: str, probs: Array, u: Array, k_reg: int, lam: float,
            randomized: bool) -> Array:
    if method == "lac":
        return 1.0 - probs
    return _class_scores(probs, u, k_reg, lam, randomized)


def lac_scores(probs: Array) -> Array:
    """LAC scores ``s(x, y) = 1 - p_y(x)`` (Sadinle et al. 2019; "score" in Angelopoulos & Bates).

    Args:
      probs: probabilities ``[n, K]``, rows summing to 1.

    Returns:
      ``[n, K]``, in ``[0, 1]``.
    """
    probs = _check_probs("probs", probs)
    return 1.0 - jnp.asarray(probs)


def aps_scores(probs: Array, *, key: PRNGKeyArray | None = None) -> Array:
    """APS scores (Romano et al. 2020): the probability mass ranked at or above each class.

    With the classes sorted by decreasing probability (ties by class index) and class ``y`` at
    rank ``r``: ``s(x, y) = p_(1) + ... + p_(r)``; with a key, the randomised score
    ``p_(1) + ... + p_(r-1) + u p_(r)``, ``u = jax.random.uniform(key, (n,))[i]`` for row ``i``
    (one ``u`` per example, shared by its classes). Deterministic given ``key``.

    Args:
      probs: probabilities ``[n, K]``.
      key: ``None`` for the non-randomised scores, or a ``jax.random`` key.

    Returns:
      ``[n, K]``, in ``[0, 1]`` up to float rounding; the top class scores ``p_(1)``
      (non-randomised) or ``u p_(1)``.
    """
    probs = jnp.asarray(_check_probs("probs", probs))
    randomized = _check_score_key("aps", key)
    return _class_scores(probs, _uniforms(key, probs.shape[0], probs.dtype), 0, 0.0, randomized)


def raps_scores(probs: Array, *, k_reg: int, lam: float,
                key: PRNGKeyArray | None = None) -> Array:
    """RAPS scores (Angelopoulos et al. 2021): APS plus ``lam * max(0, r - k_reg)``.

    ``r`` is the class's 1-based rank in decreasing probability (ties by class index). The
    penalty raises the scores of the classes ranked beyond ``k_reg``, so at the same threshold a
    RAPS set is a subset of the APS set (RAPS's remedy for APS's large sets on long, flat tails).
    ``lam = 0`` gives :func:`aps_scores` exactly (same key, same ``u``).

    Args:
      probs: probabilities ``[n, K]``.
      k_reg: ranks ``1 .. k_reg`` carry no penalty; an int ``>= 0``.
      lam: penalty per rank beyond ``k_reg``, ``>= 0``.
      key: ``None`` (non-randomised) or a ``jax.random`` key, as in :func:`aps_scores`.

    Returns:
      ``[n, K]`` scores.
    """
    probs = jnp.asarray(_check_probs("probs", probs))
    k_reg, lam = _check_penalty("raps", k_reg, lam)
    randomized = _check_score_key("raps", key)
    return _class_scores(probs, _uniforms(key, probs.shape[0], probs.dtype), k_reg, lam,
                         randomized)


# --------------------------------------------------------------------------------- threshold

@functools.partial(jax.jit, static_argnames="k")
def _kth_smallest(scores, k):
    return jnp.sort(scores)[k - 1]


def conformal_quantile(scores: Array, *, alpha: float) -> Array:
    """``q_hat``: the ``k``-th smallest of ``n`` scores, ``k = ceil((n + 1)(1 - alpha))``.

    The ``ceil((n + 1)(1 - alpha)) / n`` empirical quantile, the finite-sample correction that
    makes ``P(s_test <= q_hat) >= 1 - alpha`` for a score exchangeable with the ``n`` given ones:
    ``np.quantile(scores, k / n, method="inverted_cdf")`` (``method="higher"`` would take the
    ``(k + 1)``-th). ``k`` is computed exactly from ``alpha``'s decimal representation
    (``alpha = 0.18``, ``n = 149`` gives ``k = 123``; float arithmetic gives 124).

    Args:
      scores: calibration scores ``[n]`` (the score of each example's true label).
      alpha: miscoverage level in ``(0, 1)``, a Python number; needs ``n >= 1/alpha - 1``.

    Returns:
      A float scalar.

    >>> conformal_quantile(jnp.array([0.3, 0.1, 0.4, 0.2]), alpha=0.2)   # k = ceil(4) = 4
    Array(0.4, dtype=float32)
    """
    alpha_exact = _check_alpha(alpha)
    scores = _checks.check_features("scores", scores, ndim=1)
    k = _check_enough("scores", scores.shape[0], alpha, alpha_exact)
    return _kth_smallest(jnp.asarray(scores), k)


def calibrate(probs_cal: Array, y_cal: Array, *, alpha: float, method: str = "lac",
              k_reg: int | None = None, lam: float | None = None,
              key: PRNGKeyArray | None = None) -> Calibration:
    """Fits the conformal threshold ``q_hat`` on held-out calibration examples.

    Scores each example's true class with ``method`` and takes :func:`conformal_quantile` of
    them. The calibration set must not have been used for training (it would make the scores
    optimistic and the sets too small).

    Args:
      probs_cal: probabilities ``[n, K]`` of the calibration examples.
      y_cal: their integer labels ``[n]`` in ``[0, K)``.
      alpha: miscoverage level in ``(0, 1)`` (a Python number); needs ``n >= 1/alpha - 1``.
      method: ``"lac"`` (also ``"score"``), ``"aps"`` or ``"raps"``.
      k_reg, lam: RAPS's penalty (required for ``"raps"``, refused otherwise); see
        :func:`raps_scores`.
      key: APS/RAPS only: a key makes the scores randomised (exact coverage); ``None`` keeps them
        deterministic (conservative sets). :func:`predict_sets` then needs a key too, or none.

    Returns:
      A :class:`Calibration`.
    """
    method = _check_method(method)
    alpha_exact = _check_alpha(alpha)
    probs = jnp.asarray(_check_probs("probs_cal", probs_cal))
    n, n_classes = probs.shape
    y = jnp.asarray(_check_labels("y_cal", y_cal, n_classes, "probs_cal", n))
    k_reg, lam = _check_penalty(method, k_reg, lam)
    randomized = _check_score_key(method, key)
    k = _check_enough("probs_cal", n, alpha, alpha_exact)
    scores = _scores(method, probs, _uniforms(key, n, probs.dtype), k_reg, lam, randomized)
    true_scores = jnp.take_along_axis(scores, y[:, None], axis=1)[:, 0]
    return Calibration(_kth_smallest(true_scores, k), float(alpha), method, randomized, k_reg,
                       lam, n, k, n_classes)


# ----------------------------------------------------------------------------- prediction sets

@functools.partial(jax.jit, static_argnames="randomized")
def _aps_sets(probs, u, k_reg, lam, threshold, randomized):
    scores, rank = _rank_scores(probs, u, k_reg, lam, randomized)
    within = scores <= threshold
    if randomized:
        return within
    # The scores grow with the rank, so the classes within q_hat are ranks 1 .. m; keep them and
    # rank m + 1, the first beyond (rank 1 when none is within).
    return rank <= jnp.sum(within, axis=1, keepdims=True) + 1


def predict_sets(probs: Array, calibration: Calibration, *,
                 key: PRNGKeyArray | None = None) -> Array:
    """Prediction sets ``C(x)`` for new inputs, as a boolean mask ``[n, K]``.

    ``sets[i, y]`` is True when class ``y`` is in example ``i``'s set: ``s(x_i, y) <= q_hat`` for
    LAC and randomised APS/RAPS; for non-randomised APS/RAPS the classes in decreasing probability
    up to and including the first whose score exceeds ``q_hat`` (never empty). With exchangeable
    calibration and test data, ``P(y in C(x)) >= 1 - alpha`` (see the module docstring).

    Args:
      probs: probabilities ``[n, K]`` of the test inputs (the same ``K`` as the calibration).
      calibration: from :func:`calibrate`.
      key: required when the calibration was randomised (use another key than calibrate's),
        refused otherwise.

    Returns:
      Boolean ``[n, K]``.
    """
    if not isinstance(calibration, Calibration):
        raise TypeError("`calibration` must be a Calibration (from calibrate(...)), got "
                        f"{type(calibration).__name__}")
    probs = jnp.asarray(_check_probs("probs", probs))
    if probs.shape[1] != calibration.n_classes:
        raise ValueError(f"`probs` has {probs.shape[1]} classes (shape {tuple(probs.shape)}) but "
                         f"the calibration was fitted on {calibration.n_classes}")
    if calibration.randomized and key is None:
        raise ValueError("the calibration used randomised scores (a key was given to "
                         "calibrate), so predict_sets needs `key=` too; use a different key "
                         "from calibrate's, e.g. from jax.random.split")
    if not calibration.randomized and key is not None:
        raise ValueError("the calibration used deterministic scores (key=None), so `key` must be "
                         "None; to randomise, calibrate with a key")
    if key is not None:
        _checks.check_key("key", key)
    if calibration.method == "lac":
        return (1.0 - probs) <= calibration.threshold
    u = _uniforms(key, probs.shape[0], probs.dtype)
    return _aps_sets(probs, u, calibration.k_reg, calibration.lam, calibration.threshold,
                     calibration.randomized)


# ------------------------------------------------------------------------------- summaries

def _check_sets(sets: Any) -> Any:
    sets = _checks.as_array("sets", sets)
    if np.dtype(sets.dtype) != np.bool_:
        raise TypeError(f"`sets` must be a boolean mask [n, K] (from predict_sets), got dtype "
                        f"{sets.dtype}")
    _checks.check_ndim("sets", sets, 2)
    _checks.check_nonempty("sets", sets)
    return sets


def coverage(sets: Array, y: Array) -> Array:
    """Empirical coverage ``1/n sum_i [y_i in C(x_i)]``: the fraction of sets holding the label.

    Args:
      sets: boolean ``[n, K]`` from :func:`predict_sets`. y: integer labels ``[n]``.

    Returns:
      A float scalar in ``[0, 1]``.

    >>> coverage(jnp.array([[True, False], [True, True], [False, False]]), jnp.array([1, 1, 0]))
    Array(0.33333334, dtype=float32)
    """
    sets = _check_sets(sets)
    y = _check_labels("y", y, sets.shape[1], "sets", sets.shape[0])
    return _coverage(jnp.asarray(sets), jnp.asarray(y))


@jax.jit
def _coverage(sets, y):
    return jnp.mean(jnp.take_along_axis(sets, y[:, None], axis=1)[:, 0].astype(jnp.float32))


def set_size(sets: Array) -> Array:
    """Number of classes in each prediction set.

    Args:
      sets: boolean ``[n, K]``.

    Returns:
      Integer ``[n]`` in ``[0, K]`` (``jnp.mean`` of it is the average set size).
    """
    sets = _check_sets(sets)
    return jnp.sum(jnp.asarray(sets), axis=1, dtype=jnp.int32)
