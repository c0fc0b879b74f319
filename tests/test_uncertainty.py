"""Tests for jaxlearn.uncertainty: calibration metrics on hand-made cases, temperature scaling,
MC dropout, vmapped ensembles, entropy / mutual information, OOD AUROC."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from matplotlib.figure import Figure
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from jaxlearn import data, losses, metrics, nn, train, uncertainty

CE = losses.SOFTMAX_CE_INT


def _ece_reference(probs, y, n_bins):
    """Float64 loop over bins with the documented rule: bin b is (b/B, (b+1)/B], 0 in bin 0."""
    probs = np.asarray(probs, np.float64)
    conf, correct = probs.max(1), probs.argmax(1) == np.asarray(y)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = (conf > lo) & (conf <= hi) | ((b == 0) & (conf == 0))
        if members.any():
            total += members.sum() / len(y) * abs(correct[members].mean() - conf[members].mean())
    return total


def _random_probs(seed, n=200, k=5, sharpness=3.0):
    rng = np.random.default_rng(seed)
    logits = sharpness * rng.normal(size=(n, k))
    probs = np.exp(log_softmax(logits, axis=1)).astype(np.float32)
    return probs, rng.integers(0, k, n).astype(np.int32)


# ---------------------------------------------------------------------------- ECE and bins

def test_ece_two_examples_in_one_bin():
    # Confidences 0.9 and 0.6 both fall in (0.5, 1]: mean confidence 0.75, accuracy 0.5.
    probs = np.array([[0.9, 0.1], [0.6, 0.4]], np.float32)
    ece = uncertainty.expected_calibration_error(probs, np.array([0, 1]), n_bins=2)
    np.testing.assert_allclose(float(ece), 0.25, atol=1e-7)


def test_ece_bin_rule_at_the_edges():
    # Confidences on the edges 0.4, 0.6 and 1.0 of five bins. Right-closed bins (b/5, (b+1)/5]:
    #   bin 1 = {0.4 right}            |1 - 0.4|       * 1 = 0.6
    #   bin 2 = {0.5 wrong, 0.6 right} |0.5 - 0.55|    * 2 = 0.1
    #   bin 4 = {1.0 right}            |1 - 1|         * 1 = 0
    # ECE = 0.7 / 4 = 0.175. (Left-closed bins would give 0.5 / 4 = 0.125.)
    probs = np.array([[0.4, 0.3, 0.3], [0.5, 0.25, 0.25], [0.6, 0.2, 0.2], [1.0, 0.0, 0.0]],
                     np.float32)
    y = np.array([0, 1, 0, 0])
    ece = uncertainty.expected_calibration_error(probs, y, n_bins=5)
    np.testing.assert_allclose(float(ece), 0.175, atol=1e-7)   # float32 sums of 4 terms
    diagram = uncertainty.reliability_diagram(probs, y, n_bins=5)
    np.testing.assert_array_equal(diagram.count, [0, 1, 2, 0, 1])
    np.testing.assert_allclose(diagram.confidence, [np.nan, 0.4, 0.55, np.nan, 1.0], atol=1e-7)
    np.testing.assert_allclose(diagram.accuracy, [np.nan, 1.0, 0.5, np.nan, 1.0])
    np.testing.assert_allclose(diagram.bin_edges, [0, 0.2, 0.4, 0.6, 0.8, 1.0])


@pytest.mark.parametrize("probs, y, expected", [
    ([[1.0, 0.0], [0.0, 1.0]], [0, 1], 0.0),          # confident and right: calibrated
    ([[1.0, 0.0], [0.0, 1.0]], [1, 0], 1.0),          # confident and wrong: worst case
    ([[0.5, 0.5], [0.5, 0.5]], [0, 1], 0.0),          # ties go to class 0: accuracy 1/2 = conf
])
def test_ece_extreme_cases(probs, y, expected):
    ece = uncertainty.expected_calibration_error(np.array(probs, np.float32), np.array(y))
    np.testing.assert_allclose(float(ece), expected, atol=1e-7)


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_matches_float64_reference(n_bins):
    probs, y = _random_probs(seed=n_bins)
    ece = uncertainty.expected_calibration_error(probs, y, n_bins=n_bins)
    # float32 sums over 200 examples against float64: 1e-6.
    np.testing.assert_allclose(float(ece), _ece_reference(probs, y, n_bins), atol=1e-6)
    diagram = uncertainty.reliability_diagram(probs, y, n_bins=n_bins)
    assert diagram.count.sum() == len(y)
    filled = diagram.count > 0
    from_diagram = np.sum(diagram.count[filled] / len(y)
                          * np.abs(diagram.accuracy[filled] - diagram.confidence[filled]))
    np.testing.assert_allclose(from_diagram, float(ece), atol=1e-6)


def test_ece_is_jittable():
    probs, y = _random_probs(seed=0)
    jitted = jax.jit(lambda p, t: uncertainty.expected_calibration_error(p, t, n_bins=15))
    np.testing.assert_allclose(float(jitted(probs, y)),
                               float(uncertainty.expected_calibration_error(probs, y)), atol=1e-7)


def test_plot_reliability_draws_one_bar_per_filled_bin():
    probs, y = _random_probs(seed=1)
    diagram = uncertainty.reliability_diagram(probs, y, n_bins=10)
    ax = Figure().add_subplot()
    assert uncertainty.plot_reliability(ax, diagram, label="model") is ax
    filled = diagram.count > 0
    heights = [patch.get_height() for patch in ax.patches]
    assert len(heights) == 2 * filled.sum()           # accuracy bars and confidence gaps
    np.testing.assert_allclose(heights[: filled.sum()], diagram.accuracy[filled])


# ---------------------------------------------------------------------- temperature scaling

def test_fit_temperature_matches_scipy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300).astype(np.int32)
    logits = (rng.normal(size=(300, 4)) + 2.0 * np.eye(4)[y]) * 4.0   # overconfident
    logits = logits.astype(np.float32)

    def nll(log_t):
        return -np.mean(log_softmax(np.float64(logits) / np.exp(log_t), axis=1)[np.arange(300), y])

    reference = np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded",
                                       options={"xatol": 1e-10}).x)
    t = float(uncertainty.fit_temperature(logits, y))
    assert t > 1.0
    # A flat minimum evaluated in float32: the optimum is known to ~1e-3 relative.
    np.testing.assert_allclose(t, reference, rtol=2e-3)


def test_fit_temperature_returns_the_bound_when_the_optimum_is_outside():
    # Perfectly separated data: the NLL keeps falling as T -> 0.
    logits = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    t = float(uncertainty.fit_temperature(logits, np.array([0, 1]), bounds=(0.1, 10.0)))
    # Near T = 0.1 the NLL is ~5e-5 and flat below float32 resolution, so the search stops
    # within 1% of the bound.
    np.testing.assert_allclose(t, 0.1, rtol=1e-2)


def test_apply_temperature_divides():
    logits = np.array([[2.0, -1.0, 0.5]], np.float32)
    np.testing.assert_allclose(np.asarray(uncertainty.apply_temperature(logits, 2.0)),
                               logits / 2.0)


def test_temperature_scaling_keeps_accuracy_and_lowers_heldout_nll():
    x, y = data.load_digits()
    perm = np.random.default_rng(0).permutation(len(y))
    train_idx, val_idx, test_idx = perm[:200], perm[200:800], perm[800:]
    model = nn.mlp((128,), 10)
    _, params = model.init(jax.random.key(0), (64,))
    # 200 training digits fitted to ~zero loss: confident, and overconfident on new digits
    # (held-out NLL 0.219 -> 0.195 with T = 1.37 when this test was written).
    result = train.fit(model.apply, params, x[train_idx], y[train_idx], loss=CE,
                       optimizer=optax.adam(1e-2), key=jax.random.key(1), batch_size=100,
                       steps=300)
    val_logits = model.apply(result.params, x[val_idx])
    test_logits = model.apply(result.params, x[test_idx])
    t = uncertainty.fit_temperature(val_logits, y[val_idx])
    assert float(t) > 1.0
    scaled = uncertainty.apply_temperature(test_logits, t)
    np.testing.assert_array_equal(np.argmax(scaled, 1), np.argmax(test_logits, 1))
    nll_before = float(metrics.log_loss(jax.nn.softmax(test_logits), y[test_idx]))
    nll_after = float(metrics.log_loss(jax.nn.softmax(scaled), y[test_idx]))
    assert nll_after < nll_before - 0.01


# ------------------------------------------------------------------ MC dropout and ensembles

def test_mc_dropout_samples_are_the_train_mode_passes():
    model = nn.mlp((32,), 3, dropout=0.5)
    _, params = model.init(jax.random.key(0), (4,))
    x = jax.random.normal(jax.random.key(1), (6, 4))
    key = jax.random.key(2)
    probs = uncertainty.mc_dropout_predict(model.apply, params, x, key=key, n_samples=5)
    assert probs.shape == (5, 6, 3)
    keys = jax.random.split(key, 5)
    by_hand = np.stack([jax.nn.softmax(model.apply(params, x, key=k, train=True))
                        for k in keys])
    # vmap vs one call per key: same ops, rounding may differ in the last ulp.
    np.testing.assert_allclose(np.asarray(probs), by_hand, rtol=1e-6, atol=1e-7)
    assert float(jnp.max(jnp.std(probs, axis=0))) > 1e-3           # dropout makes them differ
    again = uncertainty.mc_dropout_predict(model.apply, params, x, key=key, n_samples=5)
    np.testing.assert_array_equal(np.asarray(probs), np.asarray(again))


@pytest.mark.slow  # ~13 s of CPU: three compiled trainings (fit_many and two fits)
def test_ensemble_trained_in_one_vmapped_call_matches_separate_trainings():
    x, y = data.load_digits()
    x, y = x[:300], y[:300]
    model = nn.mlp((16,), 10)
    init_keys = jax.random.split(jax.random.key(0), 2)
    fit_keys = jax.random.split(jax.random.key(1), 2)
    stacked = nn.init_stacked(model, init_keys, (64,))
    kw = {"loss": CE, "optimizer": optax.adam(1e-2), "batch_size": 50, "steps": 30}
    together = train.fit_many(model.apply, stacked, x, y, keys=fit_keys, **kw)
    probs = uncertainty.ensemble_predict(model.apply, together.params, x[:100])
    assert probs.shape == (2, 100, 10)
    for m in range(2):
        _, params_m = model.init(init_keys[m], (64,))
        alone = train.fit(model.apply, params_m, x, y, key=fit_keys[m], **kw)
        # Same batches and updates; vmapped matmuls may round differently, and 30 Adam steps
        # carry that along (1.2e-7 seen when written): params and probabilities agree to 1e-5.
        member = jax.tree.map(lambda p, i=m: p[i], together.params)
        chex.assert_trees_all_close(alone.params, member, rtol=0, atol=1e-5)
        np.testing.assert_allclose(np.asarray(probs[m]),
                                   np.asarray(jax.nn.softmax(model.apply(alone.params, x[:100]))),
                                   atol=1e-5)
    # Members start differently and end differently: the ensemble is not one model twice.
    assert float(jnp.max(jnp.abs(probs[0] - probs[1]))) > 1e-2


# ------------------------------------------------------------ entropy, MI, OOD, summaries

def test_entropy_and_mutual_information_hand_cases():
    # Two confident samples that disagree: total uncertainty log 2, all of it epistemic.
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]], np.float32)
    np.testing.assert_allclose(np.asarray(uncertainty.predictive_entropy(disagree)), [np.log(2)],
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(uncertainty.mutual_information(disagree)), [np.log(2)],
                               rtol=1e-6)
    # Samples that agree: MI = 0 (up to the rounding of the mean of equal values).
    probs, _ = _random_probs(seed=3, n=20)
    agree = np.stack([probs] * 4)
    np.testing.assert_allclose(np.asarray(uncertainty.mutual_information(agree)), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(uncertainty.predictive_entropy(agree)),
                               -np.sum(np.float64(probs) * np.log(probs), axis=1), rtol=1e-5)


def test_mutual_information_is_nonnegative_and_bounded():
    rng = np.random.default_rng(4)
    sampled = rng.dirichlet(np.full(6, 0.3), size=(8, 50)).astype(np.float32)
    mi = np.asarray(uncertainty.mutual_information(sampled))
    total = np.asarray(uncertainty.predictive_entropy(sampled))
    assert np.all(mi >= 0) and np.all(mi <= total + 1e-6) and np.all(total <= np.log(6) + 1e-6)
    assert mi.mean() > 0.1                                 # disagreeing samples: MI clearly > 0


def test_ood_auroc_matches_sklearn():
    rng = np.random.default_rng(5)
    scores_in = rng.normal(0.0, 1.0, 80).astype(np.float32)
    scores_out = rng.normal(1.0, 1.0, 40).astype(np.float32)
    expected = roc_auc_score(np.r_[np.zeros(80), np.ones(40)], np.r_[scores_in, scores_out])
    np.testing.assert_allclose(float(uncertainty.ood_auroc(scores_in, scores_out)), expected,
                               atol=1e-6)
    np.testing.assert_allclose(float(uncertainty.ood_auroc(np.zeros(3, np.float32),
                                                           np.ones(2, np.float32))), 1.0)


def test_uncertainty_metrics_agree_with_the_single_functions():
    rng = np.random.default_rng(6)
    sampled = rng.dirichlet(np.ones(4), size=(3, 60)).astype(np.float32)
    y = rng.integers(0, 4, 60).astype(np.int32)
    got = uncertainty.uncertainty_metrics(sampled, y, n_bins=10)
    mean = jnp.mean(sampled, axis=0)
    expected = {
        "accuracy": metrics.accuracy(mean, y),
        "ece": uncertainty.expected_calibration_error(mean, y, n_bins=10),
        "nll": metrics.log_loss(mean, y),
        "brier": metrics.brier_score(mean, y),
        "entropy": jnp.mean(uncertainty.predictive_entropy(sampled)),
        "mutual_information": jnp.mean(uncertainty.mutual_information(sampled)),
    }
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], float(value), rtol=1e-6, err_msg=name)


# ----------------------------------------------------------------------------- bad inputs

_P = np.array([[0.7, 0.3], [0.2, 0.8]], np.float32)
_Y = np.array([0, 1], np.int32)
_S = _P[None]
_LOGITS = np.log(_P)


@pytest.mark.parametrize("call, error, match", [
    (lambda: uncertainty.expected_calibration_error(_P, _Y, n_bins=0), ValueError,
     r"`n_bins` must be >= 1, got 0"),
    (lambda: uncertainty.reliability_diagram(_P, _Y, n_bins=2.5), TypeError,
     r"`n_bins` must be an int"),
    (lambda: uncertainty.expected_calibration_error(_P, _Y[:1]), ValueError,
     r"`y` has 1 labels but `probs` has 2 examples"),
    (lambda: uncertainty.expected_calibration_error(_P * 2, _Y), ValueError,
     r"probabilities in \[0, 1\]"),
    (lambda: uncertainty.expected_calibration_error(_P * 0.9, _Y), ValueError,
     r"must sum to 1"),
    (lambda: uncertainty.expected_calibration_error(_S, _Y), ValueError,
     r"`probs` must have 2 dimensions"),
    (lambda: uncertainty.expected_calibration_error(_P, _Y + 1), ValueError,
     r"`y` has label 2 but `n_classes` is 2"),
    (lambda: uncertainty.mutual_information(_P), ValueError,
     r"`sampled_probs` must have 3 dimensions"),
    (lambda: uncertainty.predictive_entropy(_S[:, :, :1] * 0 + 1), ValueError, r"K >= 2"),
    (lambda: uncertainty.fit_temperature(_LOGITS, _Y, bounds=(0.0, 1.0)), ValueError,
     r"`bounds\[0\]` must be > 0"),
    (lambda: uncertainty.fit_temperature(_LOGITS, _Y, bounds=(2.0, 1.0)), ValueError,
     r"T_min < T_max"),
    (lambda: uncertainty.fit_temperature(_LOGITS[:, :1], _Y), ValueError, r"K >= 2"),
    (lambda: uncertainty.fit_temperature(_LOGITS, _Y, n_iter=0), ValueError,
     r"`n_iter` must be > 0"),
    (lambda: uncertainty.apply_temperature(_LOGITS, -1.0), ValueError,
     r"`temperature` must be finite and > 0"),
    (lambda: uncertainty.mc_dropout_predict(lambda p, x: x, {}, _P, key=jax.random.key(0),
                                            n_samples=0), ValueError, r"`n_samples` must be > 0"),
    (lambda: uncertainty.ensemble_predict(lambda p, x: x, {"a": np.zeros((3, 2)),
                                                           "b": np.zeros((4,))}, _P),
     ValueError, r"same leading \(member\) axis"),
    (lambda: uncertainty.ood_auroc(_P, _Y.astype(np.float32)), ValueError,
     r"`scores_in` must have 1 dimensions"),
    (lambda: uncertainty.plot_reliability(None, (1, 2)), TypeError, r"ReliabilityDiagram"),
])
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------- equal-mass, classwise and maximum calibration error

def _binned_ece_reference(hits, confidence, n_bins, strategy):
    """ECE from sklearn's calibration_curve: its per-bin frequencies and mean confidences,
    weighted by the bin counts of the same binning (sklearn's own edges and searchsorted)."""
    prob_true, prob_pred = calibration_curve(hits.astype(int), confidence, n_bins=n_bins,
                                             strategy=strategy)
    if strategy == "quantile":
        edges = np.percentile(confidence, np.linspace(0, 1, n_bins + 1) * 100)
    else:
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=n_bins)
    counts = counts[counts > 0]
    gaps = np.abs(prob_true - prob_pred)
    return np.sum(counts / len(confidence) * gaps), gaps


