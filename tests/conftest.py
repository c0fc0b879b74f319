"""Settings shared by every test.

- The persistent compilation cache (jaxlearn.compilation_cache), so that a second run of the suite
  reads its XLA programs from disk instead of compiling them again; set
  ``JAXLEARN_NO_COMPILATION_CACHE=1`` to measure a cold run.
- Strict rank promotion: ``x + b`` with ``x`` of shape (n, d) and ``b`` of shape (d,) raises, so a
  broadcast the library relies on must be written out (``b[None, :]``); an accidental (n,) + (n, 1)
  -> (n, n) cannot pass silently.
- Worker processes (pytest-xdist, ``-n auto`` in pyproject.toml): one per core, at most 4 (one
  where a GPU/TPU jaxlib plugin is installed). Each
  test file runs whole in one worker, so that its module-scoped fixtures (trained models) are built
  once; the files that share the experiments' quick runs (``experiment_checks.quick_run``) run in
  one worker together; the tests that only start a subprocess (notebooks, benchmark scripts) are
  spread one by one. ``-n 0`` runs everything in this process.
"""

import os

import jax
import pytest

import jaxlearn as jl

jl.enable_compilation_cache()
jax.config.update("jax_numpy_rank_promotion", "raise")

# Files whose tests share the experiments' quick runs, and files of subprocess-only tests.
_SHARE_QUICK_RUNS = {"test_cli.py", "test_experiments_a.py", "test_experiments_b.py",
                     "test_experiments_c.py", "test_experiments_d.py", "test_experiments_e.py",
                     "test_experiments_f.py", "test_experiments_attribution.py",
                     "test_experiments_conformal.py", "test_experiments_adv_training.py"}
_ONE_BY_ONE = {"test_benchmarks.py", "test_notebooks.py"}


def _work_unit(nodeid: str) -> str:
    """The unit a worker runs whole: the shared quick runs' files together, one test of the
    subprocess-only files, else the test file."""
    path = nodeid.split("::", 1)[0]
    name = path.rsplit("/", 1)[-1]
    if name in _SHARE_QUICK_RUNS:
        return "experiment quick runs"
    return nodeid if name in _ONE_BY_ONE else path


def pytest_xdist_auto_num_workers(config):
    # One per core, at most 4; one where a GPU/TPU jaxlib plugin is installed (each worker
    # process would reserve the accelerator's memory). Decided without starting JAX here.
    from importlib import metadata

    accelerator = ("jax-cuda", "jax_cuda", "jax-rocm", "jax_rocm", "libtpu")
    if any((d.metadata["Name"] or "").lower().startswith(accelerator)
           for d in metadata.distributions()):
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def pytest_xdist_make_scheduler(config, log):
    # xdist's own grouping (--dist loadgroup) relies on renaming test ids, which pytest 9.2 no
    # longer allows; a scope scheduler with our own units does the same.
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return Units(config, log)


def pytest_collection_modifyitems(config, items):
    # The longest unit (the quick runs, ~2-3 minutes) first, then the subprocess tests, so that
    # no worker starts a long unit last; the order within a file is kept.
    def rank(item):
        unit = _work_unit(item.nodeid)
        return 0 if unit == "experiment quick runs" else 1 if unit == item.nodeid else 2

    items.sort(key=rank)


@pytest.fixture
def key() -> jax.Array:
    """A fixed PRNG key, the same in every test that asks for one."""
    return jax.random.key(0)
