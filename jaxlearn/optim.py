"""Optimisation: gradient descent written out, and a validating factory over optax.

The lecture's picture: to minimise a cost ``J: R^d -> R`` start somewhere and step downhill,
``x_{t+1} = x_t - eta * grad J(x_t)``. :func:`gradient_descent` runs exactly that (optionally with
heavy-ball momentum) as one ``lax.scan`` inside ``jit`` and returns the whole trajectory, so the
path can be plotted; :func:`j_simple` and :func:`j_wavy` are the lecture's two example costs
(one minimum; many local minima, so where GD ends depends on where it starts).

For training networks use :func:`make_optimizer`, which builds an ``optax.GradientTransformation``
by name (``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``) with an
optional learning-rate schedule from :func:`make_schedule`, checking every argument first.

Example::

    >>> traj = gradient_descent(j_simple, 2.0, learning_rate=0.05, steps=200)
    >>> traj.xs.shape      # the start and 200 steps
    (201,)
    >>> round(float(traj.xs[-1]), 4)    # exp(-1/2) = 0.6065, the minimiser
    0.6065
    >>> opt = make_optimizer("adamw", 1e-3, weight_decay=1e-4, schedule="cosine", total_steps=1000)
    >>> isinstance(opt, optax.GradientTransformation)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlearn import _checks
from jaxlearn._types import Array

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine", "exponential", "step", "warmup_cosine")


# ------------------------------------------------------------------------- gradient descent

class Trajectory(NamedTuple):
    """The path of an optimiser.

    Attributes:
      xs: iterates ``x_0, ..., x_T``, shape ``[steps + 1, *x0.shape]``.
      values: costs ``J(x_0), ..., J(x_T)``, shape ``[steps + 1]``.
    """

    xs: Array
    values: Array


@partial(jax.jit, static_argnames=("fn", "steps"))
def _gd_run(fn, x0, learning_rate, momentum, steps):
    value_and_grad = jax.value_and_grad(fn)

    def step(carry, _):
        x, velocity = carry
        value, grad = value_and_grad(x)
        velocity = momentum * velocity + grad
        return (x - learning_rate * velocity, velocity), (x, value)

    (x_last, _), (xs, values) = jax.lax.scan(step, (x0, jnp.zeros_like(x0)), length=steps)
    xs = jnp.concatenate([xs, x_last[None]])
    values = jnp.concatenate([values, fn(x_last)[None]])
    return Trajectory(xs, values)


def _check_gd_args(fn, x0, learning_rate, steps, momentum, *, batched: bool):
    if not callable(fn):
        raise TypeError(f"`fn` must be a callable J(x) -> scalar, got {type(fn).__name__}")
    name = "x0s" if batched else "x0"
    x0 = _checks.as_array(name, x0)
    _checks.check_float(name, x0)
    _checks.check_finite(name, x0)
    if batched:
        _checks.check_nonempty(name, x0)
    _checks.check_positive("learning_rate", learning_rate)
    _checks.check_positive("steps", steps, integer=True)
    _checks.check_in_range("momentum", momentum, 0.0, 1.0)
    one = x0[0] if batched else x0
    try:
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct(one.shape, one.dtype))
    except Exception as err:  # report the failure in the caller's terms, keep the cause chained
        raise TypeError(f"`fn` could not be evaluated on an array of shape {tuple(one.shape)} "
                        f"and dtype {one.dtype} (the shape of one start): {err}") from err
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != () \
            or not jnp.issubdtype(out.dtype, jnp.floating):
        got = (f"shape {tuple(out.shape)} and dtype {out.dtype}"
               if isinstance(out, jax.ShapeDtypeStruct) else type(out).__name__)
        raise ValueError(f"`fn` must return a float scalar (shape ()), got {got}; "
                         "reduce it, e.g. with jnp.sum")
    return jnp.asarray(x0)


def gradient_descent(fn: Callable[[Array], Array], x0: Any, *, learning_rate: float, steps: int,
                     momentum: float = 0.0) -> Trajectory:
    """Gradient descent on ``J = fn``, returning the whole trajectory.

    Plain GD (``momentum = 0``): ``x_{t+1} = x_t - eta * grad J(x_t)``.

    Heavy ball (Polyak 1964) with ``mu = momentum``: ``v_{t+1} = mu v_t + grad J(x_t)``,
    ``x_{t+1} = x_t - eta v_{t+1}`` with ``v_0 = 0`` (the same recursion as ``optax.sgd`` with
    momentum; equivalently ``x_{t+1} = x_t - eta grad J(x_t) + mu (x_t - x_{t-1})``).

    The ``steps`` updates run as one ``lax.scan`` inside ``jit`` (compiled once per ``fn``,
    ``steps`` and shape of ``x0``). For many starts at once use :func:`gradient_descent_many`.

    Args:
      fn: the cost ``J``, mapping an array of ``x0``'s shape to a float scalar; differentiable.
      x0: starting point, a float scalar or array ``[...]`` (finite).
      learning_rate: step size ``eta > 0``.
      steps: number of updates ``T >= 1``.
      momentum: ``mu`` in ``[0, 1)``.

    Returns:
      :class:`Trajectory` with ``xs`` ``[steps + 1, *x0.shape]`` (``xs[0] = x0``) and ``values``
      ``[steps + 1]`` (``values[t] = J(xs[t])``). A step that leaves ``fn``'s domain shows up as
      NaN in the trajectory; it is not clipped.
    """
    x0 = _check_gd_args(fn, x0, learning_rate, steps, momentum, batched=False)
    return _gd_run(fn, x0, learning_rate, momentum, steps)


def gradient_descent_many(fn: Callable[[Array], Array], x0s: Any, *, learning_rate: float,
                          steps: int, momentum: float = 0.0) -> Trajectory:
    """:func:`gradient_descent` from several starts at once (``jax.vmap`` over the first axis).

    Args:
      fn: the cost ``J`` on one point (as in :func:`gradient_descent`).
      x0s: starts, ``[n_starts, *point_shape]``.
      learning_rate, steps, momentum: as in :func:`gradient_descent`.

    Returns:
      :class:`Trajectory` with ``xs`` ``[n_starts, steps + 1, *point_shape]`` and ``values``
      ``[n_starts, steps + 1]``.
    """
    x0s = _check_gd_args(fn, x0s, learning_rate, steps, momentum, batched=True)
    return jax.vmap(lambda x0: _gd_run(fn, x0, learning_rate, momentum, steps))(x0s)


# --------------------------------------------------------------------- the lecture's costs

_DOMAIN_LOW = math.exp(-1.0)


def _check_domain(x: Any) -> Array:
    x = _checks.as_array("x", x)
    _checks.check_float("x", x)
    if _checks.is_concrete(x) and np.any(np.asarray(x) <= _DOMAIN_LOW):
        raise ValueError(f"`x` must lie in the domain x > 1/e = {_DOMAIN_LOW:.6f} (where "
                         f"1 + log x > 0), got min(x) = {float(np.min(np.asarray(x)))}")
    return jnp.asarray(x)


def j_simple(x: Any) -> Array:
    """The lecture's convex-looking cost ``J(x) = x^2 / (1 + log x)`` on ``x > 1/e``.

    ``J'(x) = x (1 + 2 log x) / (1 + log x)^2`` vanishes only at ``log x = -1/2``: the unique
    minimiser is ``x* = e^{-1/2} ~ 0.6065`` with ``J(x*) = 2/e`` and ``J''(x*) = 8``, so GD
    converges from any start in the domain for ``eta < 2/8`` near ``x*``. Elementwise:
    ``x`` is ``[...]``, returns ``[...]``. Concrete ``x <= 1/e`` raises ``ValueError``.
    """
    x = _check_domain(x)
    return jnp.square(x) / (1.0 + jnp.log(x))


def j_wavy(x: Any) -> Array:
    """The lecture's wavy cost ``J(x) = x^2 sin(pi x) / (1 + log x)`` on ``x > 1/e``.

    The sine makes many local minima (near ``x = 1.582``, ``3.544``, ...), so GD ends in the basin
    it starts in. Elementwise: ``x`` is ``[...]``, returns ``[...]``. Concrete ``x <= 1/e``
    raises ``ValueError``.
    """
    x = _check_domain(x)
    return jnp.square(x) * jnp.sin(jnp.pi * x) / (1.0 + jnp.log(x))


# ------------------------------------------------------------------------------ schedules

def make_schedule(learning_rate: float, schedule: str | None = None, *,
                  total_steps: int | None = None, warmup_steps: int | None = None,
                  decay_rate: float = 0.1,
                  boundaries: Sequence[int] | None = None) -> optax.Schedule:
    """A learning-rate schedule ``t -> eta_t`` built from optax schedules.

    With ``eta = learning_rate`` and ``T = total_steps``:

    * ``None`` / ``"constant"``: ``eta_t = eta``.
    * ``"cosine"``: ``eta_t = eta (1 + cos(pi min(t, T) / T)) / 2`` (to 0 at ``T``).
    * ``"exponential"``: ``eta_t = eta * decay_rate^(t / T)`` (reaches ``decay_rate * eta`` at T).
    * ``"step"``: ``eta`` multiplied by ``decay_rate`` at each of ``boundaries``
      (default ``(T // 2, 3 T // 4)``), i.e. ``eta_t = eta * decay_rate^(#boundaries <= t)``.
    * ``"warmup_cosine"``: linear from 0 to ``eta`` over ``W = warmup_steps`` steps (default
      ``T // 10``), then cosine from ``eta`` to 0 at step ``T``.

    Args:
      learning_rate: peak / initial rate ``eta > 0``.
      schedule: one of :data:`SCHEDULES` or ``None``.
      total_steps: ``T``, required by every schedule but the constant one.
      warmup_steps: ``W`` in ``[0, T)``, only for ``"warmup_cosine"``.
      decay_rate: factor in ``(0, 1]`` for ``"exponential"`` and ``"step"``.
      boundaries: increasing steps in ``(0, T)`` for ``"step"``.

    Returns:
      An ``optax.Schedule``: a function of the step count (int or int array) returning the rate.
    """
    _checks.check_positive("learning_rate", learning_rate)
    if schedule is None or schedule == "constant":
        return optax.constant_schedule(learning_rate)
    if not isinstance(schedule, str):
        raise TypeError(f"`schedule` must be None or one of {sorted(SCHEDULES)}, "
                        f"got {type(schedule).__name__}")
    _checks.check_choice("schedule", schedule, SCHEDULES)
    if total_steps is None:
        raise ValueError(f"schedule {schedule!r} needs `total_steps` (the number of training "
                         "steps it spans), got None")
    _checks.check_positive("total_steps", total_steps, integer=True)
    if schedule == "cosine":
        return optax.cosine_decay_schedule(learning_rate, decay_steps=total_steps)
    if schedule == "warmup_cosine":
        if warmup_steps is None:
            warmup_steps = total_steps // 10
        _checks.check_number("warmup_steps", warmup_steps, integer=True)
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"`warmup_steps` must lie in [0, total_steps = {total_steps}), "
                             f"got {warmup_steps}")
        return optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup_steps=warmup_steps,
                                                  decay_steps=total_steps)
    _checks.check_in_range("decay_rate", decay_rate, 0.0, 1.0, include_low=False,
                           include_high=True)
    if schedule == "exponential":
        return optax.exponential_decay(learning_rate, transition_steps=total_steps,
                                       decay_rate=decay_rate)
    if boundaries is None:
        boundaries = (total_steps // 2, 3 * total_steps // 4)
    boundaries = tuple(boundaries)
    for i, b in enumerate(boundaries):
        _checks.check_number(f"boundaries[{i}]", b, integer=True)
    if any(not 0 < b < total_steps for b in boundaries) or list(boundaries) != sorted(
            set(boundaries)):
        raise ValueError(f"`boundaries` must be strictly increasing steps in (0, total_steps = "
                         f"{total_steps}), got {boundaries}")
    return optax.piecewise_constant_schedule(learning_rate, {b: decay_rate for b in boundaries})


# ------------------------------------------------------------------------------ optimizers

def make_optimizer(name: str, learning_rate: float | optax.Schedule, *,
                   momentum: float | None = None, nesterov: bool = False,
                   weight_decay: float = 0.0, schedule: str | None = None,
                   total_steps: int | None = None, warmup_steps: int | None = None,
                   decay_rate: float = 0.1, boundaries: Sequence[int] | None = None,
                   b1: float = 0.9, b2: float = 0.999,
                   eps: float = 1e-8) -> optax.GradientTransformation:
    """An optax optimiser by name, with every argument checked before anything is built.

    Updates for gradient ``g``, rate ``eta_t`` (from ``learning_rate`` and ``schedule``):

    * ``"sgd"``: ``u = -eta g`` (heavy ball if ``momentum`` is given, as ``"momentum"``).
    * ``"momentum"``: ``v <- mu v + g``, ``u = -eta v`` (``mu = momentum``, default 0.9).
    * ``"nesterov"``: ``v <- mu v + g``, ``u = -eta (g + mu v)`` (default ``mu = 0.9``);
      ``nesterov=True`` turns ``"sgd"``/``"momentum"``/``"rmsprop"`` momentum into this form.
    * ``"adam"``: ``m <- b1 m + (1 - b1) g``, ``s <- b2 s + (1 - b2) g^2``,
      ``u = -eta m_hat / (sqrt(s_hat) + eps)`` with bias corrections ``m_hat = m / (1 - b1^t)``,
      ``s_hat = s / (1 - b2^t)`` (Kingma & Ba 2015).
    * ``"adamw"``: Adam plus decoupled weight decay, ``u = -eta (m_hat / (sqrt(s_hat) + eps)
      + weight_decay * p)`` on every parameter ``p`` (Loshchilov & Hutter 2019).
    * ``"rmsprop"``: ``s <- 0.9 s + 0.1 g^2`` (``s_0 = 0``), ``u = -eta g / sqrt(s + eps)``;
      with ``momentum`` the scaled gradient goes through the heavy-ball trace.

    For every name but ``"adamw"``, ``weight_decay = lam > 0`` adds ``lam * p`` to the gradient
    before the optimiser (``optax.add_decayed_weights``): the gradient of ``(lam / 2) ||p||^2``,
    i.e. L2 regularisation coupled with the optimiser's scaling.

    Args:
      name: one of :data:`OPTIMIZERS`.
      learning_rate: ``eta > 0``, or an ``optax.Schedule`` (then ``schedule`` must be ``None``).
      momentum: ``mu`` in ``[0, 1)``; not accepted by ``"adam"``/``"adamw"`` (use ``b1``).
      nesterov: Nesterov momentum (needs momentum).
      weight_decay: ``>= 0``.
      schedule, total_steps, warmup_steps, decay_rate, boundaries: see :func:`make_schedule`.
      b1, b2, eps: Adam's moment decays in ``[0, 1)`` and ``eps > 0``.

    Returns:
      An ``optax.GradientTransformation``; use ``opt.init(params)`` and
      ``updates, state = opt.update(grads, state, params)``.
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be one of {sorted(OPTIMIZERS)}, got {type(name).__name__}")
    _checks.check_choice("name", name, OPTIMIZERS)
    if callable(learning_rate):
        if schedule is not None:
            raise ValueError(f"`learning_rate` is already a schedule; drop `schedule` "
                             f"({schedule!r}) or pass a float learning_rate")
        rate = learning_rate
    else:
        rate = make_schedule(learning_rate, schedule, total_steps=total_steps,
                             warmup_steps=warmup_steps, decay_rate=decay_rate,
                             boundaries=boundaries)
    _checks.check_bool("nesterov", nesterov)
    _checks.check_nonnegative("weight_decay", weight_decay)
    _checks.check_in_range("b1", b1, 0.0, 1.0)
    _checks.check_in_range("b2", b2, 0.0, 1.0)
    _checks.check_positive("eps", eps)
    if name in ("adam", "adamw"):
        if momentum is not None:
            raise ValueError(f"`momentum` does not apply to {name!r}; its first-moment decay is "
                             f"`b1` (got momentum={momentum})")
        if nesterov:
            raise ValueError(f"`nesterov` does not apply to {name!r} (use optax.nadam)")
    if name in ("momentum", "nesterov") and momentum is None:
        momentum = 0.9
    if momentum is not None:
        _checks.check_in_range("momentum", momentum, 0.0, 1.0)
    if nesterov and momentum is None:
        raise ValueError(f"`nesterov=True` needs `momentum` for {name!r}; give momentum in [0, 1)")

    if name == "adamw":
        return optax.adamw(rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    if name == "adam":
        opt = optax.adam(rate, b1=b1, b2=b2, eps=eps)
    elif name == "rmsprop":
        opt = optax.rmsprop(rate, eps=eps, momentum=momentum, nesterov=nesterov)
    else:
        opt = optax.sgd(rate, momentum=momentum, nesterov=nesterov or name == "nesterov")
    if weight_decay > 0:
        return optax.chain(optax.add_decayed_weights(weight_decay), opt)
    return opt
