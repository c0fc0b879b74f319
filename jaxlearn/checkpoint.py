"""Checkpoints as plain data: params, optimizer state, PRNG key, counters and history.

File format (version 2; version 1 files are read too), one file per checkpoint,
``ckpt_<step:010d>.jlck``::

    b"JAXLEARN-CKPT\\n"          14-byte magic
    b"0001"                      format version, 4 ASCII digits
    sha256(payload)              32 bytes
    payload                      msgpack (flax.serialization) of a dict of plain data:
        {"step": int, "epoch": int, "params": state dict, "opt_state": state dict,
         "key": uint32 key data, "key_impl": str, "history": {name: [floats]},
         "meta": {"fingerprint": {...}, "run_id": str, ...}, "model_state": state dict,
         "callbacks": {name: state dict}, "stop_reason": str | None}

Arrays are stored by flax.serialization's msgpack extension (dtype, shape, raw bytes); there is
no pickle anywhere, so loading a file never runs code: a file that does not start with the magic,
whose checksum fails, whose version is unknown or whose structure does not match the expected
params is refused with an error naming the file and the problem. Writes are atomic (temp file in
the same folder, fsync, rename, then fsync of the folder); temp files left by a killed write are
removed by the next :class:`Checkpoint` run in the folder.

Retention never loses a run: the file just written is never deleted, and only files of the same
run (the same ``meta["run_id"]``) are candidates for deletion; another run's files in the folder
are left alone, and :func:`resume` resumes only a checkpoint whose fingerprint equals the run's
(see :mod:`jaxlearn.state`).
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import serialization

from jaxlearn import _checks
from jaxlearn._io import atomic_write
from jaxlearn.callbacks import Callback
from jaxlearn.state import TrainState, differences

MAGIC = b"JAXLEARN-CKPT\n"
VERSION = 2
_READABLE = (1, 2)
_HEADER = len(MAGIC) + 4 + 32
_NAME = re.compile(r"^ckpt_(\d{10})\.jlck$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be trusted or does not fit what it is loaded into."""


def checkpoint_path(directory: str, step: int) -> str:
    """Path of the checkpoint of ``step`` in ``directory``."""
    return os.path.join(directory, f"ckpt_{step:010d}.jlck")


def list_checkpoints(directory: str) -> list[str]:
    """Checkpoint files in ``directory``, oldest first (by step)."""
    if not os.path.isdir(directory):
        return []
    names = sorted(n for n in os.listdir(directory) if _NAME.match(n))
    return [os.path.join(directory, n) for n in names]


def save_checkpoint(directory: str, state: TrainState, *, keep: int | None = 3) -> str:
    """Writes ``state`` atomically to ``directory``; then, with ``keep``, deletes all but the
    newest ``keep`` checkpoints *of the same run* (same ``state.meta["run_id"]``). The file just
    written is never deleted, and other runs' files are left alone.

    Returns the path written.
    """
    if keep is not None:
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
        "model_state": serialization.to_state_dict(jax.device_get(state.model_state)),
        "callbacks": jax.device_get(dict(state.callbacks)),
        "stop_reason": state.stop_reason,
    }
    payload = serialization.msgpack_serialize(data)
    blob = MAGIC + f"{VERSION:04d}".encode() + hashlib.sha256(payload).digest() + payload
    path = checkpoint_path(directory, int(state.step))
    atomic_write(path, blob)
    if keep is not None:
        retain(directory, path, state.meta.get("run_id"), keep=keep)
    return path


