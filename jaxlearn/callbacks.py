"""Callbacks of :func:`jaxlearn.fit`: code that runs on the host between epochs, with a lifecycle.

Every hook is declared on :class:`Callback` (a no-op by default); :func:`jaxlearn.fit` calls them
in this order::

    on_train_begin(state)              # a fresh run: reset what an earlier fit left
    load_state_dict(data, params)      # only when resuming: the state saved in the checkpoint
    per epoch: on_epoch_end(epoch, logs, params) -> stop?   (every callback, no short-circuit)
               on_state(state, final=...)                   (the full TrainState, e.g. to save it)
    on_train_end(params) -> params     # e.g. restore the best params

So one callback object can serve any number of fits in sequence (a sweep that builds its callback
list once): each fit starts it afresh. ``state_dict()`` is saved in checkpoints, so a resumed run
continues the callback where it was (early stopping's best value, patience counter and best
params) and ends bitwise equal to an uninterrupted run.

The ``params`` a callback receives stay valid after the epoch: when a callback reads params
(``reads_params = True``, the default for user callbacks) the trainer does not donate the params'
buffers to the next epoch. Built-ins that only read the logs (:class:`ProgressBar`,
:class:`PrintLogs`, :class:`jaxlearn.checkpoint.Checkpoint`) keep donation on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import serialization

from jaxlearn import _checks
from jaxlearn._types import Params
from jaxlearn.state import TrainState


class Callback:
    """Base class: every hook, each a no-op. Subclass and override what you need.

    Attributes:
      reads_params: whether the callback keeps or reads ``params`` after ``on_epoch_end`` returns
        (then fit does not donate them).
      affects_result: whether the callback changes what fit returns (early stopping): it is then
        part of the run's fingerprint, so a checkpoint resumes only with the same settings.
    """

    reads_params: bool = True
    affects_result: bool = False

    def on_train_begin(self, state: TrainState) -> None:
        """Called once before the first epoch of every fit (also a resumed one)."""

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float], params: Params) -> bool | None:
        """Called after each epoch with its logs; return True to stop training."""
        return None

    def on_state(self, state: TrainState, *, final: bool) -> None:
        """Called after each epoch's ``on_epoch_end`` with the full state (``final`` on the last
        epoch or when training stops)."""

    def on_train_end(self, params: Params) -> Params:
        """Called once at the end; returns the params fit returns (by default unchanged)."""
        return params

    def state_dict(self) -> dict[str, Any]:
        """What to save in a checkpoint: plain data (numbers, strings, lists, arrays)."""
        return {}

    def load_state_dict(self, data: Mapping[str, Any], params: Params) -> None:
        """Restores ``state_dict()``'s output; ``params`` gives the structure of saved params."""


