"""Adversarial examples: FGSM and PGD attacks, robustness curves, FGSM adversarial training.

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
  to the data range only shortens ``delta``, so the result stays in both sets.

Epsilons: ``eps`` is a number or a 1-D vector of numbers. A vector gives one adversarial batch per
epsilon, stacked on a new leading axis ``[n_eps, batch, ...]``, computed inside one ``jit`` (the
FGSM gradient is taken once; PGD is ``vmap``-ed over epsilons), never by a Python loop.

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
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks, losses
from jaxlearn.apply import as_apply

Array = jax.Array
Params = Any
PRNGKeyArray = jax.Array


NORMS = ("linf", "l2")
ATTACKS = ("fgsm", "pgd")


# ------------------------------------------------------------------------------------ checks

def _check_classifier_batch(apply, params, x: Any, y: Any) -> tuple[Any, Any, int]:
    """``x`` float ``[batch, ...]``, ``y`` int ``[batch]`` with labels below the logits' width."""
    x = _checks.as_array("x", x)
    _checks.check_float("x", x)
    if x.ndim < 2:
        raise ValueError(f"`x` must be a batch [batch, ...] with at least 2 dimensions, got shape "
                         f"{tuple(x.shape)}")
    _checks.check_nonempty("x", x)
    _checks.check_finite("x", x)
    y = _checks.as_array("y", y)
    _checks.check_ndim("y", y, 1)
    _checks.check_same_length("x", x, "y", y)
    try:
        out = jax.eval_shape(lambda p, xb: apply(p, xb), params, x[:1])
    except (ValueError, TypeError) as err:
        raise type(err)(f"`apply_fn` failed on a batch of `x` with shape "
                        f"{(1, *x.shape[1:])}: {err}") from err
    if out.ndim != 2 or out.shape[1] < 2:
        raise ValueError(f"`apply_fn` must return logits [batch, n_classes] with n_classes >= 2, "
                         f"got shape {tuple(out.shape)} for a batch of 1")
    _checks.check_labels("y", y, out.shape[1])
    return x, y, out.shape[1]


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


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {type(value).__name__} ({value!r})")


def _check_pgd_args(key, norm, n_steps, step_size, random_start, targeted) -> None:
    _checks.check_key("key", key)
    _checks.check_choice("norm", norm, NORMS)
    _checks.check_positive("n_steps", n_steps, integer=True)
    if step_size is not None:
        _checks.check_positive("step_size", step_size)
    _check_bool("random_start", random_start)
    _check_bool("targeted", targeted)


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


def _pgd_one(apply, params, x, y, key, eps, step_size, *, n_steps, norm, random_start, targeted,
             clip):
    """PGD at one (traced, scalar) ``eps``; returns ``[batch, ...]``."""
    start = eps * _random_start(key, x, norm) if random_start else jnp.zeros_like(x)
    x_adv = _project(x, x + start, eps, norm, clip)
    ascent = -1.0 if targeted else 1.0

    def body(_, xa):
        g = _input_grad(apply, params, xa, y, None, False)
        if norm == "linf":
            direction = jnp.sign(g)
        else:
            direction = g / jnp.maximum(_per_example_norm(g), 1e-12)
        return _project(x, xa + ascent * step_size * direction, eps, norm, clip)

    return jax.lax.fori_loop(0, n_steps, body, x_adv)


@functools.partial(jax.jit, static_argnames=("apply", "n_steps", "norm", "random_start",
                                             "targeted", "clip"))
def _pgd(apply, params, x, y, key, eps, step_size, *, n_steps, norm, random_start, targeted,
         clip):
    # The same key for every epsilon: the random starts differ only by their scale.
    one = functools.partial(_pgd_one, apply, params, x, y, key, n_steps=n_steps, norm=norm,
                            random_start=random_start, targeted=targeted, clip=clip)
    return jax.vmap(one)(eps, step_size)


def _step_sizes(eps: np.ndarray, step_size: float | None, n_steps: int) -> np.ndarray:
    if step_size is None:
        return (2.5 * eps / n_steps).astype(np.float32)
    return np.full_like(eps, step_size)


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
    _check_bool("targeted", targeted)
    clip = _check_clip(clip, x)
    out = _fgsm(apply, params, jnp.asarray(x), jnp.asarray(y), jnp.asarray(eps_values),
                targeted=targeted, clip=clip)
    return out[0] if scalar else out


def pgd(apply_fn: Callable, params: Params, x: Array, y: Array, key: PRNGKeyArray, *,
        eps: float | Array, n_steps: int = 10, step_size: float | None = None,
        norm: str = "linf", random_start: bool = True, targeted: bool = False,
        clip: tuple[float, float] | None = None) -> Array:
    """Projected gradient descent (Madry et al. 2018) in the L-inf or L2 ball of radius ``eps``.

    ``x_0 = P(x + eps * u)`` with ``u`` uniform in the unit ball (``random_start``) or ``x_0 = x``;
    then ``x_{t+1} = P(x_t + s * step_size * d_t)`` for ``t < n_steps``, where ``d_t`` is
    ``sign(grad_x L)`` (L-inf) or ``grad_x L / ||grad_x L||_2`` per example (L2), ``s = +1``
    (untargeted) or ``-1`` (targeted) and ``P`` projects onto the ball and the data range (see the
    module docstring). The steps run in one ``lax.fori_loop``; a vector of epsilons is ``vmap``-ed
    with the same random start direction scaled by each epsilon. ``n_steps=1``, ``step_size=eps``
    and ``random_start=False`` give exactly :func:`fgsm` for L-inf (tested).

    Args:
      apply_fn: classifier ``apply(params, x, ...)`` returning logits ``[batch, n_classes]``.
      params: its params pytree.
      x: clean inputs ``[batch, ...]`` (float), inside ``clip`` when given.
      y: integer labels ``[batch]``: true labels, or target labels if ``targeted``.
      key: ``jax.random`` key for the random start.
      eps: radius, a number ``>= 0`` or a 1-D array of them ``[n_eps]``.
      n_steps: number of gradient steps, ``>= 1``.
      step_size: size of each step; default ``2.5 * eps / n_steps`` (per epsilon, Madry et al.).
      norm: ``"linf"`` or ``"l2"``.
      random_start: start from a uniform random point of the ball.
      targeted: attack towards ``y`` instead of away from it.
      clip: data range ``(lo, hi)``, or None.

    Returns:
      ``x_adv`` shaped like ``x`` for a scalar ``eps``, or ``[n_eps, batch, ...]`` for a vector.
    """
    apply = as_apply(apply_fn)
    x, y, _ = _check_classifier_batch(apply, params, x, y)
    eps_values, scalar = _check_eps(eps)
    _check_pgd_args(key, norm, n_steps, step_size, random_start, targeted)
    clip = _check_clip(clip, x)
    out = _pgd(apply, params, jnp.asarray(x), jnp.asarray(y), key, jnp.asarray(eps_values),
               jnp.asarray(_step_sizes(eps_values, step_size, n_steps)), n_steps=n_steps,
               norm=norm, random_start=random_start, targeted=targeted, clip=clip)
    return out[0] if scalar else out


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
    _checks.check_number("eps", eps)
    if eps < 0:
        raise ValueError(f"`eps` must be >= 0, got {eps}")
    _checks.check_in_range("alpha", alpha, 0.0, 1.0, include_high=True)
    _check_bool("train", train)
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
    _checks.check_number("eps", eps)
    if eps < 0:
        raise ValueError(f"`eps` must be >= 0, got {eps}")
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
