"""One trainer for any ``apply(params, x, ...)``: mini-batch SGD as one compiled scan per epoch.

:func:`fit` trains ours (a :class:`jaxlearn.nn.Layer`'s apply), a flax module (through
:func:`from_linen` / :func:`from_nnx`) or a hand-written function, with any optax optimizer and
loss. Each epoch is one ``jax.jit``-compiled ``lax.scan`` over its steps, with the data already on
the device and the shuffling (a fresh ``jax.random.permutation`` per epoch) inside the compiled
program; params and optimizer state are donated so XLA updates them in place. Compilation happens
ahead of time (``jit(...).lower(...).compile()``) so its cost is reported apart from training time.

Python runs only between epochs: history, validation, callbacks (early stopping, user hooks), the
progress bar and the NaN/inf guard. The guard itself lives inside the step: an update whose loss or
new params are not finite is not applied, the step index is recorded, and :func:`fit` stops after
that epoch, returning the last finite params and saying which step went non-finite.

When nothing needs the host between epochs (no callbacks, validation data, progress bar or
verbose output), all full epochs run as one program, a ``lax.scan`` over the epoch scans, with
bitwise the same result as one call per epoch (tested); ``history["epoch_time"]`` then holds the
run's mean time per epoch.

Reproducibility: the key of epoch ``e`` is ``fold_in(key, e)``; it is split into the permutation key
and one key per step (for dropout). Same key, same data, same result, bitwise on CPU (tested).

Example::

    >>> model = nn.mlp((100, 100), 10, residual=True)
    >>> _, params = model.init(jax.random.key(0), (40,))
    >>> result = fit(model.apply, params, x, y, loss="softmax_cross_entropy_with_integer_labels",
    ...              optimizer=optax.adam(1e-2), key=jax.random.key(1), batch_size=100, steps=6000)
    >>> result.params, result.history["loss"], result.compile_time, result.train_time
"""

from __future__ import annotations

import collections
import functools
import inspect
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlearn import _checks, losses
from jaxlearn import checkpoint as checkpoint_lib
from jaxlearn import metrics as metrics_lib

Array = jax.Array
Params = Any

_CLASSIFICATION_LOSSES = ("softmax_cross_entropy_with_integer_labels", "softmax_cross_entropy",
                          "sigmoid_binary_cross_entropy")


# ------------------------------------------------------------------------------- adapters

def _takes_kwarg(fn: Callable, name: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    params = sig.parameters.values()
    return any(p.kind is p.VAR_KEYWORD for p in params) or name in sig.parameters


def as_apply(apply_fn: Callable) -> Callable:
    """Wraps any ``apply(params, x, ...)`` into ``apply(params, x, *, key=None, train=False)``.

    A function that does not take ``key``/``train`` keywords (a hand-written model, say) is called
    as ``apply_fn(params, x)``; one that does gets them passed through. The wrapper of a given
    function is always the same object, so compiled programs keyed on it are reused.
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

    return apply


_as_apply_cached = functools.lru_cache(maxsize=256)(_as_apply_uncached)


# Compiled programs shared across calls of fit/fit_many/evaluate: keyed on everything that shapes
# the program (the functions by identity, the static settings, the abstract values and shardings
# of the arguments), so a second fit of the same model, loss and optimizer object skips XLA.
_COMPILED: collections.OrderedDict = collections.OrderedDict()
_COMPILED_MAX = 64


def _signature(args) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(args)
    return treedef, tuple((jax.typeof(a), getattr(a, "sharding", None)) for a in leaves)


def _compile(static: tuple, build: Callable[[], Callable], args: tuple):
    """``build()`` jitted and compiled for ``args``, from the cache when ``static`` and the
    arguments' types match an earlier call."""
    key = (static, _signature(args))
    try:
        hit = _COMPILED.get(key)
    except TypeError:  # something unhashable in `static`: compile without caching
        return build().lower(*args).compile()
    if hit is not None:
        _COMPILED.move_to_end(key)
        return hit
    compiled = build().lower(*args).compile()
    _COMPILED[key] = compiled
    if len(_COMPILED) > _COMPILED_MAX:
        _COMPILED.popitem(last=False)
    return compiled


def from_linen(module: Any, *, train_kwarg: str | None = None,
               rng_collection: str = "dropout") -> Callable:
    """Adapts a ``flax.linen`` module: returns ``apply(params, x, *, key=None, train=False)``.

    ``params`` is the ``"params"`` collection (``module.init(key, x)["params"]``). If the module's
    ``__call__`` takes a flag for training (e.g. ``train`` or ``deterministic``), name it in
    ``train_kwarg``: ``"deterministic"`` is passed ``not train``, any other name ``train``. ``key``
    becomes the ``rng_collection`` RNG stream (dropout).
    """

    def apply(params, x, *, key=None, train=False):
        kwargs = {}
        if train_kwarg is not None:
            kwargs[train_kwarg] = (not train) if train_kwarg == "deterministic" else train
        rngs = {rng_collection: key} if key is not None else None
        return module.apply({"params": params}, x, rngs=rngs, **kwargs)

    return apply


def from_nnx(model: Any) -> tuple[Callable, Params]:
    """Adapts a ``flax.nnx`` module: returns ``(apply, params)`` for :func:`fit`.

    The module is split into its static graph and its ``nnx.Param`` state; ``apply`` merges them
    back for each call, so training is a pure function of the params pytree. Modules with
    ``nnx.Dropout`` or BatchNorm state are not supported by this adapter (their RNG/batch stats are
    extra state); use a linen module or our layers for those.
    """
    from flax import nnx

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def apply(params, x):
        return nnx.merge(graphdef, params, rest)(x)

    return apply, params


# ------------------------------------------------------------------------------- callbacks

class Callback(Protocol):
    """Runs between epochs. ``on_epoch_end`` returns True to stop training."""

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float], params: Params) -> bool | None:
        ...


