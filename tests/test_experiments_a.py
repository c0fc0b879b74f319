"""The lecture's first experiments (unit circle, representations, gradient descent, SGD, XOR) run
in quick mode with their quick seeds: each check over seeds must hold or stay inconclusive (sgd's
documented finding apart), sanity checks must hold, and the key numbers must lie in the range the
full runs measured (wide enough for a few seeds, narrow enough to catch a broken model)."""

import math

import numpy as np
import pytest
from experiment_checks import check_outcome, check_progress, quick_run

from experiments import xor


def _interval_checks(out, n, n_sanity):
    """Every check has a threshold source; all but ``n_sanity`` labelled sanity checks are
    intervals over ``n`` seeds."""
    kinds = [c.kind for c in out.checks]
    assert kinds.count("sanity") == n_sanity, kinds
    for c in out.checks:
        assert c.source, c.what
        if c.kind != "sanity":
            assert c.kind == "interval" and len(c.values) == n, c.as_dict()


@pytest.mark.slow
def test_unit_circle_quick():
    out, calls = quick_run("unit_circle")
    check_outcome(out, "unit_circle")
    check_progress(calls)
    _interval_checks(out, 3, 1)
    test_acc = out.numbers["test_accuracy"]
    phi, raw, tree = (test_acc[f"{m} on {f}"] for m, f in (
        ("logistic regression", "phi(x)"), ("logistic regression", "x"), ("decision tree", "x")))
    # phi(x) + logistic regression: 0.96 +- 0.02 per training set of 30 points, ~0.99 at 1000.
    assert all(0.93 <= a <= 0.99 for a in phi["30"])
    assert min(phi["1000"]) >= 0.98
    # The raw linear model stays near "always outside" (e^-1/2 = 0.61) even with 1000 points.
    assert all(abs(a - math.exp(-0.5)) < 0.05 for a in raw["1000"])
    # The tree improves with data but stays below phi(x) at 30 points.
    assert np.mean(tree["10"]) < np.mean(tree["1000"])
    assert np.mean(tree["30"]) < np.mean(phi["30"])
    capacity, overfit, phi30, tree_train = out.checks
    # The capacity gap measures ~0.39 (1 - e^-1/2 in theory); the tree's gap exceeds phi's by
    # ~0.12 (its train accuracy is exactly 1: the sanity check).
    assert 0.3 <= capacity.value <= 0.45 and capacity.verdict == "holds"
    assert 0.05 <= overfit.value <= 0.25
    assert phi30.threshold == 0.95 and tree_train.value == 1.0


def test_gradient_descent_quick():
    out, calls = quick_run("gradient_descent")
    check_outcome(out, "gradient_descent")
    check_progress(calls)
    _interval_checks(out, 3, 2)
    table = out.numbers["learning_rate_table"]
    # Near x* the error shrinks by |1 - 8 eta| per step: eta = 0.1 needs ~log(1e-3 / 2) /
    # log(0.2) ~ 5 steps from x0 ~ 2 plus the approach, the measured mean is 9 to 15.
    assert 5 <= np.mean(table["0.1"]["steps_to_converge"]) <= 20
    # eta = 0.3 > 0.25 settles into an oscillation around x* (|x_T - x*| ~ 0.1), never at x*.
    assert table["0.3"]["median_final_error"] > 1e-2
    # The wavy minima and the maxima between them are the lecture's.
    for minimum in out.numbers["wavy_minima_per_seed"][0]:
        assert min(abs(minimum - m) for m in (1.58, 3.54, 5.53)) < 0.01
    np.testing.assert_allclose(out.numbers["valley_minima"], [1.582, 3.544, 5.530], atol=2e-3)
    np.testing.assert_allclose(out.numbers["valley_maxima"], [2.558, 4.536, 6.526], atol=2e-3)
    own_valley, speedup = out.checks[:2]
    # Every start ends in its own valley (eta = 0.01 is far below 2 / J'' at the minima), and
    # eta = 0.01 needs ~12x the steps of eta = 0.1 (10x asymptotically, more on the approach).
    assert own_valley.values == (1.0,) * 3 and own_valley.verdict == "holds"
    assert all(8 <= v <= 16 for v in speedup.values) and speedup.verdict == "holds"


