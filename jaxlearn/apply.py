"""The model boundary: any ``apply(params, x, ...)`` as one calling convention, flax adapters.

Every tool of jaxlearn (the trainer, attributions, attacks, uncertainty, few-shot) calls a model as
``apply(params, x, *, key=None, train=False) -> outputs``. :func:`as_apply` wraps a function that
takes fewer keywords; :func:`from_linen` and :func:`from_nnx` adapt flax modules.

Models with non-trainable state (BatchNorm's running statistics) are :class:`StatefulApply`
objects: called as above they act on the whole variables pytree (test mode reads the running
statistics), and the trainer uses their ``split`` / ``merge`` / ``apply_train`` to differentiate
only the trainable part and carry the updated state from step to step.

Caches: :func:`as_apply` keeps the wrappers of the 256 most recently wrapped functions (so compiled
programs keyed on a wrapper are reused); ``as_apply.cache_clear()`` drops them and what they
reference.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax

from jaxlearn._types import Params


def _takes_kwarg(fn: Callable, name: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    params = sig.parameters.values()
    return any(p.kind is p.VAR_KEYWORD for p in params) or name in sig.parameters


class StatefulApply:
    """A model with trainable params and non-trainable state (e.g. BatchNorm statistics).

    Called as ``apply(variables, x, *, key=None, train=False)`` it returns the outputs, like any
    jaxlearn model, so ``evaluate``, ``predict`` and the explain/robust/uncertainty tools use it
    unchanged (in train mode the state update is computed and dropped). For the trainer it also
    gives:

    - ``split(variables) -> (params, state)``: the trainable part (differentiated) and the rest;
    - ``merge(params, state) -> variables``: the inverse;
    - ``apply_train(params, state, x, *, key) -> (outputs, new_state)``: one training-mode call
      that returns the updated state (running means after a batch, say).

    :func:`jaxlearn.fit` carries ``state`` in its :class:`~jaxlearn.state.TrainState`:
    updated by every step, frozen in evaluation, saved in checkpoints.
    """

    def __init__(self, split: Callable, merge: Callable, apply_train: Callable,
                 apply_eval: Callable, name: str = "model"):
        self.split, self.merge = split, merge
        self.apply_train, self._apply_eval = apply_train, apply_eval
        self.__name__ = self.__qualname__ = name

    def __call__(self, variables, x, *, key=None, train=False):
        if train:
            params, state = self.split(variables)
            return self.apply_train(params, state, x, key=key)[0]
        return self._apply_eval(variables, x)


def _stateless(apply: Callable) -> StatefulApply:
    """``apply`` seen as a model whose state is empty (``()``): the trainer's uniform view."""

    def apply_train(params, state, x, *, key=None):
        return apply(params, x, key=key, train=True), state

    return StatefulApply(lambda v: (v, ()), lambda p, s: p, apply_train,
                         lambda v, x: apply(v, x, train=False), getattr(apply, "__name__", "apply"))


def as_model(apply_fn: Callable) -> StatefulApply:
    """The trainer's view of ``apply_fn``: a :class:`StatefulApply` (stateless models get an empty
    state). The view of a given function is always the same object (cached as in
    :func:`as_apply`)."""
    if isinstance(apply_fn, StatefulApply):
        return apply_fn
    apply = as_apply(apply_fn)
    try:
        return _as_model_cached(apply)
    except TypeError:  # unhashable
        return _stateless(apply)


_as_model_cached = functools.lru_cache(maxsize=256)(_stateless)


def as_apply(apply_fn: Callable) -> Callable:
    """Wraps any ``apply(params, x, ...)`` into ``apply(params, x, *, key=None, train=False)``.

    A function that does not take ``key``/``train`` keywords (a hand-written model, say) is called
    as ``apply_fn(params, x)``; one that does gets them passed through. The wrapper of a given
    function is always the same object (an LRU cache of 256 entries; ``as_apply.cache_clear()``
    empties it), so compiled programs keyed on it are reused.
    """
    if not callable(apply_fn):
        raise TypeError(f"`apply_fn` must be callable, got {type(apply_fn).__name__}")
    try:
        return _as_apply_cached(apply_fn)
    except TypeError:  # an unhashable callable: wrap it afresh
        return _as_apply_uncached(apply_fn)


def _as_apply_uncached(apply_fn: Callable) -> Callable:
    takes_key, takes_train = _takes_kwarg(apply_fn, "key"), _takes_kwarg(apply_fn, "train")
    if takes_key and takes_train:
        return apply_fn

    def apply(params, x, *, key=None, train=False):
        kwargs = {}
        if takes_key:
            kwargs["key"] = key
        if takes_train:
            kwargs["train"] = train
        return apply_fn(params, x, **kwargs)

    apply.__name__ = getattr(apply_fn, "__name__", "apply")
    return apply


_as_apply_cached = functools.lru_cache(maxsize=256)(_as_apply_uncached)


def cache_clear() -> None:
    """Drops the cached wrappers of :func:`as_apply` and :func:`as_model` (and what they keep
    alive: the wrapped functions and their closures)."""
    _as_apply_cached.cache_clear()
    _as_model_cached.cache_clear()


