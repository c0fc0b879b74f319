"""Tests for jaxlearn.linear: closed forms against numpy / sklearn, ridge against gradient descent,
logistic regression against sklearn on real data sets."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from jaxlearn import linear, losses


def _regression_data(n=60, d=4, k=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
    w = rng.normal(size=(d,) if k is None else (d, k))
    y = x @ w + 1.5 + 0.3 * rng.normal(size=(n,) if k is None else (n, k))
    return x, y


# --------------------------------------------------------------------------- least squares

# Each case compiles its own solve: one vector and one matrix target, crossed with the intercept.
@pytest.mark.parametrize("k,fit_intercept", [(None, True), (3, False)])
def test_least_squares_matches_numpy_float64(k, fit_intercept):
    x, y = _regression_data(k=k)
    design = np.hstack([x, np.ones((len(x), 1))]) if fit_intercept else x
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    with jax.enable_x64(True):
        params = linear.least_squares(x, y, fit_intercept=fit_intercept)
        pred = linear.linear_predict(params, x)
    w_ref = coef[:-1] if fit_intercept else coef
    b_ref = coef[-1] if fit_intercept else np.zeros(y.shape[1:])
    # Both float64 on a well-conditioned 60 x 4 problem: agreement to 1e-10.
    np.testing.assert_allclose(params["w"], w_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(params["b"], b_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(pred, design @ coef, rtol=1e-10, atol=1e-10)
    assert params["w"].shape == w_ref.shape and params["b"].shape == y.shape[1:]


def test_least_squares_rank_deficient_gives_min_norm_solution():
    x, y = _regression_data()
    x = np.hstack([x, x[:, :1]])  # a duplicated column: X^T X is singular
    xc, yc = x - x.mean(0), y - y.mean()
    w_ref = np.linalg.pinv(xc) @ yc  # the minimum-norm least-squares solution
    with jax.enable_x64(True):
        params = linear.least_squares(x, y)
    # float64 SVD of a rank-4 matrix: 1e-8 (the null direction is cut at ~1e-15 relative).
    np.testing.assert_allclose(params["w"], w_ref, atol=1e-8)
    # The duplicated weight is shared equally between the two copies (minimum norm).
    np.testing.assert_allclose(params["w"][0], params["w"][-1], atol=1e-8)


def test_least_squares_float32_close_to_float64():
    x, y = _regression_data()
    params = linear.least_squares(x.astype(np.float32), y.astype(np.float32))
    coef = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)[0]
    assert params["w"].dtype == jnp.float32
    # float32 solve, condition number of the centred design ~ 10: 1e-4 relative is generous.
    np.testing.assert_allclose(params["w"], coef[:-1], rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------- ridge

@pytest.mark.parametrize("k,fit_intercept", [(None, True), (2, True), (None, False)])
def test_ridge_matches_sklearn_alpha(k, fit_intercept):
    x, y = _regression_data(k=k)
    lam = 7.0
    ref = Ridge(alpha=lam, fit_intercept=fit_intercept, solver="cholesky").fit(x, y)
    with jax.enable_x64(True):
        params = linear.ridge(x, y, lam, fit_intercept=fit_intercept)
    # sklearn's alpha multiplies ||w||^2 next to the SUM of squared errors, as documented here;
    # both float64 direct solves: 1e-10.
    np.testing.assert_allclose(params["w"], ref.coef_.T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(params["b"], ref.intercept_, rtol=1e-10, atol=1e-10)


def test_ridge_is_a_stationary_point_of_the_stated_objective():
    x, y = _regression_data()
    lam = 3.0
    with jax.enable_x64(True):
        params = linear.ridge(x, y, lam)

        def objective(p):  # J(w, b) = ||X w + b - y||^2 + lam ||w||^2, the docstring's J
            return jnp.sum((x @ p["w"] + p["b"] - y) ** 2) + lam * jnp.sum(p["w"] ** 2)

        grads = jax.jit(jax.grad(objective))(params)
        # The gradient terms are O(|X^T r|) ~ 1e2; float64 leaves ~1e-12 of it.
        np.testing.assert_allclose(grads["w"], 0.0, atol=1e-9)
        np.testing.assert_allclose(grads["b"], 0.0, atol=1e-9)
        # lam > 0 shrinks: ||w_ridge|| < ||w_ols||.
        ols = linear.least_squares(x, y)
        assert float(jnp.linalg.norm(params["w"])) < float(jnp.linalg.norm(ols["w"]))


def test_ridge_closed_form_equals_gradient_descent_with_weight_decay():
    """The issue's requirement: (X^T X + lam I)^{-1} X^T y is where weight-decayed GD ends."""
    x, y = _regression_data(n=200, d=5, seed=1)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)  # a well-conditioned GD problem
    y = y.astype(np.float32)
    n, lam = len(x), 20.0
    closed = linear.ridge(x, y, lam)

    # Mean form of the same objective, J / n = (1/n) ||X w + b - y||^2 + (lam / n) ||w||^2:
    # the data gradient plus weight decay 2 lam / n on w only (the bias is masked out).
    def data_loss(p):
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    opt = optax.chain(optax.add_decayed_weights(2.0 * lam / n, mask={"w": True, "b": False}),
                      optax.sgd(0.1))

    @jax.jit
    def run(p):
        def body(_, carry):
            p, state = carry
            updates, state = opt.update(jax.grad(data_loss)(p), state, p)
            return optax.apply_updates(p, updates), state

        return jax.lax.fori_loop(0, 2000, body, (p, opt.init(p)))[0]

    gd = run({"w": jnp.zeros(5, jnp.float32), "b": jnp.zeros((), jnp.float32)})
    # Hessian eigenvalues of J/n lie in ~[0.4, 10] here, so 2000 steps at lr 0.1 contract the error
    # by (1 - 0.04)^2000 ~ 1e-35: what is left is float32 rounding, 1e-5 on O(1) weights.
    np.testing.assert_allclose(gd["w"], closed["w"], atol=1e-5)
    np.testing.assert_allclose(gd["b"], closed["b"], atol=1e-5)