class FunctionCallback(Callback):
    """A plain function ``fn(epoch, logs, params) -> stop?`` as a callback."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def on_epoch_end(self, epoch, logs, params):
        return self.fn(epoch, logs, params)


class EarlyStopping(Callback):
    """Stops when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs and, with
    ``restore_best``, makes :func:`jaxlearn.fit` return the params of the best epoch.

    ``monitor`` is a key of the epoch logs (``"val_loss"``, ``"val_accuracy"``, ``"loss"``...);
    ``mode`` is ``"min"`` or ``"max"``. Each fit starts it afresh (``on_train_begin``); its state
    (best value and epoch, epochs waited, best params) goes into checkpoints.
    """

    affects_result = True

    def __init__(self, monitor: str = "val_loss", *, patience: int = 10, mode: str = "min",
                 min_delta: float = 0.0, restore_best: bool = True):
        _checks.check_positive("patience", patience, integer=True)
        _checks.check_choice("mode", mode, ("min", "max"))
        _checks.check_nonnegative("min_delta", min_delta)
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.min_delta, self.restore_best = min_delta, restore_best
        self._reset()

    def _reset(self):
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_params: Params = None
        self._wait = 0

    def settings(self):
        return (self.monitor, self.patience, self.mode, self.min_delta, self.restore_best)

    def on_train_begin(self, state):
        self._reset()

    def on_epoch_end(self, epoch, logs, params):
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: `monitor` is {self.monitor!r} but the epoch logs "
                             f"have {sorted(logs)}; pass validation_data to monitor val_* metrics")
        value = logs[self.monitor]
        sign = 1.0 if self.mode == "min" else -1.0
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best:
                self.best_params = params  # fit hands callbacks params it will not donate
            return False
        self._wait += 1
        return self._wait >= self.patience

    def on_train_end(self, params):
        return self.best_params if (self.restore_best and self.best_params is not None) else params

    def state_dict(self):
        best_params = None
        if self.best_params is not None:
            best_params = serialization.to_state_dict(jax.device_get(self.best_params))
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self._wait,
                "best_params": best_params}

    def load_state_dict(self, data, params):
        self.best, self.best_epoch, self._wait = data["best"], data["best_epoch"], data["wait"]
        self.best_params = None
        if data.get("best_params") is not None:
            restored = serialization.from_state_dict(params, data["best_params"])
            self.best_params = jax.tree.map(jnp.asarray, restored)


class ProgressBar(Callback):
    """A tqdm bar over epochs (``fit(..., progress=True)``)."""

    reads_params = False

    def __init__(self, n_epochs: int):
        self.n_epochs, self.bar = n_epochs, None

    def on_train_begin(self, state):
        try:
            from tqdm.auto import tqdm
        except ImportError as err:  # tqdm is an optional extra
            raise ImportError("progress=True needs tqdm: python -m pip install tqdm") from err
        self.bar = tqdm(total=self.n_epochs, initial=state.epoch, unit="epoch", leave=False)

    def on_epoch_end(self, epoch, logs, params):
        self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "epoch"})

    def on_train_end(self, params):
        if self.bar is not None:
            self.bar.close()
        return params


class PrintLogs(Callback):
    """Prints one line of logs per epoch (``fit(..., verbose=True)``)."""

    reads_params = False

    def on_epoch_end(self, epoch, logs, params):
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in logs.items()))


def as_callback(cb, i: int) -> Callback:
    """``cb`` as a :class:`Callback`: objects with ``on_epoch_end`` keep their own hooks (missing
    ones are no-ops); plain functions become :class:`FunctionCallback`."""
    if isinstance(cb, Callback):
        return cb
    if hasattr(cb, "on_epoch_end") or hasattr(cb, "on_state"):
        return _Duck(cb)
    if callable(cb):
        return FunctionCallback(cb)
    raise TypeError(f"`callbacks[{i}]` must have on_epoch_end(epoch, logs, params) or be callable, "
                    f"got {type(cb).__name__}")


class _Duck(Callback):
    """An object with some of the hooks (not a :class:`Callback` subclass): its own hooks are
    called, the missing ones are the base class's no-ops."""

    def __init__(self, obj):
        self.obj = obj
        self.reads_params = getattr(obj, "reads_params", True)
        self.affects_result = getattr(obj, "affects_result", False)
        for hook in ("on_train_begin", "on_epoch_end", "on_state", "on_train_end", "state_dict",
                     "load_state_dict", "settings"):
            if hasattr(obj, hook):
                setattr(self, hook, getattr(obj, hook))


def state_key(i: int, cb: Callback) -> str:
    inner = cb.obj if isinstance(cb, _Duck) else cb
    return f"{i}:{type(inner).__name__}"


def uses_state(cb: Callback) -> bool:
    """Whether ``cb`` has an ``on_state`` hook of its own (it then receives the TrainState)."""
    return (type(cb).on_state is not Callback.on_state) or "on_state" in vars(cb)


def collect_states(callbacks) -> dict[str, Any]:
    states = {state_key(i, cb): cb.state_dict() for i, cb in enumerate(callbacks)}
    return {k: v for k, v in states.items() if v}


def restore_states(callbacks, states: Mapping[str, Any], params) -> None:
    for i, cb in enumerate(callbacks):
        data = states.get(state_key(i, cb))
        if data:
            cb.load_state_dict(data, params)
