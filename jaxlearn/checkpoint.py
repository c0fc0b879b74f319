"""Checkpoints as plain data: params, optimizer state, PRNG key, counters and history.

File format (version 1), one file per checkpoint, ``ckpt_<step:010d>.jlck``::

    b"JAXLEARN-CKPT\\n"          14-byte magic
    b"0001"                      format version, 4 ASCII digits
    sha256(payload)              32 bytes
    payload                      msgpack (flax.serialization) of a dict of plain data:
        {"step": int, "epoch": int, "params": state dict, "opt_state": state dict,
         "key": uint32 key data, "key_impl": str, "history": {name: [floats]}, "meta": {...}}

Arrays are stored by flax.serialization's msgpack extension (dtype, shape, raw bytes); there is
no pickle anywhere, so loading a file never runs code: a file that does not start with the magic,
whose checksum fails, whose version is unknown or whose structure does not match the expected
params is refused with an error naming the file and the problem. Writes are atomic (temp file in
the same folder, fsync, rename, then fsync of the folder); only the newest ``keep`` files are kept.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import serialization

from jaxlearn import _checks
from jaxlearn._io import atomic_write

MAGIC = b"JAXLEARN-CKPT\n"
VERSION = 1
_HEADER = len(MAGIC) + 4 + 32
_NAME = re.compile(r"^ckpt_(\d{10})\.jlck$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be trusted or does not fit what it is loaded into."""


class TrainState(NamedTuple):
    """Everything needed to resume :func:`jaxlearn.fit` bitwise: params, optimizer state, the
    run's key, the number of epochs and steps done, and the history so far."""

    params: Any
    opt_state: Any
    key: jax.Array
    epoch: int
    step: int
    history: dict[str, list[float]]
    meta: dict[str, Any] = {}


def checkpoint_path(directory: str, step: int) -> str:
    """Path of the checkpoint of ``step`` in ``directory``."""
    return os.path.join(directory, f"ckpt_{step:010d}.jlck")


def list_checkpoints(directory: str) -> list[str]:
    """Checkpoint files in ``directory``, oldest first (by step)."""
    if not os.path.isdir(directory):
        return []
    names = sorted(n for n in os.listdir(directory) if _NAME.match(n))
    return [os.path.join(directory, n) for n in names]


def save_checkpoint(directory: str, state: TrainState, *, keep: int = 3) -> str:
    """Writes ``state`` atomically to ``directory`` and deletes all but the newest ``keep``.

    Returns the path written.
    """
    _checks.check_positive("keep", keep, integer=True)
    if not isinstance(state, TrainState):
        raise TypeError(f"`state` must be a TrainState, got {type(state).__name__}")
    os.makedirs(directory, exist_ok=True)
    key = state.key
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    data = {
        "step": int(state.step),
        "epoch": int(state.epoch),
        "params": serialization.to_state_dict(jax.device_get(state.params)),
        "opt_state": serialization.to_state_dict(jax.device_get(state.opt_state)),
        "key": np.asarray(jax.random.key_data(key) if typed else key),
        "key_impl": str(jax.random.key_impl(key)) if typed else "raw",
        "history": {k: [float(v) for v in vals] for k, vals in state.history.items()},
        "meta": dict(state.meta),
    }
    payload = serialization.msgpack_serialize(data)
    blob = MAGIC + f"{VERSION:04d}".encode() + hashlib.sha256(payload).digest() + payload
    path = checkpoint_path(directory, int(state.step))
    atomic_write(path, blob)
    for old in list_checkpoints(directory)[:-keep]:
        os.unlink(old)
    return path


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as err:
        raise CheckpointError(f"checkpoint {path!r} cannot be read: {err.strerror}") from err
    if not blob.startswith(MAGIC):
        raise CheckpointError(f"checkpoint {path!r} is not a jaxlearn checkpoint (bad magic "
                              "bytes; pickle and other formats are never loaded)")
    if len(blob) < _HEADER:
        raise CheckpointError(f"checkpoint {path!r} is truncated ({len(blob)} bytes, header "
                              f"needs {_HEADER})")
    version_bytes = blob[len(MAGIC):len(MAGIC) + 4]
    if not version_bytes.isdigit():
        raise CheckpointError(f"checkpoint {path!r} has a corrupted version field")
    version = int(version_bytes)
    if version != VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format version {version}; this jaxlearn "
                              f"reads version {VERSION}")
    digest, payload = blob[len(MAGIC) + 4:_HEADER], blob[_HEADER:]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"checkpoint {path!r} is truncated or corrupted (checksum "
                              "mismatch)")
    try:
        data = serialization.msgpack_restore(payload)
    except Exception as err:  # the checksum passed, so this is a file we did not write
        raise CheckpointError(f"checkpoint {path!r} has an undecodable payload: {err}") from err
    required = ("step", "epoch", "params", "opt_state", "key", "key_impl", "history", "meta")
    if not isinstance(data, dict) or any(k not in data for k in required):
        raise CheckpointError(f"checkpoint {path!r} lacks fields: needs {list(required)}")
    return data


