"""Settings shared by every test.

- The persistent compilation cache (jaxlearn.compilation_cache), so that a second run of the suite
  reads its XLA programs from disk instead of compiling them again; set
  ``JAXLEARN_NO_COMPILATION_CACHE=1`` to measure a cold run.
- Strict rank promotion: ``x + b`` with ``x`` of shape (n, d) and ``b`` of shape (d,) raises, so a
  broadcast the library relies on must be written out (``b[None, :]``); an accidental (n,) + (n, 1)
  -> (n, n) cannot pass silently.
"""

import jax
import pytest

import jaxlearn as jl

jl.enable_compilation_cache()
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key() -> jax.Array:
    """A fixed PRNG key, the same in every test that asks for one."""
    return jax.random.key(0)
