"""Your own data: MedMNIST .npz files, image folders, arrays and CSV.

Every loader reads files already on disk (nothing is ever downloaded), checks them, and returns
numpy arrays: ``x`` float32 and ``y`` int32 class labels ``[n]``, images channels-last
``[n, H, W, C]``. Errors name the file, the key, row or column, what was expected and what was
found, and are raised before the big arrays are decoded.

- **MedMNIST** (Yang et al. 2023, https://medmnist.com): :func:`load_medmnist` reads one of its
  ``.npz`` files, checks its MD5 against the published one, and scales pixels to ``[0, 1]``;
  :func:`medmnist_labels` gives the class names. The metadata (URLs, checksums, class names)
  comes from the ``medmnist`` package when it is installed (``pip install --no-deps medmnist``:
  its dependencies would pull torch, which is not needed here) or from an ``info=`` mapping.
- **An image folder** ``root/<class>/*.png``: :func:`load_image_folder`, resized with Pillow.
- **Arrays**: :func:`load_npz`, :func:`load_npy`; **a table**: :func:`load_csv`.
- **Memory**: :func:`memory_budget` and :func:`check_fits` say whether an array fits; the loaders
  check the host's memory before they decode. :func:`jaxlearn.fit` keeps the whole data set on the
  device; for data larger than the device's memory, :func:`batches` streams shuffled batches from
  host arrays (or ``np.load(..., mmap_mode="r")`` memory maps) into a step loop of your own.

The loaders do not standardise: fit the statistics on the training split only, with
``stats = jl.data.fit_standardizer(x_train)`` and ``jl.data.standardize(x, stats)``.

Example::

    >>> x = np.zeros((6, 4), np.float32); y = np.arange(6, dtype=np.int32)
    >>> order = [yb for _, yb in batches(jax.random.key(0), x, y, 3, epochs=2)]
    >>> [b.shape for b in order]
    [(3,), (3,), (3,), (3,)]
    >>> sorted(np.concatenate(order[:2]).tolist())     # each epoch sees every example once
    [0, 1, 2, 3, 4, 5]
"""

from __future__ import annotations

import ast
import csv
import functools
import hashlib
import importlib.util
import os
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxlearn import _checks, _placement
from jaxlearn._types import Array, PRNGKeyArray
from jaxlearn.data import Dataset

_SPLITS = ("train", "val", "test")
_MEDMNIST_NAME = re.compile(r"^(?P<flag>.+?)(?:_(?P<size>\d+))?\.npz$")
_INFO_INSTALL = "pip install --no-deps medmnist"


# ------------------------------------------------------------------------------------ memory

def memory_budget(device: jax.Device | None = None) -> int:
    """Bytes that ``device`` (default: the first jax device) can still hold.

    On an accelerator: the allocator's ``bytes_limit - bytes_in_use`` from
    ``device.memory_stats()``. On the CPU backend, or where the device keeps no statistics: the
    host's ``MemAvailable`` from ``/proc/meminfo`` (free memory plus reclaimable page cache),
    else ``os.sysconf`` free pages.

    Args:
      device: a ``jax.Device``; ``jax.devices("cpu")[0]`` gives the host's memory on any machine.

    Returns:
      The budget in bytes (an ``int``).
    """
    if device is None:
        device = jax.devices()[0]
    if not isinstance(device, jax.Device):
        raise TypeError(f"`device` must be a jax.Device (e.g. jax.devices()[0]) or None, got "
                        f"{type(device).__name__}")
    free = _placement.free_device_bytes(device)
    if free is None:
        raise OSError(f"cannot tell how much memory {device} has left: it reports no statistics "
                      "and this host has neither /proc/meminfo nor os.sysconf; pass `budget=` to "
                      "check_fits")
    return free


def check_fits(nbytes: int, *, what: str, budget: int | None = None) -> None:
    """Refuses an array of ``nbytes`` bytes that would not fit in ``budget``.

    Args:
      nbytes: size of the array about to be made (``n * prod(shape) * itemsize``).
      what: what the array is, for the message (``"x of dermamnist_224.npz"``).
      budget: bytes available; default :func:`memory_budget` of the default device.

    Raises:
      ValueError: ``nbytes > budget``; the message gives both sizes and what to do instead
        (subsample, a smaller ``image_size``, or stream with :func:`batches`).
    """
    _checks.check_nonnegative("nbytes", nbytes, integer=True)
    if not isinstance(what, str):
        raise TypeError(f"`what` must be a str, got {type(what).__name__}")
    if budget is None:
        budget = memory_budget()
    _checks.check_nonnegative("budget", budget, integer=True)
    if nbytes > budget:
        raise ValueError(
            f"{what} needs {_placement.format_bytes(nbytes)} but only "
            f"{_placement.format_bytes(budget)} is available; load a subsample, use a smaller "
            "image_size, or keep the data on the host (np.load(..., mmap_mode='r')) and stream it "
            "with jaxlearn.datasets.batches")


