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
  for 1-D signals and 2-D images.

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
    >>> table = sanity_check(model.apply, params, x, jax.random.key(2), methods=("gradient",))
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

from jaxlearn import _checks
from jaxlearn.apply import as_apply

Array = jax.Array
Params = Any

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
    x = _checks.as_array("x", x)
    _checks.check_float("x", x)
    if x.ndim < 2:
        raise ValueError(f"`x` must be a batch [batch, ...] with at least 2 dimensions, got shape "
                         f"{tuple(x.shape)}")
    _checks.check_nonempty("x", x)
    _checks.check_finite("x", x)
    try:
        out = jax.eval_shape(lambda p, xb: apply(p, xb), params, x)
    except (ValueError, TypeError) as err:
        raise type(err)(f"`apply` failed on `x` with shape {tuple(x.shape)}: {err}") from err
    if out.ndim != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"`apply` must return logits [batch, n_classes] = [{x.shape[0]}, K]; it "
                         f"returns shape {tuple(out.shape)} for `x` of shape {tuple(x.shape)}")
    return jnp.asarray(x), out.shape[1]


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

def smoothgrad(key: Array, apply_fn: Callable, params: Params, x: Array, *, target: Any = None,
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
    _checks.check_number("noise_level", noise_level)
    if noise_level < 0:
        raise ValueError(f"`noise_level` must be >= 0, got {noise_level}")
    _check_chunk_size(chunk_size)
    return _smoothgrad(apply, params, x, target, key, n_samples, noise_level, chunk_size)


@functools.partial(jax.jit, static_argnums=(0, 5, 7))
def _smoothgrad(apply, params, x, target, key, n_samples, noise_level, chunk_size):
    chunk_size = min(chunk_size, n_samples)
    weights = jnp.asarray(_chunked(np.full(n_samples, 1.0 / n_samples), chunk_size), x.dtype)
    indices = jnp.arange(weights.size).reshape(weights.shape)
    axes = tuple(range(1, x.ndim))
    span = jnp.max(x, axis=axes, keepdims=True) - jnp.min(x, axis=axes, keepdims=True)
    sigma = jnp.asarray(noise_level, x.dtype) * span

    def noisy_gradient(i):
        noise = jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype)
        return _gradient(apply, params, x + sigma * noise, target)

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
            for i, leaf in enumerate(jax.tree_util.tree_leaves(params))]


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
    leaves, treedef = jax.tree_util.tree_flatten(params)
    drawn = _random_leaves(key, params)
    return jax.tree_util.tree_unflatten(
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


def sanity_check(apply_fn: Callable, params: Params, x: Array, key: Array, *,
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
    if not isinstance(absolute, bool):
        raise TypeError(f"`absolute` must be a bool, got {type(absolute).__name__}")
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
    leaves, treedef = jax.tree_util.tree_flatten(params)
    drawn = _random_leaves(k_weights, params)

    def all_maps(p):
        maps = [method(p, x, target, k_maps) for method in methods]
        return [jnp.abs(m) if absolute else m for m in maps]

    reference = all_maps(params)

    def score(row):
        mixed = [jnp.where(row[o], d, leaf) if o >= 0 else leaf
                 for leaf, d, o in zip(leaves, drawn, owner)]
        maps = all_maps(jax.tree_util.tree_unflatten(treedef, mixed))
        return jnp.stack([_spearman(r, m) for r, m in zip(reference, maps)])

    return jax.lax.map(score, chosen)
