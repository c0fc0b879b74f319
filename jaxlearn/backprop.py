"""Backpropagation by hand for a one-hidden-layer MLP: the lecture's chain rule, term by term.

The network, for a batch ``x`` ``[B, n_in]``::

    h_pre = x W1 + b1          [B, n_hidden]
    h     = act(h_pre)         [B, n_hidden]     act in {sigmoid, tanh, relu}
    out   = h W2 + b2          [B, n_out]
    L     = (1/B) sum_i loss(out_i, y_i)

Backward pass in the course's notation (``*`` is the elementwise product)::

    G_o   = dL/d out                            [B, n_out]
              softmax CE:  (softmax(out) - onehot(y)) / B
              MSE:         2 (out - y) / (B n_out)     (loss averaged over outputs and batch)
    G_2   = dL/dW2 = h^T G_o                    [n_hidden, n_out]
    dL/db2        = sum_i G_o[i]                [n_out]
    G_h   = dL/dh  = G_o W2^T                   [B, n_hidden]
    G_1   = dL/dh_pre = G_h * act'(h_pre)       [B, n_hidden]
              sigmoid: act' = h (1 - h);  tanh: act' = 1 - h^2;  relu: act' = 1[h_pre > 0]
    dL/dW1 = x^T G_1                            [n_in, n_hidden]
    dL/db1 = sum_i G_1[i]                       [n_hidden]

:func:`mlp1_backward` computes exactly these; :func:`mlp1_loss` is the same loss written with
:mod:`jaxlearn.losses`, so ``jax.grad(mlp1_loss)`` checks the hand derivation (tested to 1e-6
relative error in float64).

Example::

    >>> params = mlp1_init(jax.random.key(0), 4, 8, 3)
    >>> x, y = jax.random.normal(jax.random.key(1), (5, 4)), jnp.array([0, 2, 1, 1, 0])
    >>> out, cache = mlp1_forward(params, x, activation="tanh")
    >>> out.shape
    (5, 3)
    >>> grads = mlp1_backward(params, cache, y, activation="tanh", loss="softmax_cross_entropy")
    >>> auto = jax.grad(mlp1_loss)(params, x, y, activation="tanh", loss="softmax_cross_entropy")
    >>> all(jnp.allclose(grads[k], auto[k], atol=1e-6) for k in ("w1", "b1", "w2", "b2"))
    True
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks, losses
from jaxlearn._types import Array

Params = dict[str, Array]

MLP1_ACTIVATIONS = ("sigmoid", "tanh", "relu")
MLP1_LOSSES = ("mse", "softmax_cross_entropy")

_ACT: dict[str, Callable[[Array], Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
}


def _act_derivative(activation: str, h_pre: Array, h: Array) -> Array:
    """``act'(h_pre)``, written with the stored output ``h`` where the course does."""
    if activation == "sigmoid":
        return h * (1.0 - h)
    if activation == "tanh":
        return 1.0 - jnp.square(h)
    # relu: the subgradient 0 at h_pre = 0, the same choice as jax.nn.relu's derivative.
    return (h_pre > 0).astype(h_pre.dtype)


class Mlp1Cache(NamedTuple):
    """Intermediate values of :func:`mlp1_forward`, kept for the backward pass.

    Attributes:
      x: input ``[B, n_in]``.
      h_pre: hidden pre-activation ``x W1 + b1``, ``[B, n_hidden]``.
      h: hidden activation ``act(h_pre)``, ``[B, n_hidden]``.
      out: output ``h W2 + b2``, ``[B, n_out]`` (logits for classification).
    """

    x: Array
    h_pre: Array
    h: Array
    out: Array


# --------------------------------------------------------------------------------- checks

def _check_params(params: Any) -> tuple[int, int, int]:
    want = {"w1", "b1", "w2", "b2"}
    if not isinstance(params, dict) or set(params) != want:
        keys = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise TypeError(f"`params` must be a dict with keys {sorted(want)} (from mlp1_init), "
                        f"got {keys}")
    w1, b1, w2, b2 = params["w1"], params["b1"], params["w2"], params["b2"]
    for name, p, ndim in (("w1", w1, 2), ("b1", b1, 1), ("w2", w2, 2), ("b2", b2, 1)):
        _checks.check_ndim(f"params['{name}']", p, ndim)
        _checks.check_float(f"params['{name}']", p)
    n_in, n_hidden = w1.shape
    if b1.shape != (n_hidden,) or w2.shape[0] != n_hidden or b2.shape != (w2.shape[1],):
        raise ValueError(f"`params` shapes do not chain: w1 {tuple(w1.shape)}, b1 "
                         f"{tuple(b1.shape)}, w2 {tuple(w2.shape)}, b2 {tuple(b2.shape)}; need "
                         "w1 [n_in, n_hidden], b1 [n_hidden], w2 [n_hidden, n_out], b2 [n_out]")
    return n_in, n_hidden, w2.shape[1]