as_apply.cache_clear = cache_clear


def from_linen(module: Any, *, train_kwarg: str | None = None,
               rng_collection: str = "dropout") -> StatefulApply:
    """Adapts a ``flax.linen`` module: returns ``apply(variables, x, *, key=None, train=False)``.

    ``variables`` is either the whole dict of ``module.init(key, x)`` (``{"params": ...,
    "batch_stats": ...}``: every collection other than ``"params"`` is model state, updated in
    train mode and carried by :func:`jaxlearn.fit`) or just its ``"params"`` collection. If the
    module's ``__call__`` takes a flag for training (``train``, ``deterministic``,
    ``use_running_average``...), name it in ``train_kwarg``: ``"deterministic"`` and
    ``"use_running_average"`` are passed ``not train``, any other name ``train``. ``key`` becomes
    the ``rng_collection`` RNG stream (dropout).

    Example (BatchNorm)::

        >>> import flax.linen as linen
        >>> class Net(linen.Module):
        ...     @linen.compact
        ...     def __call__(self, x, train=False):
        ...         x = linen.BatchNorm(use_running_average=not train)(linen.Dense(8)(x))
        ...         return linen.Dense(2)(x)
        >>> x, y = jnp.ones((32, 4)), jnp.zeros(32, jnp.int32)
        >>> variables = Net().init(jax.random.key(0), x[:1])     # params and batch_stats
        >>> apply = jl.from_linen(Net(), train_kwarg="train")
        >>> result = jl.fit(apply, variables, x, y, optimizer=optax.sgd(0.1),
        ...                 loss="softmax_cross_entropy_with_integer_labels",
        ...                 key=jax.random.key(1), batch_size=8, epochs=1)
        >>> sorted(result.params)                                 # both collections come back
        ['batch_stats', 'params']
    """
    negated = train_kwarg in ("deterministic", "use_running_average")

    def kwargs_for(train):
        if train_kwarg is None:
            return {}
        return {train_kwarg: (not train) if negated else train}

    def is_variables(v):
        return isinstance(v, Mapping) and "params" in v

    def split(variables):
        if not is_variables(variables):
            return variables, ()
        state = {k: v for k, v in variables.items() if k != "params"}
        return variables["params"], (state if state else ())

    def merge(params, state):
        return {"params": params, **state} if state != () else params

    def full(variables):
        return variables if is_variables(variables) else {"params": variables}

    def apply_train(params, state, x, *, key=None):
        rngs = {rng_collection: key} if key is not None else None
        if state == ():
            return module.apply({"params": params}, x, rngs=rngs, **kwargs_for(True)), ()
        out, new_state = module.apply({"params": params, **state}, x, rngs=rngs,
                                      mutable=list(state), **kwargs_for(True))
        return out, {k: new_state[k] for k in state}

    def apply_eval(variables, x):
        return module.apply(full(variables), x, **kwargs_for(False))

    return StatefulApply(split, merge, apply_train, apply_eval, type(module).__name__)


def from_nnx(model: Any) -> tuple[StatefulApply, Params]:
    """Adapts a ``flax.nnx`` module: returns ``(apply, variables)`` for :func:`jaxlearn.fit`.

    The module is split into its static graph, its RNG streams and its variables (``nnx.Param``
    and the rest, e.g. ``nnx.BatchStat``); ``apply`` merges them back for each call, so training
    is a pure function. In train mode the module runs in ``model.train()`` mode with every RNG
    stream reseeded from ``key`` (``nnx.Dropout`` draws its masks from the trainer's key), and the
    updated non-``Param`` variables (BatchNorm statistics) are carried as model state; in test mode
    it runs in ``model.eval()`` mode (no dropout, running statistics).
    """
    from flax import nnx

    graphdef, rng_state, variables = nnx.split(model, nnx.RngState, ...)
    rng_leaves, rng_def = jax.tree.flatten(rng_state)

    def rngs_from(key):
        # Fresh RNG variables inside the trace: every stream's key drawn from `key` (counts kept).
        leaves = [jax.random.fold_in(key, i)
                  if key is not None and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
                  else leaf for i, leaf in enumerate(rng_leaves)]
        return jax.tree.unflatten(rng_def, leaves)

    def split(variables):
        params = nnx.filter_state(variables, nnx.Param)
        rest = nnx.filter_state(variables, nnx.Not(nnx.Param))
        return params, rest

    def merge(params, rest):
        return nnx.merge_state(params, rest)

    def apply_train(params, rest, x, *, key=None):
        # Fresh Variable objects in the current trace (the ones passed in may belong to an outer
        # scan or grad trace, where nnx forbids mutation).
        params, rest = jax.tree.map(lambda a: a, (params, rest))
        module = nnx.merge(graphdef, rngs_from(key), merge(params, rest))
        module.train()
        out = module(x)
        _, _, new_vars = nnx.split(module, nnx.RngState, ...)
        return out, nnx.filter_state(new_vars, nnx.Not(nnx.Param))

    def apply_eval(variables, x):
        module = nnx.merge(graphdef, rngs_from(None), variables)
        module.eval()
        return module(x)

    return StatefulApply(split, merge, apply_train, apply_eval, type(model).__name__), variables