def test_adaptive_ece_hand_case_differs_from_equal_width_bins():
    # Two equal-mass bins {0.6 wrong, 0.7 right} and {0.8, 0.9 right}: gaps 0.15 and 0.15, so
    # 0.15; two equal-width bins put all four in (0.5, 1]: accuracy 0.75 = confidence, ECE 0.
    probs = np.array([[0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1]], np.float32)
    y = np.array([1, 0, 0, 0])
    adaptive = uncertainty.adaptive_expected_calibration_error(probs, y, n_bins=2)
    np.testing.assert_allclose(float(adaptive), 0.15, atol=1e-7)    # float32 sums of 4 terms
    fixed = uncertainty.expected_calibration_error(probs, y, n_bins=2)
    np.testing.assert_allclose(float(fixed), 0.0, atol=1e-7)


def test_adaptive_ece_edge_on_a_confidence_goes_to_the_lower_bin():
    # Five confidences, two bins: the edge is the median 0.8 itself. Right-closed bins put it
    # below: {0.6, 0.7, 0.8 wrong} (acc 2/3, conf 0.7) and {0.9, 1.0} (acc 1, conf 0.95):
    # (0.1 + 0.1) / 5 = 0.04. Left-closed bins would give (0.7 + 0.7) / 5 = 0.28.
    conf = np.array([0.6, 0.7, 0.8, 0.9, 1.0], np.float32)
    probs = np.stack([conf, 1 - conf], axis=1)
    y = np.array([0, 0, 1, 0, 0])
    got = float(uncertainty.adaptive_expected_calibration_error(probs, y, n_bins=2))
    np.testing.assert_allclose(got, 0.04, atol=1e-7)
    expected, _ = _binned_ece_reference(probs.argmax(1) == y, conf, 2, "quantile")
    np.testing.assert_allclose(got, expected, atol=1e-7)


