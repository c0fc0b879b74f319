"""Data augmentation for 1-D signals and 2-D images, as pure functions of a key, usable in ``jit``.

Every augmentation is a *transform* ``f(key, x) -> x'`` on a batch ``x`` ``[batch, ...]`` that
keeps the shape and dtype and draws its own randomness per example from ``key`` (same key, same
output, bitwise). Four live in :mod:`jaxlearn.data` and are re-exported here: :func:`add_noise`,
:func:`random_shift` (1-D translation), :func:`random_crop` (2-D translation) and
:func:`random_flip`. This module adds amplitude scaling (:func:`random_scale`), :func:`cutout`
(DeVries & Taylor 2017) and :func:`mixup` (Zhang et al. 2018), the composer :func:`augment` and
:func:`with_augmentation`, which puts a transform in front of a model so that
:func:`jaxlearn.train.fit` augments every training batch inside its compiled step.

Layouts: 1-D batches are ``[batch, length]`` or ``[batch, length, channels]``; 2-D batches are
channels-last images ``[batch, height, width, channels]``.

Example: shift, add noise and cut a hole in every training batch of MNIST-1D-like signals::

    >>> from functools import partial
    >>> transform = augment(partial(random_shift, max_shift=4), partial(add_noise, std=0.1),
    ...                     partial(cutout, size=5))
    >>> x = jnp.ones((8, 40))
    >>> transform(jax.random.key(0), x).shape
    (8, 40)
    >>> model = jl.nn.mlp((16,), 10)
    >>> _, params = model.init(jax.random.key(1), (40,))
    >>> apply = with_augmentation(model.apply, transform)   # give it to jl.fit
    >>> bool(jnp.all(apply(params, x) == model.apply(params, x)))   # train=False: unchanged
    True
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxlearn import _checks
from jaxlearn._types import Array, PRNGKeyArray
from jaxlearn.apply import as_apply
from jaxlearn.data import add_noise, random_crop, random_flip, random_shift

Transform = Callable[[PRNGKeyArray, Array], Array]

__all__ = ["add_noise", "augment", "cutout", "mixup", "random_crop", "random_flip",
           "random_scale", "random_shift", "with_augmentation"]


def _check_batch(name: str, x: Any, ndims: tuple[int, ...], what: str) -> Any:
    x = _checks.as_array(name, x)
    if x.ndim not in ndims:
        raise ValueError(f"`{name}` must be {what}, got shape {tuple(x.shape)} "
                         f"({x.ndim} dimensions)")
    _checks.check_nonempty(name, x)
    _checks.check_float(name, x)
    return x


# ------------------------------------------------------------------------------------ scaling

def random_scale(key: PRNGKeyArray, x: Array, *, low: float, high: float) -> Array:
    """Multiplies every example by its own random gain: ``out[i] = s_i x[i]``,
    ``s_i ~ U[low, high]``.

    Args:
      key: a ``jax.random`` key.
      x: float batch ``[batch, ...]`` (1-D signals or 2-D images alike).
      low, high: the gain range, ``0 <= low <= high`` (``low = high = 1`` is the identity).

    Returns:
      The scaled batch, same shape and dtype.
    """
    _checks.check_key("key", key)
    x = _check_batch("x", x, tuple(range(1, 9)), "a float batch [batch, ...]")
    _checks.check_number("low", low)
    _checks.check_number("high", high)
    if not 0 <= low <= high:
        raise ValueError(f"need 0 <= `low` <= `high`, got low={low}, high={high}")
    return _random_scale(key, x, low, high)


@jax.jit
def _random_scale(key, x, low, high):
    scale = jax.random.uniform(key, (x.shape[0],) + (1,) * (x.ndim - 1), x.dtype, low, high)
    return x * scale


# ------------------------------------------------------------------------------------- cutout

def cutout(key: PRNGKeyArray, x: Array, *, size: int) -> Array:
    """Zeroes one random window of every example (DeVries & Taylor 2017, "Cutout").

    1-D (``x`` ``[batch, length]`` or ``[batch, length, channels]``): the ``size`` consecutive
    time steps ``t in [a_i, a_i + size)`` with ``a_i ~ U{0..length - size}``, all channels.
    2-D (``x`` ``[batch, height, width, channels]``): the ``size x size`` square with top-left
    corner ``(a_i, b_i) ~ U{0..height - size} x U{0..width - size}``. The window always lies
    inside the example (the paper lets it hang over the border; ours removes exactly ``size``
    steps or ``size^2`` pixels, which makes the strength of the augmentation one number).

    Args:
      key: a ``jax.random`` key.
      x: float batch, layouts as above.
      size: window side, ``1 <= size <=`` the length (1-D) or ``min(height, width)`` (2-D).

    Returns:
      The batch with one window per example set to 0, same shape and dtype.
    """
    _checks.check_key("key", key)
    x = _check_batch("x", x, (2, 3, 4), "[batch, length], [batch, length, channels] or "
                     "[batch, height, width, channels]")
    _checks.check_positive("size", size, integer=True)
    spatial = x.shape[1:3] if x.ndim == 4 else x.shape[1:2]
    if size > min(spatial):
        raise ValueError(f"`size` is {size} but `x` has spatial shape {tuple(spatial)}; the "
                         f"window must fit: size <= {min(spatial)}")
    return _cutout(key, x, size)


@functools.partial(jax.jit, static_argnums=2)
def _cutout(key, x, size):
    n_spatial = 2 if x.ndim == 4 else 1
    spatial = x.shape[1:1 + n_spatial]
    keys = jax.random.split(key, n_spatial)
    inside = jnp.ones((x.shape[0],) + spatial, bool)
    for axis, (k, length) in enumerate(zip(keys, spatial)):
        start = jax.random.randint(k, (x.shape[0],), 0, length - size + 1)
        t = jnp.arange(length)[None, :]
        in_axis = (t >= start[:, None]) & (t < start[:, None] + size)
        shape = [x.shape[0]] + [1] * n_spatial
        shape[axis + 1] = length
        inside = inside & in_axis.reshape(shape)
    inside = inside.reshape(inside.shape + (1,) * (x.ndim - 1 - n_spatial))
    return jnp.where(inside, jnp.zeros_like(x), x)


# -------------------------------------------------------------------------------------- mixup

def mixup(key: PRNGKeyArray, x: Array, y: Array, *, alpha: float) -> tuple[Array, Array]:
    """Mixup (Zhang et al. 2018): convex combinations of pairs of examples *and* their targets.

    With a random permutation ``pi`` of the batch and ``lam_i ~ Beta(alpha, alpha)`` per
    example::

        x'_i = lam_i x_i + (1 - lam_i) x_{pi(i)}
        y'_i = lam_i y_i + (1 - lam_i) y_{pi(i)}

    Train on ``(x', y')`` with a soft-label loss (``softmax_cross_entropy``). Because the labels
    change too, mixup is not a transform ``f(key, x)``: call it in your own step, or on the data
    before :func:`jaxlearn.train.fit` (one fixed draw).

    Args:
      key: a ``jax.random`` key.
      x: float batch ``[batch, ...]`` (1-D signals or 2-D images).
      y: float targets ``[batch, n_classes]`` (one-hot or soft), same dtype as ``x``.
      alpha: Beta parameter ``> 0``; small values keep most ``lam_i`` near 0 or 1.

    Returns:
      ``(x', y')`` with the shapes and dtypes of ``x`` and ``y``; rows of ``y'`` still sum to 1
      when those of ``y`` do.
    """
    _checks.check_key("key", key)
    x = _check_batch("x", x, tuple(range(1, 9)), "a float batch [batch, ...]")
    y = _checks.as_array("y", y)
    _checks.check_ndim("y", y, 2)
    _checks.check_same_length("x", x, "y", y)
    if x.dtype != y.dtype:
        raise TypeError(f"`y` must be float targets [batch, n_classes] with the dtype of `x` "
                        f"({x.dtype}), got {y.dtype}; one-hot integer labels first "
                        "(jaxlearn.data.one_hot)")
    _checks.check_positive("alpha", alpha)
    return _mixup(key, x, y, alpha)


@jax.jit
def _mixup(key, x, y, alpha):
    k_perm, k_lam = jax.random.split(key)
    perm = jax.random.permutation(k_perm, x.shape[0])
    lam = jax.random.beta(k_lam, alpha, alpha, (x.shape[0],), x.dtype)

    def mix(a):
        weight = lam.reshape((-1,) + (1,) * (a.ndim - 1))
        return weight * a + (1 - weight) * a[perm]

    return mix(x), mix(y)


# ---------------------------------------------------------------------------------- composing

def augment(*transforms: Transform) -> Transform:
    """Composes transforms ``f(key, x) -> x`` into one, applied left to right.

    The key is split into one key per transform, so ``augment(f, g)(key, x)`` is
    ``g(k2, f(k1, x))`` with ``k1, k2 = jax.random.split(key)``. Pure and traceable: call it
    inside ``jit``, ``vmap`` or a training step. Bind the options with ``functools.partial``::

        >>> from functools import partial
        >>> t = augment(partial(random_shift, max_shift=3), partial(random_scale, low=0.8,
        ...             high=1.2))
        >>> x = jnp.ones((4, 20))
        >>> t(jax.random.key(0), x).shape == x.shape
        True
    """
    if not transforms:
        raise ValueError("augment: give at least one transform f(key, x) -> x")
    for i, t in enumerate(transforms):
        if not callable(t):
            raise TypeError(f"augment: transform {i} must be callable f(key, x) -> x, got "
                            f"{type(t).__name__}")

    def transform(key: PRNGKeyArray, x: Array) -> Array:
        keys = jax.random.split(key, len(transforms))
        for k, t in zip(keys, transforms):
            x = t(k, x)
        return x

    return transform


def with_augmentation(apply_fn: Callable, transform: Transform) -> Callable:
    """Model ``apply`` that augments its input at train time: ``apply(params, transform(k, x))``.

    With ``train=True`` the step key is split in two: one half draws the augmentation, the other
    goes to ``apply_fn`` (dropout); with ``train=False`` (evaluation, prediction) ``x`` passes
    unchanged. Give the result to :func:`jaxlearn.train.fit`, which passes a fresh key each step.

    Args:
      apply_fn: ``apply(params, x, ...)`` (see :func:`jaxlearn.train.as_apply`).
      transform: ``f(key, x) -> x`` keeping the shape, e.g. from :func:`augment`.

    Returns:
      ``apply(params, x, *, key=None, train=False)``; ``key`` is required when ``train=True``.
    """
    if not callable(transform):
        raise TypeError(f"`transform` must be callable f(key, x) -> x, got "
                        f"{type(transform).__name__}")
    inner = as_apply(apply_fn)

    def apply(params, x, *, key=None, train=False):
        if not train:
            return inner(params, x, key=key, train=False)
        if key is None:
            raise ValueError("with_augmentation: `key` is required when `train=True`")
        k_aug, k_model = jax.random.split(key)
        return inner(params, transform(k_aug, x), key=k_model, train=True)

    return apply