# --------------------------------------------------------------------- logistic regression

@pytest.mark.parametrize("n_classes,width", [(2, 1), (3, 3), (10, 10)])
def test_logistic_regression_is_one_dense_layer(n_classes, width):
    layer = linear.logistic_regression(n_classes)
    # eval_shape: the shapes init would give, without compiling a sampler per shape.
    shapes = []

    def init(key):
        shape, params = layer.init(key, (30,))
        shapes.append(shape)
        return params

    params = jax.eval_shape(init, jax.random.key(0))
    assert shapes == [(width,)]
    assert params["w"].shape == (30, width) and params["b"].shape == (width,)
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(30, width)).astype(np.float32),
              "b": rng.normal(size=width).astype(np.float32)}
    x = rng.normal(size=(4, 30)).astype(np.float32)
    # float32 matmul of 30 terms vs the float64 reference: 1e-5.
    np.testing.assert_allclose(layer.apply(params, x), x.astype(np.float64) @ params["w"]
                               + params["b"], rtol=1e-5, atol=1e-5)


def _split(loader):
    x, y = loader(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_tr)
    return (scaler.transform(x_tr), scaler.transform(x_te), y_tr.astype(np.int32),
            y_te.astype(np.int32))


# The 10-class fit compiles its own L-BFGS loop (~3 s of CPU): marked slow, still run in CI.
@pytest.mark.parametrize("loader,n_classes", [
    (load_breast_cancer, 2), pytest.param(load_digits, 10, marks=pytest.mark.slow)])
def test_fit_logistic_regression_matches_sklearn(loader, n_classes):
    x_tr, x_te, y_tr, y_te = _split(loader)
    # sklearn's C = 1 objective, C sum CE + ||W||^2 / 2, is ours with l2 = 1 / (2 n).
    # tol 1e-8 puts sklearn within 4e-6 of its own tol-1e-12 coefficients (checked once).
    sk = LogisticRegression(C=1.0, tol=1e-8, max_iter=10_000).fit(x_tr, y_tr)
    params = linear.fit_logistic_regression(
        x_tr.astype(np.float32), y_tr, key=jax.random.key(0), n_classes=n_classes,
        l2=1.0 / (2 * len(y_tr)))
    x_te32 = x_te.astype(np.float32)
    accuracy = float(np.mean(np.asarray(linear.predict(params, x_te32)) == y_te))
    assert accuracy >= 0.95
    assert accuracy >= sk.score(x_te, y_te) - 1e-9
    proba = np.asarray(linear.predict_proba(params, x_te32))
    assert proba.shape == (len(y_te), n_classes)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    # Same convex optimum: L-BFGS in float32 stops at ||grad|| <= 1e-5, which leaves ~1e-3 in the
    # weights (observed 7e-4); the probabilities agree with sklearn's float64 fit to 5e-3.
    np.testing.assert_allclose(proba, sk.predict_proba(x_te), atol=5e-3)
    np.testing.assert_allclose(np.asarray(params["w"]).T.reshape(sk.coef_.shape), sk.coef_,
                               atol=5e-3)
    # The Layer's apply gives the logits that predict() takes the argmax of.
    logits = linear.logistic_regression(n_classes).apply(params, jnp.asarray(x_te32))
    expected = (logits[:, 0] > 0) if n_classes == 2 else jnp.argmax(logits, 1)
    np.testing.assert_array_equal(linear.predict(params, x_te32), expected)


