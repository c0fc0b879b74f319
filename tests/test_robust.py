"""Tests for jaxlearn.robust: FGSM against its closed form, PGD's constraints, robustness curves,
adversarial training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxlearn import data, losses, robust, train

CE = "softmax_cross_entropy_with_integer_labels"


def linear_apply(params, x):
    """A softmax-regression classifier: logits ``x W + b``."""
    return x @ params["w"] + params["b"][None, :]


def _linear_problem(seed=0, n=8, d=6, k=4):
    rng = np.random.default_rng(seed)
    params = {"w": rng.normal(0, 1, (d, k)).astype(np.float32),
              "b": rng.normal(0, 1, (k,)).astype(np.float32)}
    x = rng.uniform(0, 1, (n, d)).astype(np.float32)
    y = rng.integers(0, k, n).astype(np.int32)
    return params, x, y


def _grad_by_hand(params, x, y):
    """Closed form in float64: grad_x CE(xW + b, y) = (softmax(xW + b) - onehot(y)) W^T."""
    w, b = np.float64(params["w"]), np.float64(params["b"])
    z = np.float64(x) @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return (p - np.eye(w.shape[1])[y]) @ w.T


@pytest.fixture(scope="module")
def digits_model():
    """Softmax regression trained on 1200 digits (test accuracy ~0.95), the rest held out."""
    x, y = data.load_digits()
    params = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
    result = train.fit(linear_apply, params, x[:1200], y[:1200], loss=CE,
                       optimizer=optax.adam(0.05), key=jax.random.key(0), batch_size=100,
                       steps=240)
    return result.params, x, y


# ---------------------------------------------------------------------------------- FGSM

@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_eps_sign_grad_of_linear_model(targeted):
    params, x, y = _linear_problem()
    g = _grad_by_hand(params, x, y)
    assert np.min(np.abs(g)) > 1e-4          # no sign decided by rounding
    eps = np.array([0.0, 0.01, 0.3], np.float32)
    s = -1.0 if targeted else 1.0
    # Same float32 operations as the library (x + eps * (+-1)): equal bit for bit.
    expected = x[None] + eps[:, None, None] * (s * np.sign(g)).astype(np.float32)[None]
    got = robust.fgsm(linear_apply, params, x, y, eps=eps, targeted=targeted)
    assert got.shape == (3, *x.shape)
    np.testing.assert_array_equal(np.asarray(got), expected)
    # A scalar eps gives one batch, the same as the vector's entry.
    one = robust.fgsm(linear_apply, params, x, y, eps=0.01, targeted=targeted)
    np.testing.assert_array_equal(np.asarray(one), expected[1])


def test_fgsm_moves_every_margin_by_eps_times_the_weight_difference_even_when_saturated():
    # Two classes, linear logits: the loss gradient in x is p_other (w_other - w_y), so FGSM's
    # sign step lowers the margin z_y - z_other by exactly eps * ||w_y - w_other||_1 -- for the
    # confident examples too (margins 20 to 60, where softmax(z)_y rounds to 1 in float32 and the
    # textbook gradient softmax - onehot loses its true-class term: the step then follows
    # sign(p_other w_other) alone). Tolerance: float32 rounding of logits up to ~70 (1e-4).
    rng = np.random.default_rng(3)
    d = 6
    params = {"w": rng.normal(0, 1, (d, 2)).astype(np.float32), "b": np.zeros(2, np.float32)}
    w_diff = params["w"][:, 0] - params["w"][:, 1]
    y = rng.integers(0, 2, 40).astype(np.int32)
    sign = np.where(y == 0, 1.0, -1.0)                       # margin = sign * (x . w_diff)
    target = np.concatenate([rng.uniform(0.5, 5, 20), rng.uniform(20, 60, 20)])
    direction = rng.normal(0, 1, (40, d))
    direction -= (direction @ w_diff)[:, None] * w_diff / (w_diff @ w_diff)
    x = (direction + (sign * target)[:, None] * w_diff / (w_diff @ w_diff)).astype(np.float32)

    def margin(x):
        z = np.float64(x) @ np.float64(params["w"])
        return sign * (z[:, 0] - z[:, 1])

    assert margin(x)[20:].min() > 19.9  # saturated: p_y == 1 in float32
    eps = 0.05
    moved = margin(robust.fgsm(linear_apply, params, x, y, eps=eps)) - margin(x)
    np.testing.assert_allclose(moved, -eps * np.abs(w_diff).sum(), atol=1e-4, rtol=0)


def test_fgsm_clips_to_data_range():
    params, x, y = _linear_problem(seed=1)
    g = _grad_by_hand(params, x, y)
    got = robust.fgsm(linear_apply, params, x, y, eps=0.3, clip=(0.0, 1.0))
    expected = np.clip(x + np.float32(0.3) * np.sign(g).astype(np.float32), 0.0, 1.0)
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_fgsm_raises_the_loss_and_targeted_lowers_the_target_loss():
    params, x, y = _linear_problem(seed=2)

    def loss(xx, labels):
        return losses.softmax_cross_entropy_with_integer_labels(linear_apply(params, xx), labels)

    up = robust.fgsm(linear_apply, params, x, y, eps=0.05)
    assert np.all(np.asarray(loss(up, y)) > np.asarray(loss(x, y)))
    target = (y + 1) % 4
    down = robust.fgsm(linear_apply, params, x, target, eps=0.05, targeted=True)
    assert np.all(np.asarray(loss(down, target)) < np.asarray(loss(x, target)))


# ----------------------------------------------------------------------------------- PGD

def test_pgd_one_full_step_without_random_start_is_fgsm():
    params, x, y = _linear_problem(seed=3)
    eps = np.array([0.05, 0.2], np.float32)
    got = robust.pgd(linear_apply, params, x, y, jax.random.key(0), eps=eps, n_steps=1,
                     step_size=None, random_start=False, clip=(0.0, 1.0))
    fgsm = robust.fgsm(linear_apply, params, x, y, eps=eps, clip=(0.0, 1.0))
    # step_size=None is 2.5 eps / n_steps; the projection brings it back to eps: same point.
    # Tolerance 1e-6: x + 2.5 eps then clipped to x + eps rounds like x + eps within an ulp.
    np.testing.assert_allclose(np.asarray(got), np.asarray(fgsm), atol=1e-6)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), norm=st.sampled_from(robust.NORMS), targeted=st.booleans(),
       eps=st.lists(st.floats(0.0, 2.0), min_size=3, max_size=3))
def test_pgd_stays_in_the_eps_ball_and_the_data_range(seed, norm, targeted, eps):
    # The random start puts the first iterate anywhere in the ball: the hardest case for P.
    params, x, y = _linear_problem(seed=seed)
    eps = np.asarray(eps, np.float32)
    x_adv = np.asarray(robust.pgd(linear_apply, params, x, y, jax.random.key(seed), eps=eps,
                                  n_steps=5, norm=norm, random_start=True, targeted=targeted,
                                  clip=(0.0, 1.0)), np.float64)
    delta = x_adv - np.float64(x)[None]
    # Slack: float32 rounding of x + delta and of the L2 rescaling, a few ulps of 1.
    if norm == "linf":
        size = np.max(np.abs(delta), axis=2)
    else:
        size = np.sqrt(np.sum(delta**2, axis=2))
    assert np.all(size <= eps[:, None] * (1 + 1e-5) + 1e-6)
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_pgd_uses_the_budget_and_is_reproducible():
    params, x, y = _linear_problem(seed=4)
    key = jax.random.key(5)
    a = robust.pgd(linear_apply, params, x, y, key, eps=0.1, n_steps=20, norm="l2")
    b = robust.pgd(linear_apply, params, x, y, key, eps=0.1, n_steps=20, norm="l2")
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Without a data range a linear model's loss grows along w_y - w_k: PGD ends on the sphere.
    norms = np.linalg.norm(np.asarray(a) - x, axis=1)
    np.testing.assert_allclose(norms, 0.1, rtol=1e-4)


def test_pgd_is_at_least_as_strong_as_fgsm(digits_model):
    params, x, y = digits_model
    eps = np.array([0.0, 0.03, 0.06, 0.1], np.float32)
    kw = {"clip": (0.0, 1.0)}
    fgsm = robust.robustness_curve(linear_apply, params, x[1200:], y[1200:], eps, **kw)
    pgd = robust.robustness_curve(linear_apply, params, x[1200:], y[1200:], eps, attack="pgd",
                                  key=jax.random.key(1), n_steps=20, **kw)
    assert fgsm["accuracy"][0] == pgd["accuracy"][0] > 0.9         # clean accuracy
    assert np.all(pgd["accuracy"] <= fgsm["accuracy"])
    assert np.any(pgd["accuracy"][1:] < fgsm["accuracy"][1:] - 0.01)
    assert np.all(np.diff(fgsm["accuracy"]) <= 0)                   # monotone in eps here


def test_robustness_curve_matches_attacking_by_hand(digits_model):
    params, x, y = digits_model
    x, y = x[1200:1500], y[1200:1500]
    eps = np.array([0.0, 0.05, 0.2], np.float32)
    # batch_size 97 does not divide 300: the padding must not count.
    curve = robust.robustness_curve(linear_apply, params, x, y, eps, clip=(0.0, 1.0),
                                    batch_size=97)
    x_adv = robust.fgsm(linear_apply, params, x, y, eps=eps, clip=(0.0, 1.0))
    probs = np.asarray(jax.nn.softmax(jax.vmap(lambda xa: linear_apply(params, xa))(x_adv)))
    wrong = probs.argmax(-1) != y
    np.testing.assert_allclose(curve["accuracy"], 1 - wrong.mean(1), atol=1e-6)
    expected_conf = [probs[j].max(-1)[wrong[j]].mean() for j in range(3)]
    # Sums of ~300 float32 probabilities in a different order: 1e-5.
    np.testing.assert_allclose(curve["mean_confidence_wrong"], expected_conf, rtol=1e-5)
    np.testing.assert_array_equal(curve["eps"], eps)


# ------------------------------------------------------------------- adversarial training

def test_adversarial_apply_modes():
    params, x, y = _linear_problem(seed=6)
    plain = linear_apply(params, x)
    key = jax.random.key(0)
    clean = robust.adversarial_apply(linear_apply, eps=0.1, alpha=1.0)
    np.testing.assert_array_equal(np.asarray(clean(params, x, key=key, train=True)),
                                  np.asarray(plain))
    adv = robust.adversarial_apply(linear_apply, eps=0.1, alpha=0.0, clip=(0.0, 1.0))
    np.testing.assert_array_equal(np.asarray(adv(params, x)), np.asarray(plain))  # test mode
    predicted = np.argmax(np.asarray(plain), axis=1)
    x_adv = robust.fgsm(linear_apply, params, x, predicted, eps=0.1, clip=(0.0, 1.0))
    np.testing.assert_allclose(np.asarray(adv(params, x, key=key, train=True)),
                               np.asarray(linear_apply(params, x_adv)), atol=1e-6)
    with pytest.raises(ValueError, match="`key` is required"):
        adv(params, x, train=True)


def test_adversarial_loss_value_and_gradient():
    params, x, y = _linear_problem(seed=7)
    ce = losses.softmax_cross_entropy_with_integer_labels
    x_adv = robust.fgsm(linear_apply, params, x, y, eps=0.1, clip=(0.0, 1.0))

    def by_hand(p):  # the adversarial points held fixed
        return (0.3 * jnp.mean(ce(linear_apply(p, x), y))
                + 0.7 * jnp.mean(ce(linear_apply(p, x_adv), y)))

    def wrapped(p):
        return robust.adversarial_loss(linear_apply, p, x, y, eps=0.1, alpha=0.3,
                                       clip=(0.0, 1.0))

    # float32 means of 8 terms: 1e-6.
    np.testing.assert_allclose(float(wrapped(params)), float(by_hand(params)), rtol=1e-6)
    g_wrapped, g_hand = jax.grad(wrapped)(params), jax.grad(by_hand)(params)
    for name in ("w", "b"):
        np.testing.assert_allclose(np.asarray(g_wrapped[name]), np.asarray(g_hand[name]),
                                   rtol=1e-5, atol=1e-6)


def test_fgsm_adversarial_training_raises_robust_accuracy(digits_model):
    plain_params, x, y = digits_model
    robust_apply = robust.adversarial_apply(linear_apply, eps=0.1, clip=(0.0, 1.0))
    init = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
    result = train.fit(robust_apply, init, x[:1200], y[:1200], loss=CE,
                       optimizer=optax.adam(0.05), key=jax.random.key(0), batch_size=100,
                       steps=240)
    eps = np.array([0.0, 0.1], np.float32)
    before = robust.robustness_curve(linear_apply, plain_params, x[1200:], y[1200:], eps,
                                     clip=(0.0, 1.0))["accuracy"]
    after = robust.robustness_curve(linear_apply, result.params, x[1200:], y[1200:], eps,
                                    clip=(0.0, 1.0))["accuracy"]
    assert after[0] > 0.85                       # still a good clean classifier
    assert after[1] > before[1] + 0.1            # robust accuracy at eps = 0.1 up by > 10 points


# ----------------------------------------------------------------------------- bad inputs

def _call(fn_name, **overrides):
    params, x, y = _linear_problem()
    x, y = overrides.pop("x", x), overrides.pop("y", y)
    if fn_name == "fgsm":
        return robust.fgsm(linear_apply, params, x, y, **{"eps": 0.1, **overrides})
    if fn_name == "pgd":
        key = overrides.pop("key", jax.random.key(0))
        return robust.pgd(linear_apply, params, x, y, key, **{"eps": 0.1, **overrides})
    return robust.robustness_curve(linear_apply, params, x, y, np.array([0.0, 0.1], np.float32),
                                   **overrides)


_X, _Y = _linear_problem()[1:]


@pytest.mark.parametrize("fn_name, overrides, error, match", [
    ("fgsm", {"eps": -0.1}, ValueError, r"`eps` must be >= 0, got -0.1"),
    ("pgd", {"eps": np.array([0.1, -0.2])}, ValueError, r"`eps` must be >= 0"),
    ("fgsm", {"eps": np.zeros((2, 2))}, ValueError, r"`eps` must have 1 dimensions"),
    ("fgsm", {"eps": float("nan")}, ValueError, r"`eps` must be finite"),
    ("pgd", {"n_steps": 0}, ValueError, r"`n_steps` must be > 0, got 0"),
    ("pgd", {"n_steps": 2.5}, TypeError, r"`n_steps` must be an int"),
    ("pgd", {"norm": "l1"}, ValueError, r"`norm` must be one of \['l2', 'linf'\], got 'l1'"),
    ("pgd", {"step_size": -1.0}, ValueError, r"`step_size` must be > 0"),
    ("pgd", {"key": 3}, TypeError, r"`key` must be a jax.random key"),
    ("fgsm", {"clip": (1.0, 0.0)}, ValueError, r"lo < hi"),
    ("fgsm", {"clip": (0.0, 0.5)}, ValueError, r"outside `clip`"),
    ("fgsm", {"targeted": 1}, TypeError, r"`targeted` must be a bool"),
    ("fgsm", {"y": _Y[:5]}, ValueError, r"`x` has 8 samples but `y` has 5"),
    ("fgsm", {"y": _Y + 4}, ValueError, r"`y` has label \d+ but `n_classes` is 4"),
    ("fgsm", {"x": _X[0]}, ValueError, r"`x` must be a batch"),
    ("fgsm", {"x": _X.astype(np.int32)}, TypeError, r"`x` must have a floating dtype"),
    ("robustness_curve", {"attack": "cw"}, ValueError, r"`attack` must be one of"),
    ("robustness_curve", {"attack": "pgd"}, ValueError, r"`key` is required for attack='pgd'"),
    ("robustness_curve", {"norm": "l2"}, ValueError, r"attack='fgsm' is an L-inf attack"),
    ("robustness_curve", {"batch_size": 0}, ValueError, r"`batch_size` must be > 0"),
])
def test_bad_arguments_raise(fn_name, overrides, error, match):
    with pytest.raises(error, match=match):
        _call(fn_name, **overrides)


def test_bad_model_output_and_wrapper_arguments():
    params, x, y = _linear_problem()
    with pytest.raises(ValueError, match=r"logits \[batch, n_classes\]"):
        robust.fgsm(lambda p, xx: jnp.sum(xx, axis=1), params, x, y, eps=0.1)
    with pytest.raises(ValueError, match=r"`alpha` must lie in \[0.0, 1.0\]"):
        robust.adversarial_apply(linear_apply, eps=0.1, alpha=1.5)
    with pytest.raises(ValueError, match=r"`eps` must be >= 0"):
        robust.adversarial_apply(linear_apply, eps=-0.1)
    with pytest.raises(ValueError, match=r"`eps` must be >= 0"):
        robust.adversarial_loss(linear_apply, params, x, y, eps=-1.0)
