"""Tests for jaxlearn.stats: intervals against scipy and by coverage, verdicts, errors."""

import math

import numpy as np
import pytest

from jaxlearn import stats


def test_t_quantiles_match_scipy():
    st = pytest.importorskip("scipy.stats")
    for df in range(1, 200):
        # table (df <= 30): 1e-7; Cornish-Fisher beyond: 1e-6 relative at 95%
        assert stats.t_quantile(df) == pytest.approx(st.t.ppf(0.975, df), rel=1e-6)
    for df in range(3, 200):
        assert stats.t_quantile(df, 0.9) == pytest.approx(st.t.ppf(0.95, df), rel=3e-3)


def test_t_interval_matches_scipy_and_covers_95_percent():
    st = pytest.importorskip("scipy.stats")
    x = [0.61, 0.64, 0.66, 0.63, 0.70]
    est = stats.estimate(x)
    low, high = st.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=st.sem(x))
    assert (est.low, est.high) == pytest.approx((low, high), rel=1e-7)
    # Coverage over 4000 normal samples of n=5: 0.95 +- 3 binomial sd (0.0103).
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(4000):
        e = stats.estimate(rng.normal(1.0, 2.0, 5))
        hits += e.low <= 1.0 <= e.high
    assert abs(hits / 4000 - 0.95) < 0.0103


def test_bootstrap_is_reproducible_and_near_the_t_interval_for_normal_data():
    x = np.random.default_rng(1).normal(0, 1, 40)
    a = stats.estimate(x, method="bootstrap")
    b = stats.estimate(x, method="bootstrap")
    t = stats.estimate(x)
    assert a == b and a.method == "bootstrap"
    assert a.low == pytest.approx(t.low, abs=0.05) and a.high == pytest.approx(t.high, abs=0.05)


def test_paired_difference_removes_shared_seed_noise():
    rng = np.random.default_rng(2)
    seed_effect = rng.normal(0, 1.0, 10)          # shared by both methods
    a = 0.80 + seed_effect + rng.normal(0, 0.01, 10)
    b = 0.75 + seed_effect + rng.normal(0, 0.01, 10)
    assert stats.verdict(stats.paired(a, b), ">", 0.0) == "holds"
    unpaired = stats.estimate(a).low - stats.estimate(b).high
    assert unpaired < 0  # unpaired intervals overlap: the pairing is what decides


@pytest.mark.parametrize("values, op, threshold, want", [
    ([0.70, 0.72, 0.71], ">=", 0.6, "holds"),
    ([0.58, 0.62, 0.61], ">=", 0.6, "inconclusive"),
    ([0.50, 0.52, 0.51], ">=", 0.6, "does not hold"),
    ([0.50, 0.52, 0.51], "<", 0.6, "holds"),
    ([0.58, 0.62, 0.61], "<=", 0.6, "inconclusive"),
    ([0.70, 0.72, 0.71], "<=", 0.6, "does not hold"),
    ([0.70], ">=", 0.6, "inconclusive"),            # one seed: no interval
    ([float("nan"), 0.7], ">=", 0.6, "does not hold"),
])
def test_verdicts(values, op, threshold, want):
    assert stats.verdict(stats.estimate(values), op, threshold) == want


def test_exact_quantities_need_no_seeds():
    est = stats.estimate(1e-7, exact=True)
    assert (est.low, est.high, est.method) == (1e-7, 1e-7, "exact")
    assert stats.verdict(est, "<=", 1e-6) == "holds"
    assert math.isinf(stats.estimate(1e-7).high)


@pytest.mark.parametrize("kwargs, match", [
    (dict(values=[]), "non-empty 1-D"),
    (dict(values=[[1.0, 2.0]]), "non-empty 1-D"),
    (dict(values=[1.0, 2.0], method="z"), "'t' or 'bootstrap'"),
    (dict(values=[1.0, 2.0], confidence=1.5), r"\(0, 1\)"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stats.estimate(**kwargs)
    with pytest.raises(ValueError, match="one of"):
        stats.verdict(stats.estimate([1.0, 2.0]), "==", 1.0)
