"""The training step and the epoch scans: pure, jit-free and host-free.

:func:`make_step` builds ``step(carry, batch) -> (carry, loss)``; :func:`scan_epoch` runs one
shuffled epoch of it as a ``lax.scan``; :func:`scan_epochs` runs several epochs as one more scan.
:func:`jaxlearn.fit` jits these, :func:`jaxlearn.fit_many` vmaps then jits them.

The NaN guard comes in two strengths. ``make_step(..., nan_guard=True)`` checks every step (loss,
params, optimizer and model state) and freezes the carry at the first bad one; :func:`guard_epoch`
checks once at the end of an epoch of unguarded steps and, if anything went non-finite, hands back
the carry of the epoch's *start* with ``bad_step`` set to the epoch's first step, so that the host
reruns that one epoch with the per-step guard to find the exact step (:func:`jaxlearn.fit` does).
The per-epoch check costs one reduction per epoch instead of one per step (measured in
``benchmarks/bench_fit.py``: the per-step guard made an MLP step about 10% slower).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxlearn._types import Array


class Carry(NamedTuple):
    """What one step hands to the next: trainable params, optimizer state, model state (e.g.
    BatchNorm statistics; ``()`` for stateless models) and the NaN guard's first bad step (-1
    while none)."""

    params: Any
    opt_state: Any
    model_state: Any
    bad_step: Array


def _tree_all_finite(tree) -> Array:
    """Whether every float in ``tree`` is finite, as one reduction over the concatenated leaves:
    XLA fuses it into one loop, where a reduction per leaf costs a kernel each (measured: the
    guard over params and Adam's state as per-leaf reductions made a step ~5% slower)."""
    leaves = [leaf.ravel() for leaf in jax.tree.leaves(tree)
              if jnp.issubdtype(leaf.dtype, jnp.inexact)]
    if not leaves:
        return jnp.asarray(True)
    dtype = jnp.result_type(*leaves)
    return jnp.all(jnp.isfinite(jnp.concatenate([leaf.astype(dtype) for leaf in leaves])))


def make_step(model, loss_fn: Callable, optimizer: optax.GradientTransformationExtraArgs,
              penalty: Callable | None, nan_guard: bool, batch_sharding=None) -> Callable:
    """``step(carry, (xb, yb, wb, key, index)) -> (carry, loss)``.

    ``model`` is a :class:`jaxlearn.apply.StatefulApply`. The loss of a batch is
    ``mean_i loss_i`` (or ``sum_i w_i loss_i / batch`` with sample weights ``wb``) plus
    ``penalty(params)``; the optimizer receives it as ``value=`` (for transforms such as
    ``optax.contrib.reduce_on_plateau``). With ``nan_guard`` an update whose loss, params,
    optimizer state or model state is not finite is not applied, nor any after it, and ``bad_step``
    records its index.
    """

    def objective(params, model_state, xb, yb, wb, key):
        out, new_model_state = model.apply_train(params, model_state, xb, key=key)
        per_example = loss_fn(out, yb)
        value = jnp.mean(per_example) if wb is None else jnp.sum(per_example * wb) / xb.shape[0]
        if penalty is not None:
            value = value + penalty(params)
        return value, new_model_state

    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def step(carry: Carry, batch):
        xb, yb, wb, key, index = batch
        if batch_sharding is not None:
            xb, yb = (jax.lax.with_sharding_constraint(a, batch_sharding) for a in (xb, yb))
            if wb is not None:
                wb = jax.lax.with_sharding_constraint(wb, batch_sharding)
        (value, model_state), grads = grad_fn(carry.params, carry.model_state, xb, yb, wb, key)
        updates, opt_state = optimizer.update(grads, carry.opt_state, carry.params, value=value)
        params = optax.apply_updates(carry.params, updates)
        new = Carry(params, opt_state, model_state, carry.bad_step)
        if nan_guard:
            ok = (jnp.isfinite(value) & _tree_all_finite((params, opt_state, model_state))
                  & (carry.bad_step < 0))
            keep = jax.tree.map(lambda n, o: jnp.where(ok, n, o),
                                          new[:3], tuple(carry[:3]))
            bad = jnp.where((carry.bad_step < 0) & ~ok, index, carry.bad_step)
            new = Carry(*keep, bad)
        return new, value

    return step


def scan_epoch(step: Callable, batch_size: int, n_steps: int) -> Callable:
    """``epoch(carry, data, key, epoch_index, step0) -> (carry, losses[n_steps])``.

    ``data`` is ``(x, y, w)`` (``w`` sample weights or ``None``). The epoch's key is
    ``fold_in(key, epoch_index)``, split into the permutation key and one key per step; the batches
    are consecutive slices of the permutation (the ``n % batch_size`` samples left over change every
    epoch).
    """

    def epoch(carry, data, key, epoch_index, step0):
        x, y, w = data
        k_perm, k_steps = jax.random.split(jax.random.fold_in(key, epoch_index))
        perm = jax.random.permutation(k_perm, x.shape[0])
        batches = perm[: n_steps * batch_size].reshape(n_steps, batch_size)
        step_keys = jax.random.split(k_steps, n_steps)

        def body(carry, inputs):
            idx, k, i = inputs
            wb = None if w is None else w[idx]
            return step(carry, (x[idx], y[idx], wb, k, step0 + i))

        return jax.lax.scan(body, carry,
                            (batches, step_keys, jnp.arange(n_steps, dtype=jnp.int32)))

    return epoch


def guard_epoch(epoch: Callable, n_steps: int) -> Callable:
    """``epoch`` (a :func:`scan_epoch` of unguarded steps) checked once at its end.

    Same signature. If the epoch's losses, params, optimizer state and model state are all finite
    the result is the epoch's; otherwise the carry is the one the epoch started from, with
    ``bad_step`` set to the epoch's first step ``step0``. Once ``bad_step`` is set, later epochs
    (in a :func:`scan_epochs`) do not run: they return the carry unchanged and NaN losses.
    """

    def guarded(carry, data, key, epoch_index, step0):
        def run(c):
            new, losses = epoch(c, data, key, epoch_index, step0)
            ok = jnp.all(jnp.isfinite(losses)) & _tree_all_finite(tuple(new[:3]))
            kept = jax.tree.map(lambda n, o: jnp.where(ok, n, o),
                                          tuple(new[:3]), tuple(c[:3]))
            bad = jnp.where(ok, c.bad_step, jnp.asarray(step0, c.bad_step.dtype))
            return Carry(*kept, bad), losses

        losses_type = jax.eval_shape(run, carry)[1]

        def skip(c):
            return c, jnp.full(losses_type.shape, jnp.nan, losses_type.dtype)

        return jax.lax.cond(carry.bad_step < 0, run, skip, carry)

    return guarded


def scan_epochs(epoch: Callable, n_epochs: int, n_steps: int) -> Callable:
    """``n_epochs`` consecutive epochs of ``epoch`` as one ``lax.scan``: the same signature, with
    losses of shape ``[n_epochs, n_steps]``. Used when nothing has to run on the host between
    epochs, so a whole run is one program (bitwise equal to one call per epoch, tested)."""

    def run(carry, data, key, epoch0, step0):
        def body(carry, e):
            return epoch(carry, data, key, epoch0 + e, step0 + e * n_steps)

        return jax.lax.scan(body, carry, jnp.arange(n_epochs, dtype=jnp.int32))

    return run