def _check_fits_host(nbytes: int, what: str) -> None:
    """The loaders return numpy arrays: they check the host's memory (skipped when unknown)."""
    budget = _placement.available_host_bytes()
    if budget is not None:
        check_fits(nbytes, what=f"{what} (float32, on the host)", budget=budget)


_WIDE = tuple(np.dtype(t) for t in (np.float64, np.int64, np.uint64, np.complex128))


def batches(key: PRNGKeyArray, x: Any, y: Any, batch_size: int, *, epochs: int = 1,
            drop_last: bool = True) -> Iterator[tuple[Array, Array]]:
    """Shuffled minibatches streamed from host arrays to the device, for data too large for it.

    :func:`jaxlearn.fit` wants the whole data set on the device (one compiled program per epoch
    gathers its batches there). When it does not fit, keep ``x`` on the host — a numpy array or
    a memory map ``np.load(path, mmap_mode="r")`` — and write the step loop yourself; only one
    batch at a time is copied to the device. Epoch ``e`` visits the examples in the order
    ``jax.random.permutation(jax.random.fold_in(key, e), n)``, cut into consecutive batches;
    within a batch the examples come in index order (contiguous reads from a memory map).
    Values and dtypes are passed through unchanged.

    Example, a step loop of your own (``update`` computes the loss's gradient and applies the
    optimizer; with ``drop_last=True`` every batch has one shape, so ``step`` compiles once)::

        x = np.load("x.npy", mmap_mode="r")             # stays on disk, read batch by batch
        y = np.load("y.npy")
        step = jax.jit(update)                          # (params, opt_state, xb, yb) -> (..., loss)
        for xb, yb in jl.datasets.batches(key, x, y, 128, epochs=10):
            params, opt_state, loss = step(params, opt_state, xb, yb)
        print(float(loss))                              # once, after the loop

    Args:
      key: a ``jax.random`` key; the same key gives the same batches.
      x: inputs ``[n, ...]`` (numpy, memory map or jax array), any dtype jax can hold
        (64-bit dtypes only with ``jax_enable_x64``).
      y: targets ``[n, ...]``.
      batch_size: examples per batch.
      epochs: passes over the data.
      drop_last: drop each epoch's last ``n % batch_size`` examples (of that epoch's order) so all
        batches have one shape; ``False`` yields a smaller last batch (one more compilation of a
        jitted step).

    Returns:
      An iterator of ``(x_batch [batch_size, ...], y_batch [batch_size, ...])`` jax arrays on the
      default device: ``epochs * (n // batch_size)`` batches (``ceil`` without ``drop_last``).
    """
    _checks.check_key("key", key)
    for name, arr in (("x", x), ("y", y)):
        if not isinstance(arr, (np.ndarray, jax.Array)):
            raise TypeError(f"`{name}` must be a numpy array, a memory map or a jax array, got "
                            f"{type(arr).__name__}")
        if np.dtype(arr.dtype) in _WIDE and not jax.config.jax_enable_x64:
            raise TypeError(f"`{name}` has dtype {arr.dtype}, which jax would store as a 32-bit "
                            "type: convert it first (x.astype(np.float32), y.astype(np.int32)) or "
                            "enable jax_enable_x64")
    _checks.check_nonempty("x", x)
    _checks.check_same_length("x", x, "y", y)
    _checks.check_positive("batch_size", batch_size, integer=True)
    _checks.check_positive("epochs", epochs, integer=True)
    _checks.check_bool("drop_last", drop_last)
    n = x.shape[0]
    if drop_last and batch_size > n:
        raise ValueError(f"`batch_size` is {batch_size} but `x` has only {n} examples: with "
                         "drop_last=True no batch would be made; use a smaller batch_size or "
                         "drop_last=False")
    return _batches(key, x, y, int(batch_size), int(epochs), drop_last)


def _batches(key, x, y, batch_size, epochs, drop_last):
    n = x.shape[0]
    stop = n - n % batch_size if drop_last else n
    for epoch in range(epochs):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))
        for start in range(0, stop, batch_size):
            idx = np.sort(order[start:start + batch_size])
            yield jax.device_put(x[idx]), jax.device_put(y[idx])


# ---------------------------------------------------------------------------------- MedMNIST

