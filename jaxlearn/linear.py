"""Linear and logistic regression, as maximum-likelihood estimators.

Linear regression: with Gaussian noise ``y = x w + b + eps``, ``eps ~ N(0, sigma^2)``, the
negative log-likelihood is ``||X w + b - y||^2 / (2 sigma^2) + const``, so maximum likelihood is
least squares (:func:`least_squares`). A Gaussian prior ``w ~ N(0, sigma^2 / lam I)`` adds
``lam ||w||^2``: the MAP estimate is ridge regression (:func:`ridge`). Both are solved in closed
form, never with an explicit inverse.

Logistic regression: ``p(y = k | x) = softmax(x W + b)_k`` (or ``sigmoid(x w + b)`` for two
classes). The negative log-likelihood of the labels is the cross-entropy from logits, so logistic
regression is a one-layer network (:func:`logistic_regression`) trained with cross-entropy;
:func:`fit_logistic_regression` does this full-batch with L-BFGS inside one ``jit``.

Example::

    >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    >>> y = 2.0 * x[:, 0] - x[:, 1] + 3.0
    >>> params = least_squares(x, y)           # {"w": [d], "b": []}
    >>> np.round(np.asarray(params["w"]), 4).tolist(), round(float(params["b"]), 4)
    ([2.0, -1.0], 3.0)
    >>> linear_predict(ridge(x, y, 1.0), x).shape     # ridge shrinks w towards 0
    (5,)
    >>> labels = jnp.array([0, 1, 0, 1, 1])    # 1 where x_0 > 1/2
    >>> params = fit_logistic_regression(x, labels, key=jax.random.key(0), n_classes=2, l2=1e-3)
    >>> predict(params, x)                     # [n] integer labels
    Array([0, 1, 0, 1, 1], dtype=int32)
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxlearn import _checks, _keys, losses, nn
from jaxlearn._types import Array

Params = dict[str, Array]


# ---------------------------------------------------------------------- linear regression

def _check_xy(x: Any, y: Any) -> tuple[Array, Array]:
    x = _checks.check_features("x", x)
    if x.dtype not in (jnp.float32, jnp.float64):
        raise TypeError(f"`x` must be float32 or float64 (the linear solvers have no {x.dtype} "
                        "kernel)")
    y = _checks.as_array("y", y)
    _checks.check_float("y", y)
    _checks.check_ndim("y", y, (1, 2))
    _checks.check_finite("y", y)
    _checks.check_same_length("x", x, "y", y)
    if x.dtype != y.dtype:
        raise TypeError(f"`x` has dtype {x.dtype} but `y` has dtype {y.dtype}; give both the "
                        "same float dtype (nothing is cast silently)")
    return jnp.asarray(x), jnp.asarray(y)



def _centre(x: Array, y: Array, fit_intercept: bool):
    if not fit_intercept:
        return x, y, jnp.zeros(x.shape[1], x.dtype), jnp.zeros(y.shape[1:], y.dtype)
    x_mean, y_mean = jnp.mean(x, axis=0), jnp.mean(y, axis=0)
    return x - x_mean[None], y - y_mean[None], x_mean, y_mean


@partial(jax.jit, static_argnames="fit_intercept")
def _least_squares(x, y, fit_intercept):
    xc, yc, x_mean, y_mean = _centre(x, y, fit_intercept)
    w = jnp.linalg.lstsq(xc, yc)[0]
    return {"w": w, "b": y_mean - x_mean @ w}


@partial(jax.jit, static_argnames="fit_intercept")
def _ridge(x, y, lam, fit_intercept):
    xc, yc, x_mean, y_mean = _centre(x, y, fit_intercept)
    gram = xc.T @ xc + lam * jnp.eye(x.shape[1], dtype=x.dtype)
    w = jnp.linalg.solve(gram, xc.T @ yc)
    return {"w": w, "b": y_mean - x_mean @ w}


def least_squares(x: Any, y: Any, *, fit_intercept: bool = True) -> Params:
    """Ordinary least squares: the Gaussian maximum-likelihood linear fit.

    Minimises ``J(w, b) = ||X w + b - y||^2`` (``b = 0`` when ``fit_intercept`` is False).
    With an intercept, ``X`` and ``y`` are centred, ``w`` solves the centred problem and
    ``b = mean(y) - mean(X) w``. The centred problem is solved by ``jnp.linalg.lstsq`` (SVD):
    stable, and when ``X`` is rank-deficient it returns the minimum-norm minimiser.

    Args:
      x: ``[n, d]`` float, finite.
      y: ``[n]`` or ``[n, k]`` targets, same dtype as ``x``.
      fit_intercept: fit ``b`` (not penalised, not part of ``w``).

    Returns:
      ``{"w": [d] or [d, k], "b": [] or [k]}``, usable with :func:`linear_predict`.
    """
    x, y = _check_xy(x, y)
    _checks.check_bool("fit_intercept", fit_intercept)
    return _least_squares(x, y, fit_intercept)


def ridge(x: Any, y: Any, lam: float, *, fit_intercept: bool = True) -> Params:
    """Ridge regression (L2-penalised least squares; the MAP fit under a Gaussian prior on ``w``).

    Minimises the *sum* of squared errors plus the penalty, intercept not penalised::

        J(w, b) = ||X w + b - y||^2 + lam ||w||^2

    which is exactly ``sklearn.linear_model.Ridge(alpha=lam)``. (If you write the objective with
    the *mean* squared error, ``(1/n) ||X w + b - y||^2 + lam' ||w||^2``, then ``lam = n lam'``.)
    With the centred ``Xc = X - mean(X)``, ``yc = y - mean(y)``, the optimum solves
    ``(Xc^T Xc + lam I) w = Xc^T yc`` (``jnp.linalg.solve``, no inverse) and
    ``b = mean(y) - mean(X) w``.

    Args:
      x: ``[n, d]`` float, finite.
      y: ``[n]`` or ``[n, k]`` targets, same dtype as ``x``.
      lam: penalty ``> 0`` (for ``lam = 0`` use :func:`least_squares`, which copes with a
        singular ``Xc^T Xc``).
      fit_intercept: fit ``b``; without it nothing is centred.

    Returns:
      ``{"w": [d] or [d, k], "b": [] or [k]}``.
    """
    x, y = _check_xy(x, y)
    _checks.check_positive("lam", lam)
    _checks.check_bool("fit_intercept", fit_intercept)
    return _ridge(x, y, lam, fit_intercept)


def _check_linear_params(params: Any) -> None:
    if not isinstance(params, dict) or set(params) != {"w", "b"}:
        keys = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise TypeError(f"`params` must be a dict with keys ['b', 'w'], got {keys}")


def linear_predict(params: Params, x: Any) -> Array:
    """``y_hat = x w + b``.

    Shapes: ``params["w"]`` ``[d]`` or ``[d, k]``, ``params["b"]`` ``[]`` or ``[k]``; ``x``
    ``[n, d]``; returns ``[n]`` or ``[n, k]``.
    """
    _check_linear_params(params)
    x = _checks.check_features("x", x)
    d = params["w"].shape[0]
    if x.shape[1] != d:
        raise ValueError(f"`x` has shape {tuple(x.shape)} but the parameters were fitted on {d} "
                         "features")
    return x @ params["w"] + jnp.asarray(params["b"])[None]   # b: [] or [k]


# -------------------------------------------------------------------- logistic regression

def logistic_regression(n_classes: int) -> nn.Layer:
    """Logistic regression as a one-layer network: ``nn.dense(1)`` for two classes, else
    ``nn.dense(n_classes)``.

    Two classes: one logit ``z = x w + b`` and ``p(y = 1 | x) = sigmoid(z)``; training with
    ``losses.sigmoid_binary_cross_entropy`` maximises the Bernoulli likelihood
    ``prod_i p_i^{y_i} (1 - p_i)^{1 - y_i}``. ``K > 2`` classes: logits ``z = x W + b``,
    ``p(y = k | x) = softmax(z)_k``; training with softmax cross-entropy maximises the
    categorical likelihood ``prod_i softmax(z_i)_{y_i}``.

    Args:
      n_classes: ``K >= 2``.

    Returns:
      A :class:`jaxlearn.nn.Layer`; ``init(key, (d,))`` gives ``{"w": [d, m], "b": [m]}`` with
      ``m = 1`` if ``K = 2`` else ``K``; ``apply(params, x)`` maps ``[n, d]`` to logits ``[n, m]``.
    """
    _check_n_classes(n_classes)
    return nn.dense(1 if n_classes == 2 else n_classes)


def _check_n_classes(n_classes: Any) -> None:
    _checks.check_number("n_classes", n_classes, integer=True)
    if n_classes < 2:
        raise ValueError(f"`n_classes` must be >= 2, got {n_classes}")


def _logistic_nll(params: Params, x: Array, y: Array, binary: bool) -> Array:
    logits = x @ params["w"] + params["b"][None, :]
    if binary:
        return jnp.mean(losses.sigmoid_binary_cross_entropy(logits[:, 0], y))
    return jnp.mean(losses.softmax_cross_entropy_with_integer_labels(logits, y))


@partial(jax.jit, static_argnames=("binary", "steps"))
def _fit_lbfgs(params, x, y, l2, tol, binary, steps):
    def objective(p):
        return _logistic_nll(p, x, y, binary) + l2 * losses.l2_penalty(p)

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        p, state, i = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(p, updates), state, i + 1

    def not_done(carry):
        _, state, i = carry
        grad = optax.tree.get(state, "grad")
        return (i == 0) | ((i < steps) & (optax.tree.norm(grad) > tol))

    params, _, _ = jax.lax.while_loop(not_done, step, (params, opt.init(params), 0))
    return params


@_keys.key_keyword(0, "fit_logistic_regression(x, y, key=key, n_classes=...)")
def fit_logistic_regression(x: Any, y: Any, *, key: Array, n_classes: int, l2: float = 0.0,
                            steps: int = 500, tol: float = 1e-5) -> Params:
    """Full-batch maximum-likelihood (or L2-penalised MAP) fit of :func:`logistic_regression`.

    Minimises the mean negative log-likelihood plus an L2 penalty on the weights (not the bias)::

        J(W, b) = (1/n) sum_i CE(x_i W + b, y_i) + l2 ||W||^2

    with ``optax.lbfgs`` (zoom line search) in one ``lax.while_loop`` inside ``jit``, stopping
    after ``steps`` iterations or when ``||grad J|| <= tol``. ``J`` is convex, so the result does
    not depend on the start (drawn from the layer's ``init`` with ``key``) up to ``tol``.
    sklearn's ``LogisticRegression(C=C)`` minimises ``C sum_i CE_i + ||W||^2 / 2``, the same
    problem as ``l2 = 1 / (2 C n)``. With ``l2 = 0`` and separable classes the optimum is at
    infinity and the weights grow until ``steps`` runs out; give ``l2 > 0`` then.

    Args:
      key: ``jax.random`` key for the initial parameters.
      x: ``[n, d]`` float features (standardise them first: L-BFGS and the penalty both care).
      y: ``[n]`` integer labels in ``[0, n_classes)``.
      n_classes: ``K >= 2``.
      l2: penalty ``>= 0``.
      steps: maximum L-BFGS iterations, ``>= 1``.
      tol: gradient-norm stopping tolerance ``> 0``.

    Returns:
      ``{"w": [d, m], "b": [m]}`` (``m = 1`` if ``K = 2`` else ``K``), usable with
      ``logistic_regression(n_classes).apply``, :func:`predict_proba` and :func:`predict`.
    """
    _checks.check_key("key", key)
    x = _checks.check_features("x", x)
    y = _checks.as_array("y", y)
    _checks.check_ndim("y", y, 1)
    _checks.check_same_length("x", x, "y", y)
    _check_n_classes(n_classes)
    _checks.check_labels("y", y, n_classes)
    _checks.check_nonnegative("l2", l2)
    _checks.check_positive("steps", steps, integer=True)
    _checks.check_positive("tol", tol)
    x = jnp.asarray(x)
    _, params = logistic_regression(n_classes).init(key, (x.shape[1],))
    params = jax.tree.map(lambda p: p.astype(x.dtype), params)
    return _fit_lbfgs(params, x, jnp.asarray(y), l2, tol, n_classes == 2, steps)


def predict_proba(params: Params, x: Any) -> Array:
    """Class probabilities of a logistic regression.

    ``softmax(x W + b)``, or for one logit ``[1 - sigmoid(z), sigmoid(z)]`` (sklearn's layout).
    Shapes: ``params`` as returned by :func:`fit_logistic_regression` (``w`` ``[d, m]``);
    ``x`` ``[n, d]``; returns ``[n, K]`` rows summing to 1 (``K = 2`` when ``m = 1``).
    """
    logits = _logits(params, x)
    if logits.shape[1] == 1:
        p1 = jax.nn.sigmoid(logits[:, 0])
        return jnp.stack([1.0 - p1, p1], axis=1)
    return jax.nn.softmax(logits, axis=1)


def predict(params: Params, x: Any) -> Array:
    """Most probable class ``argmax_k p(y = k | x)``: ``x`` ``[n, d]`` -> ``[n]`` int labels.
    Computed on the logits (for one logit: ``z > 0``), so no probability is rounded."""
    logits = _logits(params, x)
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).astype(jnp.int32)
    return jnp.argmax(logits, axis=1)


def _logits(params: Any, x: Any) -> Array:
    _check_linear_params(params)
    w = params["w"]
    if w.ndim != 2:
        raise ValueError(f"`params['w']` must be [d, m] (from fit_logistic_regression), got "
                         f"shape {tuple(w.shape)}")
    x = _checks.check_features("x", x)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"`x` has shape {tuple(x.shape)} but the model was fitted on "
                         f"{w.shape[0]} features")
    return jnp.asarray(x) @ w + jnp.asarray(params["b"])[None, :]

