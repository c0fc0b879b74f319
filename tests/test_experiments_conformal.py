"""The conformal prediction experiment in quick mode with its quick seeds: each check over seeds
holds or stays inconclusive, and every seed's numbers lie where the theorem (clean coverage) or
the full runs (coverage and set size under noise) put them."""

import numpy as np
import pytest
from experiment_checks import check_outcome, check_progress, quick_run

from experiments import conformal_prediction


@pytest.mark.slow
def test_conformal_prediction_quick():
    out, calls = quick_run("conformal_prediction")
    check_outcome(out, "conformal_prediction")
    check_progress(calls)
    nums = out.numbers
    n_seeds, n_levels = conformal_prediction.QUICK_SEEDS, len(conformal_prediction.NOISE_STDS)
    assert nums["seed_values"] == list(range(n_seeds))
    assert nums["n_splits"] == conformal_prediction.QUICK_SPLITS
    # n = 500 calibration signals at alpha = 0.1: k = ceil(501 * 0.9) = 451, the band is
    # [0.9, 0.9 + 1/501] and with distinct scores the expected coverage is 451/501.
    assert (nums["n_cal"], nums["n_test"], nums["k"]) == (500, 500, 451)
    assert nums["upper_bound"] == pytest.approx(0.9 + 1 / 501, abs=1e-12)
    assert nums["expected_coverage_distinct_scores"] == pytest.approx(451 / 501, abs=1e-12)
    assert nums["noise_stds"][0] == 0.0
    accuracy = np.asarray(nums["accuracy"])
    assert accuracy.shape == (n_seeds, n_levels)
    # Runs: clean accuracy 0.84-0.89 after 400 steps (0.93 after 2000), 0.22-0.26 at std 1.
    assert np.all((accuracy[:, 0] >= 0.8) & (accuracy[:, 0] <= 0.95))
    assert np.all(accuracy[:, -1] <= 0.35)
    for name in conformal_prediction.METHODS:
        coverage = np.asarray(nums["coverage"][name])
        size = np.asarray(nums["set_size"][name])
        empty = np.asarray(nums["empty_fraction"][name])
        assert coverage.shape == size.shape == empty.shape == (n_seeds, n_levels)
        # Clean, every seed: 451/501 = 0.9002 up to the Monte-Carlo error of 500 splits
        # (standard error ~0.0009; runs: 0.8985-0.9008), well inside the band +- 0.005.
        assert np.all(np.abs(coverage[:, 0] - 451 / 501) <= 0.004), (name, coverage[:, 0])
        # Under noise coverage falls (runs: never rises by more than 0.002 between levels) to
        # 0.22-0.26 at std 1, near the accuracy. A non-empty set holds the top-1 class (LAC
        # keeps the most probable class first, APS sets are prefixes), so coverage >= accuracy
        # - empty sets; 0.01 for the split averages (test halves) vs the whole pool's accuracy.
        assert np.all(np.diff(coverage, axis=1) <= 0.005), (name, coverage)
        assert np.all(coverage[:, -1] <= 0.35)
        assert np.all(coverage >= accuracy - empty - 0.01), name
        # Runs: mean set sizes 0.88-1.45 at every level; the sets never approach K = 10.
        assert np.all((size >= 0.8) & (size <= 2.0)), (name, size)
        assert np.all((empty >= 0.0) & (empty <= 0.2))
    # Randomised APS returns an empty set when u p_(1) > q_hat: runs 3-6% clean.
    assert np.all(np.asarray(nums["empty_fraction"]["APS (randomised)"])[:, 0] > 0.01)
    assert [c.kind for c in out.checks] == ["interval"] * 8
    assert all(c.estimate.n == n_seeds and c.source for c in out.checks)
    assert set(out.figure_names) == {"coverage_and_size_vs_noise", "set_size_histogram"}
