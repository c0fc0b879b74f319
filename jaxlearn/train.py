"""One trainer for any ``apply(params, x, ...)``: mini-batch SGD as compiled scans over epochs.

:func:`fit` trains ours (a :class:`jaxlearn.nn.Layer`'s apply), a flax module (through
:func:`~jaxlearn.apply.from_linen` / :func:`~jaxlearn.apply.from_nnx`, BatchNorm and dropout
included) or a hand-written function, with any optax optimizer and loss. Each epoch is one
``jax.jit``-compiled ``lax.scan`` over its steps, with the data already on the device and the
shuffling (a fresh ``jax.random.permutation`` per epoch) inside the compiled program; the training
state is donated so XLA updates it in place. Compilation happens ahead of time
(``jit(...).lower(...).compile()``) so its cost is reported apart from training time.

The loop carries one value, a :class:`~jaxlearn.state.TrainState`; Python runs only between epochs:
history, validation, callbacks with a lifecycle (:mod:`jaxlearn.callbacks`: early stopping,
checkpoints, the progress bar, printing) and the NaN/inf guard. The guard itself lives inside the
step: an update whose loss, params, optimizer state or model state is not finite is not applied,
the step index is recorded, and :func:`fit` stops after that epoch, returning the last finite
params and saying which step went non-finite.

When nothing needs the host between epochs (no callbacks, validation data, progress bar or
verbose output), all full epochs run as one program, a ``lax.scan`` over the epoch scans, with
bitwise the same result as one call per epoch (tested); ``history["epoch_time"]`` then holds the
run's mean time per epoch.

Reproducibility: the key of epoch ``e`` is ``fold_in(key, e)``; it is split into the permutation key
and one key per step (for dropout). Same key, same data, same result, bitwise on CPU (tested).

Example::

    >>> data = jl.data.load_mnist1d()
    >>> model = jl.nn.mlp((100, 100), 10, residual=True)
    >>> _, params = model.init(jax.random.key(0), (40,))
    >>> result = jl.fit(model.apply, params, data.x_train, data.y_train,
    ...                 loss="softmax_cross_entropy_with_integer_labels",
    ...                 optimizer=optax.adam(1e-2), key=jax.random.key(1), batch_size=100,
    ...                 steps=300)
    >>> result.steps, len(result.history["loss"]), result.stop_reason
    (300, 8, None)
"""

from __future__ import annotations

import math
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlearn import _checks, _placement, losses
from jaxlearn import checkpoint as checkpoint_lib
from jaxlearn._placement import Placement
from jaxlearn._programs import clear_compile_cache, compile_program
from jaxlearn._step import Carry, guard_epoch, make_step, scan_epoch, scan_epochs
from jaxlearn._types import Array, Params
from jaxlearn.apply import StatefulApply, as_apply, as_model, from_linen, from_nnx
from jaxlearn.callbacks import (
    Callback,
    EarlyStopping,
    PrintLogs,
    ProgressBar,
    as_callback,
    collect_states,
    restore_states,
    uses_state,
)
from jaxlearn.evaluation import (
    as_metric_dict,
    check_data,
    evaluate,
    label_kind,
    make_evaluator,
    predict,
)
from jaxlearn.state import TrainState, fingerprint

__all__ = ["Callback", "EarlyStopping", "FitPlan", "FitResult", "Segment", "StatefulApply",
           "TrainState", "as_apply", "clear_compile_cache", "evaluate", "fit", "fit_many",
           "from_linen", "from_nnx", "plan", "predict"]

_OPTIMIZER_MSG = ("`optimizer` must be an optax.GradientTransformation (e.g. optax.adam(1e-3) or "
                  "jaxlearn.optim.make_optimizer(...)), got {}")


# ------------------------------------------------------------------------------- the plan

class Segment(NamedTuple):
    """``n_epochs`` consecutive epochs of ``n_steps`` steps each, from epoch ``first``: one
    program call."""

    first: int
    n_epochs: int
    n_steps: int


