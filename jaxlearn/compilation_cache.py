"""A persistent XLA compilation cache, so that a second run does not compile again.

Almost all the time of a short jaxlearn run — the test suite, ``jaxlearn reproduce --quick``, a
notebook — goes to XLA compiling programs, not to running them. JAX can store each compiled
program on disk, keyed by the program, the JAX/XLA versions and the device, and read it back in
the next process instead of compiling (on CPU as well as on GPU and TPU). Importing jaxlearn never
changes JAX's configuration; the command line, the notebooks and the tests call
:func:`enable_compilation_cache` once, and any script may do the same.

Where the cache lives, first match wins:

1. the ``path`` argument;
2. ``$JAXLEARN_CACHE_DIR/xla``;
3. ``$XDG_CACHE_HOME/jaxlearn/xla``;
4. ``~/.cache/jaxlearn/xla``.

Set ``JAXLEARN_NO_COMPILATION_CACHE=1`` to turn it off (``enable_compilation_cache`` then does
nothing and returns ``None``); delete it with :func:`clear_compilation_cache` or
``rm -rf ~/.cache/jaxlearn/xla``. Entries of other JAX versions are never read, so the folder
only grows stale, never wrong. Like JAX's own cache it is trusted: do not point it at a folder
that others can write to.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import jax
from jax.experimental.compilation_cache import compilation_cache as _jax_cache

__all__ = ["clear_compilation_cache", "compilation_cache_dir", "enable_compilation_cache"]

_OPT_OUT = "JAXLEARN_NO_COMPILATION_CACHE"


def compilation_cache_dir(path: str | os.PathLike | None = None) -> str:
    """The folder the compilation cache uses (see the module docstring for the order).

    Args:
      path: an explicit folder; returned as an absolute path when given.

    Returns:
      The absolute path of the cache folder; it need not exist yet.

    >>> compilation_cache_dir("/tmp/my-cache")
    '/tmp/my-cache'
    """
    if path is not None:
        return os.path.abspath(os.fspath(path))
    root = os.environ.get("JAXLEARN_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        root = os.path.join(xdg, "jaxlearn")
    return os.path.abspath(os.path.join(root, "xla"))


def enable_compilation_cache(path: str | os.PathLike | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache for this process (:func:`compilation_cache_dir`).

    Every program is cached, however small or quick to compile: JAX's defaults (at least one second
    of compile time) would skip nearly all of jaxlearn's CPU programs, whose compile times are
    tenths of a second each but add up to minutes. Calling it again with another folder moves the
    cache there.

    Args:
      path: the cache folder; by default ``$JAXLEARN_CACHE_DIR/xla`` or the per-user cache dir.

    Returns:
      The cache folder, or ``None`` when ``JAXLEARN_NO_COMPILATION_CACHE`` is set to a non-empty
      value other than ``0`` (the cache is then left as it was).
    """
    if os.environ.get(_OPT_OUT, "") not in ("", "0"):
        return None
    folder = compilation_cache_dir(path)
    os.makedirs(folder, exist_ok=True)
    if jax.config.jax_compilation_cache_dir != folder:
        # JAX opens its cache once per process, at the first compile after a folder is set; a
        # reset makes it open the new folder at the next compile.
        _jax_cache.reset_cache()
        jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # -1: no minimum entry size, and JAX may not raise it for the file system it finds.
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return folder


def clear_compilation_cache(path: str | os.PathLike | None = None) -> str:
    """Delete the compilation cache folder and everything in it.

    The running process keeps the programs it has already compiled in memory; the next process
    compiles them again and writes them back.

    Args:
      path: the folder to delete; by default :func:`compilation_cache_dir`.

    Returns:
      The folder that was deleted (or that did not exist).
    """
    folder = compilation_cache_dir(path)
    shutil.rmtree(folder, ignore_errors=True)
    if jax.config.jax_compilation_cache_dir == folder:
        # Reopen (and so recreate) the folder at the next compile, so later programs are cached.
        _jax_cache.reset_cache()
    return folder
