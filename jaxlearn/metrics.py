"""Evaluation metrics: accuracy, confusion matrix, precision / recall / F1, ROC and AUC, log loss
and Brier score.

All metrics are pure functions that reduce a whole evaluation set to a number (or a small array);
losses for training, one value per example, live in :mod:`jaxlearn.losses`. Every function except
:func:`roc_curve` can be called inside ``jit`` (static arguments: ``n_classes``, ``average``);
arguments are checked at the boundary, and values (label ranges, NaN, probabilities summing to 1)
only when they are concrete, i.e. outside ``jit``.

Conventions, chosen to match scikit-learn so the tests can compare against it:

* labels are integers ``0 .. n_classes - 1`` (a binary task uses ``{0, 1}``, 1 the positive class);
* a ratio whose denominator is zero is defined as 0 (sklearn's ``zero_division=0``);
* binary scores and logits are thresholded at 0, binary probabilities are ``P(y = 1)``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks
from jaxlearn._types import Array

# Rows of a probability matrix may sum to 1 up to this much: a float32 softmax over a few thousand
# classes is off by ~1e-6, so 1e-4 refuses real mistakes (unnormalised scores) and nothing else.
_SUM_TOLERANCE = 1e-4

_AVERAGES = ("macro", "micro", None)


# ------------------------------------------------------------------------------------ checks

def _check_labels_1d(name: str, y: Any, n_classes: int | None) -> Any:
    y = _checks.as_array(name, y)
    _checks.check_labels(name, y, n_classes)
    _checks.check_ndim(name, y, 1)
    _checks.check_nonempty(name, y)
    return y


def _check_scores(name: str, scores: Any, ndim: int | tuple[int, ...]) -> Any:
    scores = _checks.as_array(name, scores)
    _checks.check_float(name, scores)
    _checks.check_ndim(name, scores, ndim)
    _checks.check_nonempty(name, scores)
    if scores.ndim == 2 and scores.shape[1] == 0:
        raise ValueError(f"`{name}` has shape {tuple(scores.shape)}: no class column; need "
                         "[n, K >= 2] scores or [n] / [n, 1] binary ones")
    _checks.check_finite(name, scores)
    return scores


def _is_binary(scores: Any) -> bool:
    """``[n]`` and ``[n, 1]`` hold one score per sample (binary); ``[n, K >= 2]`` is multi-class."""
    return scores.ndim == 1 or scores.shape[1] == 1


def _check_probabilities(name: str, probabilities: Any) -> Any:
    """Float ``[n]`` / ``[n, 1]`` (P(y = 1)) or ``[n, K]`` (rows on the simplex) in [0, 1]."""
    p = _check_scores(name, probabilities, (1, 2))
    if not _checks.is_concrete(p):
        return p
    arr = np.asarray(p, dtype=np.float64)
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError(f"`{name}` must hold probabilities in [0, 1], got values in "
                         f"[{arr.min():.6g}, {arr.max():.6g}]; pass logits to `accuracy` or "
                         "apply softmax / sigmoid first")
    if not _is_binary(p):
        sums = arr.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > _SUM_TOLERANCE)
        if bad.size:
            raise ValueError(f"`{name}` rows must sum to 1 (a distribution over the "
                             f"{p.shape[1]} classes), but row {bad[0]} sums to {sums[bad[0]]:.6g} "
                             f"({bad.size} bad row(s))")
    return p


def _check_classification(name: str, scores: Any, y: Any, *, probabilities: bool):
    """Checks ``scores`` / ``probabilities`` against integer labels ``y``; returns both."""
    scores = (_check_probabilities(name, scores) if probabilities
              else _check_scores(name, scores, (1, 2)))
    y = _check_labels_1d("y", y, 2 if _is_binary(scores) else scores.shape[1])
    _checks.check_same_length(name, scores, "y", y)
    return scores, y


def _float(x: Array) -> Array:
    """Counts as the default float dtype (float32, or float64 under ``jax_enable_x64``)."""
    return jnp.asarray(x, dtype=jnp.result_type(float))


def _safe_divide(numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator`` with ``0 / 0 = 0`` (no NaN, and no NaN in the gradient)."""
    numerator, denominator = _float(numerator), _float(denominator)
    nonzero = denominator != 0
    return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1.0), 0.0)


# ---------------------------------------------------------------------------------- accuracy