class FitPlan(NamedTuple):
    """How many steps and epochs a run takes (pure, no JAX)."""

    n: int
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    n_epochs: int

    def segments(self, start_epoch: int = 0, *, per_epoch: bool = False) -> list[Segment]:
        """The program calls from ``start_epoch`` on: one per epoch when the host must run between
        epochs (``per_epoch``), otherwise all full epochs as one call plus the partial last one."""
        last = self.total_steps - (self.n_epochs - 1) * self.steps_per_epoch
        if per_epoch:
            return [Segment(e, 1, self.steps_per_epoch if e < self.n_epochs - 1 else last)
                    for e in range(start_epoch, self.n_epochs)]
        n_full = self.total_steps // self.steps_per_epoch
        out = []
        if start_epoch < n_full:
            out.append(Segment(start_epoch, n_full - start_epoch, self.steps_per_epoch))
        if n_full < self.n_epochs and start_epoch < self.n_epochs:
            out.append(Segment(n_full, 1, last))
        return out


def plan(n: int, batch_size: int, *, epochs: int | None = None,
         steps: int | None = None) -> FitPlan:
    """The run's length: ``n // batch_size`` steps per epoch, ``epochs`` of them or ``steps`` in
    all (then the last epoch may be partial). Give exactly one of ``epochs`` and ``steps``."""
    _checks.check_positive("batch_size", batch_size, integer=True)
    if batch_size > n:
        raise ValueError(f"`batch_size` is {batch_size} but there are only {n} samples; "
                         f"use batch_size <= {n}")
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of `epochs` and `steps`, got "
                         f"epochs={epochs!r}, steps={steps!r}")
    if epochs is not None:
        _checks.check_positive("epochs", epochs, integer=True)
    if steps is not None:
        _checks.check_positive("steps", steps, integer=True)
    per_epoch = n // batch_size
    total = steps if steps is not None else epochs * per_epoch
    return FitPlan(n, batch_size, per_epoch, total, math.ceil(total / per_epoch))


# ------------------------------------------------------------------------------- the spec