@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
def test_adaptive_ece_matches_sklearn_quantile_bins(n_bins):
    # n = 200: the quantile positions 199 b / B are never whole numbers, so every edge lies
    # strictly inside a gap between two confidences and float32 vs float64 edges bin alike.
    probs, y = _random_probs(seed=20 + n_bins, n=200)
    confidence = probs.max(1)
    expected, _ = _binned_ece_reference(probs.argmax(1) == y, confidence, n_bins, "quantile")
    got = uncertainty.adaptive_expected_calibration_error(probs, y, n_bins=n_bins)
    # float32 sums over 200 examples against float64: 1e-6.
    np.testing.assert_allclose(float(got), expected, atol=1e-6)


def test_adaptive_ece_with_tied_confidences_matches_sklearn():
    # Rows drawn from 4 fixed distributions: confidences take 4 values, edges fall on them
    # (exactly, in both) and tied confidences share a bin; some bins stay empty.
    rows = np.array([[0.5, 0.3, 0.2], [0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.9, 0.05, 0.05]],
                    np.float32)
    rng = np.random.default_rng(21)
    probs = rows[rng.integers(0, 4, 150)]
    y = rng.integers(0, 3, 150).astype(np.int32)
    expected, _ = _binned_ece_reference(probs.argmax(1) == y, probs.max(1), 10, "quantile")
    got = uncertainty.adaptive_expected_calibration_error(probs, y, n_bins=10)
    np.testing.assert_allclose(float(got), expected, atol=1e-6)