def accuracy(logits_or_scores: Array, y: Array) -> Array:
    """Fraction of correctly classified samples.

    The prediction rule depends on the shape of ``logits_or_scores``:

    * ``[n, K]`` with ``K >= 2`` (multi-class logits, or probabilities): ``argmax_k``; a tie goes
      to the lowest class index. Labels ``y`` lie in ``[0, K)``.
    * ``[n]`` or ``[n, 1]`` (one logit / score per sample, binary): class 1 iff the score is
      ``> 0`` (a logit of 0 is P = 1/2 and goes to class 0). Labels ``y`` lie in ``{0, 1}``.
      For binary *probabilities* pass ``p - 0.5``.

    Args:
      logits_or_scores: float ``[n, K]``, ``[n]`` or ``[n, 1]``.
      y: integer labels ``[n]``.

    Returns:
      A float scalar in ``[0, 1]``: ``mean_i [prediction_i == y_i]``.

    >>> accuracy(jnp.array([[2., 1.], [0., 3.]]), jnp.array([0, 0]))
    Array(0.5, dtype=float32)
    """
    scores, y = _check_classification("logits_or_scores", logits_or_scores, y,
                                      probabilities=False)
    return _accuracy(scores, y)


@jax.jit
def _accuracy(scores: Array, y: Array) -> Array:
    if _is_binary(scores):
        predictions = (scores.reshape(-1) > 0).astype(y.dtype)
    else:
        predictions = jnp.argmax(scores, axis=1)
    return jnp.mean(_float(predictions == y))


# ------------------------------------------------------------------------- confusion matrix

def confusion_matrix(y_true: Array, y_pred: Array, n_classes: int) -> Array:
    """Confusion matrix ``C[i, j]`` = number of samples of true class ``i`` predicted as ``j``.

    Rows are true classes, columns predicted classes (sklearn's convention), so
    ``C.sum(1)`` counts the true classes, ``C.sum(0)`` the predictions and ``trace(C) / n`` is the
    accuracy.

    Args:
      y_true: integer labels ``[n]`` in ``[0, n_classes)``.
      y_pred: integer predictions ``[n]`` in ``[0, n_classes)`` (e.g. ``argmax`` of logits).
      n_classes: ``K``, a Python int (static under ``jit``).

    Returns:
      ``int32 [K, K]``; classes absent from both arrays give a zero row and column.
    """
    _checks.check_positive("n_classes", n_classes, integer=True)
    y_true = _check_labels_1d("y_true", y_true, n_classes)
    y_pred = _check_labels_1d("y_pred", y_pred, n_classes)
    _checks.check_same_length("y_true", y_true, "y_pred", y_pred)
    return _confusion_matrix(y_true, y_pred, n_classes)


@functools.partial(jax.jit, static_argnums=2)
def _confusion_matrix(y_true: Array, y_pred: Array, n_classes: int) -> Array:
    return jnp.zeros((n_classes, n_classes), jnp.int32).at[y_true, y_pred].add(1)


def precision_recall_f1(y_true: Array, y_pred: Array, n_classes: int, *,
                        average: str | None = "macro") -> tuple[Array, Array, Array]:
    """Precision, recall and F1 score, per class or averaged.

    For class ``k`` with ``TP_k`` true positives, ``FP_k`` false positives, ``FN_k`` false
    negatives (read off :func:`confusion_matrix`)::

        precision_k = TP_k / (TP_k + FP_k)      recall_k = TP_k / (TP_k + FN_k)
        F1_k = 2 precision_k recall_k / (precision_k + recall_k) = 2 TP_k / (2 TP_k + FP_k + FN_k)

    and any ``0 / 0`` is **0** (a class never predicted has precision 0, one never present
    recall 0), like sklearn's ``zero_division=0``.

    Args:
      y_true: integer labels ``[n]`` in ``[0, n_classes)``.
      y_pred: integer predictions ``[n]`` in ``[0, n_classes)``.
      n_classes: ``K``; every class ``0 .. K-1`` counts, also one absent from both arrays.
      average: ``None`` returns the per-class values ``[K]``; ``"macro"`` their unweighted mean
        (F1 is the mean of the ``F1_k``, not the F1 of the means); ``"micro"`` pools the counts
        of all classes first, which for single-label data equals the accuracy for all three.

    Returns:
      ``(precision, recall, f1)``: three float scalars, or three ``[K]`` arrays if ``average`` is
      ``None``. Equal to ``sklearn.metrics.precision_recall_fscore_support(y_true, y_pred,
      labels=range(K), average=average, zero_division=0)[:3]`` (tested).
    """
    if average not in _AVERAGES:
        raise ValueError(f"`average` must be 'macro', 'micro' or None, got {average!r}")
    return _precision_recall_f1(confusion_matrix(y_true, y_pred, n_classes), average)