def load_medmnist(path: str | os.PathLike, *, split: str | None = None, flag: str | None = None,
                  info: Mapping[str, Any] | None = None, verify: bool = True,
                  multilabel: bool = False) -> Dataset | tuple[np.ndarray, np.ndarray]:
    """Reads a MedMNIST ``.npz`` file (e.g. ``dermamnist.npz``, ``dermamnist_64.npz``).

    The file holds ``{train,val,test}_images`` uint8 ``[n, H, W]`` (grayscale) or
    ``[n, H, W, 3]`` and ``{train,val,test}_labels`` integers ``[n, 1]`` (``[n, L]`` for the
    multi-label ChestMNIST). Pixels become ``x = pixel / 255`` in float32. The data set's
    ``flag`` and image size come from the file name (``<flag>.npz`` is 28x28,
    ``<flag>_<size>.npz`` is ``size x size``), as written by the ``medmnist`` package.

    With metadata (``info``, or the installed ``medmnist`` package's ``INFO``), the file's MD5 is
    checked against the published one (``MD5``, ``MD5_64``, ...), the number of channels and the
    label range against the task. Without any, loading works but ``verify=True`` warns that the
    file was not verified. A missing file raises ``FileNotFoundError`` telling how to download it
    (this function never does). 3-D volumes (``*mnist3d``) are not supported.

    Args:
      path: the ``.npz`` file.
      split: ``None`` for the train and test splits as a :class:`~jaxlearn.data.Dataset`, or one
        of ``"train"``, ``"val"``, ``"test"`` for that split alone (load ``"val"`` to tune on).
      flag: the data set's key in the metadata (``"dermamnist"``); default from the file name.
      info: metadata shaped like ``medmnist.INFO``: ``{flag: {"task", "label", "n_channels",
        "MD5", "MD5_64", "url", "url_64", ...}}``; default the installed ``medmnist``'s, read
        without importing the package (which would import torch).
      verify: check the MD5 (streamed; about a second per 500 MB).
      multilabel: accept a multi-label task and return ``y`` as ``[n, L]`` 0/1 indicators.

    Returns:
      ``split=None``: ``Dataset(x_train, y_train, x_test, y_test)``; otherwise ``(x, y)``. ``x``
      is float32 ``[n, H, W, C]`` in ``[0, 1]`` (``C = 1`` for grayscale), ``y`` int32 ``[n]`` in
      ``[0, n_classes)`` (``[n, L]`` with ``multilabel=True``).
    """
    path = _check_path("path", path)
    if split is not None:
        _checks.check_choice("split", split, _SPLITS)
    if flag is not None and not isinstance(flag, str):
        raise TypeError(f"`flag` must be a str such as 'dermamnist', got {type(flag).__name__}")
    if info is not None and not isinstance(info, Mapping):
        raise TypeError(f"`info` must be a mapping like medmnist.INFO, got {type(info).__name__}")
    _checks.check_bool("verify", verify)
    _checks.check_bool("multilabel", multilabel)
    match = _MEDMNIST_NAME.match(path.name)
    if match is None:
        raise ValueError(f"`path` must name a .npz file (MedMNIST's <flag>.npz or "
                         f"<flag>_<size>.npz), got {str(path)!r}")
    from_name = flag is None
    flag = match["flag"] if from_name else flag
    size = int(match["size"] or 28)
    if info is None:
        info = _installed_medmnist_info()
    meta = _flag_info(flag, info, from_name=from_name) if info is not None else None

    if not path.is_file():
        raise FileNotFoundError(_medmnist_missing(path, flag, size, meta))
    if verify:
        _verify_md5(path, flag, size, meta)

    wanted = _SPLITS[::2] if split is None else (split,)
    headers = _npz_headers(path)
    parts = []
    for s in wanted:
        x_shape, channels = _check_medmnist_images(path, headers, f"{s}_images", meta, flag)
        y_shape = _check_medmnist_labels(path, headers, f"{s}_labels", x_shape[0], meta, flag,
                                         multilabel)
        parts.append((s, x_shape, channels, y_shape))
    # float32 pixels and labels, plus the uint8 pixels of one split while it is converted
    pixels = [int(np.prod(xs[:3])) * c for _, xs, c, _ in parts]
    _check_fits_host(4 * sum(pixels) + max(pixels) + 4 * sum(int(np.prod(ys)) for *_, ys in parts),
                     f"the {'/'.join(wanted)} split of {path}")

    n_classes = len(meta["label"]) if meta is not None else None
    out = []
    with np.load(path, allow_pickle=False) as npz:
        for s, x_shape, channels, _ in parts:
            x = np.divide(npz[f"{s}_images"], np.float32(255.0), dtype=np.float32)
            out.append(x.reshape(*x_shape[:3], channels))
            out.append(_medmnist_y(path, f"{s}_labels", npz[f"{s}_labels"], n_classes,
                                   multilabel))
    return Dataset(*out) if split is None else (out[0], out[1])


