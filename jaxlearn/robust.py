"""Adversarial examples: FGSM, PGD with restarts and APGD attacks, robust accuracy as the worst case
over attacks, robustness curves, and adversarial training (FGSM, PGD, TRADES).

Every attack works on any classifier ``apply(params, x, ...)`` that returns logits
``[batch, n_classes]`` (wrapped by :func:`jaxlearn.train.as_apply`) and maximises the softmax
cross-entropy ``L(x, y) = logsumexp(f(x)) - f(x)_y`` of the true label (untargeted), or minimises
that of a chosen target label (``targeted=True``; then ``y`` holds the targets).

* **FGSM** (Goodfellow, Shlens & Szegedy 2015, "Explaining and harnessing adversarial examples"):
  ``x_adv = x + eps * sign(grad_x L(x, y))`` (``-`` when targeted). An input coordinate whose
  gradient is exactly 0 is left unchanged (``sign(0) = 0``).
* **PGD** (Madry et al. 2018, "Towards deep learning models resistant to adversarial attacks"):
  ``n_steps`` steps of ``x <- P(x + step_size * d(x))`` from ``x_0 = x`` or a uniform random point
  of the ball, with ``d = sign(grad)`` for the L-inf ball ``||x_adv - x||_inf <= eps`` and
  ``d = grad / ||grad||_2`` (per example) for the L2 ball ``||x_adv - x||_2 <= eps``. ``P``
  projects onto the ball (L-inf: clip each coordinate to ``[x - eps, x + eps]``; L2: rescale
  ``delta`` to norm ``eps`` when longer) and then clips to the data range ``clip = (lo, hi)``.
  For L-inf the two clips together are the exact projection onto the intersection; for L2 the clip
  to the data range only shortens ``delta``, so the result stays in both sets. With
  ``restarts=R`` the attack runs from ``R`` random starts at once (``vmap``) and keeps, per
  example, the worst case (see :func:`pgd`).
* **APGD-CE** (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble
  of diverse parameter-free attacks", Algorithm 1): PGD with momentum (weight 0.75 on the new
  step, 0.25 on the last move) and a step size that starts at ``2 eps`` and is halved at fixed
  checkpoints when the loss stopped rising; no step size to tune. The strong attack of
  :func:`robust_accuracy` (see :func:`apgd`).

A reviewer accepts a robustness number only under a strong attack: :func:`robust_accuracy`
counts an example as robust only if it is classified correctly clean and under every attack run
(the per-example minimum over attacks), so it is never above any single attack's accuracy.

Epsilons: ``eps`` is a number or a 1-D vector of numbers. A vector gives one adversarial batch per
epsilon, stacked on a new leading axis ``[n_eps, batch, ...]``, computed inside one ``jit`` (the
FGSM gradient is taken once; PGD and APGD are ``vmap``-ed over epsilons), never by a Python loop.

Adversarial training: :func:`adversarial_apply` (FGSM, Goodfellow et al.), :func:`pgd_apply`
(PGD, Madry et al.) and :func:`trades_objective` (TRADES, Zhang et al. 2019) wrap a model so that
:func:`jaxlearn.train.fit` trains it on adversarial inputs; :func:`adversarial_loss`,
:func:`pgd_loss` and :func:`trades_loss` are the same objectives with the true labels, as scalars
for a hand-written step.

Example::

    >>> model = jl.nn.mlp((32,), 10)
    >>> _, params = model.init(jax.random.key(0), (64,))
    >>> x = jax.random.uniform(jax.random.key(1), (100, 64))
    >>> y = model.apply(params, x).argmax(-1)        # the model's own labels: clean accuracy 1
    >>> eps = jnp.linspace(0.0, 0.3, 7)
    >>> x_adv = fgsm(model.apply, params, x, y, eps=eps, clip=(0.0, 1.0))
    >>> x_adv.shape, bool(jnp.all(jnp.abs(x_adv - x[None]) <= eps[:, None, None] + 1e-6))
    ((7, 100, 64), True)
    >>> curve = robustness_curve(model.apply, params, x, y, eps, attack="pgd",
    ...                          key=jax.random.key(0), clip=(0.0, 1.0))
    >>> float(curve["accuracy"][0]), bool(curve["accuracy"][-1] < 0.1)   # [7], falls with eps
    (1.0, True)
    >>> result = robust_accuracy(model.apply, params, x, y, eps=0.05, key=jax.random.key(0),
    ...                          clip=(0.0, 1.0))     # FGSM, PGD and APGD; worst case per example
    >>> bool(result["worst_case"] <= min(result["accuracy"].values()))
    True
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks, _keys, losses
from jaxlearn._types import Array, Params, PRNGKeyArray
from jaxlearn.apply import as_apply

NORMS = ("linf", "l2")
ATTACKS = ("fgsm", "pgd")                    # robustness_curve's attacks
STRONG_ATTACKS = ("fgsm", "pgd", "apgd")     # robust_accuracy's attacks
DEFAULT_ATTACKS = ("fgsm", ("pgd", {"restarts": 5}), "apgd")
# Croce & Hein 2020, Algorithm 1 and Section 3.2: momentum alpha, the fraction rho of steps that
# must raise the loss between checkpoints, the first checkpoint and the shrinking spacing (in
# hundredths of n_steps), the first step size 2 eps. Not tuned here, as the paper asks.
APGD_MOMENTUM = 0.75
APGD_RHO = 0.75
_APGD_P1, _APGD_SHRINK, _APGD_MIN_GAP = 22, 3, 6


# ------------------------------------------------------------------------------------ checks

def _check_classifier_batch(apply, params, x: Any, y: Any) -> tuple[Any, Any, int]:
    """``x`` float ``[batch, ...]``, ``y`` int ``[batch]`` with labels below the logits' width."""
    x = _checks.check_batch("x", x)
    y = _checks.as_array("y", y)
    _checks.check_ndim("y", y, 1)
    _checks.check_same_length("x", x, "y", y)
    n_classes = _checks.check_classifier(apply, params, x, min_classes=2)
    _checks.check_labels("y", y, n_classes)
    return x, y, n_classes


def _check_eps(eps: Any) -> tuple[np.ndarray, bool]:
    """Returns ``(eps as float32 [n_eps], was_scalar)``; every value finite and >= 0."""
    if isinstance(eps, (int, float, np.integer, np.floating)) and not isinstance(eps, bool):
        _checks.check_number("eps", eps)
        values, scalar = np.asarray([eps], np.float64), True
    else:
        arr = _checks.as_array("eps", eps)
        if not _checks.is_concrete(arr):
            raise TypeError("`eps` must be concrete (a number or a 1-D array), not a traced value")
        _checks.check_ndim("eps", arr, 1)
        _checks.check_nonempty("eps", arr)
        values, scalar = np.asarray(arr, np.float64), False
        if not np.all(np.isfinite(values)):
            raise ValueError(f"`eps` must be finite, got {values.tolist()}")
    if np.any(values < 0):
        raise ValueError(f"`eps` must be >= 0, got {values[values < 0][0]:g}")
    return values.astype(np.float32), scalar


def _check_clip_pair(clip: Any) -> tuple[float, float] | None:
    """``clip`` is None or ``(lo, hi)`` with ``lo < hi``; returned as a (hashable) tuple."""
    if clip is None:
        return None
    if not (isinstance(clip, (tuple, list)) and len(clip) == 2):
        raise TypeError(f"`clip` must be None or a pair (lo, hi), got {clip!r}")
    lo, hi = clip
    _checks.check_number("clip[0]", lo)
    _checks.check_number("clip[1]", hi)
    if not lo < hi:
        raise ValueError(f"`clip` must be (lo, hi) with lo < hi, got {tuple(clip)}")
    return float(lo), float(hi)


def _check_clip(clip: Any, x: Any) -> tuple[float, float] | None:
    """:func:`_check_clip_pair`, and the clean inputs ``x`` must lie in the range."""
    clip = _check_clip_pair(clip)
    if clip is None:
        return None
    lo, hi = clip
    if _checks.is_concrete(x):
        arr = np.asarray(x)
        if arr.min() < lo or arr.max() > hi:
            raise ValueError(f"`x` has values in [{arr.min():.6g}, {arr.max():.6g}], outside "
                             f"`clip` = ({lo}, {hi}); the clean inputs must lie in the data range")
    return clip