@functools.partial(jax.jit, static_argnums=1)
def _precision_recall_f1(counts: Array, average: str | None) -> tuple[Array, Array, Array]:
    true_positives = jnp.diagonal(counts)
    n_predicted = counts.sum(axis=0)
    n_true = counts.sum(axis=1)
    if average == "micro":
        true_positives, n_predicted, n_true = true_positives.sum(), n_predicted.sum(), n_true.sum()
    precision = _safe_divide(true_positives, n_predicted)
    recall = _safe_divide(true_positives, n_true)
    f1 = _safe_divide(2 * true_positives, n_predicted + n_true)
    if average == "macro":
        return precision.mean(), recall.mean(), f1.mean()
    return precision, recall, f1


# ------------------------------------------------------------------------------------- ROC

def _check_binary_scores(y_true: Any, scores: Any, *, concrete: bool) -> tuple[Any, Any]:
    scores = _check_scores("scores", scores, 1)
    y_true = _check_labels_1d("y_true", y_true, 2)
    _checks.check_same_length("y_true", y_true, "scores", scores)
    if concrete and not (_checks.is_concrete(y_true) and _checks.is_concrete(scores)):
        raise TypeError("roc_curve needs concrete arrays (its length is the number of distinct "
                        "scores, unknown under jit); call it outside `jit`")
    if _checks.is_concrete(y_true):
        n_pos = int(np.sum(np.asarray(y_true)))
        if n_pos in (0, y_true.shape[0]):
            missing = "negative (0)" if n_pos else "positive (1)"
            raise ValueError(f"`y_true` has no {missing} sample; the ROC curve and its AUC need "
                             "both classes")
    return y_true, scores


