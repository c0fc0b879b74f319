"""Data: toy problems, small real data sets, splits, scaling, labels and augmentation.

The first step of the road map. Everything here is a pure function of its arguments and an
explicit ``jax.random`` key, so the same key gives bitwise the same data on CPU.

- **Synthetic generators** ``f(key, n, ...) -> (x, y)`` return jax arrays, ``x`` float32
  ``[n, d]`` and ``y`` int32 ``[n]`` class labels (float32 ``[n]`` targets for regression):
  :func:`unit_circle`, :func:`xor`, :func:`xor_table`, :func:`regression_1d`.
- **Bundled real data** (offline, no download) returns numpy arrays, ``x`` float32 and ``y`` int32:
  :func:`load_digits`, :func:`load_breast_cancer` give ``(x, y)``; :func:`load_mnist1d`, which
  comes with its own split, gives a :class:`Dataset`.
- **Preparation**: :func:`train_test_split` (seeded, stratified), :func:`fit_standardizer` /
  :func:`standardize` (statistics fitted on the training set only), :func:`one_hot`.
- **Augmentation** usable inside ``jit``: :func:`add_noise`, :func:`random_shift`,
  :func:`random_crop`, :func:`random_flip`. Each is pure, takes its key explicitly, keeps the shape
  and dtype of its batch, and draws independently for every example of the batch.

Example::

    >>> x, y = unit_circle(jax.random.key(0), 200)
    >>> data = train_test_split(jax.random.key(1), x, y, test_size=0.25)
    >>> stats = fit_standardizer(data.x_train)
    >>> x_train = standardize(data.x_train, stats)
    >>> x_train.shape, data.x_test.shape
    ((150, 2), (50, 2))
    >>> bool(jnp.allclose(x_train.mean(axis=0), 0.0, atol=1e-5))
    True
"""

from __future__ import annotations

import functools
import math
import random
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks
from jaxlearn._types import Array, PRNGKeyArray


class Dataset(NamedTuple):
    """A train/test split: ``x_train [n_train, ...]``, ``y_train [n_train]``, ``x_test
    [n_test, ...]``, ``y_test [n_test]``. Returned by every loader or splitter that makes a
    split."""

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any


# ------------------------------------------------------------------------------ synthetic data

def unit_circle(key: PRNGKeyArray, n: int, *, dim: int = 2) -> tuple[Array, Array]:
    """Gaussian points labelled by whether they lie outside the unit sphere (the lecture's example).

    ``x ~ N(0, I_dim)`` and ``y = 1[||x||^2 > 1]``. The classes are not linearly separable in
    ``x`` but are in ``phi(x) = x^2`` (see :func:`jaxlearn.features.phi_squares`). Since
    ``||x||^2 ~ chi^2_dim``, ``P(y = 1) = exp(-1/2) ~ 0.607`` for ``dim = 2``.

    Args:
      key: a ``jax.random`` key.
      n: number of points.
      dim: dimension of each point.

    Returns:
      ``(x, y)``: ``x`` float32 ``[n, dim]``, ``y`` int32 ``[n]`` in ``{0, 1}``.
    """
    _checks.check_key("key", key)
    _checks.check_positive("n", n, integer=True)
    _checks.check_positive("dim", dim, integer=True)
    return _unit_circle(key, n, dim)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _unit_circle(key, n, dim):
    x = jax.random.normal(key, (n, dim), jnp.float32)
    y = (jnp.sum(x * x, axis=1) > 1.0).astype(jnp.int32)
    return x, y


