"""Tests for jaxlearn.conformal: scores and the quantile against hand and NumPy references, the
coverage guarantee on exchangeable synthetic data over many random splits, RAPS = APS at lam = 0,
nested sets in alpha, reproducible randomisation, jit/vmap, and the bad-argument table."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import softmax

from jaxlearn import conformal

K = 5


def _probs(seed, n=300, k=K, sharpness=2.0):
    rng = np.random.default_rng(seed)
    return softmax(sharpness * rng.normal(size=(n, k)), axis=1).astype(np.float32)


def _rank_k(n, alpha_percent):
    """k = ceil((n + 1)(1 - alpha)) in integer arithmetic, alpha = alpha_percent / 100."""
    return -(-(n + 1) * (100 - alpha_percent) // 100)


def _aps_reference(probs, u=None, k_reg=0, lam=0.0):
    """Float64 loop: classes by decreasing p (stable), mass up to each rank (+ u p), penalty."""
    probs = np.asarray(probs, np.float64)
    scores = np.empty_like(probs)
    for i, row in enumerate(probs):
        mass = 0.0
        for r, c in enumerate(np.argsort(-row, kind="stable"), start=1):
            mass += row[c]
            own = mass if u is None else mass - row[c] + u[i] * row[c]
            scores[i, c] = own + lam * max(0, r - k_reg)
    return scores


# A dyadic case: every sum is exact in float32, so the scores are compared exactly. Classes by
# decreasing p: 1 (0.5), 2 (0.25), 0 (0.125), 3 (0.125) - the tie 0/3 goes to the lower index.
_DYADIC = np.array([[0.125, 0.5, 0.25, 0.125]], np.float32)


# -------------------------------------------------------------------------------------- scores

def test_lac_scores_are_one_minus_p():
    np.testing.assert_array_equal(np.asarray(conformal.lac_scores(_DYADIC)),
                                  [[0.875, 0.5, 0.75, 0.875]])


def test_aps_scores_hand_case_exact():
    # Mass at or above each class: class 1 0.5, class 2 0.75, class 0 0.875, class 3 1.0.
    np.testing.assert_array_equal(np.asarray(conformal.aps_scores(_DYADIC)),
                                  [[0.875, 0.5, 0.75, 1.0]])


def test_raps_scores_hand_case_exact():
    # k_reg = 1, lam = 0.25: penalties 0, 0.25, 0.5, 0.75 for ranks 1-4.
    scores = conformal.raps_scores(_DYADIC, k_reg=1, lam=0.25)
    np.testing.assert_array_equal(np.asarray(scores), [[1.375, 0.5, 1.0, 1.75]])


def test_randomised_aps_hand_case():
    key = jax.random.key(0)
    u = float(jax.random.uniform(key, (1,))[0])
    expected = np.array([[0.75 + u * 0.125, u * 0.5, 0.5 + u * 0.25, 0.875 + u * 0.125]])
    # One float32 rounding of the product and of the sum (or an FMA): 2 ulps of 1.
    np.testing.assert_allclose(np.asarray(conformal.aps_scores(_DYADIC, key=key)), expected,
                               rtol=0, atol=2.4e-7)


# K = 10 sums over a class-by-class comparison, K = 40 sorts (two code paths).
@pytest.mark.parametrize("n_classes", [10, 40])
@pytest.mark.parametrize("randomized", [False, True])
def test_scores_match_float64_reference(randomized, n_classes):
    probs = _probs(seed=1, n=200, k=n_classes)
    probs[:, 3] = probs[:, 1]      # ties (renormalised below): ranked by class index
    probs /= probs.sum(1, keepdims=True)
    key = jax.random.key(2) if randomized else None
    u = np.asarray(jax.random.uniform(key, (200,))) if randomized else None
    # float32 sums of K terms against float64: K roundings of <= 6e-8 each, plus one for u p.
    atol = (n_classes + 2) * 6e-8
    np.testing.assert_allclose(np.asarray(conformal.aps_scores(probs, key=key)),
                               _aps_reference(probs, u), rtol=0, atol=atol)
    np.testing.assert_allclose(np.asarray(conformal.raps_scores(probs, k_reg=2, lam=0.1, key=key)),
                               _aps_reference(probs, u, k_reg=2, lam=0.1), rtol=0, atol=atol)
    np.testing.assert_allclose(np.asarray(conformal.lac_scores(probs)), 1.0 - np.float64(probs),
                               rtol=0, atol=6e-8)   # one float32 rounding of 1 - p


@pytest.mark.parametrize("key", [None, jax.random.key(3)])
def test_raps_with_lam_zero_is_aps(key):
    probs = _probs(seed=4)
    for k_reg in (0, 2):
        np.testing.assert_array_equal(
            np.asarray(conformal.raps_scores(probs, k_reg=k_reg, lam=0.0, key=key)),
            np.asarray(conformal.aps_scores(probs, key=key)))
    y = np.random.default_rng(4).integers(0, K, 300).astype(np.int32)
    kw = {} if key is None else {"key": key}
    test_kw = {} if key is None else {"key": jax.random.key(5)}
    aps = conformal.calibrate(probs, y, alpha=0.1, method="aps", **kw)
    raps = conformal.calibrate(probs, y, alpha=0.1, method="raps", k_reg=1, lam=0.0, **kw)
    assert float(aps.threshold) == float(raps.threshold)
    np.testing.assert_array_equal(np.asarray(conformal.predict_sets(probs, aps, **test_kw)),
                                  np.asarray(conformal.predict_sets(probs, raps, **test_kw)))


@pytest.mark.parametrize("key", [None, jax.random.key(21)])
def test_raps_sets_are_inside_aps_sets_at_the_same_threshold(key):
    # Flat tails: RAPS's penalty (k_reg = 1, lam = 0.1) leaves out classes APS keeps.
    probs = _probs(seed=22, sharpness=0.5)
    for q in (0.5, 0.8, 0.95):
        aps = conformal.Calibration(jnp.float32(q), 0.1, "aps", key is not None, 0, 0.0, 100, 91,
                                    K)
        raps = aps._replace(method="raps", k_reg=1, lam=0.1)
        aps_sets = np.asarray(conformal.predict_sets(probs, aps, key=key))
        raps_sets = np.asarray(conformal.predict_sets(probs, raps, key=key))
        assert np.all(aps_sets | ~raps_sets)
        assert raps_sets.sum() < aps_sets.sum()


def test_randomised_scores_are_reproducible_with_the_same_key():
    probs, y = _probs(seed=6), np.random.default_rng(6).integers(0, K, 300).astype(np.int32)
    k_cal, k_test = jax.random.split(jax.random.key(7))
    runs = []
    for _ in range(2):
        cal = conformal.calibrate(probs, y, alpha=0.1, method="aps", key=k_cal)
        runs.append((float(cal.threshold),
                     np.asarray(conformal.predict_sets(probs, cal, key=k_test))))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    # Another key draws other u: every score changes.
    a = np.asarray(conformal.aps_scores(probs, key=k_cal))
    b = np.asarray(conformal.aps_scores(probs, key=k_test))
    assert np.all(a != b)


# ------------------------------------------------------------------------------------ quantile

@pytest.mark.parametrize("n, alpha_percent, k", [
    (100, 10, 91),     # ceil(101 * 0.9) = ceil(90.9)
    (9, 10, 9),        # n = 1/alpha - 1: the largest score
    (149, 18, 123),    # 150 * 0.82 = 123 exactly; float arithmetic gives 124
    (204, 10, 185),
    (1000, 5, 951),
])
def test_conformal_quantile_is_the_kth_smallest(n, alpha_percent, k):
    assert _rank_k(n, alpha_percent) == k
    if (n, alpha_percent) == (149, 18):       # the docstring's case: float rounding adds one
        assert math.ceil((n + 1) * (1 - 0.18)) == 124
    scores = np.random.default_rng(n).random(n).astype(np.float32)
    alpha = alpha_percent / 100
    q = float(conformal.conformal_quantile(scores, alpha=alpha))
    assert q == np.sort(scores)[k - 1]
    # numpy's inverted-CDF quantile at k/n is the same order statistic (the docstring's recipe).
    assert q == np.quantile(scores, k / n, method="inverted_cdf")
    if k < n:   # "higher" at k/n would take the next one
        assert np.quantile(scores, k / n, method="higher") == np.sort(scores)[k]


@pytest.mark.parametrize("method, kw", [("lac", {}), ("aps", {}),
                                        ("aps", {"key": jax.random.key(8)}),
                                        ("raps", {"k_reg": 1, "lam": 0.05})])
def test_calibrate_takes_the_quantile_of_the_true_class_scores(method, kw):
    probs, y = _probs(seed=9), np.random.default_rng(9).integers(0, K, 300).astype(np.int32)
    cal = conformal.calibrate(probs, y, alpha=0.2, method=method, **kw)
    score_fn = {"lac": lambda p: conformal.lac_scores(p),
                "aps": lambda p: conformal.aps_scores(p, key=kw.get("key")),
                "raps": lambda p: conformal.raps_scores(p, k_reg=1, lam=0.05)}[method]
    true_scores = np.asarray(score_fn(probs))[np.arange(300), y]
    k = _rank_k(300, 20)
    assert float(cal.threshold) == np.sort(true_scores)[k - 1]
    assert (cal.alpha, cal.method, cal.n, cal.k, cal.n_classes) == (0.2, method, 300, k, K)
    assert cal.randomized == ("key" in kw)
    assert (cal.k_reg, cal.lam) == ((1, 0.05) if method == "raps" else (0, 0.0))


def test_score_is_an_alias_of_lac():
    probs, y = _probs(seed=10), np.random.default_rng(10).integers(0, K, 300).astype(np.int32)
    a = conformal.calibrate(probs, y, alpha=0.1, method="score")
    b = conformal.calibrate(probs, y, alpha=0.1, method="lac")
    assert a == b


def test_the_smallest_calibration_set_takes_the_largest_score():
    probs, y = _probs(seed=11, n=9), np.arange(9, dtype=np.int32) % K
    cal = conformal.calibrate(probs, y, alpha=0.1)       # n = 9 = 1/alpha - 1: k = n
    assert cal.k == 9
    assert float(cal.threshold) == np.max(1.0 - probs[np.arange(9), y])
    with pytest.raises(ValueError, match=r"n = 8 calibration examples, but alpha = 0.1 needs "
                                         r"n >= 9"):
        conformal.calibrate(probs[:8], y[:8], alpha=0.1)


# ------------------------------------------------------------------------------ prediction sets

def test_lac_sets_hand_case_and_can_be_empty():
    cal = conformal.Calibration(jnp.float32(0.5), 0.1, "lac", False, 0, 0.0, 100, 91, 4)
    sets = conformal.predict_sets(np.array([[0.125, 0.5, 0.25, 0.125],
                                            [0.25, 0.25, 0.25, 0.25]], np.float32), cal)
    # Keep p_y >= 1 - 0.5: class 1 only; a flat row keeps none.
    np.testing.assert_array_equal(np.asarray(sets), [[False, True, False, False], [False] * 4])
    np.testing.assert_array_equal(np.asarray(conformal.set_size(sets)), [1, 0])


def test_non_randomised_aps_sets_hand_case():
    # Scores (rank order) 0.5, 0.75, 0.875, 1.0. q = 0.8: ranks 1-2 are within, rank 3 is the
    # first beyond and is kept too; q = 0.75 keeps ranks 1-3 (rank 2's score 0.75 <= q);
    # q = 0.1: only the top class (never empty).
    for q, expected in ((0.8, [True, True, True, False]), (0.75, [True, True, True, False]),
                        (0.7, [False, True, True, False]), (0.1, [False, True, False, False])):
        cal = conformal.Calibration(jnp.float32(q), 0.1, "aps", False, 0, 0.0, 100, 91, 4)
        np.testing.assert_array_equal(np.asarray(conformal.predict_sets(_DYADIC, cal))[0],
                                      expected, err_msg=str(q))


@pytest.mark.parametrize("n_classes", [K, 40])
@pytest.mark.parametrize("method, kw", [("aps", {}), ("raps", {"k_reg": 1, "lam": 0.02})])
@pytest.mark.parametrize("randomized", [False, True])
def test_aps_sets_follow_the_set_rule(method, kw, randomized, n_classes):
    probs = _probs(seed=12, k=n_classes)
    y = np.random.default_rng(12).integers(0, n_classes, 300).astype(np.int32)
    k_cal, k_test = jax.random.split(jax.random.key(13))
    cal = conformal.calibrate(probs[:150], y[:150], alpha=0.1, method=method,
                              key=k_cal if randomized else None, **kw)
    test_key = k_test if randomized else None
    sets = np.asarray(conformal.predict_sets(probs[150:], cal, key=test_key))
    score_fn = conformal.aps_scores if method == "aps" else functools.partial(
        conformal.raps_scores, **kw)
    scores = np.asarray(score_fn(probs[150:], key=test_key))
    q = float(cal.threshold)
    order = np.argsort(-probs[150:], axis=1, kind="stable")
    for row, ranks, s in zip(sets, order, scores):
        kept = row[ranks]
        assert np.all(np.diff(kept.astype(int)) <= 0)          # a prefix in decreasing p
        if randomized:
            np.testing.assert_array_equal(row, s <= q)
        else:
            # Up to and including the first class whose score exceeds q: never empty.
            beyond = np.flatnonzero(s[ranks] > q)
            n_kept = n_classes if beyond.size == 0 else beyond[0] + 1
            assert kept.sum() == n_kept >= 1
            assert np.all(row[s <= q])                          # contains {y : s <= q}


@pytest.mark.parametrize("method, kw", [("lac", {}), ("aps", {"key": jax.random.key(14)})])
def test_sets_are_nested_and_shrink_as_alpha_grows(method, kw):
    probs, y = _probs(seed=15), np.random.default_rng(15).integers(0, K, 300).astype(np.int32)
    test_kw = {} if not kw else {"key": jax.random.key(16)}
    previous, sizes = None, []
    for alpha in (0.02, 0.05, 0.1, 0.2, 0.4):
        cal = conformal.calibrate(probs[:200], y[:200], alpha=alpha, method=method, **kw)
        sets = np.asarray(conformal.predict_sets(probs[200:], cal, **test_kw))
        if previous is not None:
            assert np.all(previous | ~sets)            # sets(alpha) is inside sets(smaller alpha)
        previous = sets
        sizes.append(float(np.mean(conformal.set_size(sets))))
    assert np.all(np.diff(sizes) <= 0) and sizes[0] > sizes[-1], sizes


def test_coverage_and_set_size_hand_case():
    sets = np.array([[True, False, True], [False, False, False], [True, True, True]])
    np.testing.assert_array_equal(np.asarray(conformal.set_size(sets)), [2, 0, 3])
    assert float(conformal.coverage(sets, np.array([2, 0, 1]))) == pytest.approx(2 / 3, abs=1e-7)


def test_jitted_and_eager_agree():
    probs, y = _probs(seed=17), np.random.default_rng(17).integers(0, K, 300).astype(np.int32)
    k_cal, k_test = jax.random.split(jax.random.key(18))

    def pipeline(p, labels, kc, kt):
        cal = conformal.calibrate(p[:200], labels[:200], alpha=0.1, method="raps", k_reg=1,
                                  lam=0.05, key=kc)
        sets = conformal.predict_sets(p[200:], cal, key=kt)
        return cal.threshold, sets, conformal.coverage(sets, labels[200:])

    eager = pipeline(probs, y, k_cal, k_test)
    jitted = jax.jit(pipeline)(probs, y, k_cal, k_test)
    for a, b in zip(eager, jitted):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ---------------------------------------------------------------------------- the guarantee

N_POOL, N_CAL, N_SPLITS, ALPHA = 1000, 204, 1000, 0.1


@pytest.fixture(scope="module")
def pool():
    """Exchangeable data: a fixed pool of 1000 i.i.d. examples. The "model" is miscalibrated on
    purpose (labels drawn at a higher temperature than its probabilities): the guarantee holds
    for any model."""
    rng = np.random.default_rng(19)
    logits = 2.5 * rng.normal(size=(N_POOL, K))
    probs = softmax(logits, axis=1).astype(np.float32)
    y = np.array([rng.choice(K, p=p) for p in softmax(0.6 * logits, axis=1)], np.int32)
    return probs, y


@functools.partial(jax.jit, static_argnames=("method", "randomized"))
def _split_coverage(probs, y, keys, method, randomized):
    """Test coverage on N_SPLITS random calibration/test splits of the pool, vmapped."""

    def one(key):
        k_perm, k_cal, k_test = jax.random.split(key, 3)
        perm = jax.random.permutation(k_perm, N_POOL)
        cal_idx, test_idx = perm[:N_CAL], perm[N_CAL:]
        kw = {"k_reg": 1, "lam": 0.1} if method == "raps" else {}
        cal = conformal.calibrate(probs[cal_idx], y[cal_idx], alpha=ALPHA, method=method,
                                  key=k_cal if randomized else None, **kw)
        sets = conformal.predict_sets(probs[test_idx], cal, key=k_test if randomized else None)
        return conformal.coverage(sets, y[test_idx])

    return jax.vmap(one)(keys)


@pytest.mark.parametrize("method, randomized", [("lac", False), ("aps", True), ("raps", True),
                                                ("aps", False)])
def test_coverage_guarantee_over_random_splits(pool, method, randomized):
    probs, y = pool
    if method == "lac":      # the exact value k/(n+1) needs distinct scores: no ties
        true_scores = 1.0 - probs[np.arange(N_POOL), y]
        assert np.unique(true_scores).size == N_POOL
    keys = jax.random.split(jax.random.key(20), N_SPLITS)
    per_split = np.asarray(_split_coverage(jnp.asarray(probs), jnp.asarray(y), keys, method,
                                           randomized), np.float64)
    mean = per_split.mean()
    # Monte-Carlo error of the mean over 1000 splits (per-split sd ~0.024: the calibration
    # quantile's Beta spread plus 796 test points): 4 standard errors, ~0.003.
    allowance = 4 * per_split.std(ddof=1) / np.sqrt(N_SPLITS)
    assert allowance < 0.0035
    k = _rank_k(N_CAL, 10)                                     # 185 of n + 1 = 205
    lower, upper = 1 - ALPHA, 1 - ALPHA + 1 / (N_CAL + 1)
    assert mean >= lower - allowance, (mean, lower, allowance)
    if method == "aps" and not randomized:
        # Conservative: the set also keeps the class that crosses q_hat.
        assert mean > upper + allowance, mean
        return
    assert mean <= upper + allowance, (mean, upper, allowance)
    # With distinct scores the split-averaged coverage is exactly k/(n+1) = 0.90244: a random
    # test point's score is equally likely at any of the n + 1 ranks.
    assert abs(mean - k / (N_CAL + 1)) <= allowance, (mean, k / (N_CAL + 1), allowance)


# ---------------------------------------------------------------------------- bad arguments

_P = np.array([[0.7, 0.2, 0.1]] * 20, np.float32)
_Y = np.zeros(20, np.int32)
_CAL = conformal.calibrate(_P, _Y, alpha=0.1)
_CAL_RANDOM = conformal.calibrate(_P, _Y, alpha=0.1, method="aps", key=jax.random.key(0))
_KEY = jax.random.key(1)


@pytest.mark.parametrize("call, error, match", [
    (lambda: conformal.calibrate(_P, _Y, alpha=0.0), ValueError,
     r"`alpha` must lie in \(0.0, 1.0\), got 0.0"),
    (lambda: conformal.calibrate(_P, _Y, alpha=1.5), ValueError,
     r"`alpha` must lie in \(0.0, 1.0\), got 1.5"),
    (lambda: conformal.calibrate(_P, _Y, alpha=jnp.float32(0.1)), TypeError,
     r"`alpha` must be a number"),
    (lambda: conformal.calibrate(_P, _Y, alpha=0.01), ValueError,
     r"`probs_cal` has n = 20 calibration examples, but alpha = 0.01 needs n >= 99"),
    (lambda: conformal.conformal_quantile(np.ones(3, np.float32), alpha=0.2), ValueError,
     r"`scores` has n = 3 calibration examples, but alpha = 0.2 needs n >= 4"),
    (lambda: conformal.calibrate(_P * 0.5, _Y, alpha=0.1), ValueError,
     r"`probs_cal` must sum to 1 over its last axis"),
    (lambda: conformal.calibrate(_P - 0.3, _Y, alpha=0.1), ValueError,
     r"`probs_cal` must hold probabilities in \[0, 1\]"),
    (lambda: conformal.calibrate(_P[0], _Y, alpha=0.1), ValueError,
     r"`probs_cal` must have 2 dimensions, got shape \(3,\)"),
    (lambda: conformal.calibrate(_P, _Y + 3, alpha=0.1), ValueError,
     r"`y_cal` has label 3 but `n_classes` is 3"),
    (lambda: conformal.calibrate(_P, _Y.astype(np.float32), alpha=0.1), TypeError,
     r"`y_cal` must hold integer class labels"),
    (lambda: conformal.calibrate(_P, _Y[:19], alpha=0.1), ValueError,
     r"`y_cal` has 19 labels but `probs_cal` has 20 examples"),
    (lambda: conformal.calibrate(_P, _Y, alpha=0.1, method="softmax"), ValueError,
     r"`method` must be one of \['aps', 'lac', 'raps'\], got 'softmax'"),
    (lambda: conformal.calibrate(_P, _Y, alpha=0.1, method="raps", k_reg=-1, lam=0.1),
     ValueError, r"`k_reg` must be >= 0, got -1"),
    (lambda: conformal.calibrate(_P, _Y, alpha=0.1, method="raps", k_reg=1.5, lam=0.1),
     TypeError, r"`k_reg` must be an int"),
    (lambda: conformal.calibrate(_P, _Y, alpha=0.1, method="raps", k_reg=1, lam=-0.1),
     ValueError, r"`lam` must be >= 0, got -0.1"),
    (lambda: conformal.calibrate(_P, _Y, alpha=0.1, method="raps"), ValueError,
     r"method='raps' needs `k_reg`"),
    (lambda: conformal.calibrate(_P, _Y, alpha=0.1, method="aps", lam=0.1), ValueError,
     r"method='aps' takes neither"),
    (lambda: conformal.calibrate(_P, _Y, alpha=0.1, key=_KEY), ValueError,
     r"LAC's score 1 - p_y is deterministic"),
    (lambda: conformal.calibrate(_P, _Y, alpha=0.1, method="aps", key=0), TypeError,
     r"`key` must be a jax.random key"),
    (lambda: conformal.raps_scores(_P, k_reg=1, lam=-1.0), ValueError, r"`lam` must be >= 0"),
    (lambda: conformal.aps_scores(_P[:, :1] * 0 + 1), ValueError, r"K >= 2"),
    (lambda: conformal.predict_sets(_P[:, :2] / _P[:, :2].sum(1, keepdims=True), _CAL),
     ValueError, r"`probs` has 2 classes \(shape \(20, 2\)\) but the calibration was fitted on 3"),
    (lambda: conformal.predict_sets(_P, _CAL_RANDOM), ValueError,
     r"predict_sets needs `key=` too"),
    (lambda: conformal.predict_sets(_P, _CAL, key=_KEY), ValueError, r"`key` must be None"),
    (lambda: conformal.predict_sets(_P, (0.5, 0.1)), TypeError,
     r"`calibration` must be a Calibration"),
    (lambda: conformal.coverage(np.ones((20, 3)), _Y), TypeError,
     r"`sets` must be a boolean mask \[n, K\]"),
    (lambda: conformal.coverage(np.ones((20, 3), bool), _Y[:5]), ValueError,
     r"`y` has 5 labels but `sets` has 20 examples"),
    (lambda: conformal.coverage(np.ones((20, 3), bool), _Y + 5), ValueError,
     r"`y` has label 5 but `n_classes` is 3"),
    (lambda: conformal.set_size(np.ones(3, bool)), ValueError, r"`sets` must have 2 dimensions"),
])
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()
