"""Tests for jaxlearn.faithfulness: deletion and insertion curves against a Python loop over the
steps and closed forms on a linear model; infidelity and sensitivity-max against loops over the
documented draws and their closed forms (0 for a linear model's gradient; the expected value
sigma^2 sum_j w_j^2 (x_j - 1)^2 for gradient x input).

Tolerances: float32 throughout. Probabilities and logits of a small model recomputed by the loop
agree to a few ulps of O(1) values (atol 1e-5); an infidelity is a mean of squares of such
differences, so the "exactly 0" cases sit near (1e-6)^2 and are asserted below 1e-9.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlearn import explain, faithfulness, nn

ATOL = 1e-5

_TANH_MLP = nn.serial(nn.flatten(), nn.mlp((16,), 4, activation="tanh"))


@functools.cache
def _tanh_mlp(input_shape=(2, 5)):
    _, params = _TANH_MLP.init(jax.random.key(0), input_shape)
    return _TANH_MLP.apply, params


def _linear(n_features=6, n_classes=3, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    params = {"w": (scale * rng.normal(size=(n_features, n_classes))).astype(np.float32),
              "b": rng.normal(size=n_classes).astype(np.float32)}

    def apply(p, x):
        return x.reshape(x.shape[0], -1) @ p["w"] + p["b"][None, :]

    return apply, params


def _x(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ------------------------------------------------------------------ deletion and insertion

def _curve_reference(apply, params, x, attributions, target, baseline, n_steps, score, insert):
    """The documented rule, one step at a time: rank by decreasing attribution (ties: first
    position first), switch the first floor(k d / n_steps) features, score the target."""
    n, d = x.shape[0], x[0].size
    flat_x, flat_a = x.reshape(n, d), attributions.reshape(n, d)
    flat_b = np.broadcast_to(baseline, x.shape).reshape(n, d)
    counts = [k * d // n_steps for k in range(n_steps + 1)]
    scores = np.zeros((n, n_steps + 1))
    for k, m in enumerate(counts):
        for i in range(n):
            top = np.argsort(-flat_a[i], kind="stable")[:m]
            if insert:
                example = flat_b[i].copy()
                example[top] = flat_x[i, top]
            else:
                example = flat_x[i].copy()
                example[top] = flat_b[i, top]
            logits = np.asarray(apply(params, example.reshape(1, *x.shape[1:])), np.float64)[0]
            if score == "probability":
                logits = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            scores[i, k] = logits[target[i]]
    fraction = np.array(counts) / d
    return fraction, scores, np.trapezoid(scores, fraction, axis=1)


@pytest.mark.parametrize("insert", [False, True])
@pytest.mark.parametrize("n_steps,score", [(4, "probability"), (15, "logit")])
def test_curves_match_a_loop_over_the_steps(insert, n_steps, score):
    # d = 10 features: 4 steps switch 0, 2, 5, 7, 10 of them; 15 steps (> d) repeat points.
    # Rounded attributions have ties, broken by position; chunk_size=3 pads the last chunk.
    apply, params = _tanh_mlp()
    x = _x((3, 2, 5))
    attributions = np.round(_x((3, 2, 5), seed=2))
    baseline = 0.3 * _x((2, 5), seed=3)
    target = np.array([0, 3, 1])
    fn = faithfulness.insertion_curve if insert else faithfulness.deletion_curve
    curve = fn(apply, params, x, attributions, target=target, baseline=baseline,
               n_steps=n_steps, score=score, chunk_size=3)
    fraction, scores, auc = _curve_reference(apply, params, x, attributions, target, baseline,
                                             n_steps, score, insert)
    np.testing.assert_allclose(curve.fraction, fraction, atol=1e-7)
    np.testing.assert_allclose(curve.score, scores, atol=ATOL)
    np.testing.assert_allclose(curve.auc, auc, atol=ATOL)
    assert np.ptp(scores) > 0.05                    # the steps change the score


def test_curve_endpoints_and_default_target():
    # Deletion starts at the model's score of x and ends at the baseline's; insertion the reverse.
    # The default target is the predicted class; the default baseline zeros.
    apply, params = _tanh_mlp()
    x = _x((4, 2, 5))
    maps = explain.gradient_x_input(apply, params, x)
    probs = jax.nn.softmax(apply(params, x))
    predicted = np.argmax(probs, axis=1)
    at_zero = jax.nn.softmax(apply(params, np.zeros_like(x)))[np.arange(4), predicted]
    deletion = faithfulness.deletion_curve(apply, params, x, maps, n_steps=5)
    insertion = faithfulness.insertion_curve(apply, params, x, maps, n_steps=5)
    np.testing.assert_allclose(deletion.score[:, 0], probs[np.arange(4), predicted], atol=ATOL)
    np.testing.assert_allclose(deletion.score[:, -1], at_zero, atol=ATOL)
    np.testing.assert_allclose(insertion.score[:, 0], at_zero, atol=ATOL)
    np.testing.assert_allclose(insertion.score[:, -1], probs[np.arange(4), predicted], atol=ATOL)


def test_deletion_of_a_linear_model_in_contribution_order_is_optimal():
    # Setting feature j to 0 removes its contribution w_jt x_j from the logit, so at every step
    # the logit is b_t + the contributions not yet removed (a closed form), and removing them in
    # decreasing order (gradient x input) gives the lowest curve of all orders: its AUC is below
    # that of the reversed order and of 20 random orders.
    apply, params = _linear(n_features=12)
    x = _x((5, 12))
    target = np.array([0, 1, 2, 0, 1])
    contributions = x * params["w"][:, target].T
    curve = faithfulness.deletion_curve(apply, params, x, contributions, target=target,
                                        n_steps=12, score="logit")
    ordered = -np.sort(-contributions, axis=1)             # 12 steps: one feature per step
    removed = np.concatenate([np.zeros((5, 1)), np.cumsum(ordered, axis=1)], axis=1)
    expected = (params["b"][target] + ordered.sum(axis=1))[:, None] - removed
    np.testing.assert_allclose(curve.score, expected, atol=ATOL)
    reversed_ = faithfulness.deletion_curve(apply, params, x, -contributions, target=target,
                                            n_steps=12, score="logit")
    assert np.all(curve.auc < reversed_.auc)
    rng = np.random.default_rng(0)
    for _ in range(20):
        shuffled = faithfulness.deletion_curve(apply, params, x,
                                               rng.normal(size=x.shape).astype(np.float32),
                                               target=target, n_steps=12, score="logit")
        assert np.all(curve.auc <= shuffled.auc + ATOL)


def test_a_key_breaks_ties_in_the_documented_random_order():
    # With a key, example i ranks tied features in the order of permutation(fold_in(key, i), d):
    # a constant map then deletes in exactly that order, i.e. like a map without ties that gives
    # the j-th feature of the permutation the value d - j. Without ties the key changes nothing.
    apply, params = _tanh_mlp()
    x = _x((3, 2, 5))
    key = jax.random.key(4)
    priority = np.zeros((3, 10), np.float32)
    for i in range(3):
        priority[i, np.asarray(jax.random.permutation(jax.random.fold_in(key, i), 10))] = \
            np.arange(10, 0, -1)
    for fn in (faithfulness.deletion_curve, faithfulness.insertion_curve):
        tied = fn(apply, params, x, np.ones_like(x), key=key, n_steps=10)
        np.testing.assert_allclose(tied.score, fn(apply, params, x, priority.reshape(x.shape),
                                                  n_steps=10).score, atol=ATOL)
        by_position = fn(apply, params, x, np.ones_like(x), n_steps=10)
        assert float(np.max(np.abs(tied.score - by_position.score))) > 1e-3
        distinct = _x((3, 2, 5), seed=5)
        np.testing.assert_allclose(fn(apply, params, x, distinct, key=key, n_steps=10).score,
                                   fn(apply, params, x, distinct, n_steps=10).score, atol=0)


def test_curve_is_the_same_without_jit():
    apply, params = _tanh_mlp()
    x = _x((2, 2, 5))
    maps = _x((2, 2, 5), seed=4)
    jitted = faithfulness.deletion_curve(apply, params, x, maps, n_steps=4, chunk_size=2)
    with jax.disable_jit():
        plain = faithfulness.deletion_curve(apply, params, x, maps, n_steps=4, chunk_size=2)
    for a, b in zip(jitted, plain):
        np.testing.assert_allclose(a, b, atol=ATOL)


# ------------------------------------------------------------------------------- infidelity

def _infidelity_reference(apply, params, x, attributions, target, key, n_samples, noise_level,
                          normalize):
    """The documented estimate, one perturbation at a time, in float64 outside the model."""
    n = x.shape[0]
    sigma = noise_level * (x.reshape(n, -1).max(1) - x.reshape(n, -1).min(1))
    sigma = sigma.reshape(n, *(1,) * (x.ndim - 1))
    f = np.asarray(apply(params, x), np.float64)[np.arange(n), target]
    a, b = [], []
    for s in range(n_samples):
        noise = np.asarray(sigma * jax.random.normal(jax.random.fold_in(key, s), x.shape))
        a.append(np.sum((noise * attributions).reshape(n, -1), axis=1, dtype=np.float64))
        b.append(f - np.asarray(apply(params, x - noise), np.float64)[np.arange(n), target])
    a, b = np.array(a), np.array(b)
    if normalize:
        a = a * (np.sum(a * b, 0) / np.sum(a * a, 0))
    return np.mean((a - b) ** 2, axis=0)


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_matches_a_loop_over_the_documented_draws(normalize):
    apply, params = _tanh_mlp()
    x = _x((3, 2, 5))
    target = np.array([2, 0, 1])
    maps = explain.saliency(apply, params, x, target=target)
    key = jax.random.key(3)
    got = faithfulness.infidelity(apply, params, x, maps, key=key, target=target, n_samples=7,
                                  noise_level=0.3, normalize=normalize, chunk_size=3)
    expected = _infidelity_reference(apply, params, x, np.asarray(maps), target, key, 7, 0.3,
                                     normalize)
    assert float(np.min(expected)) > 1e-4          # a non-zero quantity to recover
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)


def test_infidelity_of_a_linear_models_gradient_is_zero():
    # f_t(x) - f_t(x - I) = I . w_t exactly, which is the gradient's prediction: infidelity 0.
    # Gradient x input predicts I . (w_t * x) instead; the error I . (w_t * (x - 1)) is Gaussian
    # with variance sigma^2 sum_j w_j^2 (x_j - 1)^2 (closed form). 4000 draws estimate it with a
    # relative sd of sqrt(2 / 4000) = 2.2%; rtol 0.12 is over 5 sd.
    apply, params = _linear(scale=3.0)
    x = _x((4, 6))
    target = np.array([0, 1, 2, 1])
    key = jax.random.key(0)
    gradient = explain.saliency(apply, params, x, target=target)
    zero = faithfulness.infidelity(apply, params, x, gradient, key=key, target=target,
                                   n_samples=64)
    assert float(jnp.max(zero)) < 1e-9
    gxi = explain.gradient_x_input(apply, params, x, target=target)
    got = faithfulness.infidelity(apply, params, x, gxi, key=key, target=target, n_samples=4000,
                                  noise_level=0.1, chunk_size=500)
    sigma = 0.1 * (x.max(1) - x.min(1))
    w = params["w"][:, target].T
    expected = sigma ** 2 * np.sum(w ** 2 * (x - 1) ** 2, axis=1)
    np.testing.assert_allclose(got, expected, rtol=0.12)


def test_normalized_infidelity_ignores_the_scale_and_never_exceeds_the_raw_one():
    apply, params = _tanh_mlp()
    x = _x((3, 2, 5))
    maps = explain.gradient_x_input(apply, params, x)
    key = jax.random.key(1)
    kwargs = dict(key=key, n_samples=16)
    raw = faithfulness.infidelity(apply, params, x, maps, **kwargs)
    normalized = faithfulness.infidelity(apply, params, x, maps, normalize=True, **kwargs)
    scaled = faithfulness.infidelity(apply, params, x, 37.0 * maps, normalize=True, **kwargs)
    assert np.all(normalized <= raw + 1e-7)
    np.testing.assert_allclose(scaled, normalized, rtol=1e-4)
    # A map that predicts no change gets beta = 0: the mean squared output change.
    silent = faithfulness.infidelity(apply, params, x, np.zeros_like(x), normalize=True, **kwargs)
    np.testing.assert_allclose(silent, faithfulness.infidelity(apply, params, x,
                                                               np.zeros_like(x), **kwargs),
                               rtol=1e-6)
    assert float(np.min(silent)) > 0


# -------------------------------------------------------------------------- sensitivity-max

def test_sensitivity_max_of_a_linear_models_gradient_is_zero():
    apply, params = _linear()
    x = _x((4, 6))
    target = np.array([0, 1, 2, 1])
    got = faithfulness.sensitivity_max(
        lambda xb: explain.saliency(apply, params, xb, target=target), x,
        key=jax.random.key(0), radius=0.5)
    np.testing.assert_array_equal(got, np.zeros(4))


def test_sensitivity_max_matches_a_loop_over_the_documented_draws():
    apply, params = _tanh_mlp()
    x = _x((3, 2, 5))
    target = np.array([1, 1, 0])
    key = jax.random.key(5)

    def gradient(xb):
        return explain.saliency(apply, params, xb, target=target)

    got = faithfulness.sensitivity_max(gradient, x, key=key, radius=0.3, n_samples=5,
                                       chunk_size=2)
    reference = np.asarray(gradient(x))
    changes = []
    for s in range(5):
        u = jax.random.uniform(jax.random.fold_in(key, s), x.shape, minval=-0.3, maxval=0.3)
        changes.append(np.linalg.norm((np.asarray(gradient(x + u)) - reference).reshape(3, -1),
                                      axis=1))
    expected = np.max(changes, axis=0)
    assert float(np.min(expected)) > 1e-3
    np.testing.assert_allclose(got, expected, atol=ATOL)
    # The identity "explanation" moves by ||u_s||_2 <= r sqrt(d) = 0.3 sqrt(10).
    identity = faithfulness.sensitivity_max(lambda xb: xb, x, key=key, radius=0.3, n_samples=5)
    box = [np.linalg.norm(np.asarray(jax.random.uniform(jax.random.fold_in(key, s), x.shape,
                                                        minval=-0.3, maxval=0.3)).reshape(3, -1),
                          axis=1) for s in range(5)]
    np.testing.assert_allclose(identity, np.max(box, axis=0), atol=ATOL)
    assert np.all(identity <= 0.3 * np.sqrt(10))


# ------------------------------------------------------------------------------ bad inputs

def _bad_calls():
    apply, params = _linear()
    x = _x((4, 6))
    maps = _x((4, 6), seed=2)
    key = jax.random.key(0)
    deletion, insertion = faithfulness.deletion_curve, faithfulness.insertion_curve
    return [
        (lambda: deletion(apply, params, x, maps, n_steps=0), ValueError,
         "`n_steps` must be > 0, got 0"),
        (lambda: insertion(apply, params, x, maps, n_steps=2.0), TypeError,
         "`n_steps` must be an int"),
        (lambda: deletion(apply, params, x, maps[:, :5]), ValueError,
         r"`attributions` must have the shape of `x` \(4, 6\), got \(4, 5\)"),
        (lambda: deletion(apply, params, x, maps.astype(np.int32)), TypeError, "floating"),
        (lambda: deletion(apply, params, x, np.full((4, 6), np.nan, np.float32)), ValueError,
         "`attributions` contains 24 NaN"),
        (lambda: insertion(apply, params, x, maps, baseline=np.zeros((3, 6), np.float32)),
         ValueError, r"`baseline` must have the shape of `x` \(4, 6\) or of one example \(6,\), "
                     r"got \(3, 6\)"),
        (lambda: deletion(apply, params, x, maps, score="accuracy"), ValueError,
         "`score` must be one of"),
        (lambda: deletion(apply, params, x, maps, key=3), TypeError, "`key` must be a jax"),
        (lambda: deletion(apply, params, x, maps, chunk_size=0), ValueError,
         "`chunk_size` must be > 0"),
        (lambda: deletion(apply, params, x, maps, target=3), ValueError, "3 classes"),
        (lambda: deletion(apply, params, x[0], maps[0]), ValueError, "at least 2 dimensions"),
        (lambda: faithfulness.infidelity(apply, params, x, maps, key=1), TypeError,
         "jax.random key"),
        (lambda: faithfulness.infidelity(apply, params, x, maps[:2], key=key), ValueError,
         "`attributions` must have the shape"),
        (lambda: faithfulness.infidelity(apply, params, x, maps, key=key, n_samples=0),
         ValueError, "`n_samples` must be > 0"),
        (lambda: faithfulness.infidelity(apply, params, x, maps, key=key, noise_level=0.0),
         ValueError, "`noise_level` must be > 0"),
        (lambda: faithfulness.infidelity(apply, params, x, maps, key=key, normalize=1),
         TypeError, "`normalize` must be a bool"),
        (lambda: faithfulness.sensitivity_max("saliency", x, key=key), TypeError,
         "`explain_fn` must be callable"),
        (lambda: faithfulness.sensitivity_max(lambda xb: xb, x, key=key, radius=-0.1),
         ValueError, "`radius` must be > 0"),
        (lambda: faithfulness.sensitivity_max(lambda xb: xb, x, key=key, n_samples=0),
         ValueError, "`n_samples` must be > 0"),
        (lambda: faithfulness.sensitivity_max(lambda xb: xb[0], x, key=key), ValueError,
         r"maps \[batch, \.\.\.\] with batch 4, got \(6,\)"),
        (lambda: faithfulness.sensitivity_max(lambda xb: xb @ np.ones((5, 2), np.float32), x,
                                              key=key), TypeError, "`explain_fn` failed"),
        (lambda: faithfulness.sensitivity_max(lambda xb: xb, x[0], key=key), ValueError,
         "at least 2 dimensions"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_calls())))
def test_bad_arguments_raise_clear_errors(case):
    call, error, fragment = _bad_calls()[case]
    with pytest.raises(error, match=fragment):
        call()
