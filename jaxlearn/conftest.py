"""pytest settings for the ``>>>`` examples in jaxlearn's docstrings (``--doctest-modules``).

The examples run with the names a reader would have imported — ``jax``, ``jnp``, ``np``,
``optax`` and ``jl`` (jaxlearn) — under the same strict rank promotion and compilation cache as
the tests (tests/conftest.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxlearn as jl

jl.enable_compilation_cache()
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(jax=jax, jnp=jnp, np=np, optax=optax, jl=jl)