def roc_curve(y_true: Array, scores: Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic: every (false positive rate, true positive rate) reached
    by the rule "predict 1 iff score >= t" as the threshold ``t`` sweeps down the distinct scores.

    ``fpr(t) = #{negatives with score >= t} / #negatives``, ``tpr(t)`` likewise for positives.
    Tied scores change class together, so a tie between a positive and a negative is one
    diagonal step: the trapezoid under it counts that pair 1/2, as in :func:`roc_auc`.

    Computed in NumPy (not jittable: the curve has one point per distinct score, a length that is
    unknown under ``jit``). Equal to ``sklearn.metrics.roc_curve(y_true, scores,
    drop_intermediate=False)`` (tested), i.e. no collinear points are dropped.

    Args:
      y_true: integer labels ``[n]`` in ``{0, 1}``, both present.
      scores: float ``[n]``, higher means "more likely 1" (logits, probabilities, margins).

    Returns:
      ``(fpr, tpr, thresholds)``, NumPy arrays ``[m + 1]`` for ``m`` distinct scores:
      ``thresholds`` decreases from ``+inf`` (the point ``(0, 0)``) through the distinct scores,
      and ``fpr``, ``tpr`` increase to 1.
    """
    y_true, scores = _check_binary_scores(y_true, scores, concrete=True)
    y = np.asarray(y_true)
    s = np.asarray(scores)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # The last index of each run of equal scores: all of a tie enters at the same threshold.
    ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    true_pos = np.cumsum(y)[ends]
    false_pos = ends + 1 - true_pos
    tpr = np.r_[0, true_pos] / true_pos[-1]
    fpr = np.r_[0, false_pos] / false_pos[-1]
    return fpr, tpr, np.r_[np.inf, s[ends]]


def roc_auc(y_true: Array, scores: Array) -> Array:
    """Area under the ROC curve, as the Mann-Whitney U statistic with ties counted 1/2.

    ``AUC = 1 / (n_pos n_neg) sum_{i: y_i = 1} sum_{j: y_j = 0} ([s_i > s_j] + 1/2 [s_i = s_j])``,
    the probability that a random positive scores above a random negative (ties half). This is
    exactly the trapezoidal area under :func:`roc_curve`, and equal to
    ``sklearn.metrics.roc_auc_score`` (tested). ``O(n log n)``: one sort of the negatives' scores
    and a binary search per sample; jittable.

    Args:
      y_true: integer labels ``[n]`` in ``{0, 1}``, both present (checked outside ``jit``; under
        ``jit`` a single class gives NaN).
      scores: finite float ``[n]``, higher means "more likely 1".

    Returns:
      A float scalar in ``[0, 1]`` (0.5 for uninformative scores).

    >>> roc_auc(jnp.array([0, 0, 1, 1]), jnp.array([0.1, 0.4, 0.4, 0.8]))  # (1 + 1/2 + 2) / 4
    Array(0.875, dtype=float32)
    """
    y_true, scores = _check_binary_scores(y_true, scores, concrete=False)
    return _roc_auc(y_true, scores)


@jax.jit
def _roc_auc(y_true: Array, scores: Array) -> Array:
    positive = y_true == 1
    # Positives move to +inf, past every finite score, so the searches count negatives only.
    negatives = jnp.sort(jnp.where(positive, jnp.inf, scores))
    below = jnp.searchsorted(negatives, scores, side="left")
    at_or_below = jnp.searchsorted(negatives, scores, side="right")
    n_pos = jnp.sum(positive)
    n_neg = y_true.shape[0] - n_pos
    wins = _float(below) + 0.5 * _float(at_or_below - below)
    return jnp.sum(jnp.where(positive, wins / n_neg, 0.0)) / n_pos


# ---------------------------------------------------------------------- probabilistic scores

def log_loss(probabilities: Array, y: Array) -> Array:
    """Mean negative log-likelihood of the labels, ``-1/n sum_i log p_i[y_i]`` (nats).

    * multi-class: ``probabilities`` ``[n, K]`` (``K >= 2``), rows summing to 1; the term is
      ``-log p_i[y_i]``.
    * binary: ``probabilities`` ``[n]`` or ``[n, 1]`` holding ``P(y = 1)``; the term is
      ``-(y log p + (1 - y) log(1 - p))``.

    Nothing is clipped: a probability of exactly 0 for the true class gives ``inf`` (sklearn clips
    to ``[eps, 1 - eps]`` instead). To train, use the per-example losses on *logits* in
    :mod:`jaxlearn.losses`, which are stable.

    Args:
      probabilities: float ``[n, K]``, ``[n]`` or ``[n, 1]`` in ``[0, 1]``.
      y: integer labels ``[n]`` in ``[0, K)`` (``{0, 1}`` if binary).

    Returns:
      A float scalar ``>= 0``; equal to ``sklearn.metrics.log_loss`` away from 0 and 1 (tested).
    """
    p, y = _check_classification("probabilities", probabilities, y, probabilities=True)
    return _log_loss(p, y)


@jax.jit
def _log_loss(p: Array, y: Array) -> Array:
    if _is_binary(p):
        p = p.reshape(-1)
        p_true = jnp.where(y == 1, p, 1.0 - p)
    else:
        p_true = jnp.take_along_axis(p, y[:, None], axis=1)[:, 0]
    return -jnp.mean(jnp.log(p_true))


def brier_score(probabilities: Array, y: Array) -> Array:
    """Brier score: mean squared distance between predicted probabilities and the outcome.

    * multi-class, ``probabilities`` ``[n, K]`` (``K >= 2``):
      ``1/n sum_i sum_k (p_ik - [y_i = k])^2``, in ``[0, 2]`` (sklearn's ``brier_score_loss``
      for more than two classes).
    * binary, ``probabilities`` ``[n]`` or ``[n, 1]`` holding ``P(y = 1)``:
      ``1/n sum_i (p_i - y_i)^2``, in ``[0, 1]`` (sklearn's binary ``brier_score_loss``). This is
      half the multi-class formula applied to the two columns ``[1 - p, p]``.

    Args:
      probabilities: float ``[n, K]``, ``[n]`` or ``[n, 1]`` in ``[0, 1]``.
      y: integer labels ``[n]`` in ``[0, K)`` (``{0, 1}`` if binary).

    Returns:
      A float scalar; 0 for perfect confident predictions.
    """
    p, y = _check_classification("probabilities", probabilities, y, probabilities=True)
    return _brier_score(p, y)


@jax.jit
def _brier_score(p: Array, y: Array) -> Array:
    if _is_binary(p):
        return jnp.mean(jnp.square(p.reshape(-1) - y))
    one_hot = jax.nn.one_hot(y, p.shape[1], dtype=p.dtype)
    return jnp.mean(jnp.sum(jnp.square(p - one_hot), axis=1))