def _check_attack(apply_fn, params, x, y, key, eps, n_steps, step_size, norm, random_start,
                  targeted, clip, restarts):
    """The arguments of the iterative attacks (:func:`pgd`, :func:`apgd`), checked before tracing:
    ``(apply, x, y, eps_values, eps_was_scalar, clip)``."""
    apply = as_apply(apply_fn)
    x, y, _ = _check_classifier_batch(apply, params, x, y)
    eps_values, scalar = _check_eps(eps)
    _check_pgd_args(key, norm, n_steps, step_size, random_start, targeted)
    _check_restarts(restarts, random_start)
    return apply, x, y, eps_values, scalar, _check_clip(clip, x)


def _check_pgd_args(key, norm, n_steps, step_size, random_start, targeted) -> None:
    _checks.check_key("key", key)
    _checks.check_choice("norm", norm, NORMS)
    _checks.check_positive("n_steps", n_steps, integer=True)
    if step_size is not None:
        _checks.check_positive("step_size", step_size)
    _checks.check_bool("random_start", random_start)
    _checks.check_bool("targeted", targeted)


def _check_restarts(restarts, random_start) -> None:
    _checks.check_positive("restarts", restarts, integer=True)
    if restarts > 1 and not random_start:
        raise ValueError(f"`restarts` is {restarts} but `random_start` is False: every restart "
                         "would start from x and find the same point; use random_start=True "
                         "or restarts=1")


def _check_budget(name: str, eps: Any) -> float:
    """A scalar budget ``eps >= 0`` (the training wrappers and losses take one radius)."""
    _checks.check_nonnegative(name, eps)
    return float(eps)


# ------------------------------------------------------------------------------- the kernels

def _broadcast_eps(eps: Array, x: Array) -> Array:
    """``[n_eps]`` -> ``[n_eps, 1, ..., 1]`` to broadcast against ``[n_eps, *x.shape]``."""
    return eps.reshape(eps.shape + (1,) * x.ndim)


def _input_grad(apply, params, x: Array, y: Array, key, train: bool) -> Array:
    """``grad_x sum_i L(f(x_i), y_i)``: one example's gradient does not depend on the others."""

    def total_loss(xx):
        logits = apply(params, xx, key=key, train=train)
        return jnp.sum(losses.softmax_cross_entropy_with_integer_labels(logits, y))

    return jax.grad(total_loss)(x)


def _per_example_norm(v: Array) -> Array:
    """L2 norm of each example, shaped ``[batch, 1, ..., 1]`` to broadcast against ``v``."""
    return jnp.sqrt(jnp.sum(jnp.square(v), axis=tuple(range(1, v.ndim)), keepdims=True))


def _fgsm_direction(apply, params, x, y, targeted: bool) -> Array:
    g = _input_grad(apply, params, x, y, None, False)
    return -jnp.sign(g) if targeted else jnp.sign(g)


@functools.partial(jax.jit, static_argnames=("apply", "targeted", "clip"))
def _fgsm(apply, params, x, y, eps, *, targeted, clip):
    direction = _fgsm_direction(apply, params, x, y, targeted)
    x_adv = x[None] + _broadcast_eps(eps, x) * direction[None]
    return x_adv if clip is None else jnp.clip(x_adv, clip[0], clip[1])


def _project(x0: Array, x_adv: Array, eps: Array, norm: str, clip) -> Array:
    """Back into the eps-ball around ``x0`` (and the data range): see the module docstring."""
    if norm == "linf":
        low, high = x0 - eps, x0 + eps
        if clip is not None:
            low, high = jnp.maximum(low, clip[0]), jnp.minimum(high, clip[1])
        return jnp.clip(x_adv, low, high)
    delta = x_adv - x0
    length = _per_example_norm(delta)
    too_long = length > eps
    delta = delta * jnp.where(too_long, eps / jnp.where(too_long, length, 1.0), 1.0)
    x_adv = x0 + delta
    return x_adv if clip is None else jnp.clip(x_adv, clip[0], clip[1])


def _random_start(key, x: Array, norm: str) -> Array:
    """A point uniform in the unit ball of ``norm`` around 0, one per example, shaped like ``x``."""
    if norm == "linf":
        return jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0)
    k_dir, k_radius = jax.random.split(key)
    direction = jax.random.normal(k_dir, x.shape, x.dtype)
    direction = direction / jnp.maximum(_per_example_norm(direction), 1e-12)
    dim = x[0].size
    radius = jax.random.uniform(k_radius, (x.shape[0],) + (1,) * (x.ndim - 1), x.dtype)
    return direction * radius ** (1.0 / dim)


def _direction(g: Array, norm: str) -> Array:
    """The steepest-ascent direction for the ball's norm: ``sign(g)`` (L-inf) or ``g / ||g||_2``
    per example (L2)."""
    if norm == "linf":
        return jnp.sign(g)
    return g / jnp.maximum(_per_example_norm(g), 1e-12)


def _ascend(grad_fn, x0, x_start, eps, step_size, *, n_steps, norm, clip, ascent=1.0):
    """``n_steps`` of ``x <- P(x + ascent * step_size * d(grad_fn(x)))`` from ``x_start``."""

    def body(_, xa):
        return _project(x0, xa + ascent * step_size * _direction(grad_fn(xa), norm), eps, norm,
                        clip)

    return jax.lax.fori_loop(0, n_steps, body, x_start)


def _pgd_one(apply, params, x, y, key, eps, step_size, *, n_steps, norm, random_start, targeted,
             clip, model_key=None, train=False):
    """PGD at one (traced, scalar) ``eps``; returns ``[batch, ...]``. ``model_key`` and ``train``
    go to the model (the training wrappers attack it in train mode)."""
    start = eps * _random_start(key, x, norm) if random_start else jnp.zeros_like(x)
    x_adv = _project(x, x + start, eps, norm, clip)
    return _ascend(lambda xa: _input_grad(apply, params, xa, y, model_key, train), x, x_adv, eps,
                   step_size, n_steps=n_steps, norm=norm, clip=clip,
                   ascent=-1.0 if targeted else 1.0)


def _restart_keys(key, restarts: int):
    """The keys of restarts ``1 .. restarts - 1``: ``fold_in(key, r)`` (restart 0 uses ``key``)."""
    return jax.vmap(lambda r: jax.random.fold_in(key, r))(
        jnp.arange(1, restarts, dtype=jnp.uint32))


def _success_and_objective(apply, params, x_adv, y, targeted):
    """Per example ``[batch]``: whether the attack succeeded (untargeted: the prediction is not
    ``y``; targeted: it is ``y``) and the objective it maximises (``L(x_adv, y)``, or ``-L``)."""
    logits = apply(params, x_adv, train=False)
    ce = losses.softmax_cross_entropy_with_integer_labels(logits, y)
    predicted = jnp.argmax(logits, axis=-1)
    if targeted:
        return predicted == y, -ce
    return predicted != y, ce


def _better(success, objective, best_success, best_objective):
    """``(success, objective)`` beats the best so far: a successful point beats an unsuccessful
    one, then the higher objective wins; a tie keeps the best so far."""
    return (success & ~best_success) | ((success == best_success) & (objective > best_objective))


def _worst_case(apply, params, candidates, y, targeted):
    """Per example, the candidate of ``[R, batch, ...]`` that :func:`_better` ranks first (the
    first of equals, so candidate 0 is kept unless another is strictly better)."""
    success, objective = jax.vmap(
        lambda c: _success_and_objective(apply, params, c, y, targeted))(candidates)
    ranked = jnp.where(jnp.any(success, axis=0)[None] & ~success, -jnp.inf, objective)
    best = jnp.argmax(ranked, axis=0)                                  # [batch]
    return candidates[best, jnp.arange(candidates.shape[1])]


def _with_restarts(run, key, restarts, apply, params, y, targeted):
    """``run(key)`` from ``restarts`` keys at once (``vmap``), the worst case per example."""
    first = run(key)
    if restarts == 1:
        return first
    others = jax.vmap(run)(_restart_keys(key, restarts))
    return _worst_case(apply, params, jnp.concatenate([first[None], others]), y, targeted)


