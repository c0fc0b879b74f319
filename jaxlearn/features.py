"""Feature engineering: hand-made representations ``phi(x)`` to compare with learned ones.

Before deep learning, a linear model was made non-linear by mapping its input through a fixed
``phi`` chosen by a person: squares (the lecture's ``phi(x) = (x_1^2, x_2^2)``, which makes the
unit-circle problem linearly separable), all monomials up to a degree, random Fourier features
that approximate an RBF kernel, or fixed image filters (edges, Laplacian). A network learns its
``phi`` instead; these functions are the baseline it is measured against.

All functions are pure and jit-compatible; arguments are checked before anything is traced.
"""

from __future__ import annotations

import functools
import itertools
import math
import types
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks
from jaxlearn._types import Array, PRNGKeyArray


def phi_squares(x: Array) -> Array:
    """Squares every coordinate: ``phi(x) = (x_1^2, ..., x_d^2)``.

    The lecture's map for the unit-circle problem: ``||x||^2 > 1`` is the half-space
    ``sum_j phi_j(x) > 1``, so a linear model on ``phi(x)`` separates what it could not on ``x``.

    Args:
      x: float ``[n, d]``.

    Returns:
      ``[n, d]``, ``x ** 2``.
    """
    x = _checks.check_features("x", x, ndim=2)
    return jnp.square(x)


def polynomial_features(x: Array, degree: int, *, include_bias: bool = False) -> Array:
    """All monomials of the input coordinates of total degree ``1..degree`` (and 0 if
    ``include_bias``), in scikit-learn's ``PolynomialFeatures`` column order.

    Columns come by increasing degree; within degree ``k`` they are the products
    ``x_{j_1} ... x_{j_k}`` for ``j_1 <= ... <= j_k`` in lexicographic order
    (``itertools.combinations_with_replacement``). For ``d = 2``, ``degree = 2``:
    ``[1,] x_1, x_2, x_1^2, x_1 x_2, x_2^2``. There are ``C(d + degree, degree) - 1`` columns
    (plus one for the bias).

    Args:
      x: float ``[n, d]``.
      degree: highest total degree, an int ``>= 1``.
      include_bias: prepend the constant column of ones (degree 0).

    Returns:
      ``[n, n_monomials]``.
    """
    x = _checks.check_features("x", x, ndim=2)
    if x.shape[1] == 0:
        raise ValueError(f"`x` has no features (shape {tuple(x.shape)}); need d >= 1 columns")
    _checks.check_positive("degree", degree, integer=True)
    _checks.check_bool("include_bias", include_bias)
    return _polynomial_features(jnp.asarray(x), degree, include_bias)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _polynomial_features(x, degree, include_bias):
    columns = [jnp.ones((x.shape[0], 1), x.dtype)] if include_bias else []
    for k in range(1, degree + 1):
        combos = np.array(list(itertools.combinations_with_replacement(range(x.shape[1]), k)))
        columns.append(jnp.prod(x[:, combos], axis=-1))
    return jnp.concatenate(columns, axis=1)


def random_fourier_features(key: PRNGKeyArray, in_features: int, n_features: int, *,
                            lengthscale: float = 1.0) -> dict[str, Array]:
    """Draws the parameters of random Fourier features for the RBF kernel (Rahimi & Recht 2007).

    ``W ~ N(0, 1 / lengthscale^2)`` of shape ``[in_features, n_features]`` and
    ``b ~ U[0, 2 pi)`` of shape ``[n_features]``; with them :func:`rff_apply` computes ``z(x)``
    such that ``E[z(x) . z(y)] = k(x, y) = exp(-||x - y||^2 / (2 lengthscale^2))`` (Bochner's
    theorem: the RBF kernel is the Fourier transform of a Gaussian). Each of the ``D =
    n_features`` terms of the dot product lies in ``[-2, 2]`` and has variance at most 1, so the
    error of the approximation is ``O(1 / sqrt(D))``.

    Args:
      key: a ``jax.random`` key.
      in_features: input dimension ``d``.
      n_features: number of random features ``D``.
      lengthscale: RBF lengthscale ``l > 0``.

    Returns:
      Params ``{"w": float32 [in_features, n_features], "b": float32 [n_features]}``.
    """
    _checks.check_key("key", key)
    _checks.check_positive("in_features", in_features, integer=True)
    _checks.check_positive("n_features", n_features, integer=True)
    _checks.check_positive("lengthscale", lengthscale)
    return _random_fourier_features(key, in_features, n_features, lengthscale)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _random_fourier_features(key, in_features, n_features, lengthscale):
    k_w, k_b = jax.random.split(key)
    w = jax.random.normal(k_w, (in_features, n_features), jnp.float32) / lengthscale
    b = jax.random.uniform(k_b, (n_features,), jnp.float32, 0.0, 2.0 * math.pi)
    return {"w": w, "b": b}