def test_classwise_ece_hand_case():
    # Class 0, five bins: (0.4, 0.6] {0.6, not 0}: 0.6; (0.6, 0.8] {0.7, 0.8, both 0}: 0.5;
    # (0.8, 1] {0.9, 0}: 0.1 -> 1.2 / 4 = 0.3. Class 1: (0.2, 0.4] {0.4 is 1, 0.3}: |1 - 0.7|;
    # [0, 0.2] {0.2, 0.1}: 0.3 -> 0.6 / 4 = 0.15. Mean over the 2 classes: 0.225.
    probs = np.array([[0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1]], np.float32)
    y = np.array([1, 0, 0, 0])
    got = uncertainty.classwise_calibration_error(probs, y, n_bins=5)
    np.testing.assert_allclose(float(got), 0.225, atol=1e-7)
    # One bin: each class's mean probability equals its frequency (0.75 and 0.25).
    np.testing.assert_allclose(float(uncertainty.classwise_calibration_error(probs, y, n_bins=1)),
                               0.0, atol=1e-7)


@pytest.mark.parametrize("n_bins", [5, 10, 15])
def test_classwise_ece_matches_sklearn_per_class(n_bins):
    probs, y = _random_probs(seed=30 + n_bins, n=300, k=4)
    expected = np.mean([_binned_ece_reference(y == k, probs[:, k], n_bins, "uniform")[0]
                        for k in range(4)])
    got = uncertainty.classwise_calibration_error(probs, y, n_bins=n_bins)
    np.testing.assert_allclose(float(got), expected, atol=1e-6)   # float32 sums of 1200 terms


