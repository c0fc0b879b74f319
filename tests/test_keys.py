"""The key rule (jaxlearn/_keys.py): where ``key`` sits in every public function, and the old call
orders that still work for one release, with a warning and bitwise the same result."""

import inspect
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlearn as jl
from jaxlearn import _keys

# Modules whose functions generate something random (data, cues, episodes, augmentations, inits):
# ``key`` first. Everywhere else a function that takes a key takes it as a keyword.
GENERATOR_MODULES = {"jaxlearn.data", "jaxlearn.augment", "jaxlearn.shortcuts", "jaxlearn.fewshot",
                     "jaxlearn.features", "jaxlearn.nn", "jaxlearn.backprop",
                     "jaxlearn.datasets"}  # datasets.batches shuffles, as train_test_split
GENERATORS = {"jaxlearn.explain.randomize_layers"}   # random weights: a generator of params
# Functions of those modules that train or evaluate a model: keyword ``key=``.
TAKE_A_MODEL = {"jaxlearn.fewshot.learning_curve", "jaxlearn.fewshot.proto_loss",
                "jaxlearn.fewshot.train_protonet"}


def _public_functions():
    seen = {}
    for name in jl.__all__:
        module = getattr(jl, name)
        if not isinstance(module, types.ModuleType):
            continue
        for attr in dir(module):
            fn = getattr(module, attr)
            if attr.startswith("_") or not inspect.isfunction(fn):
                continue
            if not getattr(fn, "__module__", "").startswith("jaxlearn"):
                continue
            seen[f"{fn.__module__}.{fn.__name__}"] = fn
    return seen


def test_every_public_function_follows_the_key_rule():
    functions = _public_functions()
    assert len(functions) > 150
    checked, wrong = 0, []
    for name, fn in functions.items():
        params = inspect.signature(fn).parameters
        if "key" not in params:
            continue
        checked += 1
        p = params["key"]
        generator = (fn.__module__ in GENERATOR_MODULES or name in GENERATORS) and \
            name not in TAKE_A_MODEL
        if generator:
            if list(params)[0] != "key":
                wrong.append(f"{name}: a generator takes `key` first")
        elif p.kind is not inspect.Parameter.KEYWORD_ONLY:
            wrong.append(f"{name}: takes a model or data, so `key` must be keyword-only")
    assert checked > 40 and not wrong, wrong


def _apply(params, x):
    return jnp.tanh(x @ params["w"])


_P = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)), jnp.float32)}
_X = jnp.asarray(np.random.default_rng(1).uniform(size=(4, 5)), jnp.float32)
_Y = jnp.array([0, 1, 2, 1])
_K = jax.random.key(3)


@pytest.mark.parametrize("old, new", [
    (lambda: jl.explain.smoothgrad(_K, _apply, _P, _X, n_samples=3),
     lambda: jl.explain.smoothgrad(_apply, _P, _X, key=_K, n_samples=3)),
    (lambda: jl.robust.pgd(_apply, _P, _X, _Y, _K, eps=0.1, n_steps=2),
     lambda: jl.robust.pgd(_apply, _P, _X, _Y, key=_K, eps=0.1, n_steps=2)),
    (lambda: jl.linear.fit_logistic_regression(_K, _X, _Y, n_classes=3, steps=5),
     lambda: jl.linear.fit_logistic_regression(_X, _Y, key=_K, n_classes=3, steps=5)),
    (lambda: jl.transfer.linear_probe(_K, _X, _Y, n_classes=3),
     lambda: jl.transfer.linear_probe(_X, _Y, key=_K, n_classes=3)),
    (lambda: jl.explain.sanity_check(_apply, _P, _X, _K, methods=("gradient",)),
     lambda: jl.explain.sanity_check(_apply, _P, _X, key=_K, methods=("gradient",))),
    (lambda: jl.uncertainty.mc_dropout_predict(
        jl.nn.serial(jl.nn.dense(3), jl.nn.dropout(0.5)).apply,
        jl.nn.serial(jl.nn.dense(3), jl.nn.dropout(0.5)).init(_K, (5,))[1], _X,
        jax.random.key(0), n_samples=2),
     lambda: jl.uncertainty.mc_dropout_predict(
        jl.nn.serial(jl.nn.dense(3), jl.nn.dropout(0.5)).apply,
        jl.nn.serial(jl.nn.dense(3), jl.nn.dropout(0.5)).init(_K, (5,))[1], _X,
        key=jax.random.key(0), n_samples=2)),
], ids=["smoothgrad", "pgd", "fit_logistic_regression", "linear_probe", "sanity_check",
        "mc_dropout_predict"])
def test_old_key_position_warns_and_gives_bitwise_the_same_result(old, new):
    with pytest.warns(DeprecationWarning, match=r"deprecated .*call .*key=key"):
        got_old = old()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the new call does not warn
        got_new = new()
    if isinstance(got_new, list):  # sanity_check's rows: compare their numbers
        got_old = [{k: v for k, v in r.items() if not isinstance(v, str)} for r in got_old]
        got_new = [{k: v for k, v in r.items() if not isinstance(v, str)} for r in got_new]
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 got_old, got_new)


def test_is_key_accepts_typed_and_legacy_keys_only():
    assert _keys.is_key(jax.random.key(0)) and _keys.is_key(jax.random.PRNGKey(0))
    assert not _keys.is_key(np.zeros(2, np.float32)) and not _keys.is_key(0)
    assert not _keys.is_key(np.zeros(3, np.uint32))