def medmnist_labels(flag: str, *, info: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The class names of a MedMNIST data set, in label order (``names[y]`` names label ``y``).

    Args:
      flag: the data set (``"dermamnist"``).
      info: metadata shaped like ``medmnist.INFO``; default the installed ``medmnist``'s.

    Returns:
      A tuple of ``n_classes`` strings (``L`` for a multi-label set: the name of each indicator).
    """
    if not isinstance(flag, str):
        raise TypeError(f"`flag` must be a str such as 'dermamnist', got {type(flag).__name__}")
    if info is not None and not isinstance(info, Mapping):
        raise TypeError(f"`info` must be a mapping like medmnist.INFO, got {type(info).__name__}")
    if info is None:
        info = _installed_medmnist_info()
        if info is None:
            raise ModuleNotFoundError(f"the class names of {flag!r} come from the medmnist "
                                      f"package's metadata: `{_INFO_INSTALL}`, or pass `info=`")
    return _class_names(flag, _flag_info(flag, info, from_name=False))


@functools.lru_cache(maxsize=1)
def _installed_medmnist_info() -> Mapping[str, Any] | None:
    """``medmnist.INFO`` without importing ``medmnist/__init__.py`` (torch, a banner): the
    literal is read from ``info.py``'s source; the module runs only if it is not a literal."""
    spec = importlib.util.find_spec("medmnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    info_py = Path(next(iter(spec.submodule_search_locations))) / "info.py"
    if not info_py.is_file():
        return None
    for node in ast.parse(info_py.read_text(encoding="utf-8")).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "INFO"):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                break
    module_spec = importlib.util.spec_from_file_location("_jaxlearn_medmnist_info", info_py)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, "INFO", None)


def _flag_info(flag: str, info: Mapping[str, Any], *, from_name: bool) -> Mapping[str, Any]:
    if flag not in info:
        origin = " (from the file name; pass `flag=` if it was renamed)" if from_name else ""
        raise ValueError(f"`flag` {flag!r}{origin} is not in the MedMNIST metadata; known flags: "
                         f"{sorted(info)}")
    meta = info[flag]
    for key in ("task", "label", "n_channels"):
        if not isinstance(meta, Mapping) or key not in meta:
            raise ValueError(f"`info[{flag!r}]` must hold the key {key!r} (like medmnist.INFO), "
                             f"got keys {sorted(meta) if isinstance(meta, Mapping) else meta!r}")
    return meta


def _class_names(flag: str, meta: Mapping[str, Any]) -> tuple[str, ...]:
    labels = meta["label"]
    if sorted(labels, key=str) != sorted(str(k) for k in range(len(labels))):
        raise ValueError(f"`info[{flag!r}]['label']` must be keyed '0'..'{len(labels) - 1}', got "
                         f"keys {sorted(labels, key=str)}")
    return tuple(str(labels[str(k)]) for k in range(len(labels)))


def _size_suffix(size: int) -> str:
    return "" if size == 28 else f"_{size}"


def _medmnist_missing(path: Path, flag: str, size: int, meta: Mapping[str, Any] | None) -> str:
    url = meta.get(f"url{_size_suffix(size)}") if meta is not None else None
    if url:
        how = f"on a machine with a network: wget -O {path} '{url}'"
    else:
        cls = (f"medmnist.{meta['python_class']}" if meta is not None and "python_class" in meta
               else f"getattr(medmnist, medmnist.INFO[{flag!r}]['python_class'])")
        how = (f"on a machine with a network: pip install medmnist, then python -c \"import "
               f"medmnist; {cls}(split='test', download=True, size={size}, "
               f"root='{path.parent}')\" (it writes {flag}{_size_suffix(size)}.npz there)")
    return f"MedMNIST file {path} not found; jaxlearn never downloads. Get it {how}"


def _verify_md5(path: Path, flag: str, size: int, meta: Mapping[str, Any] | None) -> None:
    expected = meta.get(f"MD5{_size_suffix(size)}") if meta is not None else None
    if expected is None:
        why = (f"the metadata of {flag!r} has no MD5{_size_suffix(size)} entry" if meta is not None
               else f"no MedMNIST metadata: `{_INFO_INSTALL}` provides it (or pass `info=`)")
        warnings.warn(f"the checksum of {path} was not verified: {why}; pass verify=False to "
                      "silence this", UserWarning, stacklevel=3)
        return
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ValueError(f"{path} has MD5 {digest.hexdigest()} but the published MD5 of "
                         f"{flag}{_size_suffix(size)}.npz is {expected}: the file is damaged, "
                         "incomplete or another version; download it again")