def retain(directory: str, written: str, run_id: str | None, *, keep: int,
           monitor: str | None = None, mode: str = "min") -> list[str]:
    """Deletes the checkpoints of run ``run_id`` in ``directory`` beyond what is kept: the newest
    ``keep`` (by step), or with ``monitor`` the newest one plus the ``keep`` best by the monitored
    value stored in their meta. ``written`` (the file just written) is always kept; files of other
    runs and unreadable files are never touched. Returns the paths deleted."""
    mine = []
    for path in list_checkpoints(directory):
        try:
            meta = _read(path)["meta"]
        except CheckpointError:
            continue
        if meta.get("run_id") == run_id:
            mine.append((path, meta.get("monitor", {}).get(monitor) if monitor else None))
    by_step = [p for p, _ in mine]  # list_checkpoints is sorted by step
    if monitor is None:
        kept = set(by_step[-keep:])
    else:
        sign = 1.0 if mode == "min" else -1.0
        scored = sorted((sign * v, p) for p, v in mine if v is not None and np.isfinite(v))
        kept = {p for _, p in scored[:keep]} | set(by_step[-1:])
    kept.add(written)
    deleted = [p for p in by_step if p not in kept]
    for p in deleted:
        os.unlink(p)
    return deleted


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
    if version not in _READABLE:
        raise CheckpointError(f"checkpoint {path!r} has format version {version}; this jaxlearn "
                              f"reads versions {list(_READABLE)}")
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
    got = jax.tree.leaves(restored)
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


def load_checkpoint(path: str, *, params: Any, opt_state: Any = None,
                    model_state: Any = ()) -> TrainState:
    """Reads and verifies the checkpoint at ``path``.

    ``params`` (and ``opt_state``, ``model_state``) give the expected structure, shapes and dtypes
    (e.g. a fresh ``model.init`` and ``optimizer.init``); a mismatch raises
    :class:`CheckpointError`. Without ``opt_state`` the stored optimizer state is returned as nested
    dicts. Callback states come back as stored (plain data).
    """
    return _to_state(path, _read(path), params, opt_state, model_state)


def _to_state(path, data, params, opt_state, model_state) -> TrainState:
    restored_params = _restore(path, "params", params, data["params"])
    restored_opt = (data["opt_state"] if opt_state is None
                    else _restore(path, "opt_state", opt_state, data["opt_state"]))
    restored_model_state = _restore(path, "model_state", model_state,
                                    data.get("model_state", {}))
    key_data = np.asarray(data["key"], dtype=np.uint32)
    key = (jax.numpy.asarray(key_data) if data["key_impl"] == "raw"
           else jax.random.wrap_key_data(key_data, impl=data["key_impl"]))
    return TrainState(restored_params, restored_opt, key, int(data["epoch"]), int(data["step"]),
                      {k: list(v) for k, v in data["history"].items()}, dict(data["meta"]),
                      restored_model_state, dict(data.get("callbacks") or {}),
                      data.get("stop_reason"))


def latest_checkpoint(directory: str, *, params: Any, opt_state: Any = None,
                      model_state: Any = ()) -> tuple[TrainState, str] | None:
    """The newest checkpoint of ``directory`` that loads, with its path, or ``None`` if there is
    none. A newer file that fails to load is skipped with a warning naming it and the problem."""
    for path in reversed(list_checkpoints(directory)):
        try:
            return load_checkpoint(path, params=params, opt_state=opt_state,
                                   model_state=model_state), path
        except CheckpointError as err:
            warnings.warn(f"skipping unusable checkpoint: {err}", RuntimeWarning, stacklevel=2)
    return None


def resume(directory: str, *, fingerprint: Mapping[str, str], params: Any, opt_state: Any,
           model_state: Any = ()) -> TrainState | None:
    """The newest checkpoint of ``directory`` made by this very run (the same fingerprint), for
    ``fit(..., resume_from=directory)``; ``None`` when the folder holds no checkpoint.

    Files that cannot be read are skipped with a warning. If the folder holds checkpoints but none
    of this run, raises ``ValueError`` naming what differs from the newest one: a checkpoint of
    another model, optimizer, loss, data, batch size, length of training, key or early-stopping
    setting is never resumed.
    """
    newest_other = None
    for path in reversed(list_checkpoints(directory)):
        try:
            data = _read(path)
        except CheckpointError as err:
            warnings.warn(f"skipping unusable checkpoint: {err}", RuntimeWarning, stacklevel=2)
            continue
        stored = data["meta"].get("fingerprint")
        if stored == dict(fingerprint):
            return _to_state(path, data, params, opt_state, model_state)
        if newest_other is None:
            newest_other = (path, stored)
    if newest_other is None:
        return None
    path, stored = newest_other
    if stored is None:
        raise ValueError(f"`resume_from`: checkpoint {path!r} has no run fingerprint (written by "
                         "an older jaxlearn or by hand); it cannot be checked against this run, so "
                         "it is not resumed")
    raise ValueError(f"`resume_from`: checkpoint {path!r} is of another run: it "
                     + "; it ".join(differences(stored, fingerprint))
                     + ". Resuming it would not reproduce this run; use another folder")