def test_fit_logistic_regression_same_key_same_bits_and_convex():
    # The shapes of the sklearn comparison above, so the compiled fit is reused.
    x, _, y, _ = _split(load_breast_cancer)
    x = x.astype(np.float32)
    a = linear.fit_logistic_regression(x, y, key=jax.random.key(1), n_classes=2, l2=0.01)
    b = linear.fit_logistic_regression(x, y, key=jax.random.key(1), n_classes=2, l2=0.01)
    c = linear.fit_logistic_regression(x, y, key=jax.random.key(2), n_classes=2, l2=0.01)
    np.testing.assert_array_equal(a["w"], b["w"])
    np.testing.assert_array_equal(a["b"], b["b"])
    # Another start reaches the same (unique, strongly convex) optimum: 1e-3 as above.
    np.testing.assert_allclose(a["w"], c["w"], atol=1e-3)

    def objective(p):
        logits = x @ p["w"] + p["b"][None, :]
        nll = jnp.mean(losses.sigmoid_binary_cross_entropy(logits[:, 0], jnp.asarray(y)))
        return nll + 0.01 * jnp.sum(p["w"] ** 2)

    # At the returned point the gradient of the documented J is ~0 (the stopping rule: 1e-5).
    grad_norm = optax.tree.norm(jax.jit(jax.grad(objective))(a))
    assert float(grad_norm) < 1e-4


# ------------------------------------------------------------------------------ bad inputs

X = np.zeros((4, 2), np.float32)
Y = np.zeros(4, np.float32)
LABELS = np.array([0, 1, 0, 1], np.int32)
KEY = jax.random.key(0)

BAD = [
    (linear.ridge, (X, Y, 0.0), {}, ValueError, "`lam` must be > 0, got 0.0"),
    (linear.ridge, (X, Y, -1.0), {}, ValueError, "`lam` must be > 0"),
    (linear.ridge, (X, Y[:3], 1.0), {}, ValueError, "`x` has 4 samples but `y` has 3"),
    (linear.ridge, (X, Y.astype(np.float64), 1.0), {}, TypeError,
     "`x` has dtype float32 but `y` has dtype float64"),
    (linear.ridge, (X, Y, 1.0), {"fit_intercept": 1}, TypeError, "`fit_intercept` must be a bool"),
    (linear.least_squares, (X[:, 0], Y), {}, ValueError, "`x` must have 2 dimensions"),
    (linear.least_squares, (X.astype(np.int32), Y), {}, TypeError,
     "`x` must have a floating dtype"),
    (linear.least_squares, (np.full((4, 2), np.nan, np.float32), Y), {}, ValueError,
     "`x` contains 8 NaN"),
    (linear.least_squares, (X, np.zeros((4, 2, 1), np.float32)), {}, ValueError,
     "`y` must have 1 or 2 dimensions"),
    (linear.linear_predict, ({"w": jnp.zeros(3), "b": jnp.zeros(())}, X), {}, ValueError,
     "fitted on 3 features"),
    (linear.linear_predict, ({"w": jnp.zeros(2)}, X), {}, TypeError,
     r"`params` must be a dict with keys \['b', 'w'\]"),
    (linear.logistic_regression, (1,), {}, ValueError, "`n_classes` must be >= 2, got 1"),
    (linear.fit_logistic_regression, (X, LABELS + 1), {"key": KEY, "n_classes": 2}, ValueError,
     "`y` has label 2 but `n_classes` is 2"),
    (linear.fit_logistic_regression, (X, LABELS.astype(np.float32)),
     {"key": KEY, "n_classes": 2},
     TypeError, "`y` must hold integer class labels"),
    (linear.fit_logistic_regression, (X, LABELS), {"key": KEY, "n_classes": 2, "l2": -0.1},
     ValueError, "`l2` must be >= 0"),
    (linear.fit_logistic_regression, (X, LABELS), {"key": KEY, "n_classes": 2, "steps": 0},
     ValueError, "`steps` must be > 0"),
    (linear.fit_logistic_regression, (X, LABELS), {"key": 0, "n_classes": 2}, TypeError,
     "`key` must be a jax.random key"),
    (linear.predict, ({"w": jnp.zeros(2), "b": jnp.zeros(())}, X), {}, ValueError,
     r"`params\['w'\]` must be \[d, m\]"),
]


@pytest.mark.parametrize("fn,args,kwargs,err,match", BAD)
def test_bad_inputs(fn, args, kwargs, err, match):
    with pytest.raises(err, match=match):
        fn(*args, **kwargs)