def _check_x(x: Any, n_in: int) -> Array:
    x = _checks.check_features("x", x)
    if x.shape[1] != n_in:
        raise ValueError(f"`x` has shape {tuple(x.shape)} but `params['w1']` expects {n_in} "
                         "input features")
    return jnp.asarray(x)


def _check_y(y: Any, loss: str, batch: int, n_out: int) -> Array:
    y = _checks.as_array("y", y)
    if y.ndim == 0 or y.shape[0] != batch:
        raise ValueError(f"`y` has shape {tuple(y.shape)} but `x` has {batch} samples; "
                         "they must match")
    if loss == "mse":
        _checks.check_float("y", y)
        if y.shape != (batch, n_out):
            raise ValueError(f"`y` has shape {tuple(y.shape)} but loss 'mse' needs targets of "
                             f"the output's shape {(batch, n_out)}")
        _checks.check_finite("y", y)
    elif np.issubdtype(np.dtype(y.dtype), np.integer):
        _checks.check_ndim("y", y, 1)
        _checks.check_labels("y", y, n_out)
    else:
        if y.shape != (batch, n_out):
            raise ValueError(f"`y` has shape {tuple(y.shape)}; loss 'softmax_cross_entropy' "
                             f"needs integer labels [{batch}] or class probabilities "
                             f"[{batch}, {n_out}]")
        _checks.check_finite("y", y)
    return jnp.asarray(y)


def _check_options(activation: Any, loss: Any) -> None:
    _checks.check_choice("activation", activation, MLP1_ACTIVATIONS)
    _checks.check_choice("loss", loss, MLP1_LOSSES)


# ------------------------------------------------------------------------------- the MLP

def mlp1_init(key: Array, n_in: int, n_hidden: int, n_out: int, *,
              dtype: Any = jnp.float32) -> Params:
    """Glorot-uniform weights and zero biases for the one-hidden-layer MLP.

    ``W ~ U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``.

    Args:
      key: ``jax.random`` key.
      n_in, n_hidden, n_out: layer widths, each ``>= 1``.
      dtype: float dtype of the parameters (``jnp.float64`` needs ``jax.enable_x64``).

    Returns:
      ``{"w1": [n_in, n_hidden], "b1": [n_hidden], "w2": [n_hidden, n_out], "b2": [n_out]}``.
    """
    _checks.check_key("key", key)
    for name, n in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
        _checks.check_positive(name, n, integer=True)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`dtype` must be a float dtype, got {dtype}")
    return _init(key, n_in, n_hidden, n_out, jnp.dtype(dtype))


def mlp1_forward(params: Params, x: Any, *, activation: str) -> tuple[Array, Mlp1Cache]:
    """Forward pass ``out = act(x W1 + b1) W2 + b2``, keeping the intermediate values.

    Args:
      params: from :func:`mlp1_init`.
      x: ``[B, n_in]`` float, finite.
      activation: one of :data:`MLP1_ACTIVATIONS`.

    Returns:
      ``(out, cache)``: ``out`` ``[B, n_out]`` and an :class:`Mlp1Cache`.
    """
    n_in, _, _ = _check_params(params)
    _checks.check_choice("activation", activation, MLP1_ACTIVATIONS)
    return _forward(params, _check_x(x, n_in), activation)