def rff_apply(params: dict[str, Array], x: Array) -> Array:
    """Random Fourier features ``z(x) = sqrt(2 / D) cos(x W + b)``.

    Args:
      params: from :func:`random_fourier_features` (``w [d, D]``, ``b [D]``).
      x: float ``[n, d]``.

    Returns:
      ``[n, D]``; ``z(x) @ z(y).T`` approximates the RBF kernel matrix.
    """
    if not isinstance(params, dict) or set(params) != {"w", "b"}:
        raise TypeError("`params` must be the dict {'w', 'b'} returned by "
                        f"random_fourier_features, got {type(params).__name__}"
                        + (f" with keys {sorted(params)}" if isinstance(params, dict) else ""))
    x = _checks.check_features("x", x, ndim=2)
    w, b = params["w"], params["b"]
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"`x` has shape {tuple(x.shape)} but the features were drawn for "
                         f"{w.shape[0]} input features; expected [n, {w.shape[0]}]")
    return _rff_apply(w, b, jnp.asarray(x))


@jax.jit
def _rff_apply(w, b, x):
    projection = jnp.matmul(x, w, precision=jax.lax.Precision.HIGHEST)
    return jnp.sqrt(2.0 / w.shape[1]).astype(x.dtype) * jnp.cos(projection + b[None, :])


def _read_only(kernel: list[list[float]]) -> np.ndarray:
    array = np.array(kernel, np.float32)
    array.flags.writeable = False
    return array


FILTERS: Mapping[str, np.ndarray] = types.MappingProxyType({
    "identity": _read_only([[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
    "edge_x": _read_only([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "edge_y": _read_only([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "laplacian": _read_only([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    "blur": _read_only(np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0),
})
"""Fixed 3x3 kernels (read-only float32), applied as cross-correlations by :func:`apply_filters`:

- ``identity``: returns the image;
- ``edge_x``: Sobel derivative along the width (``x`` = column): responds to vertical edges,
  positive where the image gets brighter to the right;
- ``edge_y``: Sobel derivative along the height (``y`` = row, downwards): responds to horizontal
  edges, positive where the image gets brighter downwards;
- ``laplacian``: 4-neighbour Laplacian, zero on constant and linear regions;
- ``blur``: 3x3 binomial (Gaussian-like) smoothing, weights sum to 1.
"""


def image_filter(name: str) -> Array:
    """The 3x3 kernel called ``name`` in :data:`FILTERS`, as a float32 jax array ``[3, 3]``."""
    _checks.check_choice("name", name, tuple(FILTERS))
    return jnp.asarray(FILTERS[name])


def apply_filters(images: Array, kernels: Array | Sequence[str]) -> Array:
    """Cross-correlates every image with every kernel, zero padding so the size is kept (SAME).

    ``out[i, r, c, f] = sum_{a, b} img_pad[i, r + a, c + b] * kernels[f, a, b]`` with
    ``(kh // 2, kw // 2)`` zeros around the image; like ``scipy.signal.correlate2d(img, k,
    mode="same")`` and like a convolution layer of a network (no kernel flip).

    Args:
      images: float ``[n, h, w]`` or single-channel ``[n, h, w, 1]``.
      kernels: float ``[n_filters, kh, kw]`` with odd ``kh``, ``kw`` and the dtype of ``images``,
        or a sequence of names in :data:`FILTERS` (e.g. ``("edge_x", "edge_y")``), built in the
        dtype of ``images``.

    Returns:
      Feature maps ``[n, h, w, n_filters]``.
    """
    images = _checks.check_features("images", images, ndim=(3, 4))
    if images.ndim == 4 and images.shape[-1] != 1:
        raise ValueError(f"`images` must be [n, h, w] or single-channel [n, h, w, 1], got shape "
                         f"{tuple(images.shape)} with {images.shape[-1]} channels")
    if isinstance(kernels, (list, tuple)) and kernels and all(isinstance(k, str) for k in kernels):
        for name in kernels:
            _checks.check_choice("kernels", name, tuple(FILTERS))
        kernels = np.stack([FILTERS[name] for name in kernels]).astype(images.dtype)
    kernels = _checks.check_features("kernels", kernels, ndim=3)
    _, kh, kw = kernels.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"`kernels` must have odd height and width so SAME padding is centred, "
                         f"got kernels of shape {tuple(kernels.shape)}")
    if images.dtype != kernels.dtype:
        raise TypeError(f"`images` has dtype {images.dtype} but `kernels` has dtype "
                        f"{kernels.dtype}; they must match (nothing is cast)")
    return _apply_filters(jnp.asarray(images), jnp.asarray(kernels))


@jax.jit
def _apply_filters(images, kernels):
    x = images.reshape(*images.shape[:3], 1)
    w = jnp.transpose(kernels, (1, 2, 0))[:, :, None, :]  # [kh, kw, 1, n_filters]
    return jax.lax.conv_general_dilated(
        x, w, window_strides=(1, 1), padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)