def xor(key: PRNGKeyArray, n: int, *, noise: float = 0.0) -> tuple[Array, Array]:
    """The XOR problem: points around the four corners ``(+-1, +-1)``.

    Each point picks a corner ``c`` uniformly at random and is ``x = c + noise * eps`` with
    ``eps ~ N(0, I_2)``. Its label is that of its corner, ``y = 1[c_1 c_2 < 0]`` (opposite signs),
    so with ``noise = 0`` it is exactly ``1[x_1 x_2 < 0]``; with noise some points cross an axis
    but keep the label of the corner that generated them (``sign(x_1 x_2)`` stays the Bayes
    classifier by symmetry). No line separates the classes: a linear model reaches at most 75%.

    Args:
      key: a ``jax.random`` key.
      n: number of points.
      noise: standard deviation of the Gaussian noise around each corner (``>= 0``).

    Returns:
      ``(x, y)``: ``x`` float32 ``[n, 2]``, ``y`` int32 ``[n]`` in ``{0, 1}``.
    """
    _checks.check_key("key", key)
    _checks.check_positive("n", n, integer=True)
    _checks.check_nonnegative("noise", noise)
    return _xor(key, n, noise)


@functools.partial(jax.jit, static_argnums=1)
def _xor(key, n, noise):
    k_corner, k_noise = jax.random.split(key)
    corners = jnp.where(jax.random.bernoulli(k_corner, 0.5, (n, 2)), 1.0, -1.0)
    corners = corners.astype(jnp.float32)
    x = corners + noise * jax.random.normal(k_noise, (n, 2), jnp.float32)
    y = (corners[:, 0] * corners[:, 1] < 0).astype(jnp.int32)
    return x, y


def xor_table() -> tuple[Array, Array]:
    """The exact XOR truth table on boolean inputs.

    Returns:
      ``(x, y)``: ``x`` float32 ``[4, 2]`` = ``[[0, 0], [0, 1], [1, 0], [1, 1]]`` and ``y`` int32
      ``[4]`` = ``[0, 1, 1, 0]`` (``y = x_1 XOR x_2``).
    """
    x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], jnp.float32)
    y = jnp.array([0, 1, 1, 0], jnp.int32)
    return x, y


REGRESSION_FUNCTIONS: Mapping[str, Callable[[Array], Array]] = types.MappingProxyType({
    "sin": lambda x: jnp.sin(jnp.pi * x),
    "abs": jnp.abs,
    "step": lambda x: jnp.where(x > 0, 1.0, 0.0).astype(x.dtype),
    "linear": lambda x: x,
    "cubic": lambda x: x ** 3,
})
"""Named targets of :func:`regression_1d`: ``sin(pi x)``, ``|x|``, ``1[x > 0]``, ``x``, ``x^3``."""


def regression_1d(key: PRNGKeyArray, n: int, *, fn: str | Callable[[Array], Array] = "sin",
                  noise: float = 0.1, low: float = -1.0, high: float = 1.0) -> tuple[Array, Array]:
    """A 1-D regression problem ``y = f(x) + noise * eps``.

    ``x ~ U[low, high]`` and ``eps ~ N(0, 1)``, independently for every point.

    Args:
      key: a ``jax.random`` key.
      n: number of points.
      fn: the target ``f``: a name in :data:`REGRESSION_FUNCTIONS` (``"sin"`` is ``sin(pi x)``)
        or a jax-traceable callable mapping a float32 ``[n]`` array to a float ``[n]`` array.
      noise: standard deviation of the additive Gaussian noise (``>= 0``).
      low, high: the interval ``x`` is drawn from (``low < high``).

    Returns:
      ``(x, y)``: ``x`` float32 ``[n, 1]``, ``y`` float32 ``[n]``.
    """
    _checks.check_key("key", key)
    _checks.check_positive("n", n, integer=True)
    _checks.check_nonnegative("noise", noise)
    _checks.check_number("low", low)
    _checks.check_number("high", high)
    if not low < high:
        raise ValueError(f"`low` must be < `high`, got low={low} and high={high}")
    if isinstance(fn, str):
        _checks.check_choice("fn", fn, tuple(REGRESSION_FUNCTIONS))
        f = REGRESSION_FUNCTIONS[fn]
    elif callable(fn):
        f = fn
    else:
        raise TypeError(f"`fn` must be a name in {sorted(REGRESSION_FUNCTIONS)} or a callable, "
                        f"got {type(fn).__name__}")
    clean = jax.eval_shape(f, jax.ShapeDtypeStruct((n,), jnp.float32))
    if not hasattr(clean, "shape") or tuple(clean.shape) != (n,):
        got = tuple(clean.shape) if hasattr(clean, "shape") else type(clean).__name__
        raise ValueError(f"`fn` must map x of shape ({n},) to an array of shape ({n},), got {got}")
    _checks.check_float("fn(x)", clean)
    x, eps = _regression_draws(key, n, low, high)
    return x[:, None], f(x).astype(jnp.float32) + jnp.float32(noise) * eps