@pytest.mark.slow
def test_representations_quick():
    out, _ = quick_run("representations")
    check_outcome(out, "representations")
    _interval_checks(out, 3, 0)
    acc = out.numbers["test_accuracy"]
    # Logistic regression on raw 8x8 pixels: 0.96 to 0.98 on 540 test digits (sklearn reports
    # the same range); the CNN within [0.95, 1].
    assert all(0.94 <= a <= 0.99 for a in acc["raw pixels (identity)"])
    assert all(0.95 <= a <= 1.0 for a in acc["learned CNN"])
    # The bank is chosen on validation, one per seed, and the paired difference is against it.
    chosen = out.numbers["chosen_bank_per_seed"]
    assert len(chosen) == 3 and set(chosen) <= set(acc) - {"learned CNN"}
    expected = [acc["learned CNN"][i] - acc[name][i] for i, name in enumerate(chosen)]
    np.testing.assert_allclose(out.checks[0].values, expected, atol=1e-6)
    assert -0.02 <= out.checks[0].value <= 0.04


@pytest.mark.slow
def test_sgd_quick():
    out, _ = quick_run("sgd")
    _interval_checks(out, 3, 0)
    # The finding: at the same effective step lr / (1 - momentum), heavy-ball momentum is no
    # better than plain SGD (ratio ~1.0, quick and full); its gain at the same lr is the step.
    (finding,) = [c for c in out.checks if "same effective step" in c.what]
    assert 0.9 <= finding.value <= 1.1 and finding.verdict == "does not hold", finding.as_dict()
    assert out.verdict == "does not hold"
    check_outcome(out, "sgd")  # the finding is in experiment_checks.FINDINGS
    final = out.numbers["final_train_loss"]
    initial = out.numbers["initial_loss"][0]
    # Ten classes: the initial cross-entropy is near log 10 = 2.3 (a few tenths off for He init).
    assert 1.8 <= initial <= 4.0
    # Every optimiser lowers the loss; none diverges.
    for name, values in final.items():
        assert max(values) < initial, name
    assert not any(out.numbers["diverged"].values())
    # Quick mode tests a batch below 32; smaller batches end lower (slope of log loss ~0.2).
    assert "SGD, batch 16" in final
    assert all(0.1 <= v <= 0.4 for v in out.numbers["batch_slope"])
    # GD at 10x the learning rate is better than at the same lr, and SGD-32 still ~half of it.
    gd, gd_large = (final[n] for n in final if n.startswith("GD"))
    assert np.all(np.less(gd_large, gd))
    assert all(0.35 <= r <= 0.65 for r in out.numbers["ratios"]["sgd_gd"])
    # Per-epoch times are recorded for every epoch, compilation apart.
    epochs = out.numbers["epochs"]
    assert all(len(t) == epochs for t in out.numbers["cumulative_seconds"].values())


@pytest.mark.slow
def test_xor_quick():
    out, calls = quick_run("xor")
    check_outcome(out, "xor")
    check_progress(calls)
    _interval_checks(out, 3, 1)
    linear_corners, mlp, gap = out.checks
    # Theorem: every fitted line gets at most 3 of the 4 corners.
    assert linear_corners.kind == "sanity" and linear_corners.value <= 0.75
    # The MLP makes a handful of errors in 2000 test points (Bayes accuracy 0.9991 at noise
    # 0.3); a linear model scores 0.46 to 0.75, so the paired gap lies between 0.24 and 0.55.
    assert math.isclose(out.numbers["bayes_accuracy"], xor.bayes_accuracy(0.3))
    assert all(0.985 <= a <= 1.0 for a in out.numbers["mlp_accuracy"])
    assert all(0.4 <= a <= 0.76 for a in out.numbers["linear_accuracy"])
    assert mlp.threshold == 0.99 and mlp.verdict in ("holds", "inconclusive")
    assert gap.threshold == pytest.approx(0.24) and 0.24 <= gap.value <= 0.55
    assert out.numbers["mlp_corner_accuracy"] == [1.0] * 3


@pytest.mark.parametrize("noise, expected", [
    (0.3, 1 - 2 * 4.2906e-4 * (1 - 4.2906e-4)),  # Phi(-1/0.3) = 4.2906e-4 (tables)
    (1e-3, 1.0),
    (0.5, 1 - 2 * 0.0227501 * (1 - 0.0227501)),  # Phi(-2) = 0.0227501
])
def test_xor_bayes_accuracy(noise, expected):
    assert xor.bayes_accuracy(noise) == pytest.approx(expected, abs=1e-6)