def test_mce_hand_case():
    # Five bins: (0.4, 0.6] {0.6 wrong}: 0.6; (0.6, 0.8] {0.7, 0.8 right}: 0.25; (0.8, 1]
    # {0.9 right}: 0.1. MCE 0.6.
    probs = np.array([[0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1]], np.float32)
    y = np.array([1, 0, 0, 0])
    got = uncertainty.maximum_calibration_error(probs, y, n_bins=5)
    np.testing.assert_allclose(float(got), 0.6, atol=1e-7)
    # The one-example bin weighs as much as any in the MCE; the ECE gives it 1/4:
    # (0.6 + 2 * 0.25 + 0.1) / 4 = 0.3.
    np.testing.assert_allclose(float(uncertainty.expected_calibration_error(probs, y, n_bins=5)),
                               0.3, atol=1e-7)


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_mce_matches_sklearn_and_the_reliability_diagram(n_bins):
    probs, y = _random_probs(seed=40 + n_bins, n=300)
    _, gaps = _binned_ece_reference(probs.argmax(1) == y, probs.max(1), n_bins, "uniform")
    got = float(uncertainty.maximum_calibration_error(probs, y, n_bins=n_bins))
    np.testing.assert_allclose(got, gaps.max(), atol=1e-6)         # float32 bin means
    diagram = uncertainty.reliability_diagram(probs, y, n_bins=n_bins)
    filled = diagram.count > 0
    np.testing.assert_allclose(got, np.max(np.abs(diagram.accuracy - diagram.confidence)[filled]),
                               atol=1e-6)
    assert got >= float(uncertainty.expected_calibration_error(probs, y, n_bins=n_bins)) - 1e-7


