"""The lecture's first experiments (unit circle, representations, gradient descent, SGD) run in
quick mode with one seed: each claim must hold and its key numbers must lie in the range the
full runs measured (wide enough for one seed, narrow enough to catch a broken model)."""

import math

import numpy as np
import pytest
from experiment_checks import check_outcome, check_progress, progress_recorder

from experiments import gradient_descent, representations, sgd, unit_circle


@pytest.mark.slow
def test_unit_circle_quick():
    calls, progress = progress_recorder()
    out = unit_circle.run(quick=True, seeds=1, progress=progress)
    check_outcome(out, "unit_circle")
    check_progress(calls)
    test_acc = out.numbers["test_accuracy"]
    # phi(x) + logistic regression: 0.96 +- 0.02 per training set of 30 points, ~0.99 at 1000.
    assert 0.95 <= test_acc["logistic regression on phi(x)"]["30"][0] <= 0.99
    assert test_acc["logistic regression on phi(x)"]["1000"][0] >= 0.98
    # The raw linear model stays near "always outside" (e^-1/2 = 0.61) even with 1000 points.
    assert abs(test_acc["logistic regression on x"]["1000"][0] - math.exp(-0.5)) < 0.05
    # The tree improves with data but stays below phi(x) at 30 points.
    tree = test_acc["decision tree on x"]
    assert tree["10"][0] < tree["1000"][0]
    assert tree["30"][0] < test_acc["logistic regression on phi(x)"]["30"][0]


def test_gradient_descent_quick():
    calls, progress = progress_recorder()
    out = gradient_descent.run(quick=True, seeds=1, progress=progress)
    check_outcome(out, "gradient_descent")
    check_progress(calls)
    table = out.numbers["learning_rate_table"]
    # Near x* the error shrinks by |1 - 8 eta| per step: eta = 0.1 needs ~log(1e-3 / 2) /
    # log(0.2) ~ 5 steps from x0 ~ 2 plus the approach, the measured mean is 9 to 15.
    assert 5 <= np.mean(table["0.1"]["steps_to_converge"]) <= 20
    # eta = 0.3 > 0.25 settles into an oscillation around x* (|x_T - x*| ~ 0.1), never at x*.
    assert table["0.3"]["median_final_error"] > 1e-2
    # The wavy minima found are the lecture's (1.58, 3.54, 5.53).
    for minimum in out.numbers["wavy_minima_per_seed"][0]:
        assert min(abs(minimum - m) for m in (1.58, 3.54, 5.53)) < 0.01


@pytest.mark.slow
def test_representations_quick():
    out = representations.run(quick=True, seeds=1)
    check_outcome(out, "representations")
    acc = out.numbers["test_accuracy"]
    # Logistic regression on raw 8x8 pixels: 0.96 to 0.98 on 540 test digits (sklearn reports
    # the same range); the CNN within [0.95, 1].
    assert 0.94 <= acc["raw pixels (identity)"][0] <= 0.99
    assert 0.95 <= acc["learned CNN"][0] <= 1.0


@pytest.mark.slow
def test_sgd_quick():
    out = sgd.run(quick=True, seeds=1)
    check_outcome(out, "sgd")
    final = out.numbers["final_train_loss"]
    initial = out.numbers["initial_loss"][0]
    # Ten classes: the initial cross-entropy is near log 10 = 2.3 (a few tenths off for He init).
    assert 1.8 <= initial <= 4.0
    # Every optimiser lowers the loss; none diverges.
    for name, values in final.items():
        assert values[0] < initial, name
    # Per-epoch times are recorded for every epoch, compilation apart.
    epochs = out.numbers["epochs"]
    assert all(len(t[0]) == epochs for t in out.numbers["cumulative_seconds"].values())