def _check_medmnist_images(path, headers, key, meta, flag) -> tuple[tuple[int, ...], int]:
    shape, dtype = _npz_entry(path, headers, key, "MedMNIST")
    if dtype != np.uint8:
        raise ValueError(f"{path}: `{key}` must be uint8 pixels, got dtype {dtype}")
    want = meta["n_channels"] if meta is not None else None
    volume = " (MedMNIST 3-D volumes are not supported)" if flag.endswith("3d") else ""
    if len(shape) == 3 and want in (None, 1):
        return shape, 1
    if len(shape) == 4 and shape[3] == 3 and want in (None, 3):
        return shape, 3
    expect = {1: "[n, H, W] (grayscale)", 3: "[n, H, W, 3] (colour)"}.get(
        want, "[n, H, W] (grayscale) or [n, H, W, 3] (colour)")
    source = f" for {flag!r} (n_channels={want})" if want is not None else ""
    raise ValueError(f"{path}: `{key}` must have shape {expect}{source}, got {shape}{volume}")


def _check_medmnist_labels(path, headers, key, n, meta, flag, multilabel) -> tuple[int, ...]:
    shape, dtype = _npz_entry(path, headers, key, "MedMNIST")
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"{path}: `{key}` must hold integer labels, got dtype {dtype}")
    if len(shape) != 2 or shape[0] != n:
        raise ValueError(f"{path}: `{key}` must have shape [{n}, 1] (or [{n}, L] multi-label), one "
                         f"row per image, got {shape}")
    if meta is not None:
        task = str(meta["task"])
        is_multi = task.startswith("multi-label")
        n_labels = len(meta["label"]) if is_multi else 1
        if shape[1] != n_labels:
            raise ValueError(f"{path}: `{key}` must have shape [{n}, {n_labels}] for the task "
                             f"{task!r} of {flag!r}, got {shape}")
    else:
        is_multi = shape[1] > 1
        task = f"multi-label ({shape[1]} labels per image)" if is_multi else "single-label"
    if is_multi and not multilabel:
        raise ValueError(f"{path}: {flag!r} is a {task!r} task, with {shape[1]} 0/1 labels per "
                         "image: pass multilabel=True to get y as [n, L] indicators")
    if multilabel and not is_multi:
        raise ValueError(f"`multilabel` is True but {flag!r} is a {task!r} task (one label per "
                         "image): pass multilabel=False")
    return shape


def _medmnist_y(path, key, labels, n_classes, multi) -> np.ndarray:
    lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    top = 2 if multi else n_classes
    if lo < 0 or (top is not None and hi >= top):
        bad = lo if lo < 0 else hi
        what = "0/1 indicators" if multi else (f"labels in [0, {top})" if top is not None
                                               else "labels >= 0")
        raise ValueError(f"{path}: `{key}` holds {bad}; expected {what}")
    y = labels.astype(np.int32)
    return y if multi else y[:, 0]


# ------------------------------------------------------------------------------ image folders

_NATURAL_CHANNELS = {"1": 1, "L": 1, "I;16": 1, "I;16L": 1, "I;16B": 1, "RGB": 3}