# -------------------------------------------------------------------- FPR at 95% TPR and AUPR

def _ood_scores(seed, n_in, n_out, decimals=None):
    rng = np.random.default_rng(seed)
    s_in, s_out = rng.normal(0.0, 1.0, n_in), rng.normal(1.5, 1.0, n_out)
    if decimals is not None:        # coarse scores: many ties, also between in and out
        s_in, s_out = np.round(s_in, decimals), np.round(s_out, decimals)
    return s_in.astype(np.float32), s_out.astype(np.float32)


@pytest.mark.parametrize("n_in, n_out, decimals", [(100, 80, None), (37, 50, None),
                                                   (20, 15, None), (200, 100, 0),
                                                   (60, 60, 1)])
def test_fpr_at_95_tpr_matches_sklearn_roc_curve(n_in, n_out, decimals):
    s_in, s_out = _ood_scores(n_in + n_out, n_in, n_out, decimals)
    # In-distribution is the positive class; a higher uncertainty score means "less in".
    labels = np.r_[np.ones(n_in), np.zeros(n_out)]
    fpr, tpr, _ = roc_curve(labels, -np.r_[s_in, s_out], drop_intermediate=False)
    expected = fpr[np.argmax(tpr >= 0.95)]
    # A count over n_out in float32: exact up to one rounding of the division.
    np.testing.assert_allclose(float(uncertainty.ood_fpr_at_95_tpr(s_in, s_out)), expected,
                               rtol=1e-7)


