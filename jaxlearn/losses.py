"""Losses and information theory, as pure functions of predictions and targets.

Losses return one value per example (shape ``[...]``, the batch shape) like optax; the trainer
takes their mean. Every loss that can start from logits does so, through log-sum-exp /
``log_sigmoid``, so values and gradients stay finite for logits of +-1e4 (tested).

Exact at saturation. Once a logit gap passes ~17 (float32), ``softmax(z)_y`` rounds to 1 and the
textbook gradient ``softmax(z) - onehot(y)`` loses its true-class term (``p_y - 1`` cancels to 0):
the input gradient of a confident example then points along the other classes' weights instead of
their difference, so FGSM/PGD steps and loss-gradient attributions go the wrong way exactly where
attacks matter. The classification losses here are written so that plain ``jax.grad`` gives the
exact gradient: the cross-entropy is ``softplus(logsumexp(z_others) - z_y)``, whose derivative
in ``z_y`` is ``-sigmoid(logsumexp(z_others) - z_y) = -sum_{k != y} p_k``, computed without the
cancellation (tested against the float64 formula for gaps up to 100, and against FGSM's exact
margin change on a linear model). :func:`entropy_from_logits` and
:func:`kl_divergence_from_logits` keep finite gradients where a probability underflows to 0
(the probability versions cannot: ``d(p log p)/dp = -inf`` at ``p = 0``).

Notation of the course: for a true distribution ``p`` and a model ``q`` over ``K`` classes,
entropy ``H(p) = -sum_k p_k log p_k``, cross-entropy ``H(p, q) = -sum_k p_k log q_k`` and
``KL(p || q) = H(p, q) - H(p) >= 0``, zero iff ``q = p``. Logs are natural (nats).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks
from jaxlearn._types import Array


def _xlogy(x: Array, y: Array) -> Array:
    # 0 * log 0 = 0, the convention that makes H(p) continuous at p_k = 0.
    return jax.scipy.special.xlogy(x, y)


def _check_same_shape(name_a: str, a: Any, name_b: str, b: Any) -> None:
    if a.shape != b.shape:
        raise ValueError(f"`{name_a}` has shape {tuple(a.shape)} but `{name_b}` has shape "
                         f"{tuple(b.shape)}; they must be equal (nothing is broadcast)")


def mse(predictions: Array, targets: Array) -> Array:
    """Squared error ``(predictions - targets)^2``, averaged over the trailing axis if any.

    Shapes: ``predictions`` and ``targets`` are ``[batch]`` or ``[batch, d]`` (equal shapes);
    returns ``[batch]``. Maximum likelihood under Gaussian noise of fixed variance.
    """
    predictions = _checks.as_array("predictions", predictions)
    targets = _checks.as_array("targets", targets)
    _checks.check_float("predictions", predictions)
    _check_same_shape("predictions", predictions, "targets", targets)
    err = jnp.square(predictions - targets)
    return err if err.ndim <= 1 else jnp.mean(err, axis=-1)


def binary_cross_entropy(probabilities: Array, labels: Array, *, eps: float = 1e-7) -> Array:
    """BCE from probabilities: ``-[y log p + (1 - y) log(1 - p)]``.

    ``p`` is clipped to ``[eps, 1 - eps]`` before the log, since a probability of exactly 0 or 1
    has an infinite loss; prefer :func:`sigmoid_binary_cross_entropy` on logits, which needs no
    clipping. Shapes: ``[...]`` for both (equal); returns ``[...]``.
    """
    probabilities = _checks.as_array("probabilities", probabilities)
    labels = _checks.as_array("labels", labels)
    _checks.check_float("probabilities", probabilities)
    _check_same_shape("probabilities", probabilities, "labels", labels)
    _check_unit_interval("probabilities", probabilities)
    _check_unit_interval("labels", labels)
    p = jnp.clip(probabilities, eps, 1.0 - eps)
    y = labels.astype(p.dtype)
    return -(y * jnp.log(p) + (1.0 - y) * jnp.log1p(-p))


def sigmoid_binary_cross_entropy(logits: Array, labels: Array) -> Array:
    """BCE from logits ``z``: ``-[y log sigma(z) + (1 - y) log(1 - sigma(z))]``.

    Computed as ``-(y log_sigmoid(z) + (1 - y) log_sigmoid(-z))``: finite for any finite ``z``.
    Its gradient is ``sigma(z) - y`` (no vanishing factor ``sigma'(z)``, unlike MSE on a sigmoid).
    Shapes: ``logits`` and ``labels`` ``[...]`` (equal; labels in {0, 1} or soft in [0, 1]);
    returns ``[...]``.
    """
    logits = _checks.as_array("logits", logits)
    labels = _checks.as_array("labels", labels)
    _checks.check_float("logits", logits)
    _check_same_shape("logits", logits, "labels", labels)
    _check_unit_interval("labels", labels)
    y = labels.astype(logits.dtype)
    return -(y * jax.nn.log_sigmoid(logits) + (1.0 - y) * jax.nn.log_sigmoid(-logits))


def _mask_of(logits: Array, index: Array) -> Array:
    """Boolean ``[..., K]``: True at ``index`` (``[...]`` integers) along the class axis."""
    classes = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
    return classes == jnp.asarray(index, jnp.int32)[..., None]


def _others_minus_picked(logits: Array, is_picked: Array) -> tuple[Array, Array]:
    """``(logsumexp over the classes not picked - z_picked, z_picked)``, one picked class per row.

    ``softplus`` of the first is ``logsumexp(z) - z_picked``; its gradient is exact at any gap
    (see the module docstring). Needs at least two classes.
    """
    picked = jnp.sum(jnp.where(is_picked, logits, 0.0), axis=-1)
    others = jax.nn.logsumexp(jnp.where(is_picked, -jnp.inf, logits), axis=-1)
    return others - picked, picked


def softmax_cross_entropy(logits: Array, labels: Array) -> Array:
    """Softmax cross-entropy ``-sum_k y_k log softmax(z)_k`` with one-hot (or soft) ``labels``.

    ``-log softmax(z)_k = logsumexp(z) - z_k``, computed around the largest logit ``m`` as
    ``softplus(logsumexp(z_{k != m}) - z_m) + (z_m - z_k)``, so that value and gradient stay exact
    when ``softmax(z)_m`` rounds to 1 (module docstring). Shapes: ``logits`` and ``labels`` are
    ``[..., num_classes]`` (equal); returns ``[...]``.

    >>> softmax_cross_entropy(jnp.array([[-14.3, 7.38]]), jnp.array([[0.0, 1.0]]))
    Array([3.8...e-10], dtype=float32)
    """
    logits = _checks.as_array("logits", logits)
    labels = _checks.as_array("labels", labels)
    _checks.check_float("logits", logits)
    _check_same_shape("logits", logits, "labels", labels)
    if logits.ndim < 1 or logits.shape[-1] == 0:
        raise ValueError(f"`logits` must have a class axis of size >= 1, got shape "
                         f"{tuple(logits.shape)}")
    labels = labels.astype(logits.dtype)
    if logits.shape[-1] == 1:  # one class: log softmax = 0
        return jnp.zeros(logits.shape[:-1], logits.dtype) * jnp.sum(labels, axis=-1)
    is_top = _mask_of(logits, jnp.argmax(jax.lax.stop_gradient(logits), axis=-1))
    gap, z_top = _others_minus_picked(logits, is_top)
    # The top class's own term is 0, written as a constant: as `z_top - z_top` its gradient
    # would add +y_top - y_top after the tiny softplus term and cancel it.
    spread = jnp.where(is_top, 0.0, z_top[..., None] - logits)
    return (jnp.sum(labels, axis=-1) * jax.nn.softplus(gap)
            + jnp.sum(labels * spread, axis=-1))


def softmax_cross_entropy_with_integer_labels(logits: Array, labels: Array) -> Array:
    """Softmax cross-entropy with integer labels: ``logsumexp(z) - z[label]``.

    Computed as ``softplus(logsumexp(z_{k != y}) - z_y)``: value and gradient exact when
    ``softmax(z)_y`` rounds to 1 (module docstring). Shapes: ``logits`` ``[..., num_classes]``,
    ``labels`` ``[...]`` integers in ``[0, num_classes)`` (checked when concrete); returns
    ``[...]``.

    >>> softmax_cross_entropy_with_integer_labels(jnp.array([[0., 0.]]), jnp.array([1]))
    Array([0.6931472], dtype=float32)
    >>> jax.grad(lambda z: softmax_cross_entropy_with_integer_labels(z, jnp.array([1])).sum())(
    ...     jnp.array([[-14.3, 7.38]]))
    Array([[ 3.8...e-10, -3.8...e-10]], dtype=float32)
    """
    logits = _checks.as_array("logits", logits)
    labels = _checks.as_array("labels", labels)
    _checks.check_float("logits", logits)
    if logits.ndim < 1 or logits.shape[-1] == 0:
        raise ValueError(f"`logits` must have a class axis of size >= 1, got shape "
                         f"{tuple(logits.shape)}")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"`labels` has shape {tuple(labels.shape)} but `logits` has shape "
                         f"{tuple(logits.shape)}; labels must have shape "
                         f"{tuple(logits.shape[:-1])}")
    _checks.check_labels("labels", labels, logits.shape[-1])
    if logits.shape[-1] == 1:  # one class: the loss is 0
        return jnp.zeros(logits.shape[:-1], logits.dtype) * logits[..., 0]
    gap, _ = _others_minus_picked(logits, _mask_of(logits, labels))
    return jax.nn.softplus(gap)


# ------------------------------------------------------------------------ information theory

def _check_class_axis(name: str, x: Any) -> Any:
    """A float array with a class axis (the last) of size >= 1."""
    x = _checks.as_array(name, x)
    _checks.check_float(name, x)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"`{name}` must have a class axis of size >= 1, got shape "
                         f"{tuple(x.shape)}")
    return x


def _check_distribution(name: str, p: Any) -> Any:
    p = _check_class_axis(name, p)
    if _checks.is_concrete(p):
        arr = np.asarray(p, dtype=np.float64)
        sums = arr.sum(-1)
        if np.any(arr < 0) or not np.allclose(sums, 1.0, atol=1e-4):
            raise ValueError(f"`{name}` must be a probability distribution over its last axis "
                             f"(entries >= 0 summing to 1), got entries in [{arr.min():.6g}, "
                             f"{arr.max():.6g}] and sums in [{sums.min():.6g}, {sums.max():.6g}]")
    return p


def _check_unit_interval(name: str, x: Any) -> None:
    # Checked, not clipped: a value outside [0, 1] is a mistake upstream (logits for
    # probabilities, labels 1/2 for 0/1).
    if _checks.is_concrete(x) and np.size(x):
        arr = np.asarray(x, dtype=np.float64)
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"`{name}` must lie in [0, 1], got values in [{arr.min():.6g}, "
                             f"{arr.max():.6g}]")


def entropy(p: Array) -> Array:
    """Shannon entropy ``H(p) = -sum_k p_k log p_k`` (nats) over the last axis.

    Shapes: ``p`` ``[..., K]``; returns ``[...]``. ``0 <= H(p) <= log K``, the maximum at the
    uniform distribution.
    """
    p = _check_distribution("p", p)
    return -jnp.sum(_xlogy(p, p), axis=-1)


def cross_entropy(p: Array, q: Array) -> Array:
    """Cross-entropy ``H(p, q) = -sum_k p_k log q_k`` (nats); ``H(p, q) >= H(p)``, equality iff
    ``q = p`` (Gibbs' inequality). Shapes: ``[..., K]`` both (equal); returns ``[...]``."""
    p = _check_distribution("p", p)
    q = _check_distribution("q", q)
    _check_same_shape("p", p, "q", q)
    return -jnp.sum(_xlogy(p, q), axis=-1)


def kl_divergence(p: Array, q: Array) -> Array:
    """``KL(p || q) = sum_k p_k log(p_k / q_k) = H(p, q) - H(p) >= 0``; zero iff ``q = p``.
    Shapes: ``[..., K]`` both (equal); returns ``[...]``."""
    p = _check_distribution("p", p)
    q = _check_distribution("q", q)
    _check_same_shape("p", p, "q", q)
    return jnp.sum(_xlogy(p, p) - _xlogy(p, q), axis=-1)


def entropy_from_logits(logits: Array) -> Array:
    """``H(softmax(z))`` (nats) from logits: ``-sum_k p_k log p_k`` with ``log p = log_softmax(z)``.

    Unlike ``entropy(softmax(z))``, whose gradient is NaN once some ``p_k`` underflows to 0
    (``d(p log p)/dp = -inf`` there, times ``dp/dz = 0``), its gradient stays finite for any finite
    logits. Shapes: ``[..., K]``; returns ``[...]``.

    >>> jax.grad(lambda z: entropy_from_logits(z))(jnp.array([0.0, 200.0]))
    Array([-0., 0.], dtype=float32)
    """
    logits = _check_class_axis("logits", logits)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


def kl_divergence_from_logits(p_logits: Array, q_logits: Array) -> Array:
    """``KL(softmax(a) || softmax(b)) = sum_k p_k (log p_k - log q_k)`` from logits ``a``, ``b``,
    with finite gradients where a probability underflows to 0 (see :func:`entropy_from_logits`).
    Shapes: ``[..., K]`` both (equal); returns ``[...]``."""
    p_logits = _check_class_axis("p_logits", p_logits)
    q_logits = _check_class_axis("q_logits", q_logits)
    _check_same_shape("p_logits", p_logits, "q_logits", q_logits)
    log_p = jax.nn.log_softmax(p_logits, axis=-1)
    log_q = jax.nn.log_softmax(q_logits, axis=-1)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


def l2_penalty(params: Any, *, include_biases: bool = False) -> Array:
    """``sum ||w||^2`` over the weights of a params pytree (the ridge / weight-decay term).

    Leaves named ``"b"`` (biases) are left out unless ``include_biases``: the intercept is not
    shrunk in ridge regression. Multiply by ``lambda`` yourself: ``loss + lam * l2_penalty(p)``.
    """
    total = jnp.zeros((), jnp.float32)
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        last = path[-1] if path else None
        if not include_biases and isinstance(last, jax.tree_util.DictKey) and last.key == "b":
            continue
        total = total + jnp.sum(jnp.square(leaf))
    return total


# The loss names accepted by the trainer and metrics (`jl.fit(..., loss=SOFTMAX_CE_INT)`), defined
# once: the rest of the library, the experiments and the tests use these constants.
MSE = "mse"
SIGMOID_BCE = "sigmoid_binary_cross_entropy"
SOFTMAX_CE = "softmax_cross_entropy"
SOFTMAX_CE_INT = "softmax_cross_entropy_with_integer_labels"
LOSSES = {
    MSE: mse,
    SIGMOID_BCE: sigmoid_binary_cross_entropy,
    SOFTMAX_CE: softmax_cross_entropy,
    SOFTMAX_CE_INT: softmax_cross_entropy_with_integer_labels,
}


def get_loss(name_or_fn: Any):
    """A loss by name (one of :data:`LOSSES`) or the callable itself."""
    if callable(name_or_fn):
        return name_or_fn
    _checks.check_choice("loss", name_or_fn, tuple(LOSSES))
    return LOSSES[name_or_fn]