class EarlyStopping:
    """Stops when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs and, with
    ``restore_best``, makes :func:`fit` return the params of the best epoch.

    ``monitor`` is a key of the epoch logs (``"val_loss"``, ``"val_accuracy"``, ``"loss"``...);
    ``mode`` is ``"min"`` or ``"max"``. The best params are copied (the trainer donates its
    buffers).
    """

    def __init__(self, monitor: str = "val_loss", *, patience: int = 10, mode: str = "min",
                 min_delta: float = 0.0, restore_best: bool = True):
        _checks.check_positive("patience", patience, integer=True)
        _checks.check_choice("mode", mode, ("min", "max"))
        _checks.check_number("min_delta", min_delta)
        if min_delta < 0:
            raise ValueError(f"`min_delta` must be >= 0, got {min_delta}")
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_params: Params = None
        self._wait = 0

    def on_epoch_end(self, epoch, logs, params):
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: `monitor` is {self.monitor!r} but the epoch logs "
                             f"have {sorted(logs)}; pass validation_data to monitor val_* metrics")
        value = logs[self.monitor]
        sign = 1.0 if self.mode == "min" else -1.0
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best:
                self.best_params = jax.tree_util.tree_map(jnp.copy, params)
            return False
        self._wait += 1
        return self._wait >= self.patience

    def on_train_end(self, params):
        return self.best_params if (self.restore_best and self.best_params is not None) else params


# ----------------------------------------------------------------------------------- result

