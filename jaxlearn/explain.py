"""Attribution maps for any classifier ``apply(params, x) -> logits [batch, n_classes]``, and the
sanity checks of Adebayo et al. (2018) that tell whether a map depends on the model at all.

Every method explains one logit per example, ``f_t(x) = apply(params, x)[i, t_i]``, where the
target class ``t`` is given (an int for all examples or labels ``[batch]``) or, by default, the
class the model predicts for ``x``. Maps have the shape of ``x``:

* :func:`saliency` (Simonyan et al. 2014): ``d f_t / d x``;
* :func:`gradient_x_input` (Shrikumar et al. 2016): ``x * d f_t / d x``;
* :func:`integrated_gradients` (Sundararajan et al. 2017): the path integral of the gradient from
  a baseline to ``x``, with :func:`completeness_gap` to check that it sums to
  ``f_t(x) - f_t(baseline)``;
* :func:`smoothgrad` (Smilkov et al. 2017): the gradient averaged over noisy copies of ``x``;
* :func:`occlusion` (Zeiler & Fergus 2014): the drop of ``f_t`` when a sliding window is covered,
  for 1-D signals and 2-D images;
* :func:`smoothgrad_squared` (Hooker et al. 2019) and :func:`vargrad` (Adebayo et al. 2018): the
  mean square and the variance of SmoothGrad's noisy gradients;
* :func:`grad_cam` (Selvaraju et al. 2017) and :func:`layer_integrated_gradients`: attributions
  inside the network, at a layer of a ``jl.nn.serial`` model (:func:`cut_model`) or between the
  two halves of your own model given as ``(features, head)``; :func:`upsample_map` brings a
  layer's map to the input's size.

Whether a map is faithful to the model is measured in :mod:`jaxlearn.faithfulness` (deletion and
insertion curves, infidelity, sensitivity-max).

Gradients of a whole batch are taken in one backward pass, as the gradient of
``sum_i f_{t_i}(x_i)`` with respect to ``x``. This is the per-example gradient whenever examples do
not interact in test mode (true of every layer in :mod:`jaxlearn.nn`; a model that mixes examples,
e.g. batch statistics at test time, would need one call per example).

:func:`sanity_check` randomises the model's layers (cascading from the top, and one at a time) and
returns the Spearman rank correlation (:func:`spearman_correlation`) between each method's maps for
the trained and the randomised model. A method whose maps barely change fails the check: it
explains the input, not the model.

Example::

    >>> model = jl.nn.serial(jl.nn.flatten(), jl.nn.mlp((32,), 10, activation="tanh"))
    >>> _, params = model.init(jax.random.key(0), (8, 8, 1))
    >>> x = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1))
    >>> maps = integrated_gradients(model.apply, params, x, n_steps=64)
    >>> maps.shape
    (4, 8, 8, 1)
    >>> gap = completeness_gap(model.apply, params, x, maps)     # [4]; O(1 / n_steps^2) for tanh
    >>> bool(jnp.all(jnp.abs(gap) < 1e-3))
    True
    >>> table = sanity_check(model.apply, params, x, key=jax.random.key(2), methods=("gradient",))
    >>> [(row["mode"], row["layer"]) for row in table]
    [('cascading', ...), ('cascading', ...), ('independent', ...), ('independent', ...)]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks, _keys
from jaxlearn._types import Array, Params
from jaxlearn.apply import as_apply

IG_RULES = ("midpoint", "trapezoid")
SANITY_METHODS = ("gradient", "gradient_x_input", "integrated_gradients", "smoothgrad")
SANITY_MODES = ("cascading", "independent")

# Hyperparameters of the named methods inside :func:`sanity_check` (the paper used comparable
# settings; pass your own functions through ``methods`` to change them).
_SANITY_IG_STEPS = 32
_SANITY_SMOOTHGRAD_SAMPLES = 16
_SANITY_SMOOTHGRAD_NOISE = 0.15


# ------------------------------------------------------------------------------- boundary

def _check_input(apply: Callable, params: Params, x: Any) -> tuple[Array, int]:
    """``x`` float ``[batch, ...]``; ``apply`` maps it to logits ``[batch, n_classes]``."""
    x = _checks.check_batch("x", x)
    return jnp.asarray(x), _checks.check_classifier(apply, params, x)


def _check_target(target: Any, batch: int, n_classes: int) -> Array | None:
    """None, an int class for every example, or integer labels ``[batch]``."""
    if target is None:
        return None
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= target < n_classes:
            raise ValueError(f"`target` is class {target} but the model has {n_classes} classes; "
                             f"use a class in [0, {n_classes})")
        return jnp.full((batch,), int(target), jnp.int32)
    target = _checks.as_array("target", target)
    _checks.check_labels("target", target, n_classes)
    if target.shape != (batch,):
        raise ValueError(f"`target` must be an int or labels of shape [batch] = ({batch},), got "
                         f"shape {tuple(target.shape)}")
    return jnp.asarray(target)


def _prepare(apply_fn: Callable, params: Params, x: Any, target: Any):
    """Validates the common arguments; returns ``(apply, x, target [batch])``."""
    apply = as_apply(apply_fn)
    x, n_classes = _check_input(apply, params, x)
    target = _check_target(target, x.shape[0], n_classes)
    if target is None:
        target = _predicted_class(apply, params, x)
    return apply, x, target


@functools.partial(jax.jit, static_argnums=0)
def _predicted_class(apply, params, x):
    return jnp.argmax(apply(params, x, key=None, train=False), axis=-1)


def _check_baseline(baseline: Any, x: Array) -> Array:
    """None (zeros), ``[*example_shape]`` (shared by all examples) or ``x.shape``."""
    if baseline is None:
        return jnp.zeros_like(x)
    baseline = _checks.as_array("baseline", baseline)
    _checks.check_float("baseline", baseline)
    _checks.check_finite("baseline", baseline)
    if tuple(baseline.shape) == tuple(x.shape):
        return jnp.asarray(baseline, x.dtype)
    if tuple(baseline.shape) == tuple(x.shape[1:]):
        return jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    raise ValueError(f"`baseline` must have the shape of `x` {tuple(x.shape)} or of one example "
                     f"{tuple(x.shape[1:])}, got {tuple(baseline.shape)}")


def _check_chunk_size(chunk_size: Any) -> None:
    _checks.check_positive("chunk_size", chunk_size, integer=True)


# ------------------------------------------------------------------------------ gradients

def _target_logit(apply, params, x, target) -> Array:
    """``f_{t_i}(x_i)`` for every example: ``[batch]``."""
    logits = apply(params, x, key=None, train=False)
    return jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0]


def _gradient(apply, params, x, target) -> Array:
    """Per-example ``d f_t / d x`` as the gradient of the batch sum (examples independent)."""
    return jax.grad(lambda xs: jnp.sum(_target_logit(apply, params, xs, target)))(x)


def saliency(apply_fn: Callable, params: Params, x: Array, *, target: Any = None) -> Array:
    """Vanilla gradient saliency: ``S(x) = d f_t(x) / d x`` (Simonyan et al. 2014).

    Args:
      apply_fn: ``apply(params, x, ...)`` returning logits ``[batch, n_classes]``.
      params: the model's params pytree.
      x: float inputs ``[batch, ...]``.
      target: class whose logit is explained: an int (same class for all), labels ``[batch]``,
        or None for the class the model predicts for each example.

    Returns:
      The signed gradient, shape of ``x``. Take ``jnp.abs`` (or the max over channels of it) to
      display it as a heat map.
    """
    apply, x, target = _prepare(apply_fn, params, x, target)
    return _saliency(apply, params, x, target)


@functools.partial(jax.jit, static_argnums=0)
def _saliency(apply, params, x, target):
    return _gradient(apply, params, x, target)


def gradient_x_input(apply_fn: Callable, params: Params, x: Array, *,
                     target: Any = None) -> Array:
    """Gradient times input: ``A(x) = x * d f_t(x) / d x`` elementwise (Shrikumar et al. 2016).

    For a linear model ``f_t(x) = w_t . x + b_t`` it is the contribution ``w_t x`` of every
    feature, summing to ``f_t(x) - f_t(0)``. Arguments as in :func:`saliency`; returns the shape of
    ``x``.
    """
    apply, x, target = _prepare(apply_fn, params, x, target)
    return _gradient_x_input(apply, params, x, target)


@functools.partial(jax.jit, static_argnums=0)
def _gradient_x_input(apply, params, x, target):
    return x * _gradient(apply, params, x, target)


# -------------------------------------------------------------------- integrated gradients

def _path_nodes(n_steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alpha_k`` in [0, 1] and weights ``w_k`` (summing to 1) of the Riemann rule."""
    if rule == "midpoint":
        return (np.arange(n_steps) + 0.5) / n_steps, np.full(n_steps, 1.0 / n_steps)
    weights = np.full(n_steps + 1, 1.0 / n_steps)
    weights[[0, -1]] = 0.5 / n_steps
    return np.arange(n_steps + 1) / n_steps, weights


