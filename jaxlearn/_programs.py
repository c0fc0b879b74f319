"""Compiled programs shared across calls of fit, fit_many and evaluate.

A program is keyed on everything that shapes it: the functions by identity, the static settings,
the abstract values and shardings of the arguments, and JAX's trace context (x64, default matmul
precision and the other settings that ``jax.jit`` itself keys on), so a program compiled outside
``jax.default_matmul_precision("highest")`` is never reused inside it. A second fit of the same
model, loss and optimizer object skips XLA.

The cache is bounded (:data:`MAX_PROGRAMS` entries, least recently used first out) and holds
strong references to the functions in its keys; :func:`clear_compile_cache` empties it and frees
what it kept alive.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

MAX_PROGRAMS = 64
_COMPILED: collections.OrderedDict = collections.OrderedDict()


class ProgramKey(NamedTuple):
    """What a cached program was compiled for."""

    kind: str          # "fit", "fit_many", "evaluate"
    static: tuple      # functions (by identity) and static settings
    signature: tuple   # tree structure, abstract values and shardings of the arguments
    context: tuple     # JAX's trace context


def trace_context() -> tuple:
    """JAX's trace context: the config values that make ``jax.jit`` retrace."""
    try:
        from jax._src import config as _config
        return tuple(_config.trace_context())
    except (ImportError, AttributeError):  # private API gone: the settings that matter most
        return (jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision)


def _signature(args) -> tuple:
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple((jax.typeof(a), getattr(a, "sharding", None)) for a in leaves)


def compile_program(kind: str, static: tuple, build: Callable[[], Any], args: tuple):
    """``build()`` (a jitted function) lowered and compiled for ``args``, from the cache when an
    earlier call had the same kind, static settings, argument types and trace context."""
    key = ProgramKey(kind, static, _signature(args), trace_context())
    try:
        hit = _COMPILED.get(key)
    except TypeError:  # something unhashable in `static`: compile without caching
        return build().lower(*args).compile()
    if hit is not None:
        _COMPILED.move_to_end(key)
        return hit
    compiled = build().lower(*args).compile()
    _COMPILED[key] = compiled
    if len(_COMPILED) > MAX_PROGRAMS:
        _COMPILED.popitem(last=False)
    return compiled


def cached_programs() -> list[ProgramKey]:
    """The keys of the cached programs, oldest first (for tests and benchmarks)."""
    return list(_COMPILED)


def clear_compile_cache() -> None:
    """Empties the program cache and the adapter caches, releasing the user functions, closures
    and compiled executables they keep alive."""
    from jaxlearn import apply

    _COMPILED.clear()
    apply.cache_clear()