class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
      params: trained params (the best ones when early stopping restored them; the last finite
        ones when the NaN guard stopped training).
      opt_state: final optimizer state.
      history: per-epoch lists: ``"loss"`` (mean training loss of the epoch's steps),
        ``"val_<metric>"`` when validation data was given, ``"epoch_time"`` (seconds).
      steps: optimizer steps applied.
      epochs: epochs run (the last may be partial when ``steps`` is not a multiple).
      compile_time: seconds spent compiling (reported apart from ``train_time``).
      train_time: seconds spent running the compiled epochs, including validation.
      stop_reason: ``None`` for a full run, otherwise why training stopped early.
    """

    params: Params
    opt_state: Any
    history: dict[str, list[float]]
    steps: int
    epochs: int
    compile_time: float
    train_time: float
    stop_reason: str | None


# ------------------------------------------------------------------------------ the kernels

def _tree_all_finite(tree) -> Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


def _make_epoch(apply, loss_fn, optimizer, penalty, batch_size: int, n_steps: int,
                nan_guard: bool, batch_sharding=None):
    """``epoch(params, opt_state, x, y, key, epoch, step0, bad_step) -> (params, opt_state,
    losses, bad_step)``, not yet jitted (:func:`fit` jits it, :func:`fit_many` vmaps then jits).

    The epoch's key is ``fold_in(key, epoch)``, drawn inside the program. ``bad_step`` is the
    first step whose update was not finite (-1 while none); once set, no further update is
    applied, also in later epochs. With ``batch_sharding`` every batch is constrained to it (data
    parallelism: XLA splits the batch over devices and all-reduces the gradients).
    """

    def objective(params, xb, yb, key):
        out = apply(params, xb, key=key, train=True)
        value = jnp.mean(loss_fn(out, yb))
        return value + penalty(params) if penalty is not None else value

    grad_fn = jax.value_and_grad(objective)

    def epoch(params, opt_state, x, y, key, epoch_index, step0, bad_step):
        k_perm, k_steps = jax.random.split(jax.random.fold_in(key, epoch_index))
        perm = jax.random.permutation(k_perm, x.shape[0])
        batches = perm[: n_steps * batch_size].reshape(n_steps, batch_size)
        step_keys = jax.random.split(k_steps, n_steps)

        def step(carry, inputs):
            params, opt_state, bad_step = carry
            idx, k, i = inputs
            xb, yb = x[idx], y[idx]
            if batch_sharding is not None:
                xb = jax.lax.with_sharding_constraint(xb, batch_sharding)
                yb = jax.lax.with_sharding_constraint(yb, batch_sharding)
            value, grads = grad_fn(params, xb, yb, k)
            updates, new_opt_state = optimizer.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            if nan_guard:
                # Keep the last finite params: a non-finite step is not applied, nor any after it.
                ok = jnp.isfinite(value) & _tree_all_finite(new_params) & (bad_step < 0)
                new_params = jax.tree_util.tree_map(
                    lambda new, old: jnp.where(ok, new, old), new_params, params)
                new_opt_state = jax.tree_util.tree_map(
                    lambda new, old: jnp.where(ok, new, old), new_opt_state, opt_state)
                bad_step = jnp.where((bad_step < 0) & ~ok, step0 + i, bad_step)
            return (new_params, new_opt_state, bad_step), value

        carry = (params, opt_state, bad_step)
        (params, opt_state, bad_step), values = jax.lax.scan(
            step, carry, (batches, step_keys, jnp.arange(n_steps, dtype=jnp.int32)))
        return params, opt_state, values, bad_step

    return epoch


def _make_epochs(epoch, n_epochs: int, n_steps: int):
    """``n_epochs`` consecutive epochs of ``epoch`` (each of ``n_steps`` steps) as one
    ``lax.scan``: the same signature, with losses of shape ``[n_epochs, n_steps]``. :func:`fit`
    uses it when nothing has to run on the host between epochs, so a whole run is one program."""

    def run(params, opt_state, x, y, key, epoch0, step0, bad_step):
        def body(carry, e):
            params, opt_state, bad_step = carry
            params, opt_state, values, bad_step = epoch(
                params, opt_state, x, y, key, epoch0 + e, step0 + e * n_steps, bad_step)
            return (params, opt_state, bad_step), values

        (params, opt_state, bad_step), values = jax.lax.scan(
            body, (params, opt_state, bad_step), jnp.arange(n_epochs, dtype=jnp.int32))
        return params, opt_state, values, bad_step

    return run


# ------------------------------------------------------------------------------ validation

def _check_fit_args(apply, params, x, y, loss_name, batch_size, epochs, steps):
    x = _checks.as_array("x", x)
    y = _checks.as_array("y", y)
    _checks.check_nonempty("x", x)
    _checks.check_same_length("x", x, "y", y)
    _checks.check_float("x", x)
    _checks.check_finite("x", x)
    _checks.check_finite("y", y)
    _checks.check_positive("batch_size", batch_size, integer=True)
    if batch_size > x.shape[0]:
        raise ValueError(f"`batch_size` is {batch_size} but there are only {x.shape[0]} samples; "
                         f"use batch_size <= {x.shape[0]}")
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of `epochs` and `steps`, got "
                         f"epochs={epochs!r}, steps={steps!r}")
    if epochs is not None:
        _checks.check_positive("epochs", epochs, integer=True)
    if steps is not None:
        _checks.check_positive("steps", steps, integer=True)
    try:
        out = jax.eval_shape(lambda p, xb: apply(p, xb), params, x[:batch_size])
    except (ValueError, TypeError) as err:
        raise type(err)(f"`apply_fn` failed on a batch of `x` with shape "
                        f"{(batch_size, *x.shape[1:])}: {err}") from err
    if loss_name == "softmax_cross_entropy_with_integer_labels":
        if out.ndim != 2:
            raise ValueError(f"loss {loss_name!r} needs outputs [batch, n_classes]; the model "
                             f"returns shape {tuple(out.shape)}")
        _checks.check_labels("y", y, out.shape[-1])
        if y.ndim != 1:
            raise ValueError(f"`y` must be integer labels of shape [n], got {tuple(y.shape)}")
    elif loss_name is not None and out.shape[1:] != y.shape[1:]:
        raise ValueError(f"loss {loss_name!r} needs targets shaped like the model's outputs: "
                         f"outputs per example {tuple(out.shape[1:])}, `y` per example "
                         f"{tuple(y.shape[1:])}")
    return x, y


def _default_metrics(loss_name):
    if loss_name in _CLASSIFICATION_LOSSES:
        return {"accuracy": metrics_lib.accuracy}
    return {}


def _as_metric_dict(metrics, loss_name) -> dict[str, Callable]:
    if metrics is None:
        return _default_metrics(loss_name)
    if isinstance(metrics, Mapping):
        for name, fn in metrics.items():
            if not callable(fn):
                raise TypeError(f"`metrics[{name!r}]` must be callable(outputs, y), "
                                f"got {type(fn).__name__}")
        return dict(metrics)
    raise TypeError(f"`metrics` must be None or a dict name -> fn(outputs, y), "
                    f"got {type(metrics).__name__}")


# ------------------------------------------------------------------------------------ fit

def fit(apply_fn: Callable, params: Params, x: Array, y: Array, *, loss: str | Callable,
        optimizer: optax.GradientTransformation, key: Array, batch_size: int,
        epochs: int | None = None, steps: int | None = None,
        validation_data: tuple[Array, Array] | None = None,
        metrics: Mapping[str, Callable] | None = None,
        penalty: Callable[[Params], Array] | None = None,
        callbacks: Sequence[Callback | Callable] = (), nan_guard: bool = True,
        progress: bool = False, verbose: bool = False,
        resume_from: str | None = None, mesh: jax.sharding.Mesh | None = None) -> FitResult:
    """Trains ``apply_fn`` by mini-batch gradient descent on shuffled data.

    Each epoch draws a permutation of the ``n`` samples and takes ``n // batch_size`` steps on
    consecutive slices of it (the ``n % batch_size`` samples left over change every epoch).
    Step ``t`` minimises ``mean_i loss(apply(params, x_i), y_i) + penalty(params)`` over its batch.

    Args:
      apply_fn: ``apply(params, x, ...)``; ``key``/``train`` are passed if it takes them (see
        :func:`as_apply`). ``x`` is a batch ``[batch, ...]``.
      params: initial params pytree (not modified; the trainer works on a copy).
      x: inputs ``[n, ...]`` (float). y: targets ``[n, ...]``.
      loss: a name from :data:`jaxlearn.losses.LOSSES` or ``fn(outputs, targets) -> [batch]``.
      optimizer: any ``optax.GradientTransformation`` (see :func:`jaxlearn.optim.make_optimizer`).
      key: ``jax.random`` key for shuffling and dropout.
      batch_size: samples per step, ``1 <= batch_size <= n``.
      epochs / steps: length of training; give exactly one. With ``steps`` the last epoch may be
        partial.
      validation_data: ``(x_val, y_val)``, evaluated after every epoch (``val_loss`` and the
        ``metrics``).
      metrics: ``{name: fn(outputs, y) -> scalar}``; default accuracy for classification losses.
      penalty: ``fn(params) -> scalar`` added to the loss (e.g. ``lambda p: lam * l2_penalty(p)``).
      callbacks: objects with ``on_epoch_end(epoch, logs, params) -> stop?`` (and optionally
        ``on_train_end(params) -> params`` and ``on_state(state, final=...)``, which receives the
        full :class:`jaxlearn.checkpoint.TrainState`, as :class:`jaxlearn.checkpoint.Checkpoint`
        does), or plain functions with the first signature.
      nan_guard: skip and stop at the first step whose loss or params are not finite.
      progress: show a tqdm progress bar over epochs.
      verbose: print one line per epoch.
      resume_from: a checkpoint folder (see :class:`jaxlearn.checkpoint.Checkpoint`). If it holds
        a loadable checkpoint, training continues from it — params, optimizer state, epoch, step
        and history — and ends bitwise equal to an uninterrupted run; if it holds none, training
        starts from ``params``. The checkpoint must come from the same ``key``, ``batch_size``,
        number of samples and length of training.
      mesh: data parallelism over the devices of a ``jax.sharding.Mesh`` with a ``"data"`` axis
        (e.g. ``jax.make_mesh((jax.device_count(),), ("data",))``): the data and params are
        replicated, each batch is split over ``"data"`` (``batch_size`` must be divisible by its
        size) and XLA all-reduces the gradients. The result equals single-device training up to
        float summation order (tested on 8 simulated CPU devices and across 2 processes).

    Returns:
      A :class:`FitResult`.
    """
    apply = as_apply(apply_fn)
    loss_name = loss if isinstance(loss, str) else None
    loss_fn = losses.get_loss(loss)
    _checks.check_key("key", key)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError("`optimizer` must be an optax.GradientTransformation (e.g. optax.adam(1e-3)"
                        f" or jaxlearn.optim.make_optimizer(...)), got {type(optimizer).__name__}")
    if penalty is not None and not callable(penalty):
        raise TypeError("`penalty` must be callable(params) -> scalar, "
                        f"got {type(penalty).__name__}")
    x, y = _check_fit_args(apply, params, x, y, loss_name, batch_size, epochs, steps)
    metric_fns = _as_metric_dict(metrics, loss_name)
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise TypeError("`validation_data` must be a pair (x_val, y_val)")
        x_val, y_val = _check_fit_args(apply, params, validation_data[0], validation_data[1],
                                       loss_name, 1, 1, None)
    cb_list = [_as_callback(cb, i) for i, cb in enumerate(callbacks)]
    place, batch_sharding = _placement(mesh, batch_size)

    n = x.shape[0]
    steps_per_epoch = n // batch_size
    total_steps = steps if steps is not None else epochs * steps_per_epoch
    n_epochs = math.ceil(total_steps / steps_per_epoch)

    _check_fits_in_memory(x, y, params, validation_data)
    # Data and key are never donated: without a mesh they need no copy, only to be on the device.
    put = jax.device_put if mesh is None else place
    x, y, key = put(x), put(y), put(key)
    params = place(params)
    opt_state = place(optimizer.init(params))
    no_bad = place(np.int32(-1))
    # Per-epoch scalars: numpy ints go to the device inside the call's fast path; a mesh needs
    # global arrays.
    scalar = (lambda v: np.int32(v)) if mesh is None else (lambda v: place(np.int32(v)))

    history: dict[str, list[float]] = {"loss": [], "epoch_time": []}
    run_meta = {"batch_size": batch_size, "n_samples": n, "total_steps": total_steps}
    start_epoch, done = 0, 0
    if resume_from is not None:
        resumed = _resume(resume_from, key, params, opt_state, run_meta)
        if resumed is not None:
            params, opt_state, history, start_epoch, done = resumed
            params, opt_state = place(params), place(opt_state)
    # With nothing to run on the host between epochs, all full epochs are one program (a scan
    # over epochs of the epoch scan); otherwise one program call per epoch.
    per_epoch = bool(cb_list) or validation_data is not None or progress or verbose
    state_cbs = [cb for cb in cb_list if hasattr(cb, "on_state")]
    n_full = total_steps // steps_per_epoch
    segments = []  # (first epoch, number of epochs, steps per epoch)
    if per_epoch:
        segments = [(e, 1, min(steps_per_epoch, total_steps - e * steps_per_epoch))
                    for e in range(start_epoch, n_epochs)]
    else:
        if start_epoch < n_full:
            segments.append((start_epoch, n_full - start_epoch, steps_per_epoch))
        if n_full < n_epochs and start_epoch < n_epochs:
            segments.append((n_full, 1, total_steps - n_full * steps_per_epoch))

    t0 = time.perf_counter()
    compiled: dict[tuple[int, int], Any] = {}

    def get_program(k_epochs: int, n_steps: int):
        if (k_epochs, n_steps) not in compiled:
            static = ("fit", apply, loss_fn, optimizer, penalty, batch_size, n_steps, k_epochs,
                      nan_guard, batch_sharding)
            zero = place(np.int32(0))

            def build():
                epoch_fn = _make_epoch(apply, loss_fn, optimizer, penalty, batch_size, n_steps,
                                       nan_guard, batch_sharding)
                if k_epochs > 1:
                    epoch_fn = _make_epochs(epoch_fn, k_epochs, n_steps)
                return jax.jit(epoch_fn, donate_argnums=(0, 1))

            compiled[(k_epochs, n_steps)] = _compile(
                static, build, (params, opt_state, x, y, key, zero, zero, no_bad))
        return compiled[(k_epochs, n_steps)]

    for _, k_epochs, n_steps in segments:
        get_program(k_epochs, n_steps)
    evaluator = None
    if validation_data is not None:
        evaluator = _make_evaluator(apply, loss_fn, metric_fns, place(x_val), place(y_val),
                                    params)
    compile_time = time.perf_counter() - t0

    bar = _progress_bar(n_epochs) if progress else None
    if bar is not None:
        bar.update(start_epoch)
    stop_reason = None
    train_start = time.perf_counter()
    epoch = start_epoch - 1
    for first, k_epochs, n_steps in segments:
        e_start = time.perf_counter()
        params, opt_state, values, bad_step = get_program(k_epochs, n_steps)(
            params, opt_state, x, y, key, scalar(first), scalar(done), no_bad)
        # One host sync per program call: the step losses and the guard's verdict together.
        values, bad = jax.device_get((values, bad_step))
        values = np.reshape(values, (k_epochs, n_steps))
        bad = int(bad)
        seg_time = (time.perf_counter() - e_start) / k_epochs
        stop = False
        for j in range(k_epochs):
            epoch = first + j
            if 0 <= bad < done + n_steps:
                good = values[j, : bad - done]
                history["loss"].append(float(np.mean(good)) if good.size else float("nan"))
                history["epoch_time"].append(seg_time)
                done = bad
                stop_reason = (f"non-finite loss or params at step {bad} (epoch {epoch}); "
                               f"training stopped and the params after step {bad - 1} (the last "
                               "finite ones) are returned. Lower the learning rate or check the "
                               "data.")
                warnings.warn(stop_reason, RuntimeWarning, stacklevel=2)
                stop = True
                break
            done += n_steps
            logs = {"epoch": epoch, "loss": float(np.mean(values[j], dtype=np.float64))}
            if evaluator is not None:
                logs.update({f"val_{k}": v for k, v in evaluator(params).items()})
            history["loss"].append(logs["loss"])
            for k, v in logs.items():
                if k.startswith("val_"):
                    history.setdefault(k, []).append(v)
            history["epoch_time"].append(seg_time if k_epochs > 1
                                         else time.perf_counter() - e_start)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "epoch"})
            if verbose:
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in logs.items()))
            for cb in cb_list:
                stop = bool(cb.on_epoch_end(epoch, logs, params)) or stop
            if state_cbs:
                state = checkpoint_lib.TrainState(params, opt_state, key, epoch + 1, done,
                                                  history, run_meta)
                for cb in state_cbs:
                    cb.on_state(state, final=stop or epoch + 1 == n_epochs)
            if stop:
                stop_reason = f"stopped by a callback after epoch {epoch}"
                break
        if stop:
            break
    train_time = time.perf_counter() - train_start
    if bar is not None:
        bar.close()
    for cb in cb_list:
        if hasattr(cb, "on_train_end"):
            params = cb.on_train_end(params)
    return FitResult(params, opt_state, history, done, max(epoch + 1, start_epoch), compile_time,
                     train_time, stop_reason)


def fit_many(apply_fn: Callable, params: Params, x: Array, y: Array, *, loss: str | Callable,
             optimizer: optax.GradientTransformation, keys: Array, batch_size: int,
             epochs: int | None = None, steps: int | None = None,
             hyperparams: Mapping[str, Array] | None = None,
             penalty: Callable[[Params], Array] | None = None, nan_guard: bool = True,
             progress: bool = False) -> FitResult:
    """Trains ``N`` models at once: :func:`fit`'s epoch program ``jax.vmap``-ed over members.

    Member ``i`` starts from ``params[i]`` (every leaf has a leading axis ``N``; see
    :func:`jaxlearn.nn.init_stacked`) and uses ``keys[i]`` for shuffling and dropout, exactly as
    ``fit(apply_fn, params[i], ..., key=keys[i])`` would: the same batches, the same masks, so the
    params agree with ``N`` separate fits up to float rounding of the batched matmuls (tested).
    Data is shared, not copied per member.

    Hyperparameters may differ per member: build the optimizer with ``optax.inject_hyperparams``
    and give ``hyperparams={"learning_rate": jnp.array([...N values])}``; each value replaces
    that member's entry in the optimizer state.

    Returns:
      A :class:`FitResult` with stacked ``params``/``opt_state`` (leading axis ``N``) and
      ``history["loss"]`` a list over epochs of ``[N]`` lists. A member whose update goes
      non-finite is frozen at its last finite params (the others go on); ``stop_reason`` names the
      members and steps. No validation data or callbacks: evaluate the stacked params with
      ``jax.vmap`` afterwards.
    """
    apply = as_apply(apply_fn)
    loss_name = loss if isinstance(loss, str) else None
    loss_fn = losses.get_loss(loss)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError("`optimizer` must be an optax.GradientTransformation, "
                        f"got {type(optimizer).__name__}")
    if not isinstance(keys, jax.Array) or keys.ndim < 1:
        raise TypeError("`keys` must be a batch of jax.random keys, e.g. "
                        "jax.random.split(jax.random.key(0), n_models)")
    _checks.check_key("keys", keys)
    n_models = keys.shape[0]
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError("`params` has no arrays")
    for leaf in leaves:
        if leaf.ndim < 1 or leaf.shape[0] != n_models:
            raise ValueError(f"`params` must be stacked with a leading axis of {n_models} (one "
                             f"entry per key); found a leaf of shape {tuple(leaf.shape)}")
    first = jax.tree_util.tree_map(lambda p: p[0], params)
    x, y = _check_fit_args(apply, first, x, y, loss_name, batch_size, epochs, steps)

    n = x.shape[0]
    steps_per_epoch = n // batch_size
    total_steps = steps if steps is not None else epochs * steps_per_epoch
    n_epochs = math.ceil(total_steps / steps_per_epoch)
    x, y = jax.device_put(x), jax.device_put(y)
    params = jax.tree_util.tree_map(lambda p: jnp.array(p, copy=True), params)
    opt_state = jax.vmap(optimizer.init)(params)
    if hyperparams:
        opt_state = _set_hyperparams(opt_state, hyperparams, n_models)
    bad = jnp.full((n_models,), -1, jnp.int32)

    # Without a progress bar all full epochs are one program, as in fit.
    n_full = total_steps // steps_per_epoch
    if progress:
        segments = [(e, 1, min(steps_per_epoch, total_steps - e * steps_per_epoch))
                    for e in range(n_epochs)]
    else:
        segments = [(0, n_full, steps_per_epoch)] if n_full else []
        if n_full < n_epochs:
            segments.append((n_full, 1, total_steps - n_full * steps_per_epoch))

    t0 = time.perf_counter()
    compiled: dict[tuple[int, int], Any] = {}
    in_axes = (0, 0, None, None, 0, None, None, 0)

    def get_program(k_epochs, n_steps):
        if (k_epochs, n_steps) not in compiled:
            static = ("fit_many", apply, loss_fn, optimizer, penalty, batch_size, n_steps,
                      k_epochs, nan_guard)
            zero = jnp.asarray(0, jnp.int32)

            def build():
                epoch_fn = _make_epoch(apply, loss_fn, optimizer, penalty, batch_size, n_steps,
                                       nan_guard)
                if k_epochs > 1:
                    epoch_fn = _make_epochs(epoch_fn, k_epochs, n_steps)
                return jax.jit(jax.vmap(epoch_fn, in_axes=in_axes), donate_argnums=(0, 1))

            compiled[(k_epochs, n_steps)] = _compile(
                static, build, (params, opt_state, x, y, keys, zero, zero, bad))
        return compiled[(k_epochs, n_steps)]

    for _, k_epochs, n_steps in segments:
        get_program(k_epochs, n_steps)
    compile_time = time.perf_counter() - t0

    history: dict[str, list] = {"loss": [], "epoch_time": []}
    bar = _progress_bar(n_epochs) if progress else None
    done = 0
    train_start = time.perf_counter()
    for first, k_epochs, n_steps in segments:
        e_start = time.perf_counter()
        params, opt_state, values, bad = get_program(k_epochs, n_steps)(
            params, opt_state, x, y, keys, jnp.asarray(first, jnp.int32),
            jnp.asarray(done, jnp.int32), bad)
        done += k_epochs * n_steps
        # values: [N, n_steps] for one epoch, [N, k_epochs, n_steps] for several.
        means = np.asarray(values).reshape(n_models, k_epochs, n_steps).mean(axis=2)
        history["loss"].extend(means.T.tolist())
        seg_time = (time.perf_counter() - e_start) / k_epochs
        history["epoch_time"].extend([seg_time] * k_epochs)
        if bar is not None:
            bar.update(k_epochs)
    train_time = time.perf_counter() - train_start
    if bar is not None:
        bar.close()
    bad_np = np.asarray(bad)
    stop_reason = None
    if np.any(bad_np >= 0):
        members = np.flatnonzero(bad_np >= 0).tolist()
        stop_reason = (f"members {members} went non-finite at steps "
                       f"{bad_np[members].tolist()} and were frozen at their last finite params")
        warnings.warn(stop_reason, RuntimeWarning, stacklevel=2)
    return FitResult(params, opt_state, history, done, n_epochs, compile_time, train_time,
                     stop_reason)


def _set_hyperparams(opt_state, hyperparams, n_models):
    if not hasattr(opt_state, "hyperparams"):
        raise ValueError("`hyperparams` needs an optimizer built with optax.inject_hyperparams, "
                         "e.g. optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)")
    new = dict(opt_state.hyperparams)
    for name, values in hyperparams.items():
        if name not in new:
            raise ValueError(f"`hyperparams` names {name!r} but the optimizer's hyperparameters "
                             f"are {sorted(new)}")
        values = jnp.asarray(values, dtype=new[name].dtype)
        if values.shape != (n_models,):
            raise ValueError(f"`hyperparams[{name!r}]` must have shape ({n_models},), one value "
                             f"per model, got {tuple(values.shape)}")
        new[name] = values
    return opt_state._replace(hyperparams=new)


def _free_device_bytes(device) -> int | None:
    """Free memory of ``device`` in bytes: the allocator's limit minus use on accelerators, the
    host's available RAM for the CPU backend; ``None`` when unknown."""
    try:
        stats = device.memory_stats()
    except Exception:  # backends without allocator stats raise various runtime errors
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_fits_in_memory(x, y, params, validation_data) -> None:
    """Refuses, before anything is copied, a training set that cannot live on the device.

    :func:`fit` keeps the whole data set on the device (one compiled program per epoch gathers its
    batches from it); it does not stream. Needed: the data, plus params, gradients and optimizer
    state estimated as 4x the params (Adam keeps two moments).
    """
    def nbytes(tree):
        return sum(int(np.prod(np.shape(a))) * np.dtype(a.dtype).itemsize
                   for a in jax.tree_util.tree_leaves(tree))

    needed = nbytes((x, y)) + 4 * nbytes(params)
    if validation_data is not None:
        needed += nbytes(tuple(validation_data))
    device = jax.local_devices()[0]  # the data are placed on this process's devices
    free = _free_device_bytes(device)
    if free is not None and needed > free:
        raise ValueError(f"`x` and `y` (with params and optimizer state) need "
                         f"{_format_bytes(needed)} on {device} but only {_format_bytes(free)} is "
                         "free; fit keeps the data on the device and does not stream it: use fewer "
                         "samples or a smaller dtype")


def _format_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def _fresh_copy(a):
    """A new device buffer holding ``a``. Through the host for numeric arrays: a transfer costs no
    compilation, where ``jnp.array(a, copy=True)`` compiles one copy program per shape."""
    if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(_fresh_copy(jax.random.key_data(a)),
                                        impl=jax.random.key_impl(a))
    return jax.device_put(np.array(a, copy=True))


def _placement(mesh, batch_size):
    """``(place, batch_sharding)``: how :func:`fit` puts arrays on devices.

    Without a mesh, ``place`` copies a pytree onto the default device (a copy, so donating it
    never invalidates the caller's arrays). With a mesh it builds global arrays replicated over
    the mesh from each process's host data (``jax.make_array_from_callback``), which also works
    when the mesh spans several processes.
    """
    if mesh is None:
        return (lambda tree: jax.tree_util.tree_map(_fresh_copy, tree), None)
    if not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"`mesh` must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if "data" not in mesh.axis_names:
        raise ValueError(f"`mesh` must have a 'data' axis to split batches over; its axes are "
                         f"{tuple(mesh.axis_names)}")
    n_data = mesh.shape["data"]
    if batch_size % n_data:
        raise ValueError(f"`batch_size` is {batch_size} but the mesh's 'data' axis has {n_data} "
                         f"devices; batch_size must be divisible by {n_data}")
    P = jax.sharding.PartitionSpec
    replicated = jax.sharding.NamedSharding(mesh, P())

    def place_leaf(a):
        if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            data = np.asarray(jax.random.key_data(a))
            global_data = jax.make_array_from_callback(data.shape, replicated,
                                                       lambda idx: data[idx])
            return jax.random.wrap_key_data(global_data, impl=jax.random.key_impl(a))
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, replicated, lambda idx: host[idx])

    def place(tree):
        return jax.tree_util.tree_map(place_leaf, tree)

    return place, jax.sharding.NamedSharding(mesh, P("data"))


