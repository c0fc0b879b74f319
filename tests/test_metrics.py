"""Tests for jaxlearn.metrics: against scikit-learn (float64) and hand-computed tiny cases.

Tolerances: our metrics run in float32 on float32 inputs, sklearn in float64 on the same values.
Ratios of integer counts are correctly rounded divisions (relative error <= 6e-8) and a mean of a
few of them adds a few ulps, hence rtol=1e-6; sums of n float32 logs / squares carry ~n * 6e-8
relative error in the worst case (n <= 500 here), hence rtol=1e-5 for log loss and Brier score.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from jaxlearn import metrics

RATIO_RTOL = 1e-6
SUM_RTOL = 1e-5


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _random_probabilities(rng, n: int, n_classes: int) -> np.ndarray:
    logits = rng.normal(size=(n, n_classes)) * 2.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def _renormalised64(p: np.ndarray) -> np.ndarray:
    """``p`` in float64 with rows summing to 1 to float64 precision, as sklearn insists; moves
    each entry by ~1e-8 relative, far inside SUM_RTOL."""
    p64 = p.astype(np.float64)
    return p64 / p64.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------- accuracy

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_multiclass_equals_argmax_reference(seed):
    rng = _rng(seed)
    logits = rng.normal(size=(300, 7)).astype(np.float32)
    y = rng.integers(0, 7, 300)
    expected = np.mean(np.argmax(logits, axis=1) == y)
    np.testing.assert_allclose(metrics.accuracy(logits, y), expected, rtol=RATIO_RTOL)
    np.testing.assert_allclose(skm.accuracy_score(y, np.argmax(logits, axis=1)), expected)


@pytest.mark.parametrize("shape", [(200,), (200, 1)])
def test_accuracy_binary_thresholds_logits_at_zero(shape):
    rng = _rng(3)
    logits = rng.normal(size=shape).astype(np.float32)
    y = rng.integers(0, 2, 200)
    expected = np.mean((logits.reshape(-1) > 0).astype(int) == y)
    np.testing.assert_allclose(metrics.accuracy(logits, y), expected, rtol=RATIO_RTOL)


def test_accuracy_tie_rules_by_hand():
    # A logit of exactly 0 is P = 1/2 and goes to class 0; an argmax tie to the lowest index.
    assert float(metrics.accuracy(np.array([0.0, 0.0], np.float32), np.array([0, 1]))) == 0.5
    tied = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]], np.float32)
    assert float(metrics.accuracy(tied, np.array([0, 1]))) == 1.0
    assert float(metrics.accuracy(tied, np.array([1, 2]))) == 0.0


def test_accuracy_jit_equals_eager():
    rng = _rng(4)
    logits = jnp.asarray(rng.normal(size=(64, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 5, 64))
    assert float(jax.jit(metrics.accuracy)(logits, y)) == float(metrics.accuracy(logits, y))


# -------------------------------------------------------------------------- confusion matrix

@pytest.mark.parametrize("seed", [0, 1])
def test_confusion_matrix_equals_sklearn(seed):
    rng = _rng(seed)
    n_classes = 6  # class 5 never occurs: its row and column must be zero
    y_true = rng.integers(0, 5, 400)
    y_pred = np.where(rng.random(400) < 0.6, y_true, rng.integers(0, 5, 400))
    ours = metrics.confusion_matrix(y_true, y_pred, n_classes)
    assert ours.dtype == jnp.int32 and ours.shape == (6, 6)
    np.testing.assert_array_equal(ours, skm.confusion_matrix(y_true, y_pred,
                                                             labels=np.arange(n_classes)))
    np.testing.assert_array_equal(ours[5], 0)
    np.testing.assert_array_equal(ours[:, 5], 0)


def test_confusion_matrix_rows_are_true_classes_by_hand():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 0, 2])
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred, 3), expected)
    jitted = jax.jit(metrics.confusion_matrix, static_argnums=2)
    np.testing.assert_array_equal(jitted(jnp.asarray(y_true), jnp.asarray(y_pred), 3), expected)


# ------------------------------------------------------------------- precision / recall / F1

@pytest.mark.parametrize("average", ["macro", "micro", None])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_recall_f1_equals_sklearn(average, seed):
    rng = _rng(seed)
    n_classes = 7  # class 6 is absent everywhere and class 5 never predicted: 0/0 cases
    y_true = rng.integers(0, 6, 150)
    y_pred = np.where(rng.random(150) < 0.5, y_true, rng.integers(0, 5, 150))
    ours = metrics.precision_recall_f1(y_true, y_pred, n_classes, average=average)
    ref = skm.precision_recall_fscore_support(y_true, y_pred, labels=np.arange(n_classes),
                                              average=average, zero_division=0)[:3]
    for got, want in zip(ours, ref):
        assert np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=RATIO_RTOL, atol=0)


def test_precision_recall_f1_by_hand_with_zero_division():
    # class 0: TP 1, FP 1, FN 1; class 1: never predicted (precision 0/0 = 0), TP 0, FN 1;
    # class 2: TP 1, FP 1, FN 0.
    y_true = np.array([0, 0, 1, 2])
    y_pred = np.array([0, 2, 0, 2])
    precision, recall, f1 = metrics.precision_recall_f1(y_true, y_pred, 3, average=None)
    np.testing.assert_allclose(precision, [0.5, 0.0, 0.5], rtol=RATIO_RTOL)
    np.testing.assert_allclose(recall, [0.5, 0.0, 1.0], rtol=RATIO_RTOL)
    np.testing.assert_allclose(f1, [0.5, 0.0, 2 / 3], rtol=RATIO_RTOL)
    assert not np.any(np.isnan(np.concatenate([precision, recall, f1])))
    jitted = jax.jit(metrics.precision_recall_f1, static_argnames=("n_classes", "average"))
    for got, want in zip(jitted(y_true, y_pred, n_classes=3, average=None),
                         (precision, recall, f1)):
        np.testing.assert_array_equal(got, want)


def test_micro_average_equals_accuracy():
    rng = _rng(5)
    logits = rng.normal(size=(120, 4)).astype(np.float32)
    y = rng.integers(0, 4, 120)
    micro = metrics.precision_recall_f1(y, np.argmax(logits, 1), 4, average="micro")
    for value in micro:
        np.testing.assert_allclose(value, metrics.accuracy(logits, y), rtol=RATIO_RTOL)


# --------------------------------------------------------------------------------------- ROC

def _tied_binary_data(seed: int, n: int = 300):
    """Integer-valued scores (only 12 distinct values) so that many ties cross the classes."""
    rng = _rng(seed)
    y = rng.integers(0, 2, n)
    scores = (rng.integers(0, 12, n) + 3 * y).astype(np.float32)
    return y, scores


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_roc_curve_equals_sklearn_with_ties(seed):
    y, scores = _tied_binary_data(seed)
    fpr, tpr, thresholds = metrics.roc_curve(y, scores)
    ref_fpr, ref_tpr, ref_thresholds = skm.roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr, rtol=1e-12)
    np.testing.assert_allclose(tpr, ref_tpr, rtol=1e-12)
    np.testing.assert_array_equal(thresholds, ref_thresholds)
    assert len(thresholds) == len(np.unique(scores)) + 1


def test_roc_curve_by_hand():
    # Scores 0.8 (neg), 0.4 (pos and neg, tied), 0.1 (pos): the tie is one diagonal step.
    fpr, tpr, thresholds = metrics.roc_curve(np.array([0, 1, 0, 1]),
                                             np.array([0.8, 0.4, 0.4, 0.1], np.float32))
    np.testing.assert_array_equal(fpr, [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(thresholds, np.array([np.inf, 0.8, 0.4, 0.1], np.float32))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_roc_auc_equals_sklearn_and_trapezoid_with_ties(seed):
    y, scores = _tied_binary_data(seed)
    auc = metrics.roc_auc(y, scores)
    np.testing.assert_allclose(auc, skm.roc_auc_score(y, scores), rtol=RATIO_RTOL)
    fpr, tpr, _ = metrics.roc_curve(y, scores)
    np.testing.assert_allclose(auc, np.trapezoid(tpr, fpr), rtol=RATIO_RTOL)


def test_roc_auc_continuous_scores_equal_sklearn_and_brute_force():
    rng = _rng(7)
    y = rng.integers(0, 2, 500)
    scores = (rng.normal(size=500) + y).astype(np.float32)
    pos, neg = scores[y == 1], scores[y == 0]
    brute = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    np.testing.assert_allclose(metrics.roc_auc(y, scores), brute, rtol=RATIO_RTOL)
    np.testing.assert_allclose(metrics.roc_auc(y, scores), skm.roc_auc_score(y, scores),
                               rtol=RATIO_RTOL)


@pytest.mark.parametrize(("y", "scores", "expected"), [
    ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 1.0),          # perfect ranking
    ([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], 0.0),          # reversed
    ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),          # all tied: every pair counts 1/2
    ([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.8], 3.5 / 4),      # (1 + 1/2) + 2 wins over 4 pairs
    ([0, 1, 1, 0, 1], [1.0, 1.0, 2.0, 3.0, 0.0], 1.5 / 6),  # positives 1, 2, 0 vs negatives 1, 3:
    #                                                        (1/2 + 0) + (1 + 0) + (0 + 0)
])
def test_roc_auc_by_hand(y, scores, expected):
    auc = metrics.roc_auc(np.array(y), np.array(scores, np.float32))
    np.testing.assert_allclose(auc, expected, rtol=RATIO_RTOL)


def test_roc_auc_invariant_to_monotone_transform_and_jit():
    y, scores = _tied_binary_data(8)
    auc = metrics.roc_auc(y, scores)
    # exp preserves order and ties (distinct small integers stay distinct in float32).
    np.testing.assert_allclose(metrics.roc_auc(y, np.exp(scores)), auc, rtol=RATIO_RTOL)
    assert float(jax.jit(metrics.roc_auc)(jnp.asarray(y), jnp.asarray(scores))) == float(auc)


def test_roc_auc_under_jit_with_one_class_is_nan():
    # The both-classes check needs values; under jit it cannot run and 0/0 shows as NaN.
    auc = jax.jit(metrics.roc_auc)(jnp.ones(4, jnp.int32), jnp.arange(4.0))
    assert np.isnan(float(auc))


# ------------------------------------------------------------------- log loss / Brier score

@pytest.mark.parametrize("seed", [0, 1])
def test_log_loss_multiclass_equals_sklearn(seed):
    rng = _rng(seed)
    p = _random_probabilities(rng, 400, 5)
    y = rng.integers(0, 5, 400)
    ref = skm.log_loss(y, _renormalised64(p), labels=np.arange(5))
    np.testing.assert_allclose(metrics.log_loss(p, y), ref, rtol=SUM_RTOL)


@pytest.mark.parametrize("shape", [(400,), (400, 1)])
def test_log_loss_binary_equals_sklearn(shape):
    rng = _rng(2)
    p = rng.uniform(0.01, 0.99, size=shape).astype(np.float32)
    y = rng.integers(0, 2, 400)
    ref = skm.log_loss(y, p.reshape(-1).astype(np.float64))
    np.testing.assert_allclose(metrics.log_loss(p, y), ref, rtol=SUM_RTOL)
    # Same as the two-column distribution [1 - p, p].
    two_columns = np.stack([1 - p.reshape(-1), p.reshape(-1)], axis=1)
    np.testing.assert_allclose(metrics.log_loss(two_columns, y), ref, rtol=SUM_RTOL)


def test_log_loss_by_hand_and_not_clipped():
    p = np.array([[0.5, 0.5], [0.25, 0.75]], np.float32)
    np.testing.assert_allclose(metrics.log_loss(p, np.array([0, 1])),
                               -(np.log(0.5) + np.log(0.75)) / 2, rtol=1e-6)
    # A zero probability for the true class is an infinite loss, not a clipped 36.
    assert np.isposinf(float(metrics.log_loss(np.array([1.0, 0.0], np.float32),
                                              np.array([1, 1]))))


@pytest.mark.parametrize("seed", [0, 1])
def test_brier_score_multiclass_equals_sklearn(seed):
    rng = _rng(seed)
    p = _random_probabilities(rng, 400, 4)
    y = rng.integers(0, 4, 400)
    ref = skm.brier_score_loss(y, _renormalised64(p), labels=np.arange(4))
    np.testing.assert_allclose(metrics.brier_score(p, y), ref, rtol=SUM_RTOL)
    np.testing.assert_allclose(ref, np.mean(np.sum((p - np.eye(4)[y]) ** 2, axis=1)),
                               rtol=SUM_RTOL)


@pytest.mark.parametrize("shape", [(300,), (300, 1)])
def test_brier_score_binary_equals_sklearn_and_half_two_column(shape):
    rng = _rng(3)
    p = rng.uniform(size=shape).astype(np.float32)
    y = rng.integers(0, 2, 300)
    ref = skm.brier_score_loss(y, p.reshape(-1).astype(np.float64))
    np.testing.assert_allclose(metrics.brier_score(p, y), ref, rtol=SUM_RTOL)
    two_columns = np.stack([1 - p.reshape(-1), p.reshape(-1)], axis=1)
    np.testing.assert_allclose(metrics.brier_score(two_columns, y), 2 * ref, rtol=SUM_RTOL)


def test_brier_score_by_hand():
    # Row 0, label 0: 0.2^2 + 0.2^2 + 0 = 0.08; row 1, label 1: 0.5^2 + 1^2 + 0.5^2 = 1.5.
    p = np.array([[0.8, 0.2, 0.0], [0.5, 0.0, 0.5]], np.float32)
    np.testing.assert_allclose(metrics.brier_score(p, np.array([0, 1])), (0.08 + 1.5) / 2,
                               rtol=1e-6)


def test_probability_metrics_jit_equal_eager():
    rng = _rng(9)
    p = jnp.asarray(_random_probabilities(rng, 50, 3))
    y = jnp.asarray(rng.integers(0, 3, 50))
    for fn in (metrics.log_loss, metrics.brier_score):
        np.testing.assert_allclose(jax.jit(fn)(p, y), fn(p, y), rtol=1e-6)


# -------------------------------------------------------------------------------- bad inputs

_P = np.array([[0.2, 0.8], [0.6, 0.4]], np.float32)
_LOGITS = np.zeros((5, 3), np.float32)
_Y01 = np.array([0, 1, 0, 1])
_S4 = np.array([0.1, 0.2, 0.3, 0.4], np.float32)


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: metrics.accuracy(_LOGITS, np.zeros(4, int)), ValueError,
     "`logits_or_scores` has 5 samples but `y` has 4"),
    (lambda: metrics.accuracy(_LOGITS, np.array([0, 1, 2, 3, 0])), ValueError,
     "`y` has label 3 but `n_classes` is 3"),
    (lambda: metrics.accuracy(np.zeros(3, np.float32), np.array([0, 2, 1])), ValueError,
     "`y` has label 2 but `n_classes` is 2"),
    (lambda: metrics.accuracy(_LOGITS, np.zeros(5)), TypeError,
     "`y` must hold integer class labels, got dtype float64"),
    (lambda: metrics.accuracy(_LOGITS, np.zeros(5, bool)), TypeError,
     "`y` must hold integer class labels, got dtype bool"),
    (lambda: metrics.accuracy(np.zeros((5, 3), int), np.zeros(5, int)), TypeError,
     "`logits_or_scores` must have a floating dtype"),
    (lambda: metrics.accuracy(np.array([[0.0, np.nan]], np.float32), np.array([0])), ValueError,
     "`logits_or_scores` contains 1 NaN"),
    (lambda: metrics.accuracy(np.zeros((2, 3, 4), np.float32), np.zeros(2, int)), ValueError,
     "`logits_or_scores` must have 1 or 2 dimensions"),
    (lambda: metrics.accuracy(_LOGITS, np.zeros((5, 1), int)), ValueError,
     "`y` must have 1 dimensions"),
    (lambda: metrics.accuracy(np.zeros((0, 3), np.float32), np.zeros(0, int)), ValueError,
     "`logits_or_scores` is empty"),
    (lambda: metrics.accuracy(_LOGITS, ["a"] * 5), TypeError, "`y` must be a numeric array"),
    (lambda: metrics.confusion_matrix(_Y01, _Y01, 0), ValueError, "`n_classes` must be > 0"),
    (lambda: metrics.confusion_matrix(_Y01, _Y01, 2.0), TypeError, "`n_classes` must be an int"),
    (lambda: metrics.confusion_matrix(_Y01, np.array([0, -1, 0, 1]), 2), ValueError,
     "`y_pred` has label -1 but `n_classes` is 2"),
    (lambda: metrics.confusion_matrix(_Y01, np.array([0, 1, 0]), 2), ValueError,
     "`y_true` has 4 samples but `y_pred` has 3"),
    (lambda: metrics.confusion_matrix(_Y01, _S4, 2), TypeError,
     "`y_pred` must hold integer class labels"),
    (lambda: metrics.precision_recall_f1(_Y01, _Y01, 2, average="weighted"), ValueError,
     "`average` must be 'macro', 'micro' or None, got 'weighted'"),
    (lambda: metrics.precision_recall_f1(_Y01, _Y01 + 5, 3), ValueError,
     "`y_pred` has label 6 but `n_classes` is 3"),
    (lambda: metrics.roc_auc(np.ones(4, int), _S4), ValueError,
     "`y_true` has no negative \\(0\\) sample"),
    (lambda: metrics.roc_curve(np.zeros(4, int), _S4), ValueError,
     "`y_true` has no positive \\(1\\) sample"),
    (lambda: metrics.roc_auc(np.array([0, 2, 0, 2]), _S4), ValueError,
     "`y_true` has label 2 but `n_classes` is 2"),
    (lambda: metrics.roc_auc(_Y01, np.zeros((4, 1), np.float32)), ValueError,
     "`scores` must have 1 dimensions"),
    (lambda: metrics.roc_auc(_Y01, _S4[:3]), ValueError,
     "`y_true` has 4 samples but `scores` has 3"),
    (lambda: metrics.roc_curve(_Y01, np.array([0.0, np.inf, 1.0, 2.0], np.float32)), ValueError,
     "`scores` contains 1 NaN or inf"),
    (lambda: jax.jit(metrics.roc_curve)(jnp.asarray(_Y01), jnp.asarray(_S4)), TypeError,
     "roc_curve needs concrete arrays"),
    (lambda: metrics.log_loss(np.array([[0.2, 0.7], [0.5, 0.5]], np.float32), np.array([0, 1])),
     ValueError, "`probabilities` rows must sum to 1 .* row 0 sums to 0.9"),
    (lambda: metrics.log_loss(np.array([-0.1, 0.5], np.float32), np.array([0, 1])), ValueError,
     "`probabilities` must hold probabilities in \\[0, 1\\]"),
    (lambda: metrics.brier_score(np.array([[1.5], [0.5]], np.float32), np.array([0, 1])),
     ValueError, "`probabilities` must hold probabilities in \\[0, 1\\]"),
    (lambda: metrics.brier_score(_P, np.array([0, 2])), ValueError,
     "`y` has label 2 but `n_classes` is 2"),
    (lambda: metrics.brier_score(_P, np.array([0, 1, 1])), ValueError,
     "`probabilities` has 2 samples but `y` has 3"),
    (lambda: metrics.log_loss(np.array([np.nan, 0.5], np.float32), np.array([0, 1])), ValueError,
     "`probabilities` contains 1 NaN"),
    (lambda: metrics.log_loss(_P.astype(np.int32), np.array([0, 1])), TypeError,
     "`probabilities` must have a floating dtype"),
])
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