def load_image_folder(root: str | os.PathLike, *, image_size: tuple[int, int],
                      channels: int | None = None,
                      extensions: Sequence[str] = (".png", ".jpg", ".jpeg"),
                      ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Reads ``root/<class>/<image>``: one sub-folder per class, the usual layout for your images.

    Classes are the sub-folders in sorted name order (label ``k`` is ``class_names[k]``); images
    are read in sorted file-name order within each. Files whose extension (any case) is not in
    ``extensions``, hidden files and folders (``.name``), files directly in ``root`` and
    sub-sub-folders are ignored. Pixels are scaled to ``[0, 1]`` (by 255, 16-bit grayscale by
    65535) and resized to ``image_size`` with Pillow's bilinear filter (which averages over the
    pixels it covers when shrinking), computed in float32.

    Args:
      root: the folder holding one sub-folder per class.
      image_size: ``(H, W)`` of the output images.
      channels: ``None`` keeps each file's own (grayscale 1, RGB 3) and refuses a mix or other
        modes (RGBA, palette, CMYK); ``1`` or ``3`` converts every image with Pillow (``"L"``,
        ``"RGB"``; alpha is dropped).
      extensions: file-name endings of the images to read.

    Returns:
      ``(x, y, class_names)``: ``x`` float32 ``[n, H, W, C]`` in ``[0, 1]``, ``y`` int32 ``[n]``,
      ``class_names`` a tuple of the sub-folders' names.
    """
    from PIL import Image, UnidentifiedImageError

    root = _check_path("root", root)
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                       for v in image_size)):
        raise ValueError(f"`image_size` must be (H, W), two positive ints, got {image_size!r}")
    if channels is not None:
        _checks.check_number("channels", channels, integer=True)
        _checks.check_choice("channels", channels, (1, 3))
    if isinstance(extensions, str) or not all(isinstance(e, str) for e in extensions):
        raise TypeError(f"`extensions` must be a sequence of str such as ('.png', '.jpg'), got "
                        f"{extensions!r}")
    suffixes = tuple(e.lower() for e in extensions)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} not found" if not root.exists() else
                                f"`root` must be a folder with one sub-folder per class; {root} "
                                "is a file")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        loose = sum(1 for f in root.iterdir() if f.name.lower().endswith(suffixes))
        hint = (f"; it holds {loose} image file(s) directly: put them in one sub-folder per "
                "class" if loose else "")
        raise ValueError(f"{root} has no class sub-folders (root/<class>/<image>){hint}")

    files, labels = [], []
    for label, folder in enumerate(class_dirs):
        found = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
                       and f.name.lower().endswith(suffixes))
        if not found:
            raise ValueError(f"class folder {folder} holds no image ending in {list(suffixes)}; "
                             "remove it or add images")
        files += found
        labels += [label] * len(found)

    modes = []
    for f in files:
        try:
            with Image.open(f) as img:
                modes.append(img.mode)
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"cannot read the image {f}: {err}") from err
    if channels is None:
        first_of = {}
        for f, mode in zip(files, modes):
            if mode not in _NATURAL_CHANNELS:
                raise ValueError(f"{f} has Pillow mode {mode!r} (not grayscale or RGB): pass "
                                 "channels=1 or channels=3 to convert every image")
            first_of.setdefault(_NATURAL_CHANNELS[mode], f)
        if len(first_of) > 1:
            raise ValueError(f"the images have different channel counts: {first_of[1]} has 1, "
                             f"{first_of[3]} has 3; pass channels=1 or channels=3 to convert")
        n_channels = next(iter(first_of))
    else:
        n_channels = channels
    height, width = (int(v) for v in image_size)
    _check_fits_host(4 * len(files) * height * width * n_channels, f"the images of {root}")

    x = np.empty((len(files), height, width, n_channels), np.float32)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                img.load()
                pixels = _image_array(img, channels)
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"cannot read the image {f}: {err}") from err
        x[i] = _resize(pixels, height, width, Image)
    return x, np.asarray(labels, np.int32), tuple(d.name for d in class_dirs)


def _image_array(img, channels: int | None) -> np.ndarray:
    """Pixels ``[h, w, C]`` float32 in [0, 1]; 16-bit grayscale scaled by 65535, never clipped."""
    if img.mode.startswith("I;16"):
        gray = np.asarray(img, np.float32) / np.float32(65535.0)
        return np.repeat(gray[..., None], channels or 1, axis=2)
    if channels is not None:
        img = img.convert("L" if channels == 1 else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    pixels = np.asarray(img, np.float32) / np.float32(255.0)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _resize(pixels: np.ndarray, height: int, width: int, image_module) -> np.ndarray:
    if pixels.shape[:2] == (height, width):
        return pixels
    return np.stack([np.asarray(image_module.fromarray(pixels[..., c]).resize(
        (width, height), image_module.Resampling.BILINEAR)) for c in range(pixels.shape[2])],
        axis=-1)


# ----------------------------------------------------------------------------------- arrays

def load_npz(path: str | os.PathLike, *, x_key: str = "x",
             y_key: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Reads ``x`` and ``y`` from a ``.npz`` file (``np.savez(path, x=x, y=y)``).

    ``x`` is converted to float32 as stored, not rescaled: uint8 pixels stay in ``[0, 255]``
    (divide by 255, or standardise). ``y`` must hold integer class labels ``>= 0``, shape ``[n]``
    or ``[n, 1]`` (returned as ``[n]``). Refused: NaN or inf in ``x``, float labels, mismatched
    lengths, values beyond float32's range.

    Args:
      path: the ``.npz`` file.
      x_key, y_key: the names of the two arrays in it.

    Returns:
      ``(x, y)``: ``x`` float32 ``[n, ...]`` (at least 2 dimensions), ``y`` int32 ``[n]``.
    """
    path = _check_path("path", path)
    for name, key in (("x_key", x_key), ("y_key", y_key)):
        if not isinstance(key, str):
            raise TypeError(f"`{name}` must be a str, got {type(key).__name__}")
    if not path.is_file():
        raise FileNotFoundError(f"array file {path} not found")
    headers = _npz_headers(path)
    x_shape, x_dtype = _npz_entry(path, headers, x_key, "x")
    y_shape, y_dtype = _npz_entry(path, headers, y_key, "y")
    _check_xy_headers(f"{path}: `{x_key}`", x_shape, x_dtype, f"{path}: `{y_key}`", y_shape,
                      y_dtype)
    with np.load(path, allow_pickle=False) as npz:
        x = _float32_x(f"{path}: `{x_key}`", npz[x_key])
        return x, _int32_y(f"{path}: `{y_key}`", npz[y_key])