def _chunked(values: np.ndarray, chunk_size: int) -> np.ndarray:
    """Zero-pads ``values [m]`` to a multiple of ``chunk_size``; returns ``[n_chunks, chunk]``."""
    n_chunks = -(-values.shape[0] // chunk_size)
    padded = np.zeros(n_chunks * chunk_size, np.float32)
    padded[: values.shape[0]] = values
    return padded.reshape(n_chunks, chunk_size)


def integrated_gradients(apply_fn: Callable, params: Params, x: Array, *, target: Any = None,
                         baseline: Array | None = None, n_steps: int = 64,
                         rule: str = "midpoint", chunk_size: int = 16) -> Array:
    """Integrated gradients (Sundararajan et al. 2017) along the straight path from a baseline.

    .. math::

      IG_j(x) = (x_j - x'_j) \\int_0^1 \\partial_j f_t(x' + a (x - x')) da
              \\approx (x_j - x'_j) \\sum_k w_k \\partial_j f_t(x' + a_k (x - x'))

    with a Riemann rule of ``n_steps`` intervals:

    * ``"midpoint"``: ``a_k = (k + 1/2) / n_steps``, ``w_k = 1 / n_steps``, ``k = 0..n_steps-1``
      (``n_steps`` gradients);
    * ``"trapezoid"``: ``a_k = k / n_steps``, ``k = 0..n_steps``, ``w_k = 1 / n_steps`` except
      ``1 / (2 n_steps)`` at both ends (``n_steps + 1`` gradients).

    Completeness: the exact integral sums to ``f_t(x) - f_t(x')`` over all features; the sum
    computed here misses it by the quadrature error, ``O(1 / n_steps^2)`` for a smooth model (tanh,
    GELU) and ``O(1 / n_steps)`` for a piecewise-linear one (ReLU kinks on the path). Measure it
    with :func:`completeness_gap`.

    Memory stays bounded: the path nodes are processed ``chunk_size`` at a time (a ``lax.scan``
    over chunks, the nodes of a chunk vmapped), so at most ``chunk_size * batch`` inputs are held
    with their activations; padding nodes of the last chunk get weight 0.

    Args:
      apply_fn: ``apply(params, x, ...)`` returning logits ``[batch, n_classes]``.
      params: the model's params pytree.
      x: float inputs ``[batch, ...]``.
      target: int, labels ``[batch]`` or None (the predicted class), as in :func:`saliency`.
      baseline: ``x'``: None for zeros, one example ``[...]`` shared by all, or ``[batch, ...]``.
      n_steps: number of intervals of the rule, ``>= 1``.
      rule: ``"midpoint"`` or ``"trapezoid"``.
      chunk_size: path nodes evaluated at once, ``>= 1``.

    Returns:
      Attributions, shape of ``x``.
    """
    apply, x, target = _prepare(apply_fn, params, x, target)
    baseline = _check_baseline(baseline, x)
    _checks.check_positive("n_steps", n_steps, integer=True)
    _checks.check_choice("rule", rule, IG_RULES)
    _check_chunk_size(chunk_size)
    return _integrated_gradients(apply, params, x, baseline, target, n_steps, rule, chunk_size)


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 7))
def _integrated_gradients(apply, params, x, baseline, target, n_steps, rule, chunk_size):
    alphas, weights = _path_nodes(n_steps, rule)
    chunk_size = min(chunk_size, alphas.shape[0])
    alphas, weights = _chunked(alphas, chunk_size), _chunked(weights, chunk_size)
    delta = x - baseline
    per_node = jax.vmap(lambda a: _gradient(apply, params, baseline + a * delta, target))

    def add_chunk(total, chunk):
        a, w = chunk
        grads = per_node(a.astype(x.dtype))
        return total + jnp.tensordot(w.astype(x.dtype), grads, axes=1), None

    total, _ = jax.lax.scan(add_chunk, jnp.zeros_like(x), (jnp.asarray(alphas),
                                                            jnp.asarray(weights)))
    return delta * total


def completeness_gap(apply_fn: Callable, params: Params, x: Array, attributions: Array, *,
                     target: Any = None, baseline: Array | None = None) -> Array:
    """``sum_j A_j(x) - (f_t(x) - f_t(x'))`` per example: 0 for a complete attribution.

    Pass the same ``target`` and ``baseline`` as to :func:`integrated_gradients` (the defaults
    agree: the predicted class and zeros).

    Returns:
      ``[batch]`` signed gaps in logit units.
    """
    apply, x, target = _prepare(apply_fn, params, x, target)
    attributions = _checks.as_array("attributions", attributions)
    if tuple(attributions.shape) != tuple(x.shape):
        raise ValueError(f"`attributions` must have the shape of `x` {tuple(x.shape)}, got "
                         f"{tuple(attributions.shape)}")
    baseline = _check_baseline(baseline, x)
    return _completeness_gap(apply, params, x, jnp.asarray(attributions), baseline, target)