@functools.partial(jax.jit, static_argnums=1)
def _regression_draws(key, n, low, high):
    k_x, k_noise = jax.random.split(key)
    x = jax.random.uniform(k_x, (n,), jnp.float32, low, high)
    return x, jax.random.normal(k_noise, (n,), jnp.float32)


# ---------------------------------------------------------------------------- bundled real data

def load_digits(*, as_images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The UCI handwritten digits bundled with scikit-learn (1797 images of 8x8 pixels, 10 classes).

    Pixel values (integers 0..16 in the source) are divided by 16, so ``x`` lies in ``[0, 1]``.

    Args:
      as_images: return ``x`` as channels-last images ``[1797, 8, 8, 1]`` instead of flat
        vectors ``[1797, 64]`` (row-major, so ``x_flat[i, 8 r + c] = x_img[i, r, c, 0]``).

    Returns:
      ``(x, y)`` numpy arrays: ``x`` float32 ``[1797, 64]`` (or ``[1797, 8, 8, 1]``), ``y`` int32
      ``[1797]`` in ``0..9``.
    """
    _checks.check_bool("as_images", as_images)
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = (np.asarray(bunch.data, np.float64) / 16.0).astype(np.float32)
    y = np.asarray(bunch.target).astype(np.int32)
    if as_images:
        x = x.reshape(-1, 8, 8, 1)
    return x, y


def load_breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """The Wisconsin diagnostic breast cancer data bundled with scikit-learn (binary task).

    The 30 features are raw measurements on very different scales (areas in the hundreds,
    smoothness around 0.1): standardise them (:func:`fit_standardizer` on the training split).

    Returns:
      ``(x, y)`` numpy arrays: ``x`` float32 ``[569, 30]``, ``y`` int32 ``[569]`` with
      ``0 = malignant`` (212) and ``1 = benign`` (357), scikit-learn's coding.
    """
    from sklearn.datasets import load_breast_cancer as _sk_load_breast_cancer

    bunch = _sk_load_breast_cancer()
    return np.asarray(bunch.data).astype(np.float32), np.asarray(bunch.target).astype(np.int32)


def load_mnist1d(*, seed: int | None = None, num_samples: int | None = None,
                 train_split: float | None = None) -> Dataset:
    """MNIST-1D (Greydanus 2020): 10 classes of length-40 signals, generated offline.

    Calls ``mnist1d.data.make_dataset(get_dataset_args())`` with the arguments given here
    overriding the package defaults (``seed=42``, ``num_samples=5000``, ``train_split=0.8``, which
    give 4000 training and 1000 test signals). The generator draws from Python's and numpy's global
    random states; both are restored afterwards, so loading does not change the caller's random
    streams. Generation takes a few seconds, so results are cached per argument set within the
    process; every call returns fresh copies, so changing them cannot corrupt the cache.

    Args:
      seed: generator seed (default 42, the published data set).
      num_samples: total number of signals, a multiple of 10 (equal counts per class).
      train_split: fraction of the signals in the training split, in ``(0, 1)``.

    Returns:
      A :class:`Dataset` of numpy arrays: ``x_train`` float32 ``[n_train, 40]``, ``y_train`` int32
      ``[n_train]`` in ``0..9``, and the same for the test split.
    """
    if seed is not None:
        _checks.check_number("seed", seed, integer=True)
        if not 0 <= seed < 2 ** 32:
            raise ValueError(f"`seed` must lie in [0, 2**32), got {seed}")
    if num_samples is not None:
        _checks.check_positive("num_samples", num_samples, integer=True)
        if num_samples % 10:
            raise ValueError(f"`num_samples` must be a multiple of 10 (equal counts for the 10 "
                             f"classes), got {num_samples}")
    if train_split is not None:
        _checks.check_in_range("train_split", train_split, 0.0, 1.0, include_low=False)
    n_total = 5000 if num_samples is None else num_samples
    n_train = int(n_total * (0.8 if train_split is None else train_split))
    if not 0 < n_train < n_total:
        raise ValueError(f"`num_samples`={n_total} with `train_split`={train_split} leaves "
                         f"{n_train} training and {n_total - n_train} test signals; both splits "
                         "need at least one")
    cached = _mnist1d_cached(seed, num_samples, train_split)
    return Dataset(*(a.copy() for a in cached))


@functools.lru_cache(maxsize=8)
def _mnist1d_cached(seed: int | None, num_samples: int | None,
                    train_split: float | None) -> Dataset:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    for name, value in (("seed", seed), ("num_samples", num_samples),
                        ("train_split", train_split)):
        if value is not None:
            setattr(args, name, value)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return Dataset(np.asarray(raw["x"], np.float32), np.asarray(raw["y"]).astype(np.int32),
                   np.asarray(raw["x_test"], np.float32),
                   np.asarray(raw["y_test"]).astype(np.int32))


# --------------------------------------------------------------------------------- preparation

def train_test_split(key: PRNGKeyArray, x: Any, y: Any, *, test_size: float = 0.25,
                     stratify: bool = True) -> Dataset:
    """Splits ``(x, y)`` at random into a training and a test set.

    The test set holds ``n_test = ceil(test_size * n)`` examples (``test_size`` a fraction in
    ``(0, 1)``) or exactly ``test_size`` (an int in ``[1, n - 1]``). With ``stratify``, each class
    ``c`` of ``n_c`` examples gives ``n_c * n_test / n`` of them to the test set, rounded by largest
    remainder (ties to the smaller label) so that the counts add up to ``n_test``: every class is
    split in the same proportion, up to one example (a class too small for its share may end up
    in one set only). Both sets come in random order. Runs on the host (numpy indexing), outside
    ``jit``, once before training.

    Args:
      key: a ``jax.random`` key; the same key gives the same split.
      x: inputs ``[n, ...]`` (numpy or jax; the result has the same type).
      y: targets ``[n, ...]``; with ``stratify`` integer class labels ``[n]``.
      test_size: fraction or number of examples in the test set.
      stratify: keep the class proportions of ``y`` in both sets.

    Returns:
      A :class:`Dataset` ``(x_train [n - n_test, ...], y_train, x_test [n_test, ...], y_test)``.
    """
    _checks.check_key("key", key)
    x = _checks.as_array("x", x)
    y = _checks.as_array("y", y)
    _checks.check_nonempty("x", x)
    _checks.check_nonempty("y", y)
    _checks.check_same_length("x", x, "y", y)
    _checks.check_finite("x", x)
    _checks.check_finite("y", y)
    _checks.check_bool("stratify", stratify)
    n = x.shape[0]
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        if not 1 <= test_size <= n - 1:
            raise ValueError(f"`test_size` as a count must lie in [1, {n - 1}] for {n} examples, "
                             f"got {test_size}")
        n_test = int(test_size)
    else:
        _checks.check_in_range("test_size", test_size, 0.0, 1.0, include_low=False)
        n_test = math.ceil(test_size * n)
        if not 1 <= n_test <= n - 1:
            raise ValueError(f"`test_size`={test_size} puts {n_test} of {n} examples in the test "
                             "set; both sets need at least one")
    perm = np.asarray(jax.random.permutation(key, n))
    if stratify:
        if not np.issubdtype(np.dtype(y.dtype), np.integer):
            raise TypeError(f"`y` must hold integer class labels to stratify, got dtype {y.dtype}; "
                            "pass stratify=False for regression targets")
        _checks.check_ndim("y", y, 1)
        labels = np.asarray(y)[perm]
        classes, counts = np.unique(labels, return_counts=True)
        exact = counts * n_test / n
        per_class = np.floor(exact).astype(np.int64)
        # Largest remainder; the stable sort breaks ties towards the smaller label.
        extra = np.argsort(-(exact - per_class), kind="stable")[: n_test - per_class.sum()]
        per_class[extra] += 1
        # Rank of each permuted example among those of its class: the first per_class[c] go to test.
        order = np.argsort(labels, kind="stable")
        class_index = np.searchsorted(classes, labels[order])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(n) - starts[class_index]
        is_test = np.empty(n, bool)
        is_test[order] = rank < per_class[class_index]
    else:
        is_test = np.arange(n) < n_test
    train_idx, test_idx = perm[~is_test], perm[is_test]
    return Dataset(x[train_idx], y[train_idx], x[test_idx], y[test_idx])


class StandardizerStats(NamedTuple):
    """Per-feature statistics from :func:`fit_standardizer`: ``mean`` and ``std``, each of shape
    ``x.shape[1:]``."""

    mean: Array
    std: Array


def fit_standardizer(x: Array) -> StandardizerStats:
    """Per-feature mean and standard deviation of ``x``, to fit on the training set only.

    ``mean_j = (1/n) sum_i x_ij`` and ``std_j = sqrt((1/n) sum_i (x_ij - mean_j)^2)`` (population
    std, as scikit-learn's ``StandardScaler``). A constant feature (all values equal) gets
    ``std_j = 1`` instead of 0, so :func:`standardize` maps it to 0 rather than dividing by zero.

    Args:
      x: float ``[n, ...]``, ``n >= 1``, finite.

    Returns:
      :class:`StandardizerStats` with ``mean`` and ``std`` of shape ``x.shape[1:]`` and the dtype
      of ``x``.
    """
    x = _check_batch("x", x, min_ndim=1, what="[n, ...]")
    _checks.check_float("x", x)
    _checks.check_finite("x", x)
    return _fit_standardizer(jnp.asarray(x))


@jax.jit
def _fit_standardizer(x):
    # Scaled by a power of two (exact, so results are unchanged) to keep the sums from
    # overflowing: the mean of two float32 3e38 is 3e38, not inf.
    _, exponent = jnp.frexp(jnp.max(jnp.abs(x), axis=0, keepdims=True))
    scaled = jnp.ldexp(x, -exponent)
    mean = jnp.ldexp(jnp.mean(scaled, axis=0), exponent[0])
    std = jnp.ldexp(jnp.std(scaled, axis=0), exponent[0])
    constant = jnp.max(x, axis=0) == jnp.min(x, axis=0)
    return StandardizerStats(mean, jnp.where(constant, jnp.ones_like(std), std))


def standardize(x: Array, stats: StandardizerStats) -> Array:
    """``(x - mean) / std`` with statistics from :func:`fit_standardizer`.

    Args:
      x: float ``[n, ...]`` with ``x.shape[1:]`` equal to the shape of the statistics.
      stats: the fitted :class:`StandardizerStats`.

    Returns:
      The standardised ``x``, same shape.
    """
    x = _check_standardizer_input("x", x, stats)
    return (x - stats.mean[None]) / stats.std[None]


def unstandardize(z: Array, stats: StandardizerStats) -> Array:
    """Inverse of :func:`standardize`: ``z * std + mean`` (e.g. to report regression predictions
    in the original units). Same shapes as :func:`standardize`."""
    z = _check_standardizer_input("z", z, stats)
    return z * stats.std[None] + stats.mean[None]


def one_hot(y: Array, n_classes: int, *, dtype: Any = jnp.float32) -> Array:
    """One-hot encoding: ``out[..., k] = 1[y == k]``.

    Args:
      y: integer labels ``[...]`` in ``[0, n_classes)`` (checked when concrete).
      n_classes: number of classes ``K``.
      dtype: dtype of the result.

    Returns:
      ``[..., n_classes]`` array of zeros and ones.
    """
    y = _checks.as_array("y", y)
    _checks.check_positive("n_classes", n_classes, integer=True)
    _checks.check_labels("y", y, n_classes)
    return jax.nn.one_hot(y, n_classes, dtype=dtype)


# -------------------------------------------------------------------------------- augmentation

def add_noise(key: PRNGKeyArray, x: Array, *, std: float) -> Array:
    """Additive Gaussian noise ``x + std * eps``, ``eps ~ N(0, I)`` drawn anew for every element.

    Args:
      key: a ``jax.random`` key.
      x: float batch ``[batch, ...]``.
      std: noise standard deviation, ``>= 0`` (0 returns ``x`` unchanged).

    Returns:
      Noisy ``x``, same shape and dtype.
    """
    _checks.check_key("key", key)
    x = _check_batch("x", x, min_ndim=1, what="[batch, ...]")
    _checks.check_float("x", x)
    _checks.check_nonnegative("std", std)
    return _add_noise(key, x, std)


@jax.jit
def _add_noise(key, x, std):
    return x + jnp.asarray(std, x.dtype) * jax.random.normal(key, x.shape, x.dtype)


def random_shift(key: PRNGKeyArray, x: Array, *, max_shift: int, axis: int = 1,
                 mode: str = "roll") -> Array:
    """Shifts every example of a batch of signals along ``axis`` by its own random offset.

    Example ``i`` is shifted by ``s_i ~ U{-max_shift, ..., max_shift}``: ``out[i, t] = x[i, t -
    s_i]`` along ``axis``. ``mode="roll"`` wraps around (``np.roll``); ``mode="zeros"`` fills the
    ``|s_i|`` vacated positions with zeros instead.

    Args:
      key: a ``jax.random`` key.
      x: batch of signals ``[batch, length]`` or ``[batch, length, channels]`` (any rank >= 2).
      max_shift: largest shift, ``0 <= max_shift < length``.
      axis: the time axis (not the batch axis 0); negative values count from the end.
      mode: ``"roll"`` or ``"zeros"``.

    Returns:
      The shifted batch, same shape and dtype.
    """
    _checks.check_key("key", key)
    x = _check_batch("x", x, min_ndim=2, what="[batch, length] or [batch, length, channels]")
    axis = _check_axis(axis, x.ndim)
    _checks.check_choice("mode", mode, ("roll", "zeros"))
    _checks.check_number("max_shift", max_shift, integer=True)
    length = x.shape[axis]
    if not 0 <= max_shift < length:
        raise ValueError(f"`max_shift` must lie in [0, {length}) for `x` of length {length} along "
                         f"axis {axis}, got {max_shift}")
    return _random_shift(key, x, max_shift, axis, mode)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _random_shift(key, x, max_shift, axis, mode):
    length = x.shape[axis]
    shifts = jax.random.randint(key, (x.shape[0],), -max_shift, max_shift + 1)

    def shift_one(example, s):
        rolled = jnp.roll(example, s, axis=axis - 1)
        if mode == "roll":
            return rolled
        source = jnp.arange(length) - s
        keep = (source >= 0) & (source < length)
        keep = keep.reshape((length,) + (1,) * (example.ndim - axis))
        return jnp.where(keep, rolled, jnp.zeros_like(rolled))

    return jax.vmap(shift_one)(x, shifts)


def random_crop(key: PRNGKeyArray, x: Array, *, padding: int) -> Array:
    """Pads each image with ``padding`` zeros on every side, then crops it back to its size at a
    random offset of its own (the standard CIFAR augmentation).

    With offsets ``(a_i, b_i) ~ U{0..2 padding}^2``, ``out[i, r, c] = x_pad[i, r + a_i, c + b_i]``:
    the image moves by ``(padding - a_i, padding - b_i)`` pixels with zeros filling the border.

    Args:
      key: a ``jax.random`` key.
      x: batch of channels-last images ``[batch, height, width, channels]``.
      padding: zeros added on each side, ``>= 0`` (0 returns ``x`` unchanged).

    Returns:
      The cropped batch, same shape and dtype.
    """
    _checks.check_key("key", key)
    x = _check_batch("x", x, min_ndim=4, max_ndim=4, what="[batch, height, width, channels]")
    _checks.check_nonnegative("padding", padding, integer=True)
    return _random_crop(key, x, padding)


@functools.partial(jax.jit, static_argnums=2)
def _random_crop(key, x, padding):
    batch, height, width, channels = x.shape
    offsets = jax.random.randint(key, (batch, 2), 0, 2 * padding + 1)
    padded = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))

    def crop_one(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))

    return jax.vmap(crop_one)(padded, offsets)


def random_flip(key: PRNGKeyArray, x: Array, *, axis: int = 2, prob: float = 0.5) -> Array:
    """Reverses each example along ``axis`` with probability ``prob``, independently per example.

    The default ``axis=2`` is the width of channels-last images ``[batch, height, width,
    channels]``: a horizontal (left-right) flip.

    Args:
      key: a ``jax.random`` key.
      x: batch ``[batch, ...]`` of rank >= 2.
      axis: the axis to reverse (not the batch axis 0); negative values count from the end.
      prob: probability of flipping each example, in ``[0, 1]``.

    Returns:
      The batch with some examples flipped, same shape and dtype.
    """
    _checks.check_key("key", key)
    x = _check_batch("x", x, min_ndim=2, what="[batch, ...] with at least 2 dimensions")
    axis = _check_axis(axis, x.ndim)
    _checks.check_in_range("prob", prob, 0.0, 1.0, include_high=True)
    return _random_flip(key, x, axis, prob)


@functools.partial(jax.jit, static_argnums=2)
def _random_flip(key, x, axis, prob):
    flip = jax.random.bernoulli(key, prob, (x.shape[0],))
    flip = flip.reshape((-1,) + (1,) * (x.ndim - 1))
    return jnp.where(flip, jnp.flip(x, axis=axis), x)


# ------------------------------------------------------------------------------------- helpers


def _check_batch(name: str, x: Any, *, min_ndim: int, what: str,
                 max_ndim: int | None = None) -> Any:
    """Array of rank ``min_ndim..max_ndim`` (no upper bound if None) with a non-empty batch."""
    x = _checks.as_array(name, x)
    if x.ndim < min_ndim or (max_ndim is not None and x.ndim > max_ndim):
        raise ValueError(f"`{name}` must be {what}, got shape {tuple(x.shape)} "
                         f"({x.ndim} dimensions)")
    _checks.check_nonempty(name, x)
    return x


def _check_axis(axis: Any, ndim: int) -> int:
    _checks.check_number("axis", axis, integer=True)
    if not -ndim <= axis < ndim or axis % ndim == 0:
        raise ValueError(f"`axis` must name a non-batch axis of an array with {ndim} dimensions "
                         f"(1..{ndim - 1} or -{ndim - 1}..-1), got {axis}")
    return int(axis % ndim)


def _check_standardizer_input(name: str, x: Any, stats: Any) -> Any:
    if not isinstance(stats, StandardizerStats):
        raise TypeError(f"`stats` must be the StandardizerStats returned by fit_standardizer, got "
                        f"{type(stats).__name__}")
    x = _checks.as_array(name, x)
    _checks.check_float(name, x)
    if x.ndim < 1 or tuple(x.shape[1:]) != tuple(stats.mean.shape):
        expected = "[n" + "".join(f", {s}" for s in stats.mean.shape) + "]"
        raise ValueError(f"`{name}` has shape {tuple(x.shape)} but the standardizer was fitted on "
                         f"examples of shape {tuple(stats.mean.shape)}; expected {expected}")
    return x