_TEMP = re.compile(r"^\.tmp-.*-ckpt_\d{10}\.jlck$")


class Checkpoint(Callback):
    """A :func:`jaxlearn.fit` callback that saves the :class:`~jaxlearn.state.TrainState` every
    ``every`` epochs (and when training ends) in ``directory``.

    Keeps the newest ``keep`` checkpoints of the run, or with ``monitor`` (a key of the epoch logs,
    e.g. ``"val_loss"``, with ``mode`` ``"min"``/``"max"``) the ``keep`` best by that value plus the
    newest one (needed to resume); ``best_path`` names the best so far. The file just written is
    never deleted; other runs' files in the folder are left alone (with a warning). Temp files left
    by a killed write are removed when training begins. In a multi-process run only process 0
    writes.

    Resume with ``fit(..., resume_from=directory)``: the run continues from its newest checkpoint,
    callbacks included (early stopping's state is saved), and ends bitwise equal to an uninterrupted
    run (tested with SIGKILL at several moments); a finished run resumed does not train further.
    """

    reads_params = False

    def __init__(self, directory: str, *, every: int = 1, keep: int = 3,
                 monitor: str | None = None, mode: str = "min"):
        _checks.check_positive("every", every, integer=True)
        _checks.check_positive("keep", keep, integer=True)
        _checks.check_choice("mode", mode, ("min", "max"))
        if monitor is not None and not isinstance(monitor, str):
            raise TypeError(f"`monitor` must be a log name such as 'val_loss', got "
                            f"{type(monitor).__name__}")
        self.directory, self.every, self.keep = directory, every, keep
        self.monitor, self.mode = monitor, mode
        self.last_path: str | None = None
        self.best_path: str | None = None
        self._logs: Mapping[str, float] = {}

    def on_train_begin(self, state: TrainState) -> None:
        self.last_path = self.best_path = None
        self._logs = {}
        if jax.process_index() != 0 or not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if _TEMP.match(name):  # a write killed before its rename
                os.unlink(os.path.join(self.directory, name))
        others = 0
        for path in list_checkpoints(self.directory):
            try:
                if _read(path)["meta"].get("fingerprint") != state.meta.get("fingerprint"):
                    others += 1
            except CheckpointError:
                others += 1
        if others:
            warnings.warn(f"Checkpoint: {self.directory!r} holds {others} checkpoint(s) of another "
                          "run; they are left alone and never resumed by this run",
                          RuntimeWarning, stacklevel=2)

    def on_epoch_end(self, epoch, logs, params):
        self._logs = logs
        if self.monitor is not None and self.monitor not in logs:
            raise ValueError(f"Checkpoint: `monitor` is {self.monitor!r} but the epoch logs have "
                             f"{sorted(logs)}; pass validation_data to monitor val_* metrics")

    def on_state(self, state: TrainState, *, final: bool) -> None:
        """Saves ``state`` every ``every`` epochs and at the end (process 0 only)."""
        if jax.process_index() != 0 or not (final or state.epoch % self.every == 0):
            return
        if self.monitor is not None and self.monitor in self._logs:
            value = float(self._logs[self.monitor])
            state = state._replace(meta={**state.meta, "monitor": {self.monitor: value}})
        self.last_path = save_checkpoint(self.directory, state, keep=None)
        retain(self.directory, self.last_path, state.meta.get("run_id"), keep=self.keep,
               monitor=self.monitor, mode=self.mode)
        if self.monitor is not None:
            self.best_path = self._best(state.meta.get("run_id"))

    def _best(self, run_id):
        sign = 1.0 if self.mode == "min" else -1.0
        best = None
        for path in list_checkpoints(self.directory):
            meta = _read(path)["meta"]
            value = meta.get("monitor", {}).get(self.monitor)
            if meta.get("run_id") == run_id and value is not None and np.isfinite(value):
                if best is None or sign * value < sign * best[0]:
                    best = (value, path)
        return None if best is None else best[1]
