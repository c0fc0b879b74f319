"""The library's one key rule, and the shim that keeps the old call orders working for a release.

Functions that *generate* something random (data, cues, episodes, augmentations, inits, random
layers) take ``key`` first: ``jl.data.xor(key, n)``. Functions that take a model or data to fit or
explain take ``key=`` as a keyword: ``jl.fit(..., key=key)``, ``jl.robust.pgd(apply_fn, params, x,
y, key=key, eps=0.1)``. :func:`key_keyword` marks the functions whose key moved to a keyword: the
old positional call still runs, bit for bit the same, with a ``DeprecationWarning`` that names the
new call.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def is_key(x: Any) -> bool:
    """A ``jax.random.key`` (typed) or a legacy ``jax.random.PRNGKey`` (uint32 ``[2]``)."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return False
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return True
    return np.dtype(dtype) == np.uint32 and tuple(getattr(x, "shape", ())) == (2,)


def key_keyword(old_position: int, new_call: str) -> Callable[[Callable], Callable]:
    """Decorator for a function whose ``key`` is keyword-only and used to be positional argument
    ``old_position`` (0 = first). ``new_call`` is the call to show in the warning."""

    def wrap(fn: Callable) -> Callable:
        name = f"{fn.__module__.replace('jaxlearn.', 'jl.')}.{fn.__name__}"

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            old = (len(args) > old_position and "key" not in kwargs
                   and (old_position > 0 or is_key(args[0])))
            if old:
                warnings.warn(f"{name}: the key as positional argument {old_position + 1} is "
                              f"deprecated and will stop working in the next release; call "
                              f"{new_call}", DeprecationWarning, stacklevel=2)
                kwargs["key"] = args[old_position]
                args = args[:old_position] + args[old_position + 1:]
            return fn(*args, **kwargs)

        return wrapper

    return wrap