class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
      params: trained params (the best ones when early stopping restored them; the last finite
        ones when the NaN guard stopped training). For a model with state (a
        :class:`~jaxlearn.apply.StatefulApply`, e.g. BatchNorm) the whole variables pytree.
      opt_state: final optimizer state.
      history: per-epoch lists: ``"loss"`` (mean training loss of the epoch's steps),
        ``"val_<metric>"`` when validation data was given, ``"epoch_time"`` (seconds).
      steps: optimizer steps applied.
      epochs: epochs run (the last may be partial when ``steps`` is not a multiple).
      compile_time: seconds spent compiling (reported apart from ``train_time``).
      train_time: seconds spent running the compiled epochs, including validation.
      stop_reason: ``None`` for a full run, otherwise why training stopped early.
      state: the final :class:`~jaxlearn.state.TrainState`.
    """

    params: Params
    opt_state: Any
    history: dict[str, list[float]]
    steps: int
    epochs: int
    compile_time: float
    train_time: float
    stop_reason: str | None
    state: TrainState | None = None


class _Spec(NamedTuple):
    model: StatefulApply
    loss_fn: Callable
    metric_fns: dict
    optimizer: optax.GradientTransformation
    penalty: Callable | None
    data: tuple           # (x, y, w), w None without weights
    validation: tuple | None


def _fit_spec(apply_fn, params, x, y, *, loss, optimizer, penalty, metrics, validation_data,
              sample_weight=None, class_weight=None, batch_size=1) -> _Spec:
    """Every argument check of :func:`fit` and :func:`fit_many`, before anything is traced."""
    _checks.check_positive("batch_size", batch_size, integer=True)
    model = as_model(apply_fn)
    loss_fn = losses.get_loss(loss)
    kind = label_kind(loss_fn)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(_OPTIMIZER_MSG.format(type(optimizer).__name__))
    if penalty is not None and not callable(penalty):
        raise TypeError(f"`penalty` must be callable(params) -> scalar, got "
                        f"{type(penalty).__name__}")
    x, y, out_shape = check_data(model, params, x, y, kind, batch=batch_size)
    weights = _sample_weights(sample_weight, class_weight, y, kind, out_shape)
    metric_fns = as_metric_dict(metrics, loss_fn)
    validation = None
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise TypeError("`validation_data` must be a pair (x_val, y_val)")
        validation = check_data(model, params, *validation_data, kind, x_name="validation x",
                                y_name="validation y")[:2]
    return _Spec(model, loss_fn, metric_fns, optimizer, penalty, (x, y, weights), validation)


def _sample_weights(sample_weight, class_weight, y, kind, out_shape):
    """Per-sample weights ``sample_weight * class_weight[y]`` as float32 ``[n]``, or ``None``."""
    n = y.shape[0]
    w = None
    if sample_weight is not None:
        w = _checks.as_array("sample_weight", sample_weight)
        _checks.check_float("sample_weight", w)
        if w.shape != (n,):
            raise ValueError(f"`sample_weight` must have shape ({n},), one weight per sample, got "
                             f"{tuple(w.shape)}")
        _checks.check_finite("sample_weight", w)
        w = np.asarray(w, np.float32)
        if np.any(w < 0) or not np.any(w > 0):
            raise ValueError("`sample_weight` must be >= 0 with at least one weight > 0, got min "
                             f"{w.min():.4g}, max {w.max():.4g}")
    if class_weight is not None:
        if kind != "integer":
            raise ValueError("`class_weight` needs a loss on integer class labels (e.g. "
                             "'softmax_cross_entropy_with_integer_labels'); weight other targets "
                             "with `sample_weight`")
        n_classes = out_shape[-1]
        if isinstance(class_weight, Mapping):
            missing = sorted(set(np.unique(np.asarray(y)).tolist()) - set(class_weight))
            if missing:
                raise ValueError(f"`class_weight` has no weight for classes {missing} found in `y`")
            table = np.ones(n_classes, np.float32)
            for c, v in class_weight.items():
                if not (isinstance(c, (int, np.integer)) and 0 <= c < n_classes):
                    raise ValueError(f"`class_weight` has class {c!r} but `n_classes` is "
                                     f"{n_classes}")
                table[c] = v
        else:
            table = np.asarray(class_weight, np.float32)
            if table.shape != (n_classes,):
                raise ValueError(f"`class_weight` must be a dict {{class: weight}} or a sequence "
                                 f"of {n_classes} weights, got shape {tuple(table.shape)}")
        if not np.all(np.isfinite(table)) or np.any(table < 0):
            raise ValueError(f"`class_weight` must be finite and >= 0, got {table.tolist()}")
        cw = table[np.asarray(y)]
        w = cw if w is None else w * cw
    return w


# ------------------------------------------------------------------------------ programs

def _program(kind, spec, batch_size, seg: Segment, nan_guard, where, donate, args, vmapped=False):
    """The compiled program for one segment. ``nan_guard``: ``"step"`` (every step checked),
    ``"epoch"`` (each epoch checked at its end, see :func:`jaxlearn._step.guard_epoch`) or
    ``None``."""
    static = (spec.model, spec.loss_fn, spec.optimizer, spec.penalty, batch_size, seg.n_steps,
              seg.n_epochs, nan_guard, where.batch_sharding, donate)

    def build():
        step = make_step(spec.model, spec.loss_fn, optax.with_extra_args_support(spec.optimizer),
                         spec.penalty, nan_guard == "step", where.batch_sharding)
        fn = scan_epoch(step, batch_size, seg.n_steps)
        if nan_guard == "epoch":
            fn = guard_epoch(fn, seg.n_steps)
        if seg.n_epochs > 1:
            fn = scan_epochs(fn, seg.n_epochs, seg.n_steps)
        if vmapped:
            fn = jax.vmap(fn, in_axes=(0, None, 0, None, None))
        return jax.jit(fn, donate_argnums=(0,) if donate else ())

    return compile_program(kind, static, build, args)


# ------------------------------------------------------------------------------------ fit

def fit(apply_fn: Callable, params: Params, x: Array, y: Array, *, loss: str | Callable,
        optimizer: optax.GradientTransformation, key: Array, batch_size: int,
        epochs: int | None = None, steps: int | None = None,
        validation_data: tuple[Array, Array] | None = None,
        metrics: Mapping[str, Callable] | None = None,
        penalty: Callable[[Params], Array] | None = None,
        sample_weight: Array | None = None, class_weight: Mapping | Sequence | None = None,
        callbacks: Sequence[Callback | Callable] = (), nan_guard: bool = True,
        progress: bool = False, verbose: bool = False,
        resume_from: str | None = None, mesh: jax.sharding.Mesh | None = None) -> FitResult:
    """Trains ``apply_fn`` by mini-batch gradient descent on shuffled data.

    Each epoch draws a permutation of the ``n`` samples and takes ``n // batch_size`` steps on
    consecutive slices of it (the ``n % batch_size`` samples left over change every epoch).
    Step ``t`` minimises ``mean_i loss(apply(params, x_i), y_i) + penalty(params)`` over its batch
    (with weights: ``sum_i w_i loss_i / batch_size + penalty``, as Keras does).

    Args:
      apply_fn: ``apply(params, x, ...)``; ``key``/``train`` are passed if it takes them (see
        :func:`~jaxlearn.apply.as_apply`), or a :class:`~jaxlearn.apply.StatefulApply` (flax
        modules with BatchNorm through ``from_linen``/``from_nnx``). ``x`` is a batch.
      params: initial params pytree (not modified; the trainer works on a copy); for a stateful
        model the whole variables pytree.
      x: inputs ``[n, ...]`` (float). y: targets ``[n, ...]``.
      loss: a name from :data:`jaxlearn.losses.LOSSES` or ``fn(outputs, targets) -> [batch]``.
        A loss of jaxlearn behaves the same by name or as a function: its label kind sets the
        label checks and the default metrics (:mod:`jaxlearn.evaluation`).
      optimizer: any ``optax.GradientTransformation``; it receives the batch loss as ``value=``,
        so ``optax.contrib.reduce_on_plateau`` works.
      key: ``jax.random`` key for shuffling and dropout.
      batch_size: samples per step, ``1 <= batch_size <= n``.
      epochs / steps: length of training; give exactly one. With ``steps`` the last epoch may be
        partial.
      validation_data: ``(x_val, y_val)``, evaluated after every epoch (``val_loss`` and the
        ``metrics``, in test mode, unweighted).
      metrics: ``{name: fn(outputs, y) -> scalar}``; default: accuracy fitting the loss's labels.
      penalty: ``fn(params) -> scalar`` added to the loss (e.g. ``lambda p: lam * l2_penalty(p)``).
      sample_weight: ``[n]`` non-negative float weights of the training samples.
      class_weight: a weight per class, ``{class: weight}`` (every class of ``y``) or a sequence of
        ``n_classes``; needs integer labels. Multiplies ``sample_weight``.
      callbacks: :class:`~jaxlearn.callbacks.Callback` objects (see that module for the
        lifecycle), objects with some of its hooks, or plain functions
        ``fn(epoch, logs, params) -> stop?``. The same objects may serve many fits in sequence.
      nan_guard: stop at the first step whose loss, params, optimizer state or model state is not
        finite and return the state after the step before it. Each epoch is checked once at its
        end; an epoch that went non-finite is rerun with a check after every step to find the
        step (the same steps, bitwise; tested).
      progress: show a tqdm progress bar over epochs. verbose: print one line per epoch.
      resume_from: a checkpoint folder (see :class:`jaxlearn.checkpoint.Checkpoint`). If it holds
        a checkpoint of this run (the same fingerprint: model, optimizer and hyperparameters, loss,
        data, batch size, length, key, early stopping), training continues from it — params,
        optimizer and model state, epoch, step, history and callback states — and ends bitwise
        equal to an uninterrupted run; a finished run is not trained further. A folder with only
        another run's checkpoints is refused, naming what differs; an empty one starts afresh.
      mesh: data parallelism over the devices of a ``jax.sharding.Mesh`` with a ``"data"`` axis
        (e.g. ``jax.make_mesh((jax.device_count(),), ("data",))``): the data and params are
        replicated, each batch is split over ``"data"`` (``batch_size`` must be divisible by its
        size) and XLA all-reduces the gradients. The result equals single-device training up to
        float summation order (tested on 8 simulated CPU devices and across 2 processes).

    Returns:
      A :class:`FitResult`.
    """
    spec = _fit_spec(apply_fn, params, x, y, loss=loss, optimizer=optimizer, penalty=penalty,
                     metrics=metrics, validation_data=validation_data,
                     sample_weight=sample_weight, class_weight=class_weight,
                     batch_size=batch_size)
    sched = plan(spec.data[0].shape[0], batch_size, epochs=epochs, steps=steps)
    _checks.check_key("key", key)
    cbs = [as_callback(cb, i) for i, cb in enumerate(callbacks)]
    cbs += ([ProgressBar(sched.n_epochs)] if progress else []) + ([PrintLogs()] if verbose else [])
    where = Placement.for_mesh(mesh, batch_size)
    _placement.check_fits_in_memory((spec.data, spec.validation), params, _free_device_bytes)
    state = _initial_state(spec, params, key, sched, cbs, where, resume_from)
    per_epoch = bool(cbs) or spec.validation is not None
    donate = not any(cb.reads_params for cb in cbs)
    data = where.data(spec.data)
    carry = Carry(state.params, state.opt_state, state.model_state, where.state(np.int32(-1)))
    t0 = time.perf_counter()
    programs = {}
    for seg in state_segments(sched, state, per_epoch):
        args = (carry, data, state.key, where.scalar(0), where.scalar(0))
        programs[seg[1:]] = _program("fit", spec, batch_size, seg, "epoch" if nan_guard else None,
                                     where, donate, args)

    def pinpoint(carry, seg: Segment, epoch: int, step0: int):
        # Runs the epoch again from its start, checking every step (compiled only when needed).
        one = Segment(epoch, 1, seg.n_steps)
        args = (carry._replace(bad_step=where.state(np.int32(-1))), data, state.key,
                where.scalar(epoch), where.scalar(step0))
        return _program("fit", spec, batch_size, one, "step", where, donate, args)(*args)

    programs["pinpoint"] = pinpoint
    evaluator = None
    if spec.validation is not None:
        evaluator = make_evaluator(spec.model, spec.loss_fn, spec.metric_fns,
                                   *where.data(spec.validation), params)
    compile_time = time.perf_counter() - t0
    return _run(spec, sched, state, carry, data, programs, evaluator, cbs, where, per_epoch,
                compile_time)


def _free_device_bytes(device):
    return _placement.free_device_bytes(device)


def state_segments(sched: FitPlan, state: TrainState, per_epoch: bool) -> list[Segment]:
    """The program calls still to make for ``state``: none when its run is finished."""
    if state.stop_reason is not None or state.step >= sched.total_steps:
        return []
    return sched.segments(state.epoch, per_epoch=per_epoch)


def _initial_state(spec, params, key, sched, cbs, where, resume_from) -> TrainState:
    """A fresh :class:`TrainState` on the device(s), or the run's own checkpoint from
    ``resume_from``; then each callback's ``on_train_begin`` (and its saved state)."""
    trainable, model_state = spec.model.split(params)
    opt_state = spec.optimizer.init(trainable)
    meta = {}
    wants_state = resume_from is not None or any(uses_state(cb) for cb in cbs)
    if wants_state:
        meta = {"fingerprint": fingerprint(
            params=trainable, model_state=model_state, optimizer=spec.optimizer,
            loss_fn=spec.loss_fn, penalty=spec.penalty, data=spec.data,
            batch_size=sched.batch_size, total_steps=sched.total_steps, key=key,
            callbacks=[cb for cb in cbs if cb.affects_result]),
            "run_id": uuid.uuid4().hex}
    state = TrainState(trainable, opt_state, key, 0, 0, {"loss": [], "epoch_time": []}, meta,
                       model_state)
    if resume_from is not None:
        resumed = checkpoint_lib.resume(resume_from, fingerprint=meta["fingerprint"],
                                        params=trainable, opt_state=opt_state,
                                        model_state=model_state)
        state = resumed if resumed is not None else state
    state = state._replace(params=where.state(state.params),
                           opt_state=where.state(state.opt_state),
                           model_state=where.state(state.model_state),
                           key=where.data(state.key))
    for cb in cbs:
        cb.on_train_begin(state)
    if state.callbacks:
        restore_states(cbs, state.callbacks, spec.model.merge(state.params, state.model_state))
    return state


def _run(spec, sched, state, carry, data, programs, evaluator, cbs, where, per_epoch,
         compile_time) -> FitResult:
    """The loop: run each program call, then per epoch record, validate, call back, stop."""
    start = time.perf_counter()
    stateful = [cb for cb in cbs if uses_state(cb)]
    for seg in state_segments(sched, state, per_epoch):
        t = time.perf_counter()
        carry, values = programs[seg[1:]](carry, data, state.key, where.scalar(seg.first),
                                          where.scalar(state.step))
        values, bad = jax.device_get((values, carry.bad_step))  # one host sync per call
        values, bad = np.reshape(values, (seg.n_epochs, seg.n_steps)), int(bad)
        if bad >= 0:  # the epoch from step `bad` went non-finite; carry is its start
            j = (bad - state.step) // seg.n_steps
            carry, epoch_values = programs["pinpoint"](carry, seg, seg.first + j, bad)
            epoch_values, bad = jax.device_get((epoch_values, carry.bad_step))
            values, bad = values.copy(), int(bad)
            values[j] = epoch_values
        seg_time = (time.perf_counter() - t) / seg.n_epochs
        state = state._replace(params=carry.params, opt_state=carry.opt_state,
                               model_state=carry.model_state)
        for j, epoch in enumerate(range(seg.first, seg.first + seg.n_epochs)):
            if 0 <= bad < state.step + seg.n_steps:
                state = _stop_non_finite(state, values[j], bad, epoch, seg_time, stateful)
                break
            logs = {"epoch": epoch, "loss": float(np.mean(values[j], dtype=np.float64))}
            variables = spec.model.merge(state.params, state.model_state)
            if evaluator is not None:
                logs.update({f"val_{k}": v for k, v in evaluator(variables).items()})
            state = _record(state, epoch, seg.n_steps, logs,
                            seg_time if seg.n_epochs > 1 else time.perf_counter() - t)
            votes = [bool(cb.on_epoch_end(epoch, logs, variables)) for cb in cbs]  # no short-cut
            if any(votes):
                state = state._replace(stop_reason=f"stopped by a callback after epoch {epoch}")
            final = state.stop_reason is not None or state.step >= sched.total_steps
            if stateful:
                state = state._replace(callbacks=collect_states(cbs))
                for cb in stateful:
                    cb.on_state(state, final=final)
            if state.stop_reason is not None:
                break
        if state.stop_reason is not None:
            break
    train_time = time.perf_counter() - start
    params = spec.model.merge(state.params, state.model_state)
    for cb in cbs:
        params = cb.on_train_end(params)
    return FitResult(params, state.opt_state, state.history, state.step, state.epoch,
                     compile_time, train_time, state.stop_reason, state)


def _record(state: TrainState, epoch: int, n_steps: int, logs, epoch_time) -> TrainState:
    history = {k: list(v) for k, v in state.history.items()}
    history["loss"].append(logs["loss"])
    for k, v in logs.items():
        if k.startswith("val_"):
            history.setdefault(k, []).append(v)
    history["epoch_time"].append(epoch_time)
    return state._replace(epoch=epoch + 1, step=state.step + n_steps, history=history)


def _stop_non_finite(state, values, bad, epoch, epoch_time, stateful) -> TrainState:
    good = values[: bad - state.step]
    history = {k: list(v) for k, v in state.history.items()}
    history["loss"].append(float(np.mean(good)) if good.size else float("nan"))
    history["epoch_time"].append(epoch_time)
    reason = (f"non-finite loss or params (or optimizer state) at step {bad} (epoch {epoch}); "
              f"training stopped and the params after step {bad - 1} (the last finite ones) are "
              "returned. Lower the learning rate or check the data.")
    warnings.warn(reason, RuntimeWarning, stacklevel=4)
    state = state._replace(epoch=epoch + 1, step=bad, history=history, stop_reason=reason)
    for cb in stateful:
        cb.on_state(state, final=True)
    return state


# ------------------------------------------------------------------------------- fit_many

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
    that member's entry in the optimizer state (a copy: the caller's arrays stay valid).

    Returns:
      A :class:`FitResult` with stacked ``params``/``opt_state`` (leading axis ``N``) and
      ``history["loss"]`` a list over epochs of ``[N]`` lists. A member whose update goes
      non-finite is frozen at its last finite params (the others go on); ``stop_reason`` names the
      members and steps. No validation data or callbacks: evaluate the stacked params with
      ``jax.vmap`` afterwards.
    """
    if not isinstance(keys, jax.Array) or keys.ndim < 1:
        raise TypeError("`keys` must be a batch of jax.random keys, e.g. "
                        "jax.random.split(jax.random.key(0), n_models)")
    _checks.check_key("keys", keys)
    n_models = keys.shape[0]
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("`params` has no arrays")
    for leaf in leaves:
        if leaf.ndim < 1 or leaf.shape[0] != n_models:
            raise ValueError(f"`params` must be stacked with a leading axis of {n_models} (one "
                             f"entry per key); found a leaf of shape {tuple(leaf.shape)}")
    first = jax.tree.map(lambda p: p[0], params)
    spec = _fit_spec(apply_fn, first, x, y, loss=loss, optimizer=optimizer, penalty=penalty,
                     metrics=None, validation_data=None, batch_size=batch_size)
    sched = plan(spec.data[0].shape[0], batch_size, epochs=epochs, steps=steps)
    where = Placement.single_device()
    trainable, model_state = spec.model.split(where.state(params))
    opt_state = jax.vmap(optimizer.init)(trainable)
    if hyperparams:
        opt_state = _set_hyperparams(opt_state, hyperparams, n_models, where)
    carry = Carry(trainable, opt_state, model_state, jnp.full((n_models,), -1, jnp.int32))
    data = where.data(spec.data)
    segments = sched.segments(0, per_epoch=progress)

    t0 = time.perf_counter()
    programs = {}
    for seg in segments:
        args = (carry, data, keys, where.scalar(0), where.scalar(0))
        programs[seg[1:]] = _program("fit_many", spec, batch_size, seg,
                                     "step" if nan_guard else None, where, True, args,
                                     vmapped=True)
    compile_time = time.perf_counter() - t0

    history: dict[str, list] = {"loss": [], "epoch_time": []}
    bar = ProgressBar(sched.n_epochs) if progress else None
    if bar is not None:
        bar.on_train_begin(TrainState(None, None, keys, 0, 0, history))
    done = 0
    start = time.perf_counter()
    for seg in segments:
        t = time.perf_counter()
        carry, values = programs[seg[1:]](carry, data, keys, where.scalar(seg.first),
                                          where.scalar(done))
        done += seg.n_epochs * seg.n_steps
        # values: [N, n_steps] for one epoch, [N, n_epochs, n_steps] for several.
        means = np.asarray(values).reshape(n_models, seg.n_epochs, seg.n_steps).mean(axis=2)
        history["loss"].extend(means.T.tolist())
        history["epoch_time"].extend([(time.perf_counter() - t) / seg.n_epochs] * seg.n_epochs)
        if bar is not None:
            bar.on_epoch_end(seg.first, {"loss": float(means.mean())}, None)
    train_time = time.perf_counter() - start
    if bar is not None:
        bar.on_train_end(None)
    bad = np.asarray(carry.bad_step)
    stop_reason = None
    if np.any(bad >= 0):
        members = np.flatnonzero(bad >= 0).tolist()
        stop_reason = (f"members {members} went non-finite at steps "
                       f"{bad[members].tolist()} and were frozen at their last finite params")
        warnings.warn(stop_reason, RuntimeWarning, stacklevel=2)
    return FitResult(spec.model.merge(carry.params, carry.model_state), carry.opt_state, history,
                     done, sched.n_epochs, compile_time, train_time, stop_reason)


def _set_hyperparams(opt_state, hyperparams, n_models, where):
    if not hasattr(opt_state, "hyperparams"):
        raise ValueError("`hyperparams` needs an optimizer built with optax.inject_hyperparams, "
                         "e.g. optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)")
    new = dict(opt_state.hyperparams)
    for name, values in hyperparams.items():
        if name not in new:
            raise ValueError(f"`hyperparams` names {name!r} but the optimizer's hyperparameters "
                             f"are {sorted(new)}")
        values = np.asarray(values)
        if values.shape != (n_models,):
            raise ValueError(f"`hyperparams[{name!r}]` must have shape ({n_models},), one value "
                             f"per model, got {tuple(values.shape)}")
        # A fresh device copy: the state is donated, the caller's array must stay valid.
        new[name] = where.state(values.astype(np.dtype(new[name].dtype)))
    return opt_state._replace(hyperparams=new)