def test_fpr_at_95_tpr_extremes():
    s_in = np.arange(20, dtype=np.float32)
    # Out scores above every kept in-score: none is taken for in-distribution.
    assert float(uncertainty.ood_fpr_at_95_tpr(s_in, s_in + 100)) == 0.0
    # The same scores: the threshold keeps 19 of 20, and as many of the out ones.
    assert float(uncertainty.ood_fpr_at_95_tpr(s_in, s_in)) == pytest.approx(0.95, abs=1e-7)


@pytest.mark.parametrize("n_in, n_out, decimals", [(100, 80, None), (30, 120, None),
                                                   (200, 100, 0), (60, 60, 1)])
def test_aupr_in_and_out_match_sklearn_average_precision(n_in, n_out, decimals):
    s_in, s_out = _ood_scores(7 * n_in + n_out, n_in, n_out, decimals)
    scores = np.r_[s_in, s_out]
    is_out = np.r_[np.zeros(n_in), np.ones(n_out)]
    # float32 precisions summed over <= 300 positives against float64: 1e-6.
    np.testing.assert_allclose(float(uncertainty.ood_aupr_out(s_in, s_out)),
                               average_precision_score(is_out, scores), atol=1e-6)
    np.testing.assert_allclose(float(uncertainty.ood_aupr_in(s_in, s_out)),
                               average_precision_score(1 - is_out, -scores), atol=1e-6)


def test_aupr_extremes():
    low, high = np.zeros(5, np.float32), np.ones(3, np.float32)
    # Perfect separation: both areas 1.
    assert float(uncertainty.ood_aupr_out(low, high)) == 1.0
    assert float(uncertainty.ood_aupr_in(low, high)) == 1.0
    # Reversed: the 3 out inputs come after the 5 in ones, at precisions 1/6, 2/7, 3/8.
    s_in = np.arange(1.0, 6.0, dtype=np.float32)
    s_out = -np.arange(1.0, 4.0, dtype=np.float32)
    np.testing.assert_allclose(float(uncertainty.ood_aupr_out(s_in, s_out)),
                               (1 / 6 + 2 / 7 + 3 / 8) / 3, rtol=1e-6)   # float32 sum of 3
    # All tied: one threshold, precision = the fraction of positives.
    np.testing.assert_allclose(float(uncertainty.ood_aupr_in(low, np.zeros(3, np.float32))),
                               5 / 8, rtol=1e-7)


def test_new_calibration_and_ood_measures_are_jittable():
    probs, y = _random_probs(seed=50)
    s_in, s_out = _ood_scores(51, 40, 30)
    for fn in (uncertainty.adaptive_expected_calibration_error,
               uncertainty.classwise_calibration_error, uncertainty.maximum_calibration_error):
        eager = float(fn(probs, y, n_bins=10))
        assert float(jax.jit(lambda p, t, f=fn: f(p, t, n_bins=10))(probs, y)) == eager
    for fn in (uncertainty.ood_fpr_at_95_tpr, uncertainty.ood_aupr_in, uncertainty.ood_aupr_out):
        assert float(jax.jit(fn)(s_in, s_out)) == float(fn(s_in, s_out))


@pytest.mark.parametrize("call, error, match", [
    (lambda: uncertainty.adaptive_expected_calibration_error(_P, _Y, n_bins=0), ValueError,
     r"`n_bins` must be >= 1, got 0"),
    (lambda: uncertainty.classwise_calibration_error(_P, _Y + 1), ValueError,
     r"`y` has label 2 but `n_classes` is 2"),
    (lambda: uncertainty.maximum_calibration_error(_P * 0.9, _Y), ValueError, r"must sum to 1"),
    (lambda: uncertainty.classwise_calibration_error(_P, _Y[:1]), ValueError,
     r"`y` has 1 labels but `probs` has 2 examples"),
    (lambda: uncertainty.ood_fpr_at_95_tpr(_P, _Y.astype(np.float32)), ValueError,
     r"`scores_in` must have 1 dimensions"),
    (lambda: uncertainty.ood_aupr_in(np.array([0.1, np.nan], np.float32), _Y.astype(np.float32)),
     ValueError, r"`scores_in` contains 1 NaN or inf"),
    (lambda: uncertainty.ood_aupr_out(_Y.astype(np.float32), np.zeros(0, np.float32)), ValueError,
     r"`scores_out` is empty"),
    (lambda: uncertainty.ood_aupr_out(_Y, _Y.astype(np.float32)), TypeError,
     r"`scores_in` must have a floating dtype"),
])
def test_new_measures_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()