def _resume(directory, key, params, opt_state, run_meta):
    """Loads the newest usable checkpoint of ``directory`` for :func:`fit`, or ``None``."""
    found = checkpoint_lib.latest_checkpoint(directory, params=params, opt_state=opt_state)
    if found is None:
        return None
    state, path = found
    for name, value in run_meta.items():
        if state.meta.get(name) != value:
            raise ValueError(f"`resume_from`: checkpoint {path!r} was made with {name}="
                             f"{state.meta.get(name)!r}, this run has {name}={value!r}")
    same_key = np.array_equal(np.asarray(_key_data(state.key)), np.asarray(_key_data(key)))
    if not same_key:
        raise ValueError(f"`resume_from`: checkpoint {path!r} was made with a different `key`; "
                         "resuming would not reproduce the run")
    def to_device(tree):
        return jax.tree_util.tree_map(jnp.asarray, tree)

    return (to_device(state.params), to_device(state.opt_state), state.history, state.epoch,
            state.step)


def _key_data(key):
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


class _FunctionCallback:
    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, epoch, logs, params):
        return self.fn(epoch, logs, params)


def _as_callback(cb, i):
    if hasattr(cb, "on_epoch_end"):
        return cb
    if callable(cb):
        return _FunctionCallback(cb)
    raise TypeError(f"`callbacks[{i}]` must have on_epoch_end(epoch, logs, params) or be callable, "
                    f"got {type(cb).__name__}")


