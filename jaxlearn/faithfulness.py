"""Is an attribution faithful to the model? Metrics that perturb the input where a map says it
matters and measure what the model does (the maps come from :mod:`jaxlearn.explain`).

For a classifier ``apply(params, x) -> logits [batch, n_classes]``, a target class ``t`` (given or
the predicted one, as in :mod:`jaxlearn.explain`) and attributions ``A`` with the shape of ``x``:

* :func:`deletion_curve` and :func:`insertion_curve` (Petsiuk et al. 2018, "RISE"): the class
  probability as the features are removed from (inserted into) the input in decreasing order of
  attribution, in ``n_steps`` chunks, with the area under the curve. A faithful map makes the
  deletion curve fall fast (low AUC) and the insertion curve rise fast (high AUC). All steps are
  evaluated in one compiled program (vmapped over steps, ``chunk_size`` steps at a time).
* :func:`infidelity` (Yeh et al. 2019, "On the (in)fidelity and sensitivity of explanations"): the
  mean squared error of the attribution's prediction ``I . A`` of the output change
  ``f_t(x) - f_t(x - I)`` under random perturbations ``I``; 0 for the gradient of a linear model.
* :func:`sensitivity_max` (same paper): how much the attribution changes, at most, when the input
  moves within a small ball; 0 for any attribution that does not depend on the input.

Example::

    >>> model = jl.nn.serial(jl.nn.flatten(), jl.nn.mlp((16,), 3, activation="tanh"))
    >>> _, params = model.init(jax.random.key(0), (6,))
    >>> x = jax.random.normal(jax.random.key(1), (4, 6))
    >>> maps = jl.explain.gradient_x_input(model.apply, params, x)
    >>> curve = deletion_curve(model.apply, params, x, maps, n_steps=6)
    >>> curve.fraction.shape, curve.score.shape, curve.auc.shape
    ((7,), (4, 7), (4,))
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks, explain
from jaxlearn._types import Array, Params

SCORES = ("probability", "logit")


class Curve(NamedTuple):
    """A deletion or insertion curve.

    Attributes:
      fraction: ``[n_steps + 1]`` fraction of the features removed (inserted) at each step, from 0
        to 1.
      score: ``[batch, n_steps + 1]`` the target class's probability (or logit) at each step.
      auc: ``[batch]`` area under ``score`` over ``fraction`` by the trapezoid rule.
    """

    fraction: Array
    score: Array
    auc: Array


# ------------------------------------------------------------------------------- boundary

def _check_attributions(attributions: Any, x: Array) -> Array:
    attributions = _checks.as_array("attributions", attributions)
    _checks.check_float("attributions", attributions)
    if tuple(attributions.shape) != tuple(x.shape):
        raise ValueError(f"`attributions` must have the shape of `x` {tuple(x.shape)}, got "
                         f"{tuple(attributions.shape)}")
    _checks.check_finite("attributions", attributions)
    return jnp.asarray(attributions, x.dtype)


def _check_curve_arguments(apply_fn, params, x, attributions, target, baseline, n_steps, score,
                           key, chunk_size):
    if key is not None:
        _checks.check_key("key", key)
    apply, x, target = explain._prepare(apply_fn, params, x, target)
    attributions = _check_attributions(attributions, x)
    baseline = explain._check_baseline(baseline, x)
    _checks.check_positive("n_steps", n_steps, integer=True)
    _checks.check_choice("score", score, SCORES)
    _checks.check_positive("chunk_size", chunk_size, integer=True)
    return apply, x, attributions, baseline, target


# ------------------------------------------------------------------ deletion and insertion

def deletion_curve(apply_fn: Callable, params: Params, x: Array, attributions: Array, *,
                   target: Any = None, baseline: Array | None = None, n_steps: int = 20,
                   score: str = "probability", key: Array | None = None,
                   chunk_size: int = 8) -> Curve:
    """Deletion curve (Petsiuk et al. 2018): the target's score as the most attributed features
    are replaced by the baseline, a chunk at a time.

    The ``d`` features of an example (every entry of ``x[i]``) are ranked by decreasing
    ``attributions[i]``; ties keep their order of position (first first) or, with ``key``, a
    random order (example ``i`` ranks its tied features in the order of
    ``jax.random.permutation(jax.random.fold_in(key, i), d)``). Break ties at random for maps
    with plateaus (Grad-CAM's rectified zeros, occlusion's windows), or the order of position
    decides part of the curve. At step ``k = 0..n_steps`` the first
    ``m_k = floor(k d / n_steps)`` of them are set to the baseline and the model scores the
    result: ``softmax(logits)_t`` (``score="probability"``, the paper's choice) or the logit
    ``f_t``. The target is fixed from the clean input. ``fraction_k = m_k / d`` runs from 0 to 1,
    and ``auc`` is the trapezoid area under the score over the fraction: lower is more faithful
    (the features the map points at are the ones the model needs).

    Rank by what the map claims: signed contributions (gradient x input, integrated gradients,
    occlusion) rank the evidence *for* the class first; pass ``jnp.abs(maps)`` to rank by
    magnitude (plain gradients, whose sign is a direction, not a contribution).

    Args:
      apply_fn: ``apply(params, x, ...)`` returning logits ``[batch, n_classes]``.
      params: the model's params pytree.
      x: float inputs ``[batch, ...]``.
      attributions: float, the shape of ``x``; larger means more important.
      target: int, labels ``[batch]`` or None (the predicted class).
      baseline: the value of a removed feature: None for zeros, one example ``[...]`` or
        ``[batch, ...]``.
      n_steps: number of chunks, ``>= 1`` (steps repeat a point when ``n_steps > d``).
      score: ``"probability"`` or ``"logit"``.
      key: None (ties by position) or a ``jax.random`` key (ties in random order).
      chunk_size: steps evaluated at once (vmapped), ``>= 1``; memory holds ``chunk_size``
        perturbed batches.

    Returns:
      A :class:`Curve` ``(fraction [n_steps + 1], score [batch, n_steps + 1], auc [batch])``.
    """
    apply, x, attributions, baseline, target = _check_curve_arguments(
        apply_fn, params, x, attributions, target, baseline, n_steps, score, key, chunk_size)
    return _curve(apply, params, x, attributions, baseline, target, key, n_steps, score,
                  chunk_size, False)


def insertion_curve(apply_fn: Callable, params: Params, x: Array, attributions: Array, *,
                    target: Any = None, baseline: Array | None = None, n_steps: int = 20,
                    score: str = "probability", key: Array | None = None,
                    chunk_size: int = 8) -> Curve:
    """Insertion curve (Petsiuk et al. 2018): the target's score as the most attributed features
    of ``x`` are written into the baseline, a chunk at a time.

    The mirror of :func:`deletion_curve` (same ranking, steps and arguments): at step ``k`` the
    first ``m_k`` ranked features hold their values from ``x`` and the others the baseline's, so
    step 0 scores the baseline and step ``n_steps`` scores ``x``. Higher AUC is more faithful.
    (The paper inserts into a blurred image; pass one as ``baseline``.)

    Returns:
      A :class:`Curve` ``(fraction [n_steps + 1], score [batch, n_steps + 1], auc [batch])``.
    """
    apply, x, attributions, baseline, target = _check_curve_arguments(
        apply_fn, params, x, attributions, target, baseline, n_steps, score, key, chunk_size)
    return _curve(apply, params, x, attributions, baseline, target, key, n_steps, score,
                  chunk_size, True)


def _step_counts(n_features: int, n_steps: int) -> np.ndarray:
    """``m_k = floor(k d / n_steps)``, ``k = 0..n_steps``: features switched at each step."""
    return np.arange(n_steps + 1, dtype=np.int64) * n_features // n_steps


@functools.partial(jax.jit, static_argnums=(0, 7, 8, 9, 10))
def _curve(apply, params, x, attributions, baseline, target, key, n_steps, score, chunk_size,
           insert):
    batch, n_features = x.shape[0], math.prod(x.shape[1:])
    counts = _step_counts(n_features, n_steps)
    chunk_size = min(chunk_size, counts.size)
    n_chunks = -(-counts.size // chunk_size)
    padded = np.full(n_chunks * chunk_size, n_features, np.int32)     # padding: dropped below
    padded[:counts.size] = counts
    flat_a = attributions.reshape(batch, n_features)
    if key is None:
        order = jnp.argsort(-flat_a, axis=1, stable=True)
    else:   # a stable sort of randomly permuted features leaves ties in the permuted order
        perm = jax.vmap(lambda i: jax.random.permutation(jax.random.fold_in(key, i),
                                                         n_features))(jnp.arange(batch))
        shuffled = jnp.argsort(-jnp.take_along_axis(flat_a, perm, axis=1), axis=1, stable=True)
        order = jnp.take_along_axis(perm, shuffled, axis=1)
    rank = jnp.argsort(order, axis=1)                     # 0 = the most attributed feature
    flat_x, flat_baseline = x.reshape(batch, n_features), baseline.reshape(batch, n_features)

    def score_at(m):
        switched = rank < m
        kept = (jnp.where(switched, flat_x, flat_baseline) if insert
                else jnp.where(switched, flat_baseline, flat_x))
        logits = apply(params, kept.reshape(x.shape), key=None, train=False)
        if score == "probability":
            logits = jax.nn.softmax(logits, axis=-1)
        return jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0]

    steps = jax.lax.map(jax.vmap(score_at), jnp.asarray(padded.reshape(n_chunks, chunk_size)))
    scores = steps.reshape(-1, batch)[:counts.size].T                   # [batch, n_steps + 1]
    fraction = jnp.asarray(counts / n_features, x.dtype)
    widths = jnp.diff(fraction)[None, :]
    return Curve(fraction, scores, jnp.sum(widths * (scores[:, 1:] + scores[:, :-1]) / 2, axis=1))


# ------------------------------------------------------------------------------- infidelity

def infidelity(apply_fn: Callable, params: Params, x: Array, attributions: Array, *, key: Array,
               target: Any = None, n_samples: int = 50, noise_level: float = 0.1,
               normalize: bool = False, chunk_size: int = 16) -> Array:
    """Infidelity (Yeh et al. 2019): how badly the attribution predicts the output's change under
    random perturbations,

    .. math::

      \\mathrm{INFD}(A, f, x) = \\mathbb{E}_{I}\\big[(I \\cdot A - (f_t(x) - f_t(x - I)))^2\\big],
      \\qquad I \\sim N(0, \\sigma^2 \\mathbf{1}),

    estimated by the mean over ``n_samples`` draws (sample ``s`` drawn with ``fold_in(key, s)``),
    with ``sigma = noise_level * (max_j x_j - min_j x_j)`` per example as in
    :func:`jaxlearn.explain.smoothgrad` and ``f_t`` the target logit. For a model linear in
    ``x``, ``f_t(x) - f_t(x - I) = I . grad f_t``, so the gradient
    (:func:`~jaxlearn.explain.saliency`) has infidelity exactly 0.

    ``normalize=True`` first rescales ``A`` by the ``beta`` that minimises the estimate,
    ``beta = sum_s a_s b_s / sum_s a_s^2`` with ``a_s = I_s . A`` and ``b_s`` the output change
    (Yeh et al.'s scale-free variant, Captum's ``normalize``), so maps on different scales can be
    compared; ``beta = 0`` for a map that predicts no change at all (``a_s = 0``).

    Args:
      apply_fn, params, x, target: as in :func:`deletion_curve`.
      attributions: float, the shape of ``x``.
      key: a ``jax.random`` key (keyword).
      n_samples: perturbations, ``>= 1``.
      noise_level: ``sigma`` as a fraction of each example's value range, ``> 0``.
      normalize: rescale the attributions optimally first.
      chunk_size: perturbations evaluated at once, ``>= 1``.

    Returns:
      ``[batch]`` non-negative infidelities, in squared logit units.
    """
    _checks.check_key("key", key)
    apply, x, target = explain._prepare(apply_fn, params, x, target)
    attributions = _check_attributions(attributions, x)
    _checks.check_positive("n_samples", n_samples, integer=True)
    _checks.check_positive("noise_level", noise_level)
    _checks.check_bool("normalize", normalize)
    _checks.check_positive("chunk_size", chunk_size, integer=True)
    return _infidelity(apply, params, x, attributions, target, key, n_samples, noise_level,
                       normalize, chunk_size)


def _perturbation_noise(key: Array, s: Array, x: Array, sigma: Array) -> Array:
    """Infidelity's perturbation ``I_s ~ N(0, sigma^2)``, drawn with ``fold_in(key, s)``."""
    return sigma * jax.random.normal(jax.random.fold_in(key, s), x.shape, x.dtype)


@functools.partial(jax.jit, static_argnums=(0, 6, 7, 8, 9))
def _infidelity(apply, params, x, attributions, target, key, n_samples, noise_level, normalize,
                chunk_size):
    chunk_size = min(chunk_size, n_samples)
    n_chunks = -(-n_samples // chunk_size)
    axes = tuple(range(1, x.ndim))
    span = jnp.max(x, axis=axes, keepdims=True) - jnp.min(x, axis=axes, keepdims=True)
    sigma = jnp.asarray(noise_level, x.dtype) * span
    reference = explain._target_logit(apply, params, x, target)

    def predicted_and_actual(s):
        noise = _perturbation_noise(key, s, x, sigma)
        predicted = jnp.sum((noise * attributions).reshape(x.shape[0], -1), axis=1)
        return predicted, reference - explain._target_logit(apply, params, x - noise, target)

    samples = jnp.arange(n_chunks * chunk_size).reshape(n_chunks, chunk_size)
    a, b = jax.lax.map(jax.vmap(predicted_and_actual), samples)      # [n_chunks, chunk, batch]
    a, b = a.reshape(-1, x.shape[0])[:n_samples], b.reshape(-1, x.shape[0])[:n_samples]
    if normalize:
        saa = jnp.sum(a * a, axis=0)
        beta = jnp.where(saa > 0, jnp.sum(a * b, axis=0) / jnp.where(saa > 0, saa, 1), 0)
        a = a * beta[None]
    return jnp.mean((a - b) ** 2, axis=0)


# -------------------------------------------------------------------------- sensitivity-max

def sensitivity_max(explain_fn: Callable[[Array], Array], x: Array, *, key: Array,
                    radius: float = 0.02, n_samples: int = 10, chunk_size: int = 10) -> Array:
    """Max-sensitivity (Yeh et al. 2019): the largest change of an explanation when the input
    moves within a small ball,

    .. math:: \\mathrm{SENS}_{\\max}(\\Phi, x) = \\max_{\\|y - x\\|_\\infty \\le r}
              \\|\\Phi(y) - \\Phi(x)\\|_2,

    estimated, as Captum's ``sensitivity_max`` does, by the maximum over ``n_samples`` points
    ``y_s = x + u_s``, ``u_s ~ U[-r, r]^d`` (sample ``s`` drawn with ``fold_in(key, s)``), with
    the Euclidean (Frobenius) norm over all of an example's attribution entries. A Monte Carlo
    maximum is a lower bound of the true one. 0 for an explanation that does not depend on ``x``
    (the gradient of a linear model).

    Args:
      explain_fn: ``explain_fn(x) -> maps [batch, ...]``, traceable (it is vmapped over the
        samples), with everything else fixed, the target class included: e.g.
        ``lambda xb: jl.explain.saliency(apply, params, xb, target=labels)``. It is a static
        argument of the compiled program: reuse one function object to reuse the compilation.
      x: float inputs ``[batch, ...]``.
      key: a ``jax.random`` key (keyword).
      radius: ``r``, half-width of the box, ``> 0`` (Captum's default 0.02).
      n_samples: perturbed points, ``>= 1`` (Captum's default 10).
      chunk_size: points explained at once, ``>= 1``.

    Returns:
      ``[batch]`` maxima of ``||Phi(y_s) - Phi(x)||_2``.
    """
    if not callable(explain_fn):
        raise TypeError(f"`explain_fn` must be callable(x) -> maps, got "
                        f"{type(explain_fn).__name__}")
    _checks.check_key("key", key)
    x = _checks.check_batch("x", x)
    _checks.check_positive("radius", radius)
    _checks.check_positive("n_samples", n_samples, integer=True)
    _checks.check_positive("chunk_size", chunk_size, integer=True)
    x = jnp.asarray(x)
    try:
        out = jax.eval_shape(explain_fn, x)
    except (ValueError, TypeError) as err:
        raise type(err)(f"`explain_fn` failed on `x` with shape {tuple(x.shape)}: {err}") from err
    if not hasattr(out, "shape") or len(out.shape) < 1 or out.shape[0] != x.shape[0]:
        raise ValueError(f"`explain_fn` must return maps [batch, ...] with batch {x.shape[0]}, got "
                         f"{getattr(out, 'shape', type(out).__name__)}")
    return _sensitivity_max(explain_fn, x, key, float(radius), n_samples, chunk_size)


def _box_noise(key: Array, s: Array, x: Array, radius: float) -> Array:
    """Sensitivity-max's displacement ``u_s ~ U[-r, r]^d``, drawn with ``fold_in(key, s)``."""
    return jax.random.uniform(jax.random.fold_in(key, s), x.shape, x.dtype, -radius, radius)


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5))
def _sensitivity_max(explain_fn, x, key, radius, n_samples, chunk_size):
    chunk_size = min(chunk_size, n_samples)
    n_chunks = -(-n_samples // chunk_size)
    reference = explain_fn(x)

    def change(s):
        moved = explain_fn(x + _box_noise(key, s, x, radius))
        return jnp.sqrt(jnp.sum(((moved - reference) ** 2).reshape(x.shape[0], -1), axis=1))

    samples = jnp.arange(n_chunks * chunk_size).reshape(n_chunks, chunk_size)
    changes = jax.lax.map(jax.vmap(change), samples).reshape(-1, x.shape[0])[:n_samples]
    return jnp.max(changes, axis=0)