@functools.partial(jax.jit, static_argnums=0)
def _completeness_gap(apply, params, x, attributions, baseline, target):
    change = _target_logit(apply, params, x, target) - _target_logit(apply, params, baseline,
                                                                     target)
    return jnp.sum(attributions.reshape(x.shape[0], -1), axis=1) - change


# ------------------------------------------------------------------------------ SmoothGrad

@_keys.key_keyword(0, "smoothgrad(apply_fn, params, x, key=key, ...)")
def smoothgrad(apply_fn: Callable, params: Params, x: Array, *, key: Array, target: Any = None,
               n_samples: int = 50, noise_level: float = 0.15, chunk_size: int = 16) -> Array:
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies of the input,

    .. math:: SG(x) = (1/n) \\sum_{s=1}^{n} \\partial f_t(x + \\epsilon_s) / \\partial x,
              \\quad \\epsilon_s \\sim N(0, \\sigma^2 I),
              \\quad \\sigma = \\text{noise\\_level} (\\max_j x_j - \\min_j x_j),

    the range taken per example over all its features (the paper's "noise level" sigma / (x_max -
    x_min), 10-20% recommended). The target class is fixed from the clean input, not re-predicted
    on each noisy copy. Sample ``s`` uses the key ``fold_in(key, s)``, so the result does not depend
    on ``chunk_size`` (up to float summation order); samples are processed ``chunk_size`` at a time.

    Args:
      key: a ``jax.random`` key.
      apply_fn, params, x, target: as in :func:`saliency`.
      n_samples: noisy copies, ``>= 1``.
      noise_level: sigma as a fraction of each example's value range, ``>= 0`` (0 gives the
        plain gradient).
      chunk_size: noisy copies evaluated at once, ``>= 1``.

    Returns:
      The averaged gradient, shape of ``x``.
    """
    _checks.check_key("key", key)
    apply, x, target = _prepare(apply_fn, params, x, target)
    _checks.check_positive("n_samples", n_samples, integer=True)
    _checks.check_nonnegative("noise_level", noise_level)
    _check_chunk_size(chunk_size)
    return _smoothgrad(apply, params, x, target, key, n_samples, noise_level, chunk_size)


def _noisy_gradient_fn(apply, params, x, target, key, noise_level):
    """``i -> the gradient at the i-th noisy copy of x``: noise ``N(0, sigma^2)`` with ``sigma =
    noise_level * (max - min)`` of each example, drawn with ``fold_in(key, i)`` (SmoothGrad's
    noise, shared by :func:`smoothgrad`, :func:`smoothgrad_squared` and :func:`vargrad`)."""
    axes = tuple(range(1, x.ndim))
    span = jnp.max(x, axis=axes, keepdims=True) - jnp.min(x, axis=axes, keepdims=True)
    sigma = jnp.asarray(noise_level, x.dtype) * span

    def noisy_gradient(i):
        noise = jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype)
        return _gradient(apply, params, x + sigma * noise, target)

    return noisy_gradient


@functools.partial(jax.jit, static_argnums=(0, 5, 7))
def _smoothgrad(apply, params, x, target, key, n_samples, noise_level, chunk_size):
    chunk_size = min(chunk_size, n_samples)
    weights = jnp.asarray(_chunked(np.full(n_samples, 1.0 / n_samples), chunk_size), x.dtype)
    indices = jnp.arange(weights.size).reshape(weights.shape)
    noisy_gradient = _noisy_gradient_fn(apply, params, x, target, key, noise_level)

    def add_chunk(total, chunk):
        idx, w = chunk
        return total + jnp.tensordot(w, jax.vmap(noisy_gradient)(idx), axes=1), None

    total, _ = jax.lax.scan(add_chunk, jnp.zeros_like(x), (indices, weights))
    return total


# ------------------------------------------------------------------------------- occlusion

def _window_corners(spatial: tuple[int, ...], window: tuple[int, ...],
                    stride: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Window start positions ``[n_windows, n_spatial]`` (row-major) and, per position, how many
    windows cover it ``[*spatial]``. Windows form a grid, so coverage is a product of 1-D counts.
    """
    starts = [np.arange(0, size - w + 1, s) for size, w, s in zip(spatial, window, stride)]
    grids = np.meshgrid(*starts, indexing="ij")
    corners = np.stack([g.reshape(-1) for g in grids], axis=1)
    counts = np.ones(spatial)
    for axis, (size, w) in enumerate(zip(spatial, window)):
        covered = np.zeros(size)
        for start in starts[axis]:
            covered[start:start + w] += 1
        counts = counts * covered.reshape([-1 if i == axis else 1 for i in range(len(spatial))])
    return corners, counts


def occlusion(apply_fn: Callable, params: Params, x: Array, *, window: int | Sequence[int],
              stride: int | Sequence[int] | None = None, baseline: float = 0.0,
              target: Any = None, chunk_size: int = 64) -> Array:
    """Occlusion sensitivity (Zeiler & Fergus 2014): how much ``f_t`` drops when a window of the
    input is replaced by ``baseline``.

    A window of size ``window`` slides with step ``stride`` over the spatial axes (all channels
    covered at once); window ``W`` gives ``d_W = f_t(x) - f_t(x with W set to baseline)``. The
    map at a position is the mean of ``d_W`` over the windows that cover it (0 where none does,
    when the stride skips positions), as Captum's ``Occlusion``; it is repeated over channels.
    The windows are vmapped, ``chunk_size`` at a time (a ``lax.scan`` over chunks that builds
    each window's mask on the fly), so memory holds ``chunk_size`` occluded batches, not all.

    The number of entries of ``window`` says which layout ``x`` has:

    * an int or a 1-tuple: 1-D signals ``[batch, length]`` or ``[batch, length, channels]``;
    * a 2-tuple: 2-D images ``[batch, height, width]`` or ``[batch, height, width, channels]``.

    Args:
      apply_fn, params, x, target: as in :func:`saliency`.
      window: window size per spatial axis, each in ``[1, size]``.
      stride: step per spatial axis (default: the window size, non-overlapping), each ``>= 1``.
      baseline: the value written into the window.
      chunk_size: windows evaluated at once, ``>= 1``.

    Returns:
      The occlusion map, shape of ``x`` (positive where hiding the input lowers the logit).
    """
    apply, x, target = _prepare(apply_fn, params, x, target)
    window = _as_window("window", window)
    n_spatial = len(window)
    if n_spatial not in (1, 2):
        raise ValueError(f"`window` must have 1 entry (1-D signals) or 2 (2-D images), got "
                         f"{len(window)}")
    if x.ndim not in (n_spatial + 1, n_spatial + 2):
        layout = ("[batch, length] or [batch, length, channels]" if n_spatial == 1
                  else "[batch, height, width] or [batch, height, width, channels]")
        raise ValueError(f"a {n_spatial}-D `window` needs `x` of shape {layout}, got shape "
                         f"{tuple(x.shape)}")
    spatial = tuple(x.shape[1:1 + n_spatial])
    stride = window if stride is None else _as_window("stride", stride)
    if len(stride) != n_spatial:
        raise ValueError(f"`stride` must have {n_spatial} entries like `window`, got {stride}")
    for w, size in zip(window, spatial):
        if w > size:
            raise ValueError(f"`window` {window} does not fit in the spatial shape {spatial}")
    _checks.check_number("baseline", baseline)
    _check_chunk_size(chunk_size)
    return _occlusion(apply, params, x, target, window, stride, float(baseline), chunk_size)