def _progress_bar(total):
    try:
        from tqdm.auto import tqdm
    except ImportError as err:  # tqdm is an optional extra
        raise ImportError("progress=True needs tqdm: python -m pip install tqdm") from err
    return tqdm(total=total, unit="epoch", leave=False)


# ------------------------------------------------------------------------------- evaluate

def predict(apply_fn: Callable, params: Params, x: Array, *, batch_size: int = 1024) -> Array:
    """``apply_fn(params, x)`` in batches of ``batch_size`` (test mode), one compiled ``lax.map``.

    Shapes: ``x`` ``[n, ...]``; returns ``[n, ...outputs]``. The last batch is zero-padded and the
    padding dropped, so every batch has the same shape and compiles once.
    """
    apply = as_apply(apply_fn)
    x = _checks.as_array("x", x)
    _checks.check_nonempty("x", x)
    _checks.check_positive("batch_size", batch_size, integer=True)
    return _predict_jit(apply, params, jnp.asarray(x), min(batch_size, x.shape[0]))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _predict_jit(apply, params, x, batch_size):
    return _predict(apply, params, x, batch_size)


def _predict(apply, params, x, batch_size):
    n = x.shape[0]
    n_batches = -(-n // batch_size)
    pad = n_batches * batch_size - n
    xp = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)).reshape(n_batches, batch_size,
                                                                    *x.shape[1:])
    out = jax.lax.map(lambda xb: apply(params, xb, train=False), xp)
    return out.reshape(n_batches * batch_size, *out.shape[2:])[:n]