def mlp1_backward(params: Params, cache: Mlp1Cache, y: Any, *, activation: str,
                  loss: str) -> Params:
    """Gradients of the mean loss by the chain rule, with the course's terms (module docstring).

    ``G_o = dL/d out`` (softmax CE: ``(softmax(out) - onehot(y)) / B``; MSE:
    ``2 (out - y) / (B n_out)``), ``G_2 = h^T G_o``, ``dL/db2 = sum G_o``, ``G_h = G_o W2^T``,
    ``G_1 = G_h * act'(h_pre)``, ``dL/dW1 = x^T G_1``, ``dL/db1 = sum G_1``.

    Args:
      params: from :func:`mlp1_init`.
      cache: the :class:`Mlp1Cache` that :func:`mlp1_forward` returned for these ``params``.
      y: MSE: float targets ``[B, n_out]``; softmax CE: integer labels ``[B]`` in
        ``[0, n_out)`` or class probabilities ``[B, n_out]``.
      activation: the one used in the forward pass.
      loss: one of :data:`MLP1_LOSSES`.

    Returns:
      Gradients with the structure of ``params``: ``{"w1": dL/dW1, "b1": dL/db1, "w2": G_2,
      "b2": dL/db2}``.
    """
    _, n_hidden, n_out = _check_params(params)
    _check_options(activation, loss)
    if not isinstance(cache, Mlp1Cache):
        raise TypeError(f"`cache` must be the Mlp1Cache returned by mlp1_forward, got "
                        f"{type(cache).__name__}")
    batch = cache.x.shape[0]
    if cache.h.shape != (batch, n_hidden) or cache.out.shape != (batch, n_out):
        raise ValueError(f"`cache` (h {tuple(cache.h.shape)}, out {tuple(cache.out.shape)}) does "
                         f"not match `params` (n_hidden {n_hidden}, n_out {n_out})")
    return _backward(params, cache, _check_y(y, loss, batch, n_out), activation, loss)


def mlp1_loss(params: Params, x: Any, y: Any, *, activation: str, loss: str) -> Array:
    """Mean loss ``L = (1/B) sum_i loss(out_i, y_i)`` of the MLP, from :mod:`jaxlearn.losses`.

    MSE uses ``losses.mse`` (averaged over the ``n_out`` outputs); softmax CE uses
    ``losses.softmax_cross_entropy_with_integer_labels`` for integer ``y`` ``[B]`` and
    ``losses.softmax_cross_entropy`` for probabilities ``[B, n_out]``. Differentiate it with
    ``jax.grad`` to check :func:`mlp1_backward`. Returns a scalar.
    """
    n_in, _, n_out = _check_params(params)
    _check_options(activation, loss)
    x = _check_x(x, n_in)
    return _loss(params, x, _check_y(y, loss, x.shape[0], n_out), activation, loss)


# ------------------------------------------------------------------ compiled computations

@partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _init(key: Array, n_in: int, n_hidden: int, n_out: int, dtype: Any) -> Params:
    k1, k2 = jax.random.split(key)
    init = jax.nn.initializers.glorot_uniform()
    return {"w1": init(k1, (n_in, n_hidden), dtype), "b1": jnp.zeros((n_hidden,), dtype),
            "w2": init(k2, (n_hidden, n_out), dtype), "b2": jnp.zeros((n_out,), dtype)}


def _forward_math(params: Params, x: Array, activation: str) -> tuple[Array, Mlp1Cache]:
    h_pre = x @ params["w1"] + params["b1"][None, :]
    h = _ACT[activation](h_pre)
    out = h @ params["w2"] + params["b2"][None, :]
    return out, Mlp1Cache(x, h_pre, h, out)


_forward = jax.jit(_forward_math, static_argnames="activation")


@partial(jax.jit, static_argnames=("activation", "loss"))
def _backward(params: Params, cache: Mlp1Cache, y: Array, activation: str, loss: str) -> Params:
    batch, n_out = cache.out.shape
    if loss == "mse":
        g_o = 2.0 * (cache.out - y) / (batch * n_out)
    else:
        target = jax.nn.one_hot(y, n_out, dtype=cache.out.dtype) if y.ndim == 1 else y
        g_o = (jax.nn.softmax(cache.out, axis=-1) - target) / batch
    g_2 = cache.h.T @ g_o
    g_h = g_o @ params["w2"].T
    g_1 = g_h * _act_derivative(activation, cache.h_pre, cache.h)
    return {"w1": cache.x.T @ g_1, "b1": jnp.sum(g_1, axis=0),
            "w2": g_2, "b2": jnp.sum(g_o, axis=0)}


@partial(jax.jit, static_argnames=("activation", "loss"))
def _loss(params: Params, x: Array, y: Array, activation: str, loss: str) -> Array:
    out, _ = _forward_math(params, x, activation)
    if loss == "mse":
        per_example = losses.mse(out, y)
    elif y.ndim == 1:
        per_example = losses.softmax_cross_entropy_with_integer_labels(out, y)
    else:
        per_example = losses.softmax_cross_entropy(out, y)
    return jnp.mean(per_example)
