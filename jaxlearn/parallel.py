"""Data parallelism over many devices and processes, with plain ``jax.jit`` and shardings.

:func:`jaxlearn.fit` takes ``mesh=``: data and params are replicated over the mesh and each
batch is split over its ``"data"`` axis; XLA's SPMD partitioner inserts the gradient all-reduce
(no ``shard_map``, so nothing is summed twice). This module builds such meshes.

Several processes (hosts): call :func:`initialize` in every process before anything else touches
JAX, then build the mesh over ``jax.devices()`` — the global list — and call ``fit`` with the same
arguments in every process. Each process feeds its own copy of the (replicated) data.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from jaxlearn import _checks


def data_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh with one ``"data"`` axis over ``devices`` (default: every device of every
    process, ``jax.devices()``)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("`devices` is empty; give at least one jax.Device")
    for i, d in enumerate(devices):
        if not isinstance(d, jax.Device):
            raise TypeError(f"`devices[{i}]` must be a jax.Device, got {type(d).__name__}")
    return jax.sharding.Mesh(np.array(devices), ("data",))


def initialize(coordinator_address: str, num_processes: int, process_id: int) -> None:
    """Joins a multi-process JAX run (``jax.distributed.initialize``) on CPU or accelerators.

    ``coordinator_address`` is ``"host:port"`` of process 0. On CPU, cross-process collectives use
    gloo (set here). Call it first thing in every process.
    """
    _checks.check_positive("num_processes", num_processes, integer=True)
    _checks.check_number("process_id", process_id, integer=True)
    if not 0 <= process_id < num_processes:
        raise ValueError(f"`process_id` must lie in [0, {num_processes}), got {process_id}")
    if not isinstance(coordinator_address, str) or ":" not in coordinator_address:
        raise ValueError(f"`coordinator_address` must be 'host:port', got {coordinator_address!r}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