def _make_evaluator(apply, loss_fn, metric_fns, x, y, params, batch_size: int = 1024):
    # The data are arguments, not closed-over constants: no copy of them in the compiled program.
    x, y = jnp.asarray(x), jnp.asarray(y)
    bs = min(batch_size, x.shape[0])

    def run(params, x, y):
        out = _predict(apply, params, x, bs)
        result = {"loss": jnp.mean(loss_fn(out, y))}
        for name, fn in metric_fns.items():
            result[name] = fn(out, y)
        return result

    static = ("evaluate", apply, loss_fn, tuple(metric_fns.items()), bs)
    compiled = _compile(static, lambda: jax.jit(run), (params, x, y))
    return lambda p: {k: float(v) for k, v in compiled(p, x, y).items()}


def _no_loss(outputs, y):
    return jnp.zeros(())


def evaluate(apply_fn: Callable, params: Params, x: Array, y: Array, *,
             loss: str | Callable | None = None, metrics: Mapping[str, Callable] | None = None,
             batch_size: int = 1024) -> dict[str, float]:
    """Loss and metrics of ``apply_fn`` on ``(x, y)``, computed in batches in test mode.

    Returns ``{"loss": ..., "accuracy": ..., ...}`` (``loss`` only when ``loss`` is given; the
    default metrics are accuracy for classification losses).
    """
    apply = as_apply(apply_fn)
    loss_name = loss if isinstance(loss, str) else None
    x, y = _check_fit_args(apply, params, x, y, loss_name, 1, 1, None)
    _checks.check_positive("batch_size", batch_size, integer=True)
    if metrics is None and loss is None:
        metrics = {"accuracy": metrics_lib.accuracy}
    metric_fns = _as_metric_dict(metrics, loss_name)
    loss_fn = losses.get_loss(loss) if loss is not None else _no_loss
    result = _make_evaluator(apply, loss_fn, metric_fns, x, y, params, batch_size)(params)
    if loss is None:
        result.pop("loss")
    return result