def _restore(path: str, name: str, target: Any, stored: Any) -> Any:
    try:
        restored = serialization.from_state_dict(target, stored)
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path!r}: `{name}` does not match the expected "
                              f"structure: {err}") from err
    want = jax.tree_util.tree_leaves_with_path(target)
    got = jax.tree_util.tree_leaves(restored)
    if len(want) != len(got):
        raise CheckpointError(f"checkpoint {path!r}: `{name}` has {len(got)} arrays, expected "
                              f"{len(want)}")
    for (where, w), g in zip(want, got):
        g_shape, w_shape = np.shape(g), np.shape(w)
        g_dtype, w_dtype = np.asarray(g).dtype, np.asarray(w).dtype
        if g_shape != w_shape or g_dtype != w_dtype:
            raise CheckpointError(
                f"checkpoint {path!r}: `{name}{jax.tree_util.keystr(where)}` is "
                f"{g_dtype}{list(g_shape)}, expected {w_dtype}{list(w_shape)}")
    return restored


def load_checkpoint(path: str, *, params: Any, opt_state: Any = None) -> TrainState:
    """Reads and verifies the checkpoint at ``path``.

    ``params`` (and ``opt_state``) give the expected structure, shapes and dtypes (e.g. a fresh
    ``model.init`` and ``optimizer.init``); a mismatch raises :class:`CheckpointError`. Without
    ``opt_state`` the stored optimizer state is returned as nested dicts.
    """
    data = _read(path)
    restored_params = _restore(path, "params", params, data["params"])
    restored_opt = (data["opt_state"] if opt_state is None
                    else _restore(path, "opt_state", opt_state, data["opt_state"]))
    key_data = np.asarray(data["key"], dtype=np.uint32)
    key = (jax.numpy.asarray(key_data) if data["key_impl"] == "raw"
           else jax.random.wrap_key_data(key_data, impl=data["key_impl"]))
    return TrainState(restored_params, restored_opt, key, int(data["epoch"]), int(data["step"]),
                      {k: list(v) for k, v in data["history"].items()}, dict(data["meta"]))


def latest_checkpoint(directory: str, *, params: Any, opt_state: Any = None
                      ) -> tuple[TrainState, str] | None:
    """The newest checkpoint of ``directory`` that loads, with its path, or ``None`` if there is
    none. A newer file that fails to load is skipped with a warning naming it and the problem."""
    for path in reversed(list_checkpoints(directory)):
        try:
            return load_checkpoint(path, params=params, opt_state=opt_state), path
        except CheckpointError as err:
            warnings.warn(f"skipping unusable checkpoint: {err}", RuntimeWarning, stacklevel=2)
    return None


class Checkpoint:
    """A :func:`jaxlearn.fit` callback that saves a :class:`TrainState` every ``every`` epochs
    (and after the last), keeping the newest ``keep`` files in ``directory``.

    Resume with ``fit(..., resume_from=directory)``: the run continues from the newest loadable
    checkpoint and ends with params bitwise equal to an uninterrupted run (tested with SIGKILL).
    """

    def __init__(self, directory: str, *, every: int = 1, keep: int = 3):
        _checks.check_positive("every", every, integer=True)
        _checks.check_positive("keep", keep, integer=True)
        self.directory, self.every, self.keep = directory, every, keep
        self.last_path: str | None = None

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float], params: Any) -> bool:
        return False

    def on_state(self, state: TrainState, *, final: bool) -> None:
        """Called by :func:`jaxlearn.fit` after every epoch with the full training state."""
        if final or state.epoch % self.every == 0:
            self.last_path = save_checkpoint(self.directory, state, keep=self.keep)