def _as_window(name: str, value: Any) -> tuple[int, ...]:
    values = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    for i, v in enumerate(values):
        _checks.check_positive(f"{name}[{i}]", v, integer=True)
    return tuple(int(v) for v in values)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7))
def _occlusion(apply, params, x, target, window, stride, baseline, chunk_size):
    n_spatial = len(window)
    spatial = x.shape[1:1 + n_spatial]
    corners, counts = _window_corners(spatial, window, stride)
    chunk_size = min(chunk_size, corners.shape[0])
    n_chunks = -(-corners.shape[0] // chunk_size)
    valid = _chunked(np.ones(corners.shape[0]), chunk_size)            # 0 marks padding
    corners = np.concatenate([corners, np.zeros((valid.size - corners.shape[0], n_spatial),
                                                corners.dtype)]).reshape(n_chunks, chunk_size, -1)
    trailing = (1,) * (x.ndim - 1 - n_spatial)
    reference = _target_logit(apply, params, x, target)
    positions = [jnp.arange(size).reshape([-1 if i == a else 1 for i in range(n_spatial)])
                 for a, size in enumerate(spatial)]

    def window_mask(corner):                                           # [*spatial] bool
        inside = [(p >= corner[a]) & (p < corner[a] + window[a]) for a, p in enumerate(positions)]
        return functools.reduce(jnp.logical_and, inside)

    def drop(mask):
        hidden = jnp.where(mask.reshape(1, *spatial, *trailing), jnp.asarray(baseline, x.dtype), x)
        return reference - _target_logit(apply, params, hidden, target)

    def add_chunk(total, chunk):
        corner, keep = chunk
        masks = jax.vmap(window_mask)(corner)                          # [chunk, *spatial]
        drops = jax.vmap(drop)(masks) * keep[:, None].astype(x.dtype)  # [chunk, batch]
        return total + jnp.tensordot(drops.T, masks.astype(x.dtype), axes=1), None

    summed, _ = jax.lax.scan(add_chunk, jnp.zeros((x.shape[0], *spatial), x.dtype),
                             (jnp.asarray(corners), jnp.asarray(valid)))
    mean = summed / jnp.asarray(np.maximum(counts, 1), x.dtype)[None]   # counts: [*spatial]
    return jnp.broadcast_to(mean.reshape(x.shape[0], *spatial, *trailing), x.shape)


# ------------------------------------------------------------------------- rank correlation

def _average_ranks(values: Array) -> Array:
    """0-based ranks of ``values [n]``; ties share the mean of their positions.

    Without ties this is ``argsort(argsort(values))``; with ties it equals scipy's
    ``rankdata(method="average") - 1``: a value's tied block occupies sorted positions
    ``left .. right - 1`` (``searchsorted`` on the sorted values), whose mean is the rank.
    """
    ordered = jnp.sort(values)
    left = jnp.searchsorted(ordered, values, side="left")
    right = jnp.searchsorted(ordered, values, side="right")
    return (left + right - 1).astype(jnp.result_type(float)) / 2


def spearman_correlation(a: Array, b: Array) -> Array:
    """Spearman rank correlation between paired maps, one value per example.

    ``rho = pearson(rank(a_i), rank(b_i))`` over the flattened features of example ``i``, with the
    ranks of :func:`_average_ranks` (ties get their average rank, as ``scipy.stats.spearmanr``).
    A map that is constant (all ranks tied) has no defined correlation: NaN, as scipy.

    Args:
      a, b: float ``[batch, ...]`` of the same shape.

    Returns:
      ``[batch]`` correlations in ``[-1, 1]``.
    """
    a, b = _checks.as_array("a", a), _checks.as_array("b", b)
    for name, v in (("a", a), ("b", b)):
        _checks.check_float(name, v)
        if v.ndim < 2:
            raise ValueError(f"`{name}` must be maps [batch, ...] with at least 2 dimensions, got "
                             f"shape {tuple(v.shape)}")
        _checks.check_nonempty(name, v)
        _checks.check_finite(name, v)
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"`a` and `b` must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return _spearman(jnp.asarray(a), jnp.asarray(b))


@jax.jit
def _spearman(a: Array, b: Array) -> Array:
    ranks = jax.vmap(_average_ranks)
    ra, rb = ranks(a.reshape(a.shape[0], -1)), ranks(b.reshape(b.shape[0], -1))
    ra = ra - jnp.mean(ra, axis=1, keepdims=True)
    rb = rb - jnp.mean(rb, axis=1, keepdims=True)
    return jnp.sum(ra * rb, axis=1) / jnp.sqrt(jnp.sum(ra ** 2, axis=1) * jnp.sum(rb ** 2, axis=1))


# -------------------------------------------------------------------------- sanity checks

def param_layers(params: Params) -> list[str]:
    """Names of the layers of a params pytree, in flattening order (input to output for
    :func:`jaxlearn.nn.serial` models).

    A layer is a group of leaves with the same parent node, e.g. ``{"w": ..., "b": ...}`` of a
    dense layer; its name is ``jax.tree_util.keystr`` of the parent's path (``"[0][1]"`` for
    ``params[0][1]``, ``"['Dense_0']"`` for a flax module; ``"<root>"`` for leaves at the top
    level, e.g. ``{"w": ..., "b": ...}`` itself). Parameter-free layers do not appear.
    """
    names: list[str] = []
    for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = _layer_name(path)
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("`params` has no array leaves: nothing to randomise")
    return names


def _layer_name(path: tuple) -> str:
    """The name of the layer holding the leaf at ``path``: its parent's path."""
    return jax.tree_util.keystr(path[:-1]) or "<root>"


def _leaf_layers(params: Params, layers: Sequence[str]) -> list[int]:
    """For every leaf, the index in ``layers`` of its layer, or -1 if it is not listed."""
    names = [_layer_name(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    return [layers.index(name) if name in layers else -1 for name in names]


def _random_leaves(key: Array, params: Params) -> list[Array]:
    """One draw ``N(0, std(leaf)^2)`` per leaf, leaf ``i`` from ``fold_in(key, i)``."""
    return [jax.random.normal(jax.random.fold_in(key, i), leaf.shape, leaf.dtype) * jnp.std(leaf)
            for i, leaf in enumerate(jax.tree.leaves(params))]


def _check_layers(params: Params, layers: Any) -> list[str]:
    available = param_layers(params)
    if layers is None:
        return available
    if isinstance(layers, str) or not isinstance(layers, Sequence) or not layers:
        raise TypeError(f"`layers` must be a non-empty sequence of layer names from "
                        f"param_layers(params), got {layers!r}")
    for name in layers:
        if name not in available:
            raise ValueError(f"`layers` names {name!r}, which is not a layer of `params`; the "
                             f"layers are {available}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"`layers` lists a layer twice: {list(layers)}")
    return list(layers)


def randomize_layers(key: Array, params: Params, layers: Sequence[str]) -> Params:
    """``params`` with every leaf of the named ``layers`` replaced by a random draw.

    Leaf ``i`` (in flattening order) becomes ``std(leaf) * N(0, I)`` drawn with
    ``fold_in(key, i)``: same shape and dtype, same overall scale, mean 0, all learnt structure
    gone (a leaf with zero spread, such as untrained zero biases, becomes zeros). The draw of a
    leaf does not depend on which other layers are randomised, so cascading and independent
    randomisation use the same random weights for a layer.

    Args:
      key: a ``jax.random`` key.
      params: the params pytree.
      layers: layer names from :func:`param_layers`.
    """
    _checks.check_key("key", key)
    layers = _check_layers(params, layers)
    return _randomize_layers(key, params, tuple(_leaf_layers(params, layers)))


@functools.partial(jax.jit, static_argnums=2)
def _randomize_layers(key, params, owner):
    leaves, treedef = jax.tree.flatten(params)
    drawn = _random_leaves(key, params)
    return jax.tree.unflatten(
        treedef, [d if o >= 0 else leaf for leaf, d, o in zip(leaves, drawn, owner)])


@functools.lru_cache(maxsize=256)
def _named_method(name: str, apply: Callable) -> Callable:
    """``fn(params, x, target, key) -> maps`` for a name of :data:`SANITY_METHODS`."""
    if name == "gradient":
        return lambda p, x, t, k: _gradient(apply, p, x, t)
    if name == "gradient_x_input":
        return lambda p, x, t, k: x * _gradient(apply, p, x, t)
    if name == "integrated_gradients":
        return lambda p, x, t, k: _integrated_gradients(apply, p, x, jnp.zeros_like(x), t,
                                                        _SANITY_IG_STEPS, "midpoint", 16)
    return lambda p, x, t, k: _smoothgrad(apply, p, x, t, k, _SANITY_SMOOTHGRAD_SAMPLES,
                                          _SANITY_SMOOTHGRAD_NOISE, 16)


def _check_methods(methods: Any, apply: Callable) -> dict[str, Callable]:
    if isinstance(methods, str):
        raise TypeError(f"`methods` must be a sequence of names or a mapping, got the string "
                        f"{methods!r}; write ({methods!r},)")
    if isinstance(methods, Mapping):
        for name, fn in methods.items():
            if not callable(fn):
                raise TypeError(f"`methods[{name!r}]` must be callable(params, x, target, key) -> "
                                f"maps, got {type(fn).__name__}")
        result = dict(methods)
    else:
        result = {}
        for name in methods:
            _checks.check_choice("methods", name, SANITY_METHODS)
            result[name] = _named_method(name, apply)
    if not result:
        raise ValueError("`methods` is empty; name at least one method")
    return result


@_keys.key_keyword(3, "sanity_check(apply_fn, params, x, key=key, ...)")
def sanity_check(apply_fn: Callable, params: Params, x: Array, *, key: Array,
                 methods: Sequence[str] | Mapping[str, Callable] = SANITY_METHODS,
                 layers: Sequence[str] | None = None, target: Any = None,
                 absolute: bool = True) -> list[dict[str, Any]]:
    """Model-parameter randomisation test of Adebayo et al. (2018), "Sanity checks for saliency
    maps": a map that explains the model must change when the model's weights are destroyed.

    With layers ``L_1 .. L_n`` (input to output), two families of randomised models are built
    (:func:`randomize_layers`: every leaf replaced by Gaussian draws of the same shape and std):

    * ``"cascading"``: from the top down, ``L_n``, then ``L_n, L_{n-1}``, ..., then all layers; the
      row of layer ``L_k`` randomises ``L_k .. L_n``;
    * ``"independent"``: one layer at a time; the row of ``L_k`` randomises ``L_k`` only.

    For each randomised model and method, the maps of ``x`` are compared with the trained model's
    by :func:`spearman_correlation`, on absolute values by default (``absolute=True``, the paper's
    main variant: the sign of a gradient is often arbitrary) or on the signed maps. The target
    class stays the one of the trained model (``target`` or its prediction), and stochastic
    methods use the same key for both models, so only the weights differ. All randomised models
    and methods are evaluated in one compiled program (a ``lax.map`` over the models).

    Args:
      apply_fn, params, x: as in :func:`saliency`.
      key: ``jax.random`` key; ``fold_in(key, 0)`` draws the random weights, ``fold_in(key, 1)``
        drives SmoothGrad's noise.
      methods: names from :data:`SANITY_METHODS` (integrated gradients with 32 midpoint steps,
        SmoothGrad with 16 samples at noise level 0.15), or a mapping ``name -> fn(params, x,
        target, key) -> maps`` for other methods or settings (traceable, jax arrays in and out).
      layers: layer names from :func:`param_layers`, input to output (default: all of them).
      target: int, labels ``[batch]`` or None (the trained model's prediction).
      absolute: correlate ``|maps|`` (True) or the signed maps.

    Returns:
      A table as a list of rows, one per (mode, layer, method), in the order cascading then
      independent, layers from the top down, methods as given. Each row is a dict with
      ``"mode"``, ``"layer"``, ``"randomized"`` (the layers randomised), ``"method"``,
      ``"spearman"`` (mean over the batch) and ``"spearman_std"`` (its standard deviation).
    """
    _checks.check_key("key", key)
    apply, x, target = _prepare(apply_fn, params, x, target)
    layers = _check_layers(params, layers)
    method_fns = _check_methods(methods, apply)
    _checks.check_bool("absolute", absolute)
    n = len(layers)
    top_down = list(reversed(range(n)))
    configs = ([("cascading", k, layers[k:]) for k in top_down]
               + [("independent", k, [layers[k]]) for k in top_down])
    chosen = np.zeros((len(configs), n), bool)
    for c, (_, _, randomized) in enumerate(configs):
        chosen[c, [layers.index(name) for name in randomized]] = True
    owner = _leaf_layers(params, layers)
    k_weights, k_maps = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    scores = np.asarray(_sanity_scores(tuple(method_fns.values()), params, x, target, k_weights,
                                       k_maps, jnp.asarray(chosen), tuple(owner), absolute))
    rows = []
    for c, (mode, k, randomized) in enumerate(configs):
        for m, name in enumerate(method_fns):
            rho = scores[c, m]
            rows.append({"mode": mode, "layer": layers[k], "randomized": list(randomized),
                         "method": name, "spearman": float(np.mean(rho)),
                         "spearman_std": float(np.std(rho))})
    return rows


@functools.partial(jax.jit, static_argnums=(0, 7, 8))
def _sanity_scores(methods, params, x, target, k_weights, k_maps, chosen, owner, absolute):
    """``[n_configs, n_methods, batch]`` Spearman correlations, trained vs randomised maps."""
    leaves, treedef = jax.tree.flatten(params)
    drawn = _random_leaves(k_weights, params)

    def all_maps(p):
        maps = [method(p, x, target, k_maps) for method in methods]
        return [jnp.abs(m) if absolute else m for m in maps]

    reference = all_maps(params)

    def score(row):
        mixed = [jnp.where(row[o], d, leaf) if o >= 0 else leaf
                 for leaf, d, o in zip(leaves, drawn, owner)]
        maps = all_maps(jax.tree.unflatten(treedef, mixed))
        return jnp.stack([_spearman(r, m) for r, m in zip(reference, maps)])

    return jax.lax.map(score, chosen)


# ------------------------------------------------------------------ SmoothGrad^2 and VarGrad

def _check_noise_arguments(key: Any, n_samples: Any, noise_level: Any, chunk_size: Any) -> None:
    _checks.check_key("key", key)
    _checks.check_positive("n_samples", n_samples, integer=True)
    _checks.check_nonnegative("noise_level", noise_level)
    _check_chunk_size(chunk_size)


def smoothgrad_squared(apply_fn: Callable, params: Params, x: Array, *, key: Array,
                       target: Any = None, n_samples: int = 50, noise_level: float = 0.15,
                       chunk_size: int = 16) -> Array:
    """SmoothGrad-squared (Hooker et al. 2019, "A benchmark for interpretability methods in deep
    neural networks"): the mean of the *squared* gradient over noisy copies of the input,

    .. math:: SG^2(x) = (1/n) \\sum_{s=1}^{n} (\\partial f_t(x + \\epsilon_s) / \\partial x)^2,

    with exactly the noise of :func:`smoothgrad` (same ``sigma``; sample ``s`` drawn with
    ``fold_in(key, s)``), so ``smoothgrad(..., key=key)``, ``smoothgrad_squared(..., key=key)`` and
    :func:`vargrad` with the same key see the same noisy copies and
    ``smoothgrad_squared = vargrad + smoothgrad ** 2``. Squaring removes the gradient's sign: the
    map says how strongly, not in which direction, a feature moves the logit.

    Args:
      apply_fn, params, x, target: as in :func:`saliency`.
      key: a ``jax.random`` key (keyword).
      n_samples, noise_level, chunk_size: as in :func:`smoothgrad`.

    Returns:
      Non-negative map, shape of ``x``.
    """
    _check_noise_arguments(key, n_samples, noise_level, chunk_size)
    apply, x, target = _prepare(apply_fn, params, x, target)
    return _noisy_gradient_moments(apply, params, x, target, key, n_samples, noise_level,
                                   chunk_size)[0]


def vargrad(apply_fn: Callable, params: Params, x: Array, *, key: Array, target: Any = None,
            n_samples: int = 50, noise_level: float = 0.15, chunk_size: int = 16) -> Array:
    """VarGrad (Adebayo et al. 2018, "Local explanation methods for deep neural networks lack
    sensitivity to parameter values"): the variance of the gradient over noisy copies of the input,

    .. math:: VG(x) = (1/n) \\sum_{s=1}^{n} (g_s - \\bar g)^2, \\quad
              g_s = \\partial f_t(x + \\epsilon_s) / \\partial x, \\quad
              \\bar g = (1/n) \\sum_s g_s = SG(x),

    the population variance (divisor ``n``, as Captum's ``NoiseTunnel(nt_type="vargrad")``), with
    the noise of :func:`smoothgrad` (see :func:`smoothgrad_squared`). The chunks' means and sums
    of squared deviations are merged with Chan et al.'s pairwise update, so the result does not
    suffer the cancellation of ``mean(g^2) - mean(g)^2`` when the spread is small next to the mean.

    Args:
      apply_fn, params, x, target: as in :func:`saliency`.
      key: a ``jax.random`` key (keyword).
      n_samples, noise_level, chunk_size: as in :func:`smoothgrad` (``n_samples = 1`` gives 0).

    Returns:
      Non-negative map, shape of ``x``.
    """
    _check_noise_arguments(key, n_samples, noise_level, chunk_size)
    apply, x, target = _prepare(apply_fn, params, x, target)
    return _noisy_gradient_moments(apply, params, x, target, key, n_samples, noise_level,
                                   chunk_size)[1]


@functools.partial(jax.jit, static_argnums=(0, 5, 7))
def _noisy_gradient_moments(apply, params, x, target, key, n_samples, noise_level, chunk_size):
    """``(mean of g_s^2, population variance of g_s)`` over :func:`smoothgrad`'s noisy copies."""
    chunk_size = min(chunk_size, n_samples)
    valid = jnp.asarray(_chunked(np.ones(n_samples), chunk_size), x.dtype)   # 0 marks padding
    indices = jnp.arange(valid.size).reshape(valid.shape)
    noisy_gradient = _noisy_gradient_fn(apply, params, x, target, key, noise_level)

    def add_chunk(carry, chunk):
        count, mean, m2, squares = carry
        idx, keep = chunk
        grads = jax.vmap(noisy_gradient)(idx)                        # [chunk, *x.shape]
        w = keep.reshape(-1, *(1,) * x.ndim)
        n_b = jnp.sum(keep)
        mean_b = jnp.sum(w * grads, axis=0) / n_b
        m2_b = jnp.sum(w * (grads - mean_b[None]) ** 2, axis=0)
        total = count + n_b
        delta = mean_b - mean                                        # Chan et al. (1979)
        return (total, mean + delta * (n_b / total), m2 + m2_b + delta ** 2 * (count * n_b / total),
                squares + jnp.sum(w * grads ** 2, axis=0)), None

    zeros = jnp.zeros_like(x)
    (_, _, m2, squares), _ = jax.lax.scan(add_chunk, (jnp.zeros((), x.dtype), zeros, zeros, zeros),
                                          (indices, valid))
    return squares / n_samples, m2 / n_samples


# ------------------------------------------------------------------------ layer attributions

def cut_model(layers: Sequence[Any] | Mapping[str, Any], layer: int | str
              ) -> tuple[Callable, Callable]:
    """Cuts the model ``jl.nn.serial(*layers)`` after ``layer``: ``(features, head)``.

    ``features(params, x)`` is the output of ``layer`` (the activations ``A``, computed in test
    mode) and ``head(params, a)`` maps activations to logits, so
    ``head(params, features(params, x)) == jl.nn.serial(*layers).apply(params, x)``. Both take the
    params of the whole model (the tuple with one entry per layer that ``serial(*layers).init``
    returns) and use their own part of it. Cutting after the last layer gives an identity head.

    A ``serial`` model does not expose its layers, so pass the layers you built it from: a
    sequence (``layer`` is an index, negative counting from the end) or a mapping name -> layer
    (``layer`` is a name or an index; the model is ``serial(*mapping.values())``).

    Example::

        >>> layers = {"conv": jl.nn.conv1d(4, 3, padding=1), "relu": jl.nn.relu,
        ...           "flatten": jl.nn.flatten(), "logits": jl.nn.dense(3)}
        >>> _, params = jl.nn.serial(*layers.values()).init(jax.random.key(0), (10, 1))
        >>> features, head = cut_model(layers, "relu")
        >>> features(params, jnp.ones((2, 10, 1))).shape
        (2, 10, 4)
    """
    sequence, names = _as_layer_sequence("layers", layers)
    return _cut(sequence, _layer_index(layer, sequence, names))


def _as_layer_sequence(name: str, layers: Any) -> tuple[tuple, list[str] | None]:
    """``(tuple of Layers, names or None)`` of a sequence or mapping of :class:`nn.Layer`."""
    from jaxlearn.nn import Layer

    if isinstance(layers, Layer):
        raise TypeError(f"`{name}` is a single Layer (a jl.nn.serial model, say), whose layers "
                        "cannot be reached; pass the layers you gave serial, as a sequence "
                        "(layer_0, layer_1, ...) or a mapping name -> layer")
    names, given = None, type(layers).__name__
    if isinstance(layers, Mapping):
        names = [str(k) for k in layers]
        layers = list(layers.values())
    if (isinstance(layers, str) or not isinstance(layers, Sequence) or not layers
            or not all(isinstance(v, Layer) for v in layers)):
        kinds = (sorted({type(v).__name__ for v in layers}) if isinstance(layers, (list, tuple))
                 else [])
        raise TypeError(f"`{name}` must be a non-empty sequence or mapping of jl.nn Layers, got "
                        f"{given}" + (f" holding {kinds}" if kinds else ""))
    return tuple(layers), names


def _layer_index(layer: Any, layers: tuple, names: list[str] | None) -> int:
    n = len(layers)
    valid = (f"the layers are {names} (or indices 0..{n - 1}, -{n}..-1)" if names is not None
             else f"the valid indices are 0..{n - 1} (or -{n}..-1)")
    if isinstance(layer, str):
        if names is None or layer not in names:
            raise ValueError(f"`layer` is {layer!r}, which is not a layer of the model; {valid}")
        return names.index(layer)
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        if not -n <= layer < n:
            raise ValueError(f"`layer` is {layer} but the model has {n} layers; {valid}")
        return int(layer) % n
    raise TypeError(f"`layer` must be a layer index (int) or name (str), got {layer!r}; {valid}")


@functools.lru_cache(maxsize=256)
def _cut(layers: tuple, index: int) -> tuple[Callable, Callable]:
    """Cached, so that the compiled programs keyed on ``features`` and ``head`` are reused."""

    def run(params, x, part):
        for p, layer in zip(params[part], layers[part]):
            x = layer.apply(p, x, key=None, train=False)
        return x

    def features(params, x):
        return run(params, x, slice(0, index + 1))

    def head(params, a):
        return run(params, a, slice(index + 1, None))

    return features, head


@functools.lru_cache(maxsize=256)
def _composed(features: Callable, head: Callable) -> Callable:
    def apply(params, x):
        return head(params, features(params, x))

    return apply


def _resolve_layer_model(model: Any, params: Params, layer: Any):
    """``(features, head, apply)`` (all with the ``apply(params, x, *, key, train)`` convention)
    of a sequence or mapping of layers cut at ``layer``, or of a ``(features, head)`` pair."""
    from jaxlearn.nn import Layer

    is_pair = (isinstance(model, (tuple, list)) and len(model) == 2
               and not isinstance(model, Layer) and not any(isinstance(m, Layer) for m in model)
               and all(callable(m) for m in model))
    if is_pair:
        if layer is not None:
            raise ValueError(f"`layer` is {layer!r}, but `model` is a (features, head) pair, cut "
                             "already; leave `layer` as None")
        features, head = model
    else:
        sequence, names = _as_layer_sequence("model", model)
        if layer is None:
            listing = names if names is not None else f"indices 0..{len(sequence) - 1}"
            raise ValueError(f"give `layer=`, the layer whose output to explain: {listing}")
        index = _layer_index(layer, sequence, names)
        if not isinstance(params, (tuple, list)) or len(params) != len(sequence):
            got = (f"{len(params)} entries" if isinstance(params, (tuple, list))
                   else type(params).__name__)
            raise ValueError(f"`params` must be the params of jl.nn.serial(*model): a tuple with "
                             f"one entry per layer ({len(sequence)}), got {got}")
        features, head = _cut(sequence, index)
    features, head = as_apply(features), as_apply(head)
    return features, head, as_apply(_composed(features, head))


def _layer_shape(features: Callable, params: Params, x: Array) -> tuple[int, ...]:
    return tuple(jax.eval_shape(lambda p, xb: features(p, xb, key=None, train=False),
                                params, x).shape)


def grad_cam(model: Any, params: Params, x: Array, *, layer: int | str | None = None,
             target: Any = None) -> Array:
    """Grad-CAM (Selvaraju et al. 2017): the layer's feature maps weighted by the spatial mean of
    the target logit's gradient, rectified and upsampled to the input.

    With ``A`` the output of ``layer``, ``[batch, *spatial, K]`` (channels last, ``Z`` positions):

    .. math::

      \\alpha_k = \\frac{1}{Z} \\sum_{p} \\frac{\\partial f_t}{\\partial A_{p,k}}, \\qquad
      L = \\mathrm{ReLU}\\Big(\\sum_k \\alpha_k A_{\\cdot,k}\\Big)
      \\quad [\\text{batch}, *\\text{spatial}],

    then :func:`upsample_map` takes ``L`` to the input's spatial size and repeats it over the
    input's trailing axes. If the head is global average pooling followed by a dense layer
    ``W``, ``alpha_k = W_{k,t} / Z`` and this is CAM (Zhou et al. 2016) up to ``1/Z``.

    Layouts: ``A`` is ``[batch, length, K]`` (1-D) or ``[batch, height, width, K]`` (2-D); ``x``
    is then ``[batch, length(, channels...)]`` or ``[batch, height, width(, channels...)]``: its
    first 1 or 2 axes after the batch are the spatial ones, as in :func:`occlusion`. So an
    MNIST-1D CNN that reshapes ``[n, 40]`` to ``[n, 40, 1]`` inside gets maps ``[n, 40]``.

    Args:
      model: the layers of a ``jl.nn.serial`` model (a sequence, or a mapping name -> layer; see
        :func:`cut_model`), cut at ``layer``; or your own model as a pair ``(features, head)`` of
        apply functions, ``features(params, x) -> A`` and ``head(params, A) -> logits``, both
        given the whole ``params`` (then ``layer`` stays None).
      params: the params of the model (for layers: of ``serial(*layers)``).
      x: float inputs ``[batch, ...]``.
      layer: index or name of the layer whose output is ``A`` (usually the last convolution's
        activation).
      target: int, labels ``[batch]`` or None (the predicted class), as in :func:`saliency`.

    Returns:
      Non-negative map, shape of ``x``. The compiled program is keyed on the layers (or on the
      two functions): pass the same objects again to reuse it.
    """
    features, head, apply = _resolve_layer_model(model, params, layer)
    apply, x, target = _prepare(apply, params, x, target)
    shape = _layer_shape(features, params, x)
    if len(shape) not in (3, 4):
        raise ValueError(f"Grad-CAM needs feature maps [batch, length, channels] or [batch, "
                         f"height, width, channels] at `layer`; layer {layer!r} gives shape "
                         f"{shape}")
    n_spatial = len(shape) - 2
    if x.ndim < n_spatial + 1:
        raise ValueError(f"the feature maps have {n_spatial} spatial axes, so `x` needs them too "
                         f"([batch, {'height, width' if n_spatial == 2 else 'length'}, ...]) to "
                         f"upsample onto, got shape {tuple(x.shape)}; reshape `x` outside the "
                         "model")
    return _grad_cam(features, head, params, x, target)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _grad_cam(features, head, params, x, target):
    acts = features(params, x, key=None, train=False)
    grads = jax.grad(lambda a: jnp.sum(_target_logit(head, params, a, target)))(acts)
    weights = jnp.mean(grads, axis=tuple(range(1, acts.ndim - 1)), keepdims=True)
    return _upsample(jax.nn.relu(jnp.sum(weights * acts, axis=-1)), tuple(x.shape))


def layer_integrated_gradients(model: Any, params: Params, x: Array, *,
                               layer: int | str | None = None, target: Any = None,
                               baseline: Array | None = None, n_steps: int = 64,
                               rule: str = "midpoint", chunk_size: int = 16) -> Array:
    """Integrated gradients at a layer: the path integral of the head's gradient along the straight
    line from the baseline's activations to the input's (Captum's ``LayerIntegratedGradients``),

    .. math::

      LIG_j(x) = (h_j - h'_j) \\int_0^1 \\partial_j (f_t \\circ \\mathrm{head})(h' + a (h - h')) da,
      \\qquad h = \\mathrm{features}(x), \\; h' = \\mathrm{features}(x'),

    computed by :func:`integrated_gradients` on the head (same rules, chunks and error). The
    attributions live on the layer's units and are complete there: they sum to
    ``f_t(x) - f_t(x')``, up to the quadrature error (``O(1/n_steps^2)`` for a smooth head,
    ``O(1/n_steps)`` with ReLU kinks on the path). To view a convolutional layer's attributions
    at the input's size, sum the channels and upsample:
    ``upsample_map(jnp.sum(lig, axis=-1), x.shape)``.

    Args:
      model, params, layer: as in :func:`grad_cam` (any layer; no spatial layout needed).
      x: float inputs ``[batch, ...]``.
      target: int, labels ``[batch]`` or None (the predicted class).
      baseline: ``x'`` in input space: None for zeros, one example or ``[batch, ...]``.
      n_steps, rule, chunk_size: as in :func:`integrated_gradients`.

    Returns:
      Attributions of the layer's units, shape ``[batch, *layer_output_shape]``.
    """
    features, head, apply = _resolve_layer_model(model, params, layer)
    apply, x, target = _prepare(apply, params, x, target)
    baseline = _check_baseline(baseline, x)
    _checks.check_positive("n_steps", n_steps, integer=True)
    _checks.check_choice("rule", rule, IG_RULES)
    _check_chunk_size(chunk_size)
    return _layer_integrated_gradients(features, head, params, x, baseline, target, n_steps,
                                       rule, chunk_size)


@functools.partial(jax.jit, static_argnums=(0, 1, 6, 7, 8))
def _layer_integrated_gradients(features, head, params, x, baseline, target, n_steps, rule,
                                chunk_size):
    h = features(params, x, key=None, train=False)
    h_baseline = features(params, baseline, key=None, train=False)
    return _integrated_gradients(head, params, h, h_baseline, target, n_steps, rule, chunk_size)


# ------------------------------------------------------------------------------- upsampling

def _interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` weights of linear interpolation with half-pixel centres: output ``i``
    reads the input at ``s = (i + 1/2) n_in / n_out - 1/2``, clamped to ``[0, n_in - 1]``."""
    s = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    low = np.floor(s).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    frac = s - low
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.arange(n_out), low), 1 - frac)
    np.add.at(matrix, (np.arange(n_out), high), frac)
    return matrix


def upsample_map(maps: Array, shape: Sequence[int]) -> Array:
    """Resizes maps ``[batch, *spatial_in]`` (1 or 2 spatial axes) to ``shape = (batch,
    *spatial_out, *trailing)`` by linear interpolation along each spatial axis, then repeats them
    over the trailing axes (the input's channels).

    Interpolation uses half-pixel centres, as ``jax.image.resize(..., "linear")`` and PyTorch's
    ``interpolate(..., align_corners=False)`` when enlarging: output position ``i`` of ``n_out``
    reads input coordinate ``s = (i + 1/2) n_in / n_out - 1/2`` (clamped to ``[0, n_in - 1]``),
    between its two neighbours. Shrinking uses the same rule (no antialiasing).

    >>> upsample_map(jnp.array([[0.0, 1.0]]), (1, 4))
    Array([[0.  , 0.25, 0.75, 1.  ]], dtype=float32)
    """
    maps = _checks.as_array("maps", maps)
    _checks.check_float("maps", maps)
    _checks.check_ndim("maps", maps, (2, 3))
    shape = tuple(shape)
    if (not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)
            or len(shape) < maps.ndim or shape[0] != maps.shape[0]):
        raise ValueError(f"`shape` must be positive ints (batch = {maps.shape[0]}, then "
                         f"{maps.ndim - 1} spatial sizes, then any trailing axes), got {shape}")
    return _upsample(jnp.asarray(maps), tuple(int(s) for s in shape))


@functools.partial(jax.jit, static_argnums=1)
def _upsample(maps, shape):
    n_spatial = maps.ndim - 1
    for axis in range(n_spatial):
        matrix = _interpolation_matrix(maps.shape[1 + axis], shape[1 + axis])
        maps = jnp.moveaxis(jnp.tensordot(maps, jnp.asarray(matrix, maps.dtype),
                                          axes=([1 + axis], [1])), -1, 1 + axis)
    trailing = (1,) * (len(shape) - 1 - n_spatial)
    return jnp.broadcast_to(maps.reshape(*maps.shape, *trailing), shape)
