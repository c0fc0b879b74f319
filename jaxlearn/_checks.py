"""Argument checks run at the public boundary, before anything is traced.

Every helper raises a ``ValueError`` or ``TypeError`` whose message names the argument, what was
expected and what was received, so the user can fix the call without reading our source.
They only look at concrete values (numpy or jax arrays, Python scalars); called on a tracer they
check what is static (shape, dtype) and skip value checks, so they are safe inside ``jit`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds values we can read now (not a tracer)."""
    return not isinstance(x, jax.core.Tracer)


def as_array(name: str, x: Any) -> Any:
    """Returns ``x`` as an array (jax or numpy kept as is); refuses non-numeric input."""
    if isinstance(x, (jax.Array, np.ndarray)):
        return x
    if isinstance(x, (list, tuple, int, float, np.number)) and not isinstance(x, bool):
        arr = np.asarray(x)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise TypeError(f"`{name}` must be a numeric array, got {type(x).__name__} "
                            f"that converts to dtype {arr.dtype}")
        return arr
    raise TypeError(f"`{name}` must be an array, got {type(x).__name__}")


def check_float(name: str, x: Any) -> None:
    """``x`` must have a floating dtype."""
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        raise TypeError(f"`{name}` must have a floating dtype, got {x.dtype}")


def check_ndim(name: str, x: Any, ndim: int | Sequence[int]) -> None:
    """``x.ndim`` must be ``ndim`` (or one of them)."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.ndim not in allowed:
        want = " or ".join(str(a) for a in allowed)
        raise ValueError(f"`{name}` must have {want} dimensions, got shape {tuple(x.shape)} "
                         f"({x.ndim} dimensions)")


def check_nonempty(name: str, x: Any) -> None:
    """``x`` must hold at least one element along its first axis."""
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(x.shape)}); need at least one sample")


def check_finite(name: str, x: Any) -> None:
    """``x`` must hold no NaN or inf (only checked on concrete values)."""
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"`{name}` contains {n_bad} NaN or inf value(s); "
                         "clean or impute them first")
    if arr.dtype == np.float64 and arr.size and not jax.config.jax_enable_x64:
        big, limit = float(np.max(np.abs(arr))), float(np.finfo(np.float32).max)
        if big > limit:
            raise ValueError(f"`{name}` holds {big:g}, beyond float32's range ({limit:g}): jax "
                             "computes in float32 unless jax_enable_x64 is set")


def check_same_length(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """``a`` and ``b`` must have the same number of samples (first axis)."""
    for name, arr in ((name_a, a), (name_b, b)):
        if arr.ndim == 0:
            raise ValueError(f"`{name}` is a scalar (shape ()); need an array [n, ...] of samples")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"`{name_a}` has {a.shape[0]} samples but `{name_b}` has {b.shape[0]}; "
                         "they must match")


def check_labels(name: str, y: Any, n_classes: int | None = None) -> None:
    """``y`` must be integer class labels in ``[0, n_classes)``."""
    if not np.issubdtype(np.dtype(y.dtype), np.integer):
        raise TypeError(f"`{name}` must hold integer class labels, got dtype {y.dtype}")
    if n_classes is not None and is_concrete(y) and np.size(y):
        arr = np.asarray(y)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= n_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"`{name}` has label {bad} but `n_classes` is {n_classes}; "
                             f"labels must lie in [0, {n_classes})")


def check_positive(name: str, value: Any, *, integer: bool = False) -> None:
    """``value`` must be a number > 0 (an ``int`` if ``integer``)."""
    check_number(name, value, integer=integer)
    if not value > 0:
        raise ValueError(f"`{name}` must be > 0, got {value}")


def check_number(name: str, value: Any, *, integer: bool = False) -> None:
    """``value`` must be a real Python/numpy number (an ``int`` if ``integer``)."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        want = "an int" if integer else "a number"
        raise TypeError(f"`{name}` must be {want}, got {type(value).__name__} ({value!r})")
    if not integer and not np.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value}")


def check_in_range(name: str, value: Any, low: float, high: float, *,
                   include_low: bool = True, include_high: bool = False) -> None:
    """``value`` must be a number in the interval given (bounds as stated)."""
    check_number(name, value)
    ok_low = value >= low if include_low else value > low
    ok_high = value <= high if include_high else value < high
    if not (ok_low and ok_high):
        interval = ("[" if include_low else "(") + f"{low}, {high}" + ("]" if include_high else ")")
        raise ValueError(f"`{name}` must lie in {interval}, got {value}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {sorted(choices)}, got {value!r}")


def check_key(name: str, key: Any) -> None:
    """``key`` must be a ``jax.random`` key (new-style typed or legacy uint32[2])."""
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return
    if (isinstance(key, (jax.Array, np.ndarray)) and key.dtype == np.uint32
            and key.shape[-1:] == (2,)):
        return
    raise TypeError(f"`{name}` must be a jax.random key (jax.random.key(seed) or "
                    f"jax.random.PRNGKey(seed)), got {type(key).__name__}"
                    + (f" with dtype {key.dtype} and shape {tuple(key.shape)}"
                       if hasattr(key, "dtype") else ""))


def check_features(name: str, x: Any, *, ndim: int | Sequence[int] = 2) -> Any:
    """Common checks for a data matrix: array, float, rank, non-empty, finite. Returns it."""
    x = as_array(name, x)
    check_float(name, x)
    check_ndim(name, x, ndim)
    check_nonempty(name, x)
    check_finite(name, x)
    return x


def check_batch(name: str, x: Any) -> Any:
    """``x`` as a float batch ``[batch, ...]`` (at least 2 dimensions), non-empty and finite."""
    x = as_array(name, x)
    check_float(name, x)
    if x.ndim < 2:
        raise ValueError(f"`{name}` must be a batch [batch, ...] with at least 2 dimensions, got "
                         f"shape {tuple(x.shape)}")
    check_nonempty(name, x)
    check_finite(name, x)
    return x


def check_bool(name: str, value: Any) -> None:
    """``value`` is a Python bool (not 0/1, not an array)."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {type(value).__name__} ({value!r})")


def check_nonnegative(name: str, value: Any, *, integer: bool = False) -> None:
    """``value`` is a real number (an integer if ``integer``) ``>= 0``."""
    check_number(name, value, integer=integer)
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0, got {value}")


def check_classifier(apply: Any, params: Any, x: Any, *, name: str = "apply_fn",
                     min_classes: int = 1) -> int:
    """The number of classes of a classifier ``apply(params, x) -> logits [batch, n_classes]``,
    checked on shapes alone (``jax.eval_shape``: nothing runs)."""
    try:
        out = jax.eval_shape(lambda p, xb: apply(p, xb), params, x)
    except (ValueError, TypeError) as err:
        raise type(err)(f"`{name}` failed on `x` with shape {tuple(x.shape)}: {err}") from err
    if out.ndim != 2 or out.shape[0] != x.shape[0] or out.shape[1] < min_classes:
        need = f" with n_classes >= {min_classes}" if min_classes > 1 else ""
        raise ValueError(f"`{name}` must return logits [batch, n_classes]{need} = "
                         f"[{x.shape[0]}, K]; it returns shape {tuple(out.shape)} for `x` of "
                         f"shape {tuple(x.shape)}")
    return int(out.shape[1])