def load_npy(x_path: str | os.PathLike,
             y_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reads ``x`` and ``y`` from two ``.npy`` files (``np.save``), with the checks of
    :func:`load_npz`. For data larger than memory, use ``np.load(x_path, mmap_mode="r")`` and
    :func:`batches` instead.

    Returns:
      ``(x, y)``: ``x`` float32 ``[n, ...]`` (at least 2 dimensions), ``y`` int32 ``[n]``.
    """
    x_path = _check_path("x_path", x_path)
    y_path = _check_path("y_path", y_path)
    maps = []
    for path in (x_path, y_path):
        if not path.is_file():
            raise FileNotFoundError(f"array file {path} not found")
        try:  # maps the file: reads the header only
            loaded = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"{path} is not a numeric .npy array (np.save): {err}") from err
        if not isinstance(loaded, np.ndarray):
            loaded.close()
            raise ValueError(f"{path} is an .npz archive, not an .npy array: use load_npz")
        maps.append(loaded)
    x_map, y_map = maps
    _check_xy_headers(str(x_path), x_map.shape, x_map.dtype, str(y_path), y_map.shape,
                      y_map.dtype)
    return _float32_x(str(x_path), x_map), _int32_y(str(y_path), y_map)


def _check_xy_headers(x_name, x_shape, x_dtype, y_name, y_shape, y_dtype) -> None:
    if len(x_shape) < 2 or x_shape[0] == 0:
        raise ValueError(f"{x_name} must have shape [n, ...] with at least 2 dimensions and n >= 1 "
                         f"(a single feature is [n, 1]), got {x_shape}")
    if not (np.issubdtype(x_dtype, np.integer) or np.issubdtype(x_dtype, np.floating)):
        raise ValueError(f"{x_name} must be numeric (integers or floats), got dtype {x_dtype}")
    if not np.issubdtype(y_dtype, np.integer):
        raise ValueError(f"{y_name} must hold integer class labels, got dtype {y_dtype}"
                         + ("; convert them with y.astype(np.int32) and save again"
                            if np.issubdtype(y_dtype, np.floating) else ""))
    if len(y_shape) not in (1, 2) or (len(y_shape) == 2 and y_shape[1] != 1):
        raise ValueError(f"{y_name} must have shape [n] or [n, 1], got {y_shape}")
    if y_shape[0] != x_shape[0]:
        raise ValueError(f"{x_name} has {x_shape[0]} samples but {y_name} has {y_shape[0]}; they "
                         "must match")
    _check_fits_host(4 * int(np.prod(x_shape)) + 4 * y_shape[0], x_name)


def _float32_x(name: str, raw: np.ndarray) -> np.ndarray:
    x = np.asarray(raw)
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            raise ValueError(f"{name} contains {int(bad.sum())} NaN or inf value(s), the first at "
                             f"index {tuple(int(i) for i in np.argwhere(bad)[0])}; clean or "
                             "impute them first")
    if x.size and np.issubdtype(x.dtype, np.floating) and x.dtype.itemsize > 4:
        big = float(np.max(np.abs(x.astype(np.float64))))
        if big > float(np.finfo(np.float32).max):
            raise ValueError(f"{name} holds {big:g}, beyond float32's range")
    return x.astype(np.float32)


def _int32_y(name: str, raw: np.ndarray) -> np.ndarray:
    y = np.asarray(raw).reshape(-1)
    if y.size:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi > np.iinfo(np.int32).max:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} holds the label {bad}; class labels must lie in "
                             "[0, 2**31 - 1]")
    return y.astype(np.int32)


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{key: (shape, dtype)}`` of every array in an ``.npz``, read from the headers alone."""
    headers = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    continue
                with zf.open(name) as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(f)
                headers[name[:-4]] = (tuple(int(d) for d in shape), np.dtype(dtype))
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise ValueError(f"{path} is not a readable .npz file (np.savez): {err}") from err
    return headers


def _npz_entry(path, headers, key, what) -> tuple[tuple[int, ...], np.dtype]:
    if key not in headers:
        raise ValueError(f"{path} has no array {key!r} ({what}); it holds {sorted(headers)}")
    return headers[key]


def _check_path(name: str, path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a path (str or os.PathLike), got {type(path).__name__}")
    return Path(path)


# -------------------------------------------------------------------------------------- CSV

def load_csv(path: str | os.PathLike, *, label_column: str,
             feature_columns: Sequence[str] | None = None, delimiter: str = ",",
             class_names: Sequence[str] | None = None,
             ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Reads a table with a header row: one column of class labels, numeric feature columns.

    Labels are integers ``0, 1, ...`` written out, or strings. The class order of string labels
    is yours to state, in ``class_names`` (``y = class_names.index(label)``); without it the
    error lists the labels found, in sorted order, ready to paste. Every feature cell must be a
    finite number: an empty cell, ``NA``, ``nan``, ``inf`` or text raises an error naming the
    line (1-based, the header is line 1) and the column. Blank lines are skipped; a UTF-8 byte
    order mark is ignored. Read with the ``csv`` module, twice (counting rows, then filling one
    preallocated float32 array).

    Args:
      path: the CSV file.
      label_column: the header name of the label column.
      feature_columns: the header names of the features, in the order wanted; default every
        column but the label's, in file order.
      delimiter: the field separator (``";"`` or ``"\\t"`` for some exports).
      class_names: the string labels in label order.

    Returns:
      ``(x, y, feature_names)``: ``x`` float32 ``[n, d]``, ``y`` int32 ``[n]``,
      ``feature_names`` the ``d`` column names of ``x``.
    """
    path = _check_path("path", path)
    if not isinstance(label_column, str):
        raise TypeError(f"`label_column` must be a column name (str), got "
                        f"{type(label_column).__name__}")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"`delimiter` must be one character, got {delimiter!r}")
    for name, names in (("feature_columns", feature_columns), ("class_names", class_names)):
        if names is not None and (isinstance(names, str)
                                  or not all(isinstance(c, str) for c in names)):
            raise TypeError(f"`{name}` must be a sequence of str, got {names!r}")
    if class_names is not None and len(set(class_names)) != len(class_names):
        raise ValueError(f"`class_names` has duplicates: {list(class_names)}")
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path} not found")

    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path} is empty; expected a header row naming the columns")
        n_rows = 0
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}, line {reader.line_num}: {len(row)} fields but the "
                                 f"header has {len(header)}")
            n_rows += 1
    if len(set(header)) != len(header):
        dup = sorted({c for c in header if header.count(c) > 1})
        raise ValueError(f"{path}: the header repeats the column name(s) {dup}")
    if label_column not in header:
        raise ValueError(f"{path} has no column {label_column!r} (`label_column`); columns found: "
                         f"{header}")
    if feature_columns is None:
        feature_columns = [c for c in header if c != label_column]
    else:
        missing = [c for c in feature_columns if c not in header]
        if missing:
            raise ValueError(f"{path} has no column(s) {missing} (`feature_columns`); columns "
                             f"found: {header}")
        if label_column in feature_columns or len(set(feature_columns)) != len(feature_columns):
            raise ValueError(f"`feature_columns` must be distinct and exclude the label column "
                             f"{label_column!r}, got {list(feature_columns)}")
    if not feature_columns:
        raise ValueError(f"{path} has no feature column besides {label_column!r}")
    if n_rows == 0:
        raise ValueError(f"{path} has a header but no data rows")
    _check_fits_host(4 * n_rows * (len(feature_columns) + 1), f"the table {path}")

    columns = [header.index(c) for c in feature_columns]
    label_at = header.index(label_column)
    x = np.empty((n_rows, len(columns)), np.float32)
    raw_labels, lines = [], []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        next(reader)
        i = 0
        for row in reader:
            if not row:
                continue
            for j, col in enumerate(columns):
                x[i, j] = _csv_number(path, reader.line_num, header[col], row[col])
            raw_labels.append(row[label_at].strip())
            lines.append(reader.line_num)
            i += 1
    y = _csv_labels(path, label_column, raw_labels, lines, class_names)
    return x, y, tuple(feature_columns)


def _csv_number(path, line, column, text) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not np.isfinite(value) or abs(value) > float(np.finfo(np.float32).max):
        what = "is empty (a missing value)" if not text.strip() else f"holds {text!r}"
        raise ValueError(f"{path}, line {line}, column {column!r} {what}; every feature must be a "
                         "finite number within float32's range: impute or drop that row first")
    return value


def _csv_labels(path, column, raw, lines, class_names) -> np.ndarray:
    if class_names is None:
        try:
            y = np.array([int(v) for v in raw], np.int64)
        except ValueError:
            found = sorted(set(raw))
            raise ValueError(f"{path}: the column {column!r} holds text labels {found[:20]}"
                             f"{' ...' if len(found) > 20 else ''}; state their order with "
                             f"class_names={tuple(found[:20])!r} (label k is class_names[k])"
                             ) from None
        bad = np.flatnonzero((y < 0) | (y > np.iinfo(np.int32).max))
        if bad.size:
            raise ValueError(f"{path}, line {lines[bad[0]]}, column {column!r} holds the label "
                             f"{raw[bad[0]]}; integer labels must be >= 0")
        return y.astype(np.int32)
    index = {name: k for k, name in enumerate(class_names)}
    for value, line in zip(raw, lines):
        if value not in index:
            raise ValueError(f"{path}, line {line}, column {column!r} holds {value!r}, which is "
                             f"not in `class_names` {list(class_names)}")
    return np.array([index[v] for v in raw], np.int32)
