"""The trainer's state as one value, and the fingerprint that ties a checkpoint to its run.

:class:`TrainState` is what :func:`jaxlearn.fit`'s loop carries from epoch to epoch, what
callbacks see in ``on_state`` and what a checkpoint stores. Its ``meta`` holds the run's
*fingerprint* (:func:`fingerprint`): the model's structure and shapes, the optimizer and its
hyperparameters, the loss, the data's size and checksum, the batch size, the length of training,
the key, and the callbacks that change the result. ``fit(..., resume_from=DIR)`` resumes only a
checkpoint whose fingerprint equals this run's and refuses one of another run, naming what differs.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import numpy as np


class TrainState(NamedTuple):
    """Everything needed to resume :func:`jaxlearn.fit` bitwise.

    Attributes:
      params: the trainable params.
      opt_state: the optimizer state.
      key: the run's key (each epoch folds in its index).
      epoch: epochs done. step: optimizer steps done.
      history: per-epoch lists (``"loss"``, ``"val_*"``, ``"epoch_time"``).
      meta: the run's fingerprint (:func:`fingerprint`) and its ``run_id``.
      model_state: non-trainable model state (BatchNorm statistics; ``()`` when none).
      callbacks: each stateful callback's ``state_dict()``, by ``"<index>:<class name>"``.
      stop_reason: why the run ended early, ``None`` while it runs or when it ran to the end.
    """

    params: Any
    opt_state: Any
    key: jax.Array
    epoch: int
    step: int
    history: dict[str, list[float]]
    meta: dict[str, Any] = {}
    model_state: Any = ()
    callbacks: dict[str, Any] = {}
    stop_reason: str | None = None


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def tree_signature(tree) -> str:
    """Structure, shapes and dtypes of a pytree, as text."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return "; ".join(f"{jax.tree_util.keystr(path)}:{np.dtype(leaf.dtype).name}"
                     f"{list(np.shape(leaf))}" for path, leaf in leaves) or "(empty)"


def describe(obj: Any, depth: int = 0) -> str:
    """A stable description of a function and the settings it closes over (an optax
    transformation's hyperparameters, a schedule's constants): names and numbers, no addresses."""
    if depth > 8:
        return "..."
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return repr(obj)
    if isinstance(obj, (np.ndarray, np.generic, jax.Array)):
        a = np.asarray(jax.random.key_data(obj) if jax.dtypes.issubdtype(
            obj.dtype, jax.dtypes.prng_key) else obj)
        return repr(a.tolist()) if a.size <= 16 else f"array{list(a.shape)}#{_digest(a)}"
    if isinstance(obj, (tuple, list)):
        return "(" + ", ".join(describe(o, depth + 1) for o in obj) + ")"
    if isinstance(obj, Mapping):
        return "{" + ", ".join(f"{k}: {describe(v, depth + 1)}" for k, v in obj.items()) + "}"
    if isinstance(obj, functools.partial):
        return (f"partial({describe(obj.func, depth + 1)}, {describe(obj.args, depth + 1)}, "
                f"{describe(obj.keywords, depth + 1)})")
    if hasattr(obj, "__code__"):
        cells = []
        for cell in obj.__closure__ or ():
            try:
                cells.append(describe(cell.cell_contents, depth + 1))
            except ValueError:  # an empty cell
                cells.append("?")
        return f"{obj.__qualname__}[{', '.join(cells)}]" if cells else obj.__qualname__
    if hasattr(obj, "__wrapped__"):
        return describe(obj.__wrapped__, depth + 1)
    return type(obj).__qualname__


def fingerprint(*, params, model_state, optimizer, loss_fn, penalty, data, batch_size: int,
                total_steps: int, key, callbacks=()) -> dict[str, str]:
    """The run's identity as plain strings (stored in checkpoints, compared on resume)."""
    return {
        "model": tree_signature(params),
        "model_state": tree_signature(model_state),
        "optimizer": describe(optimizer.update),
        "loss": describe(loss_fn),
        "penalty": describe(penalty),
        "n_samples": str(int(np.shape(data[0])[0])),
        "data": _digest(*data),
        "batch_size": str(batch_size),
        "total_steps": str(total_steps),
        "key": _digest(jax.random.key_data(key) if jax.dtypes.issubdtype(
            key.dtype, jax.dtypes.prng_key) else key),
        "callbacks": "(" + ", ".join(describe_callback(cb) for cb in callbacks) + ")",
    }


def describe_callback(cb) -> str:
    settings = getattr(cb, "settings", None)
    name = type(getattr(cb, "obj", cb)).__name__  # a wrapped duck-typed callback: its own class
    return f"{name}{settings() if callable(settings) else ''}"


_WHAT = {"model": "a model of other structure or shapes", "model_state": "other model state",
         "optimizer": "another optimizer or other hyperparameters", "loss": "another loss",
         "penalty": "another penalty", "data": "other data (checksum differs)",
         "key": "a different `key`", "callbacks": "other result-changing callbacks"}


def differences(stored: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """What differs between a checkpoint's fingerprint and this run's, in words."""
    out = []
    for name in current:
        if stored.get(name) == current[name]:
            continue
        if name in _WHAT:
            mine, theirs = current[name], stored.get(name)
            detail = "" if name in ("data", "key") else (
                f" (checkpoint: {_short(theirs)}; this run: {_short(mine)})")
            out.append(f"was made with {_WHAT[name]}{detail}")
        else:
            out.append(f"was made with {name}={_as_number(stored.get(name))!r}, this run has "
                       f"{name}={_as_number(current[name])!r}")
    return out


def _short(text, n: int = 160) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 3] + "..."


def _as_number(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return text
