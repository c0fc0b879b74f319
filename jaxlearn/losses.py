"""Losses and information theory, as pure functions of predictions and targets.

Losses return one value per example (shape ``[...]``, the batch shape) like optax; the trainer
takes their mean. Every loss that can start from logits does so, through log-sum-exp /
``log_sigmoid``, so values and gradients stay finite for logits of +-1e4 (tested).

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

Array = jax.Array


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


def softmax_cross_entropy(logits: Array, labels: Array) -> Array:
    """Softmax cross-entropy ``-sum_k y_k log softmax(z)_k`` with one-hot (or soft) ``labels``.

    ``log softmax(z) = z - logsumexp(z)``. Shapes: ``logits`` and ``labels`` are
    ``[..., num_classes]`` (equal); returns ``[...]``.
    """
    logits = _checks.as_array("logits", logits)
    labels = _checks.as_array("labels", labels)
    _checks.check_float("logits", logits)
    _check_same_shape("logits", logits, "labels", labels)
    return -jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def softmax_cross_entropy_with_integer_labels(logits: Array, labels: Array) -> Array:
    """Softmax cross-entropy with integer labels: ``logsumexp(z) - z[label]``.

    Shapes: ``logits`` ``[..., num_classes]``, ``labels`` ``[...]`` integers in
    ``[0, num_classes)`` (checked when concrete); returns ``[...]``.

    >>> softmax_cross_entropy_with_integer_labels(jnp.array([[0., 0.]]), jnp.array([1]))
    Array([0.6931472], dtype=float32)
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
    log_z = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return log_z - picked


# ------------------------------------------------------------------------ information theory

def _check_distribution(name: str, p: Any) -> Any:
    p = _checks.as_array(name, p)
    _checks.check_float(name, p)
    if p.ndim < 1 or p.shape[-1] == 0:
        raise ValueError(f"`{name}` must have a class axis of size >= 1, got shape "
                         f"{tuple(p.shape)}")
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


# Names accepted by the trainer and metrics, with the label form each expects.
LOSSES = {
    "mse": mse,
    "sigmoid_binary_cross_entropy": sigmoid_binary_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
    "softmax_cross_entropy_with_integer_labels": softmax_cross_entropy_with_integer_labels,
}


def get_loss(name_or_fn: Any):
    """A loss by name (one of :data:`LOSSES`) or the callable itself."""
    if callable(name_or_fn):
        return name_or_fn
    _checks.check_choice("loss", name_or_fn, tuple(LOSSES))
    return LOSSES[name_or_fn]