@functools.partial(jax.jit, static_argnames=("apply", "n_steps", "norm", "random_start",
                                             "targeted", "clip", "restarts"))
def _pgd(apply, params, x, y, key, eps, step_size, *, n_steps, norm, random_start, targeted,
         clip, restarts=1):
    # The same key for every epsilon: the random starts differ only by their scale.
    one = functools.partial(_pgd_one, apply, params, x, y, n_steps=n_steps, norm=norm,
                            random_start=random_start, targeted=targeted, clip=clip)

    def at_eps(e, s):
        return _with_restarts(lambda k: one(k, e, s), key, restarts, apply, params, y, targeted)

    return jax.vmap(at_eps)(eps, step_size)


def _step_sizes(eps: np.ndarray, step_size: float | None, n_steps: int) -> np.ndarray:
    if step_size is None:
        return (2.5 * eps / n_steps).astype(np.float32)
    return np.full_like(eps, step_size)


def apgd_checkpoints(n_steps: int) -> tuple[int, ...]:
    """APGD's checkpoints ``w_0 = 0 < w_1 < ... <= n_steps - 1`` (Croce & Hein 2020, Sec. 3.2).

    ``w_j = ceil(p_j * n_steps)`` with ``p_0 = 0``, ``p_1 = 0.22`` and
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``: the checks come closer together as the
    attack goes on. Computed in exact integer hundredths; checkpoints beyond the last iteration
    ``n_steps - 1`` are dropped and ones that round to the same iteration kept once.

    >>> apgd_checkpoints(100)
    (0, 22, 41, 57, 70, 80, 87, 93, 99)
    >>> apgd_checkpoints(10)
    (0, 3, 5, 6, 7, 8, 9)
    """
    _checks.check_positive("n_steps", n_steps, integer=True)
    p = [0, _APGD_P1]
    while p[-1] < 100:
        p.append(p[-1] + max(p[-1] - p[-2] - _APGD_SHRINK, _APGD_MIN_GAP))
    w = sorted({-(-pj * n_steps // 100) for pj in p})
    return tuple(v for v in w if v <= n_steps - 1)


def _apgd_schedule(n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``(is_check [n_steps] bool, window [n_steps] float32)``: iteration ``k`` is a checkpoint
    ``w_j`` and ``window[k] = w_j - w_{j-1}`` there."""
    w = apgd_checkpoints(n_steps)
    is_check = np.zeros(n_steps, bool)
    window = np.zeros(n_steps, np.float32)
    for previous, current in zip(w[:-1], w[1:], strict=True):
        is_check[current] = True
        window[current] = current - previous
    return is_check, window


def _apgd_one(apply, params, x, y, key, eps, *, n_steps, norm, random_start, targeted, clip):
    """APGD-CE at one (traced, scalar) ``eps``: Algorithm 1 of Croce & Hein 2020, per example.
    Returns ``[batch, ...]``: see :func:`apgd`."""
    sign = -1.0 if targeted else 1.0
    is_check, window = (jnp.asarray(a) for a in _apgd_schedule(n_steps))

    def evaluate(xa):
        """Per example: the objective ``f`` (to maximise), its gradient and the attack's success."""
        def total(xx):
            logits = apply(params, xx, train=False)
            f = sign * losses.softmax_cross_entropy_with_integer_labels(logits, y)
            return jnp.sum(f), (f, logits)

        (_, (f, logits)), g = jax.value_and_grad(total, has_aux=True)(xa)
        predicted = jnp.argmax(logits, axis=-1)
        return f, g, (predicted == y) if targeted else (predicted != y)

    def per_example(v):                      # [batch] -> [batch, 1, ..., 1]
        return v.reshape(v.shape + (1,) * (x.ndim - 1))

    def pick(mask, a, b):                    # per-example choice between two [batch, ...]
        return jnp.where(per_example(mask) if a.ndim > 1 else mask, a, b)

    def step(xa, g, eta):
        return _project(x, xa + per_example(eta) * _direction(g, norm), eps, norm, clip)

    start = eps * _random_start(key, x, norm) if random_start else jnp.zeros_like(x)
    x0 = _project(x, x + start, eps, norm, clip)
    f0, g0, s0 = evaluate(x0)
    eta = jnp.full(x.shape[:1], 2.0, x.dtype) * eps
    x1 = step(x0, g0, eta)
    f1, g1, s1 = evaluate(x1)
    up = f1 > f0                             # ties keep x_0 as x_max, as in the paper
    x_max, f_max, g_max = pick(up, x1, x0), pick(up, f1, f0), pick(up, g1, g0)
    first_better = _better(s1, f1, s0, f0)
    best = (pick(first_better, x1, x0), s0 | s1, pick(first_better, f1, f0))
    count = up.astype(jnp.int32)             # rises of f since the last checkpoint (here w_0)
    # (f_max, whether eta was halved) at the last checkpoint, for condition 2; none at w_0.
    check = (f_max, jnp.zeros_like(up))

    def body(k, carry):
        x_prev, x_k, f_k, g_k, eta, (x_max, f_max, g_max), best, count, check = carry
        z = step(x_k, g_k, eta)
        x_new = _project(x, x_k + APGD_MOMENTUM * (z - x_k) + (1.0 - APGD_MOMENTUM)
                         * (x_k - x_prev), eps, norm, clip)
        f_new, g_new, s_new = evaluate(x_new)
        take = _better(s_new, f_new, best[1], best[2])
        best = (pick(take, x_new, best[0]), best[1] | s_new, pick(take, f_new, best[2]))
        up = f_new > f_max
        x_max, f_max, g_max = pick(up, x_new, x_max), pick(up, f_new, f_max), pick(up, g_new, g_max)
        # Checkpoint w_j = k: condition 1 (f rose in fewer than rho of the window's steps) or
        # condition 2 (eta was not halved at w_{j-1} and f_max has not risen since): halve eta
        # and go on from x_max.
        f_max_then, halved_then = check
        at_check = is_check[k]
        stalled = count < APGD_RHO * window[k]
        flat = ~halved_then & (f_max <= f_max_then)
        halve = at_check & (stalled | flat)
        eta = jnp.where(halve, 0.5 * eta, eta)
        x_new, f_new, g_new = pick(halve, x_max, x_new), pick(halve, f_max, f_new), pick(
            halve, g_max, g_new)
        rose = (f_new > f_k).astype(jnp.int32)   # the step k -> k+1 opens the next window
        count = jnp.where(at_check, rose, count + rose)
        check = (jnp.where(at_check, f_max, f_max_then), jnp.where(at_check, halve, halved_then))
        return x_k, x_new, f_new, g_new, eta, (x_max, f_max, g_max), best, count, check

    carry = (x0, x1, f1, g1, eta, (x_max, f_max, g_max), best, count, check)
    return jax.lax.fori_loop(1, n_steps, body, carry)[6][0]


@functools.partial(jax.jit, static_argnames=("apply", "n_steps", "norm", "random_start",
                                             "targeted", "clip", "restarts"))
def _apgd(apply, params, x, y, key, eps, *, n_steps, norm, random_start, targeted, clip,
          restarts):
    one = functools.partial(_apgd_one, apply, params, x, y, n_steps=n_steps, norm=norm,
                            random_start=random_start, targeted=targeted, clip=clip)

    def at_eps(e):
        return _with_restarts(lambda k: one(k, e), key, restarts, apply, params, y, targeted)

    return jax.vmap(at_eps)(eps)


# ---------------------------------------------------------------------------------- attacks

def fgsm(apply_fn: Callable, params: Params, x: Array, y: Array, *, eps: float | Array,
         targeted: bool = False, clip: tuple[float, float] | None = None) -> Array:
    """Fast gradient sign method: ``x_adv = clip(x + s * eps * sign(grad_x L(f(x), y)))``.

    ``L`` is the softmax cross-entropy of the logits ``f(x) = apply_fn(params, x)`` (test mode);
    ``s = +1`` (untargeted: move away from the true class ``y``) or ``-1`` (``targeted``: move
    towards the target class ``y``). The gradient is taken once for all epsilons.

    Args:
      apply_fn: classifier ``apply(params, x, ...)`` returning logits ``[batch, n_classes]``.
      params: its params pytree.
      x: clean inputs ``[batch, ...]`` (float), inside ``clip`` when given.
      y: integer labels ``[batch]``: the true labels, or the target labels if ``targeted``.
      eps: L-inf budget, a number ``>= 0`` or a 1-D array of them ``[n_eps]``.
      targeted: attack towards ``y`` instead of away from it.
      clip: data range ``(lo, hi)`` the adversarial inputs are clipped to, or None.

    Returns:
      ``x_adv`` shaped like ``x`` for a scalar ``eps``, or ``[n_eps, batch, ...]`` for a vector.
    """
    apply = as_apply(apply_fn)
    x, y, _ = _check_classifier_batch(apply, params, x, y)
    eps_values, scalar = _check_eps(eps)
    _checks.check_bool("targeted", targeted)
    clip = _check_clip(clip, x)
    out = _fgsm(apply, params, jnp.asarray(x), jnp.asarray(y), jnp.asarray(eps_values),
                targeted=targeted, clip=clip)
    return out[0] if scalar else out


@_keys.key_keyword(4, "pgd(apply_fn, params, x, y, key=key, eps=...)")
def pgd(apply_fn: Callable, params: Params, x: Array, y: Array, *, key: PRNGKeyArray,
        eps: float | Array, n_steps: int = 10, step_size: float | None = None,
        norm: str = "linf", random_start: bool = True, targeted: bool = False,
        clip: tuple[float, float] | None = None, restarts: int = 1) -> Array:
    """Projected gradient descent (Madry et al. 2018) in the L-inf or L2 ball of radius ``eps``.

    ``x_0 = P(x + eps * u)`` with ``u`` uniform in the unit ball (``random_start``) or ``x_0 = x``;
    then ``x_{t+1} = P(x_t + s * step_size * d_t)`` for ``t < n_steps``, where ``d_t`` is
    ``sign(grad_x L)`` (L-inf) or ``grad_x L / ||grad_x L||_2`` per example (L2), ``s = +1``
    (untargeted) or ``-1`` (targeted) and ``P`` projects onto the ball and the data range (see the
    module docstring). The steps run in one ``lax.fori_loop``; a vector of epsilons is ``vmap``-ed
    with the same random start direction scaled by each epsilon. ``n_steps=1``, ``step_size=eps``
    and ``random_start=False`` give exactly :func:`fgsm` for L-inf (tested).

    Restarts: with ``restarts=R > 1`` the attack runs from ``R`` random starts, ``vmap``-ed in the
    same compiled program. Restart 0 uses ``key`` itself (it is the ``restarts=1`` attack, bit for
    bit) and restart ``r`` uses ``jax.random.fold_in(key, r)``. Per example the result is the
    restart ranked first by: the attack succeeded (untargeted: the prediction is not ``y``;
    targeted: it is ``y``), then the highest loss ``L(x_adv, y)`` (targeted: the lowest), then the
    lowest restart index. So per example it is never worse than ``restarts=1`` with the same key,
    by that ranking (tested).

    Args:
      apply_fn: classifier ``apply(params, x, ...)`` returning logits ``[batch, n_classes]``.
      params: its params pytree.
      x: clean inputs ``[batch, ...]`` (float), inside ``clip`` when given.
      y: integer labels ``[batch]``: true labels, or target labels if ``targeted``.
      key: ``jax.random`` key for the random starts.
      eps: radius, a number ``>= 0`` or a 1-D array of them ``[n_eps]``.
      n_steps: number of gradient steps, ``>= 1``.
      step_size: size of each step; default ``2.5 * eps / n_steps`` (per epsilon, Madry et al.).
      norm: ``"linf"`` or ``"l2"``.
      random_start: start from a uniform random point of the ball.
      targeted: attack towards ``y`` instead of away from it.
      clip: data range ``(lo, hi)``, or None.
      restarts: number of random starts, ``>= 1`` (``> 1`` needs ``random_start``).

    Returns:
      ``x_adv`` shaped like ``x`` for a scalar ``eps``, or ``[n_eps, batch, ...]`` for a vector.
    """
    apply, x, y, eps_values, scalar, clip = _check_attack(
        apply_fn, params, x, y, key, eps, n_steps, step_size, norm, random_start, targeted, clip,
        restarts)
    out = _pgd(apply, params, jnp.asarray(x), jnp.asarray(y), key, jnp.asarray(eps_values),
               jnp.asarray(_step_sizes(eps_values, step_size, n_steps)), n_steps=n_steps,
               norm=norm, random_start=random_start, targeted=targeted, clip=clip,
               restarts=restarts)
    return out[0] if scalar else out


def apgd(apply_fn: Callable, params: Params, x: Array, y: Array, *, key: PRNGKeyArray,
         eps: float | Array, n_steps: int = 100, norm: str = "linf", random_start: bool = True,
         targeted: bool = False, clip: tuple[float, float] | None = None,
         restarts: int = 1) -> Array:
    """Auto-PGD on the cross-entropy, APGD-CE (Croce & Hein 2020, Algorithm 1): PGD with
    momentum and a step size that adapts itself; nothing to tune but ``n_steps``.

    Per example, with ``f = L(x_adv, y)`` (targeted: ``-L``), ``P`` the projection of :func:`pgd`
    and ``d`` its direction (``sign`` for L-inf, ``grad / ||grad||_2`` for L2)::

        eta_0 = 2 eps;  x_1 = P(x_0 + eta_0 d(grad f(x_0)))
        z_{k+1} = P(x_k + eta_k d(grad f(x_k)))
        x_{k+1} = P(x_k + 0.75 (z_{k+1} - x_k) + 0.25 (x_k - x_{k-1}))       k = 1 .. n_steps - 1

    ``x_max`` is the iterate with the highest ``f`` so far. At each checkpoint ``w_j`` of
    :func:`apgd_checkpoints` the step size is halved, and the next step starts from ``x_max``,
    when ``f`` rose in fewer than ``0.75 (w_j - w_{j-1})`` of the steps since ``w_{j-1}``
    (condition 1) or when ``eta`` was not halved at ``w_{j-1}`` and ``f_max`` has not risen since
    (condition 2). ``x_0`` is a uniform random point of the ball (``random_start``, as
    :func:`pgd`) or ``x``. The attack evaluates ``n_steps + 1`` gradients (one per iterate
    ``x_0 .. x_{n_steps}``); PGD with ``n_steps`` evaluates ``n_steps``.

    The result is, per example, the iterate ranked first by: the attack succeeded (untargeted:
    the prediction is not ``y``; targeted: it is ``y``), then the highest ``f`` (the paper returns
    ``x_max``; AutoAttack also keeps a misclassified iterate). ``restarts`` works as in
    :func:`pgd`. Epsilons are ``vmap``-ed; everything runs in one compiled program.

    Args:
      apply_fn: classifier ``apply(params, x, ...)`` returning logits ``[batch, n_classes]``.
      params: its params pytree.
      x: clean inputs ``[batch, ...]`` (float), inside ``clip`` when given.
      y: integer labels ``[batch]``: true labels, or target labels if ``targeted``.
      key: ``jax.random`` key for the random starts.
      eps: radius, a number ``>= 0`` or a 1-D array of them ``[n_eps]``.
      n_steps: iterations ``N_iter``, ``>= 1`` (the paper uses 100).
      norm: ``"linf"`` or ``"l2"``.
      random_start: start from a uniform random point of the ball.
      targeted: attack towards ``y`` (minimise its cross-entropy) instead of away from it.
      clip: data range ``(lo, hi)``, or None.
      restarts: number of random starts, ``>= 1`` (``> 1`` needs ``random_start``).

    Returns:
      ``x_adv`` shaped like ``x`` for a scalar ``eps``, or ``[n_eps, batch, ...]`` for a vector.
    """
    apply, x, y, eps_values, scalar, clip = _check_attack(
        apply_fn, params, x, y, key, eps, n_steps, None, norm, random_start, targeted, clip,
        restarts)
    out = _apgd(apply, params, jnp.asarray(x), jnp.asarray(y), key, jnp.asarray(eps_values),
                n_steps=n_steps, norm=norm, random_start=random_start, targeted=targeted,
                clip=clip, restarts=restarts)
    return out[0] if scalar else out


# --------------------------------------------------------------------------- robust accuracy

_ATTACK_OPTIONS = {"fgsm": {},
                   "pgd": {"n_steps": 10, "step_size": None, "random_start": True, "restarts": 1},
                   "apgd": {"n_steps": 100, "random_start": True, "restarts": 1}}


def _parse_attacks(attacks: Any, norm: str) -> tuple[list[str], list[tuple[str, dict]]]:
    """``(labels, [(name, options with defaults)])`` from names and ``(name, {options})`` pairs."""
    if isinstance(attacks, str) or not isinstance(attacks, (tuple, list)) or not attacks:
        raise TypeError("`attacks` must be a non-empty tuple or list of attack names "
                        f"{list(STRONG_ATTACKS)} or (name, {{options}}) pairs, got {attacks!r}")
    labels, parsed = [], []
    for item in attacks:
        if isinstance(item, str):
            name, options = item, {}
        elif (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
              and isinstance(item[1], dict)):
            name, options = item
        else:
            raise TypeError(f"each entry of `attacks` must be a name {list(STRONG_ATTACKS)} or a "
                            f"(name, {{options}}) pair, got {item!r}")
        _checks.check_choice("attacks", name, STRONG_ATTACKS)
        unknown = sorted(set(options) - set(_ATTACK_OPTIONS[name]))
        if unknown:
            raise ValueError(f"attack {name!r} takes the options "
                             f"{sorted(_ATTACK_OPTIONS[name])}, got {unknown}")
        if name == "fgsm" and norm != "linf":
            raise ValueError(f"'fgsm' is an L-inf attack but `norm` is {norm!r}; drop it from "
                             "`attacks` or use norm='linf'")
        full = {**_ATTACK_OPTIONS[name], **options}
        if name != "fgsm":
            _checks.check_positive(f"{name} n_steps", full["n_steps"], integer=True)
            if full.get("step_size") is not None:
                _checks.check_positive(f"{name} step_size", full["step_size"])
            _checks.check_bool(f"{name} random_start", full["random_start"])
            _check_restarts(full["restarts"], full["random_start"])
        label = name if not options else (
            f"{name}(" + ", ".join(f"{k}={v}" for k, v in sorted(options.items())) + ")")
        if label in labels:
            raise ValueError(f"`attacks` names {label!r} twice")
        labels.append(label)
        parsed.append((name, full))
    return labels, parsed


@functools.partial(jax.jit, static_argnames=("apply", "attacks", "batch_size", "norm", "clip"))
def _robust_accuracy(apply, params, x, y, key, eps, step_sizes, *, attacks, batch_size, norm,
                     clip):
    n = x.shape[0]
    n_batches = -(-n // batch_size)
    pad = n_batches * batch_size - n
    xb = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
    xb = xb.reshape(n_batches, batch_size, *x.shape[1:])
    yb = jnp.pad(y, (0, pad)).reshape(n_batches, batch_size)

    def one_batch(inputs):
        xi, yi, i = inputs
        clean = jnp.argmax(apply(params, xi, train=False), axis=-1) == yi
        correct = []
        for a, (name, n_steps, random_start, restarts) in enumerate(attacks):
            k = jax.random.fold_in(jax.random.fold_in(key, a), i)
            if name == "fgsm":
                x_adv = _fgsm(apply, params, xi, yi, eps, targeted=False, clip=clip)
            elif name == "pgd":
                x_adv = _pgd(apply, params, xi, yi, k, eps, step_sizes[a], n_steps=n_steps,
                             norm=norm, random_start=random_start, targeted=False, clip=clip,
                             restarts=restarts)
            else:
                x_adv = _apgd(apply, params, xi, yi, k, eps, n_steps=n_steps, norm=norm,
                              random_start=random_start, targeted=False, clip=clip,
                              restarts=restarts)
            logits = jax.vmap(lambda xa: apply(params, xa, train=False))(x_adv)
            correct.append(jnp.argmax(logits, axis=-1) == yi[None, :])    # [n_eps, batch]
        return clean, jnp.stack(correct)

    clean, correct = jax.lax.map(one_batch, (xb, yb, jnp.arange(n_batches, dtype=jnp.uint32)))
    clean = clean.reshape(-1)[:n]
    correct = jnp.moveaxis(correct, 0, 2).reshape(len(attacks), eps.shape[0], -1)[:, :, :n]
    return clean, correct


def robust_accuracy(apply_fn: Callable, params: Params, x: Array, y: Array, *,
                    eps: float | Array, key: PRNGKeyArray, attacks: Any = DEFAULT_ATTACKS,
                    norm: str = "linf", clip: tuple[float, float] | None = None,
                    batch_size: int = 512) -> dict[str, Any]:
    """Accuracy under each attack and the worst case over them, per example.

    The threat model (``eps``, ``norm``, ``clip``) is shared; the attacks differ in how they
    search it. Example ``i`` counts as robust at ``eps_j`` only if the model classifies it
    correctly clean and under every attack (all untargeted)::

        accuracy[a][j] = 1/n sum_i [argmax f(x_adv_aij) = y_i]
        worst_case[j]  = 1/n sum_i [argmax f(x_i) = y_i] * prod_a [argmax f(x_adv_aij) = y_i]

    so ``worst_case <= min(clean, min_a accuracy[a])`` (an attack that fails on an example the
    model already gets wrong does not make it robust). This is how Croce & Hein (2020) report
    robustness: the minimum over an ensemble, not the best number of one attack. FGSM is in the
    default ensemble as a diagnostic: FGSM accuracy far above APGD's is the signature of gradient
    masking (Athalye, Carlini & Wagner 2018).

    The data go through in chunks of ``batch_size`` (one ``lax.map`` in one ``jit``; every attack
    and epsilon of a chunk in the same program). Attack ``a`` (its position in ``attacks``) uses
    the key ``fold_in(fold_in(key, a), chunk_index)`` as its :func:`pgd` / :func:`apgd` key.

    Args:
      apply_fn: classifier returning logits ``[batch, n_classes]``.
      params: its params.
      x: clean inputs ``[n, ...]`` (float), inside ``clip`` when given; y: true labels ``[n]``.
      eps: radius, a number ``>= 0`` or a 1-D array of them ``[n_eps]``.
      key: ``jax.random`` key for the random starts.
      attacks: names from ``("fgsm", "pgd", "apgd")`` or ``(name, {options})`` pairs, e.g.
        ``("fgsm", ("pgd", {"restarts": 5}), ("apgd", {"n_steps": 50}))``; options are those of
        :func:`pgd` (``n_steps``, ``step_size``, ``random_start``, ``restarts``) and :func:`apgd`
        (``n_steps``, ``random_start``, ``restarts``). An entry's label is its name, or its name
        with its options (``"pgd(restarts=5)"``); labels must differ. Default:
        ``("fgsm", ("pgd", {"restarts": 5}), "apgd")``.
      norm: ``"linf"`` or ``"l2"`` (FGSM is L-inf only).
      clip: data range ``(lo, hi)``, or None.
      batch_size: examples attacked at once.

    Returns:
      ``{"eps", "clean", "accuracy": {label: ...}, "worst_case", "clean_correct": bool [n],
      "correct": {label: bool [n_eps, n]}, "worst_case_correct": bool [n_eps, n]}`` as numpy
      values; for a scalar ``eps`` the accuracies are floats and the per-example masks ``[n]``.
    """
    apply = as_apply(apply_fn)
    x, y, _ = _check_classifier_batch(apply, params, x, y)
    eps_values, scalar = _check_eps(eps)
    _checks.check_key("key", key)
    _checks.check_choice("norm", norm, NORMS)
    labels, parsed = _parse_attacks(attacks, norm)
    _checks.check_positive("batch_size", batch_size, integer=True)
    clip = _check_clip(clip, x)
    static = tuple((name, o.get("n_steps", 1), o.get("random_start", False), o.get("restarts", 1))
                   for name, o in parsed)
    step_sizes = tuple(jnp.asarray(_step_sizes(eps_values, o.get("step_size"), o.get("n_steps", 1)))
                       for _, o in parsed)
    clean, correct = _robust_accuracy(
        apply, params, jnp.asarray(x), jnp.asarray(y), key, jnp.asarray(eps_values), step_sizes,
        attacks=static, batch_size=min(batch_size, x.shape[0]), norm=norm, clip=clip)
    clean, correct = np.asarray(clean), np.asarray(correct)           # [n], [attacks, n_eps, n]
    worst = clean[None, :] & np.all(correct, axis=0)                    # [n_eps, n]

    def out(v):
        return v[0] if scalar else v

    return {"eps": out(eps_values), "clean": float(clean.mean()),
            "accuracy": {label: out(correct[a].mean(axis=-1)) for a, label in enumerate(labels)},
            "worst_case": out(worst.mean(axis=-1)), "clean_correct": clean,
            "correct": {label: out(correct[a]) for a, label in enumerate(labels)},
            "worst_case_correct": out(worst)}


# -------------------------------------------------------------------------- robustness curve

@functools.partial(jax.jit, static_argnames=("apply", "attack", "batch_size", "n_steps", "norm",
                                             "random_start", "clip"))
def _robustness_curve(apply, params, x, y, key, eps, step_size, *, attack, batch_size, n_steps,
                      norm, random_start, clip):
    n = x.shape[0]
    n_batches = -(-n // batch_size)
    pad = n_batches * batch_size - n
    xb = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
    xb = xb.reshape(n_batches, batch_size, *x.shape[1:])
    yb = jnp.pad(y, (0, pad)).reshape(n_batches, batch_size)
    valid = (jnp.arange(n_batches * batch_size) < n).reshape(n_batches, batch_size)

    def one_batch(inputs):
        xi, yi, vi, i = inputs
        if attack == "fgsm":
            x_adv = _fgsm(apply, params, xi, yi, eps, targeted=False, clip=clip)
        else:
            x_adv = _pgd(apply, params, xi, yi, jax.random.fold_in(key, i), eps, step_size,
                         n_steps=n_steps, norm=norm, random_start=random_start, targeted=False,
                         clip=clip)
        probs = jax.nn.softmax(jax.vmap(lambda xa: apply(params, xa, train=False))(x_adv))
        wrong = (jnp.argmax(probs, axis=-1) != yi[None, :]) & vi[None, :]   # [n_eps, batch]
        confidence = jnp.max(probs, axis=-1)
        return (jnp.sum(wrong, axis=1), jnp.sum(jnp.where(wrong, confidence, 0.0), axis=1))

    n_wrong, wrong_confidence = jax.lax.map(
        one_batch, (xb, yb, valid, jnp.arange(n_batches, dtype=jnp.uint32)))
    n_wrong = jnp.sum(n_wrong, axis=0)
    wrong_confidence = jnp.sum(wrong_confidence, axis=0)
    mean_confidence = jnp.where(n_wrong > 0, wrong_confidence / jnp.maximum(n_wrong, 1), jnp.nan)
    return (n - n_wrong) / n, mean_confidence


def robustness_curve(apply_fn: Callable, params: Params, x: Array, y: Array,
                     eps_values: Array, *, attack: str = "fgsm", key: PRNGKeyArray | None = None,
                     clip: tuple[float, float] | None = None, batch_size: int = 512,
                     n_steps: int = 10, step_size: float | None = None, norm: str = "linf",
                     random_start: bool = True) -> dict[str, np.ndarray]:
    """Accuracy under attack as a function of epsilon, and the confidence of the wrong answers.

    For each ``eps_j`` every example is attacked (untargeted :func:`fgsm` or :func:`pgd`) and the
    model's test-mode prediction on ``x_adv`` is compared to ``y``::

        accuracy[j]              = 1/n sum_i [argmax f(x_adv_ij) = y_i]
        mean_confidence_wrong[j] = mean over the misclassified i of max_k softmax(f(x_adv_ij))_k

    (the second is Goodfellow et al.'s "average confidence on the incorrect label"; NaN when no
    example is misclassified). The data go through in chunks of ``batch_size`` (one ``lax.map``
    inside one ``jit``), so memory is ``O(n_eps * batch_size)`` inputs. PGD uses the key
    ``fold_in(key, chunk_index)`` for chunk ``chunk_index``.

    Args:
      apply_fn: classifier returning logits ``[batch, n_classes]``.
      params: its params.
      x: clean inputs ``[n, ...]``; y: true labels ``[n]``.
      eps_values: 1-D array of budgets ``[n_eps]``, each ``>= 0`` (include 0 for clean accuracy).
      attack: ``"fgsm"`` or ``"pgd"`` (then ``key`` is required and ``n_steps``, ``step_size``,
        ``norm``, ``random_start`` are passed to :func:`pgd`; FGSM is L-inf only).
      key: ``jax.random`` key (PGD only).
      clip: data range ``(lo, hi)`` or None.
      batch_size: examples attacked at once.

    Returns:
      ``{"eps": [n_eps], "accuracy": [n_eps], "mean_confidence_wrong": [n_eps]}``, numpy arrays.
    """
    apply = as_apply(apply_fn)
    x, y, _ = _check_classifier_batch(apply, params, x, y)
    eps_array = _checks.as_array("eps_values", eps_values)
    _checks.check_ndim("eps_values", eps_array, 1)
    eps, _ = _check_eps(eps_array)
    _checks.check_choice("attack", attack, ATTACKS)
    _checks.check_positive("batch_size", batch_size, integer=True)
    if attack == "pgd":
        if key is None:
            raise ValueError("`key` is required for attack='pgd' (its random start)")
        _check_pgd_args(key, norm, n_steps, step_size, random_start, False)
    elif norm != "linf":
        raise ValueError(f"attack='fgsm' is an L-inf attack; got norm={norm!r} (use attack='pgd')")
    clip = _check_clip(clip, x)
    key = jax.random.key(0) if key is None else key  # unused by FGSM, keeps one compiled signature
    accuracy, confidence = _robustness_curve(
        apply, params, jnp.asarray(x), jnp.asarray(y), key, jnp.asarray(eps),
        jnp.asarray(_step_sizes(eps, step_size, n_steps)), attack=attack,
        batch_size=min(batch_size, x.shape[0]), n_steps=n_steps, norm=norm,
        random_start=random_start, clip=clip)
    return {"eps": eps, "accuracy": np.asarray(accuracy),
            "mean_confidence_wrong": np.asarray(confidence)}


# ------------------------------------------------------------------------ adversarial training

def adversarial_loss(apply_fn: Callable, params: Params, x: Array, y: Array, *, eps: float,
                     alpha: float = 0.5, clip: tuple[float, float] | None = None,
                     key: PRNGKeyArray | None = None, train: bool = False) -> Array:
    """Goodfellow et al.'s adversarial objective with the true labels, as a scalar to minimise:

    ``alpha * mean_i L(f(x_i), y_i) + (1 - alpha) * mean_i L(f(x_i + eps sign(grad_x L)), y_i)``

    The perturbation is computed at the current ``params`` and held fixed
    (``lax.stop_gradient``): the gradient with respect to ``params`` is that of the loss at the
    adversarial points, not through the attack. Use it in a hand-written training step
    (``jax.grad(adversarial_loss, argnums=1)``); to train with :func:`jaxlearn.train.fit`, whose
    loss sees only ``(outputs, y)``, use :func:`adversarial_apply`.

    Args:
      apply_fn: classifier returning logits ``[batch, n_classes]``.
      params: its params. x: inputs ``[batch, ...]``. y: labels ``[batch]``.
      eps: FGSM budget ``>= 0``. alpha: weight of the clean loss, in ``[0, 1]``.
      clip: data range ``(lo, hi)`` or None.
      key, train: passed to the model for both forward passes (dropout).

    Returns:
      A float scalar.
    """
    apply = as_apply(apply_fn)
    _checks.check_nonnegative("eps", eps)
    _checks.check_in_range("alpha", alpha, 0.0, 1.0, include_high=True)
    _checks.check_bool("train", train)
    clip = _check_clip_pair(clip)
    return _adversarial_loss(apply, params, x, y, key, eps, alpha, clip, train)


def _adversarial_loss(apply, params, x, y, key, eps, alpha, clip, train):
    ce = losses.softmax_cross_entropy_with_integer_labels
    g = _input_grad(apply, params, x, y, key, train)
    x_adv = jax.lax.stop_gradient(x + eps * jnp.sign(g))
    if clip is not None:
        x_adv = jnp.clip(x_adv, clip[0], clip[1])
    clean = jnp.mean(ce(apply(params, x, key=key, train=train), y))
    adv = jnp.mean(ce(apply(params, x_adv, key=key, train=train), y))
    return alpha * clean + (1.0 - alpha) * adv


def adversarial_apply(apply_fn: Callable, *, eps: float, alpha: float = 0.5,
                      clip: tuple[float, float] | None = None) -> Callable:
    """Wraps a classifier for FGSM adversarial training with :func:`jaxlearn.train.fit`.

    The returned ``apply(params, x, *, key=None, train=False)`` is ``apply_fn`` unchanged in test
    mode (so validation, :func:`~jaxlearn.train.evaluate` and attacks see the plain model). In
    train mode it returns, for each example ``i`` independently, the logits of the clean input
    with probability ``alpha`` and otherwise those of its FGSM example
    ``x_i + eps * sign(grad_x L(f(x_i), yhat_i))``, built at the current params and held fixed
    (``lax.stop_gradient``). The expected training loss is therefore Goodfellow et al.'s
    ``alpha * L(clean) + (1 - alpha) * L(adversarial)``.

    The attack uses the model's own prediction ``yhat = argmax f(x)`` as the label, since
    ``apply`` does not see ``y``: this is the variant Kurakin, Goodfellow & Bengio (2017,
    "Adversarial machine learning at scale") recommend to avoid *label leaking*. For the
    true-label objective use :func:`adversarial_loss` in your own step.

    Args:
      apply_fn: classifier returning logits ``[batch, n_classes]``.
      eps: FGSM budget ``>= 0``.
      alpha: probability of keeping an example clean, in ``[0, 1]``.
      clip: data range ``(lo, hi)`` for the adversarial inputs, or None.

    Returns:
      ``apply(params, x, *, key=None, train=False)``; ``key`` is required when ``train=True``.

    Example::

        >>> model = jl.nn.mlp((32,), 10)
        >>> _, params = model.init(jax.random.key(0), (64,))
        >>> x = jax.random.uniform(jax.random.key(1), (16, 64))
        >>> robust = adversarial_apply(model.apply, eps=0.1, clip=(0.0, 1.0))   # for jl.fit
        >>> bool(jnp.all(robust(params, x) == model.apply(params, x)))   # evaluation: clean x
        True
        >>> attacked = robust(params, x, key=jax.random.key(2), train=True)   # training step
        >>> attacked.shape, bool(jnp.any(attacked != model.apply(params, x)))
        ((16, 10), True)

        Train with ``jl.fit(robust, params, x, y, loss=..., optimizer=..., key=..., ...)``; the
        returned params are those of ``model``, evaluated with ``model.apply``.
    """
    inner = as_apply(apply_fn)
    _checks.check_nonnegative("eps", eps)
    _checks.check_in_range("alpha", alpha, 0.0, 1.0, include_high=True)
    clip = _check_clip_pair(clip)

    def apply(params, x, *, key=None, train=False):
        if not train:
            return inner(params, x, key=key, train=False)
        if key is None:
            raise ValueError("adversarial_apply: `key` is required when `train=True` (it draws "
                             "which examples stay clean)")
        k_mix, k_model = jax.random.split(key)
        clean = inner(params, x, key=k_model, train=True)
        predicted = jnp.argmax(jax.lax.stop_gradient(clean), axis=-1)
        g = _input_grad(inner, params, x, predicted, k_model, True)
        x_adv = jax.lax.stop_gradient(x + eps * jnp.sign(g))
        if clip is not None:
            x_adv = jnp.clip(x_adv, clip[0], clip[1])
        adversarial = inner(params, x_adv, key=k_model, train=True)
        keep_clean = jax.random.bernoulli(k_mix, alpha, (x.shape[0], 1))
        return jnp.where(keep_clean, clean, adversarial)

    return apply


def _pgd_training_args(eps, n_steps, step_size, norm, random_start, clip):
    """Checks of the PGD training wrappers; returns ``(eps, step_size, clip)`` as used."""
    eps = _check_budget("eps", eps)
    _checks.check_choice("norm", norm, NORMS)
    _checks.check_positive("n_steps", n_steps, integer=True)
    if step_size is not None:
        _checks.check_positive("step_size", step_size)
    _checks.check_bool("random_start", random_start)
    step = float(_step_sizes(np.float32([eps]), step_size, n_steps)[0])
    return np.float32(eps), np.float32(step), _check_clip_pair(clip)


def pgd_loss(apply_fn: Callable, params: Params, x: Array, y: Array, *, key: PRNGKeyArray,
             eps: float, n_steps: int = 10, step_size: float | None = None, norm: str = "linf",
             random_start: bool = True, clip: tuple[float, float] | None = None) -> Array:
    """Madry et al.'s (2018) adversarial training objective with the true labels, a scalar:

    ``mean_i L(f(x_adv_i), y_i)`` with ``x_adv = pgd(apply_fn, params, x, y, key=key, ...)``

    The PGD points are computed at the current ``params`` (test mode) and held fixed
    (``lax.stop_gradient``; the attack is not differentiated, by Danskin's theorem the gradient of
    the max is the gradient at the maximiser): ``jax.grad(pgd_loss, argnums=1)`` is the
    cross-entropy gradient at ``x_adv`` (tested). For :func:`jaxlearn.train.fit` use
    :func:`pgd_apply`.

    Args:
      apply_fn: classifier returning logits ``[batch, n_classes]``.
      params: its params. x: inputs ``[batch, ...]``. y: labels ``[batch]``.
      key: the random start's key, as :func:`pgd`'s.
      eps, n_steps, step_size, norm, random_start, clip: as :func:`pgd` (``eps`` one number).

    Returns:
      A float scalar.
    """
    apply = as_apply(apply_fn)
    _checks.check_key("key", key)
    eps, step, clip = _pgd_training_args(eps, n_steps, step_size, norm, random_start, clip)
    x_adv = _pgd_one(apply, jax.lax.stop_gradient(params), x, y, key, eps, step,
                     n_steps=n_steps, norm=norm, random_start=random_start, targeted=False,
                     clip=clip)
    logits = apply(params, jax.lax.stop_gradient(x_adv), train=False)
    return jnp.mean(losses.softmax_cross_entropy_with_integer_labels(logits, y))


def pgd_apply(apply_fn: Callable, *, eps: float, n_steps: int = 10,
              step_size: float | None = None, norm: str = "linf", random_start: bool = True,
              clip: tuple[float, float] | None = None) -> Callable:
    """Wraps a classifier for PGD adversarial training (Madry et al. 2018) with
    :func:`jaxlearn.train.fit`.

    The returned ``apply(params, x, *, key=None, train=False)`` is ``apply_fn`` unchanged in test
    mode. In train mode it returns the logits of the PGD examples of the batch (every example,
    as Madry et al. train), built at the current params by :func:`pgd` on the model in train mode
    and held fixed (``lax.stop_gradient``), so that fit's cross-entropy is the loss at the
    adversarial points. As in :func:`adversarial_apply` the attack's label is the model's own
    prediction ``argmax f(x)``, since ``apply`` does not see ``y``; on the training examples the
    model classifies correctly it is the true label, and :func:`pgd_loss` is the true-label
    objective. ``key`` is split into the random start's key and the model's key (dropout), the
    same for the prediction, the attack and the returned forward pass.

    Args:
      apply_fn: classifier returning logits ``[batch, n_classes]``.
      eps, n_steps, step_size, norm, random_start, clip: as :func:`pgd` (``eps`` one number).

    Returns:
      ``apply(params, x, *, key=None, train=False)``; ``key`` is required when ``train=True``.

    Example::

        >>> model = jl.nn.mlp((32,), 10)
        >>> _, params = model.init(jax.random.key(0), (64,))
        >>> x = jax.random.uniform(jax.random.key(1), (16, 64))
        >>> robust_model = pgd_apply(model.apply, eps=0.1, n_steps=5, clip=(0.0, 1.0))
        >>> bool(jnp.all(robust_model(params, x) == model.apply(params, x)))   # test mode
        True

        Train with ``jl.fit(robust_model, params, x, y, loss=..., key=..., ...)``.
    """
    inner = as_apply(apply_fn)
    eps, step, clip = _pgd_training_args(eps, n_steps, step_size, norm, random_start, clip)

    def apply(params, x, *, key=None, train=False):
        if not train:
            return inner(params, x, key=key, train=False)
        if key is None:
            raise ValueError("pgd_apply: `key` is required when `train=True` (it draws the "
                             "random starts)")
        k_start, k_model = jax.random.split(key)
        fixed = jax.lax.stop_gradient(params)
        predicted = jnp.argmax(inner(fixed, x, key=k_model, train=True), axis=-1)
        x_adv = _pgd_one(inner, fixed, x, predicted, k_start, eps, step, n_steps=n_steps,
                         norm=norm, random_start=random_start, targeted=False, clip=clip,
                         model_key=k_model, train=True)
        return inner(params, jax.lax.stop_gradient(x_adv), key=k_model, train=True)

    return apply


# TRADES' first point: x plus Gaussian noise of this scale (Zhang et al.'s code, data in [0, 1]):
# the KL term is 0 with a zero gradient at x' = x, so the ascent cannot start from x itself.
TRADES_START_NOISE = 0.001


def _trades_attack(apply, params, x, clean_logits, key, eps, step_size, *, n_steps, norm, clip,
                   model_key=None, train=False):
    """``x'`` in the ball that (approximately) maximises ``KL(softmax f(x) || softmax f(x'))``."""
    target = jax.lax.stop_gradient(clean_logits)

    def grad_fn(xa):
        def total(xx):
            logits = apply(params, xx, key=model_key, train=train)
            return jnp.sum(losses.kl_divergence_from_logits(target, logits))
        return jax.grad(total)(xa)

    noise = TRADES_START_NOISE * jax.random.normal(key, x.shape, x.dtype)
    start = _project(x, x + noise, eps, norm, clip)
    return _ascend(grad_fn, x, start, eps, step_size, n_steps=n_steps, norm=norm, clip=clip)


def _trades_args(eps, beta, n_steps, step_size, norm, clip):
    _checks.check_nonnegative("beta", beta)
    eps, step, clip = _pgd_training_args(eps, n_steps, step_size, norm, True, clip)
    return eps, float(beta), step, clip


def _trades_per_example(clean_logits, adv_logits, y, beta):
    ce = losses.softmax_cross_entropy_with_integer_labels(clean_logits, y)
    return ce + beta * losses.kl_divergence_from_logits(clean_logits, adv_logits)


def trades_loss(apply_fn: Callable, params: Params, x: Array, y: Array, *, key: PRNGKeyArray,
                eps: float, beta: float = 6.0, n_steps: int = 10,
                step_size: float | None = None, norm: str = "linf",
                clip: tuple[float, float] | None = None) -> Array:
    """The TRADES objective (Zhang et al. 2019, "Theoretically principled trade-off between
    robustness and accuracy"), a scalar to minimise:

    ``mean_i [ L(f(x_i), y_i) + beta * KL(softmax f(x_i) || softmax f(x'_i)) ]``

    with ``x' = argmax_{x' in ball(x, eps)} KL(softmax f(x) || softmax f(x'))``, approximated by
    ``n_steps`` steps of :func:`pgd`'s update on the KL (no label needed) from
    ``x + 0.001 N(0, I)`` (``key``; projected onto the ball), as in the authors' code. ``x'`` is
    held fixed (``lax.stop_gradient``); the KL is differentiated through both ``f(x)`` and
    ``f(x')``, as in the paper. ``beta`` trades clean accuracy for robustness (the paper: 6);
    ``beta = 0`` is the clean cross-entropy, value and gradient (tested). The model runs in test
    mode; for :func:`jaxlearn.train.fit` use :func:`trades_objective`.

    Args:
      apply_fn: classifier returning logits ``[batch, n_classes]``.
      params: its params. x: inputs ``[batch, ...]``. y: labels ``[batch]``.
      key: ``jax.random`` key for the start's noise.
      eps: radius ``>= 0``. beta: weight of the KL term, ``>= 0``.
      n_steps, step_size, norm, clip: as :func:`pgd` (step size default ``2.5 eps / n_steps``).

    Returns:
      A float scalar.
    """
    apply = as_apply(apply_fn)
    _checks.check_key("key", key)
    eps, beta, step, clip = _trades_args(eps, beta, n_steps, step_size, norm, clip)
    clean = apply(params, x, train=False)
    x_adv = _trades_attack(apply, jax.lax.stop_gradient(params), x, clean, key, eps, step,
                           n_steps=n_steps, norm=norm, clip=clip)
    adv = apply(params, jax.lax.stop_gradient(x_adv), train=False)
    return jnp.mean(_trades_per_example(clean, adv, y, beta))


class Objective(NamedTuple):
    """A model wrapper and the loss to train it with:
    ``jl.fit(objective.apply, params, x, y, loss=objective.loss, ...)``."""

    apply: Callable
    loss: Callable


def trades_objective(apply_fn: Callable, *, eps: float, beta: float = 6.0, n_steps: int = 10,
                     step_size: float | None = None, norm: str = "linf",
                     clip: tuple[float, float] | None = None) -> Objective:
    """TRADES (see :func:`trades_loss`) for :func:`jaxlearn.train.fit`: an ``apply`` and a ``loss``.

    In train mode ``apply`` returns the clean logits and those of ``x'`` (the KL maximiser, built
    at the current params on the model in train mode, held fixed) stacked as
    ``[batch, 2, n_classes]``; ``loss(outputs, y)`` is then, per example,
    ``L(f(x), y) + beta * KL(softmax f(x) || softmax f(x'))``, so fit's batch mean is
    :func:`trades_loss` (tested, for a model without dropout). In test mode ``apply`` is
    ``apply_fn`` unchanged (``[batch, n_classes]``) and ``loss`` is the cross-entropy (``x' = x``
    makes the KL 0), so validation, :func:`~jaxlearn.train.evaluate` and attacks see the plain
    model. ``key`` is split into the start noise's key and the model's key (dropout), the same
    for the clean pass, the attack and the adversarial pass. ``loss.label_kind`` is
    ``"integer"``: fit checks the labels and reports accuracy.

    Args:
      apply_fn: classifier returning logits ``[batch, n_classes]``.
      eps, beta, n_steps, step_size, norm, clip: as :func:`trades_loss`.

    Returns:
      ``Objective(apply, loss)``.
    """
    inner = as_apply(apply_fn)
    eps, beta, step, clip = _trades_args(eps, beta, n_steps, step_size, norm, clip)

    def apply(params, x, *, key=None, train=False):
        if not train:
            return inner(params, x, key=key, train=False)
        if key is None:
            raise ValueError("trades_objective: `key` is required when `train=True` (it draws "
                             "the start's noise)")
        k_start, k_model = jax.random.split(key)
        clean = inner(params, x, key=k_model, train=True)
        x_adv = _trades_attack(inner, jax.lax.stop_gradient(params), x, clean, k_start, eps,
                               step, n_steps=n_steps, norm=norm, clip=clip, model_key=k_model,
                               train=True)
        adv = inner(params, jax.lax.stop_gradient(x_adv), key=k_model, train=True)
        return jnp.stack([clean, adv], axis=1)

    def loss(outputs, y):
        if outputs.ndim == 2:  # test mode: the plain model's logits
            return losses.softmax_cross_entropy_with_integer_labels(outputs, y)
        return _trades_per_example(outputs[:, 0], outputs[:, 1], y, beta)

    loss.label_kind = "integer"
    return Objective(apply, loss)
