"""The type names every module uses, defined once."""

from __future__ import annotations

from typing import Any

import jax

Array = jax.Array
PRNGKeyArray = jax.Array   # a jax.random.key (typed) or a legacy uint32 [2] PRNGKey
Params = Any               # a pytree of arrays
Shape = tuple[int, ...]
