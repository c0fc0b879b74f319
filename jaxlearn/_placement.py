"""Where :func:`jaxlearn.fit` puts its arrays: one device, or replicated over a mesh.

Also the up-front memory check: fit keeps the data on the device and does not stream.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np


def _is_key(a) -> bool:
    return isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)


def _fresh_copy(a):
    """A new device buffer holding ``a``. Through the host for numeric arrays: a transfer costs no
    compilation, where ``jnp.array(a, copy=True)`` compiles one copy program per shape."""
    if _is_key(a):
        return jax.random.wrap_key_data(_fresh_copy(jax.random.key_data(a)),
                                        impl=jax.random.key_impl(a))
    return jax.device_put(np.array(a, copy=True))


class Placement(NamedTuple):
    """How arrays go to devices.

    Attributes:
      state: copies a pytree onto the device(s) as a fresh buffer (donating it never invalidates
        the caller's arrays).
      data: puts data and keys on the device(s) without a copy where possible (never donated).
      scalar: an int32 scalar argument for a program call.
      batch_sharding: the sharding every batch is constrained to (``None`` on one device).
    """

    state: Callable[[Any], Any]
    data: Callable[[Any], Any]
    scalar: Callable[[int], Any]
    batch_sharding: Any

    @staticmethod
    def single_device() -> Placement:
        def state(tree):
            return jax.tree.map(_fresh_copy, tree)

        # numpy ints go to the device inside the call's fast path
        return Placement(state, jax.device_put, np.int32, None)

    @staticmethod
    def over_mesh(mesh, batch_size: int) -> Placement:
        """Replicated over ``mesh`` (global arrays built from each process's host data with
        ``jax.make_array_from_callback``, so the mesh may span processes); batches split over its
        ``"data"`` axis."""
        if not isinstance(mesh, jax.sharding.Mesh):
            raise TypeError(f"`mesh` must be a jax.sharding.Mesh, got {type(mesh).__name__}")
        if "data" not in mesh.axis_names:
            raise ValueError(f"`mesh` must have a 'data' axis to split batches over; its axes are "
                             f"{tuple(mesh.axis_names)}")
        n_data = mesh.shape["data"]
        if batch_size % n_data:
            raise ValueError(f"`batch_size` is {batch_size} but the mesh's 'data' axis has "
                             f"{n_data} devices; batch_size must be divisible by {n_data}")
        P = jax.sharding.PartitionSpec
        replicated = jax.sharding.NamedSharding(mesh, P())

        def leaf(a):
            if _is_key(a):
                data = np.asarray(jax.random.key_data(a))
                return jax.random.wrap_key_data(
                    jax.make_array_from_callback(data.shape, replicated, lambda idx: data[idx]),
                    impl=jax.random.key_impl(a))
            host = np.asarray(a)
            return jax.make_array_from_callback(host.shape, replicated, lambda idx: host[idx])

        def place(tree):
            return jax.tree.map(leaf, tree)

        return Placement(place, place, lambda v: place(np.int32(v)),
                         jax.sharding.NamedSharding(mesh, P("data")))

    @staticmethod
    def for_mesh(mesh, batch_size: int) -> Placement:
        return Placement.single_device() if mesh is None else Placement.over_mesh(mesh, batch_size)


def available_host_bytes() -> int | None:
    """Memory the host can give without swapping: ``MemAvailable`` of ``/proc/meminfo`` (free
    pages plus reclaimable page cache), else free pages; ``None`` when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def free_device_bytes(device) -> int | None:
    """Free memory of ``device`` in bytes: the allocator's limit minus use on accelerators, the
    host's available RAM for the CPU backend; ``None`` when unknown."""
    try:
        stats = device.memory_stats()
    except Exception:  # backends without allocator stats raise various runtime errors
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return available_host_bytes()


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def nbytes(tree) -> int:
    return sum(int(np.prod(np.shape(a))) * np.dtype(a.dtype).itemsize
               for a in jax.tree.leaves(tree))


def check_fits_in_memory(data, params, free_bytes: Callable = free_device_bytes) -> None:
    """Refuses, before anything is copied, data that cannot live on the device.

    :func:`jaxlearn.fit` keeps the whole data set on the device (one compiled program per epoch
    gathers its batches from it); it does not stream. Needed: the data, plus params, gradients and
    optimizer state estimated as 4x the params (Adam keeps two moments).
    """
    needed = nbytes(data) + 4 * nbytes(params)
    device = jax.local_devices()[0]  # the data are placed on this process's devices
    free = free_bytes(device)
    if free is not None and needed > free:
        raise ValueError(f"`x` and `y` (with params and optimizer state) need "
                         f"{format_bytes(needed)} on {device} but only {format_bytes(free)} is "
                         "free; fit keeps the data on the device and does not stream it: use fewer "
                         "samples or a smaller dtype, or stream host batches with "
                         "jl.datasets.batches into a step loop of your own")
