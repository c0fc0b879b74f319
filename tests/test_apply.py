"""Tests for jaxlearn.apply: the calling convention and models with state (BatchNorm, dropout)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxlearn as jl
from jaxlearn import apply as apply_lib

CE = jl.losses.SOFTMAX_CE_INT
linen = pytest.importorskip("flax.linen")
nnx = pytest.importorskip("flax.nnx")


def _images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    x = rng.normal(0, 1, (n, 8, 8, 1)).astype(np.float32)
    x[np.arange(n), y * 2 + 1, :, 0] += 3.0  # a bright row tells the class
    return x, y


class _BatchNormCNN(linen.Module):
    @linen.compact
    def __call__(self, x, train=False):
        x = linen.Conv(4, (3, 3))(x)
        x = linen.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = linen.relu(x).reshape(x.shape[0], -1)
        return linen.Dense(3)(x)


def test_linen_batchnorm_cnn_matches_a_hand_written_flax_loop():
    # The same batches as fit draws (fold_in(key, epoch) -> permutation), the same optax update
    # and the same batch_stats update, step by step in Python. Tolerance 1e-5: one compiled scan
    # against per-step jitted calls may fuse float ops differently.
    x, y = _images()
    module = _BatchNormCNN()
    variables = module.init(jax.random.key(0), x[:2])
    opt = optax.sgd(0.05, momentum=0.9)
    key, batch_size, epochs = jax.random.key(1), 16, 2
    result = jl.fit(jl.from_linen(module, train_kwarg="train"), variables, x, y, loss=CE,
                    optimizer=opt, key=key, batch_size=batch_size, epochs=epochs)

    @jax.jit
    def step(params, batch_stats, opt_state, xb, yb):
        def loss_fn(p):
            out, new = module.apply({"params": p, "batch_stats": batch_stats}, xb, train=True,
                                    mutable=["batch_stats"])
            loss = jnp.mean(jl.losses.softmax_cross_entropy_with_integer_labels(out, yb))
            return loss, new["batch_stats"]

        (_, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state

    params, stats = variables["params"], variables["batch_stats"]
    opt_state = opt.init(params)
    n_steps = x.shape[0] // batch_size
    for epoch in range(epochs):
        k_perm, _ = jax.random.split(jax.random.fold_in(key, epoch))
        perm = np.asarray(jax.random.permutation(k_perm, x.shape[0]))
        for idx in perm[: n_steps * batch_size].reshape(n_steps, batch_size):
            params, stats, opt_state = step(params, stats, opt_state, x[idx], y[idx])
    assert set(result.params) == {"params", "batch_stats"}
    chex.assert_trees_all_close(result.params, {"params": params, "batch_stats": stats},
                                rtol=1e-5, atol=1e-5)
    assert not np.allclose(stats["BatchNorm_0"]["mean"], 0.0)  # the statistics did move
    # evaluation reads the running statistics and changes nothing
    apply = jl.from_linen(module, train_kwarg="train")
    a = jl.predict(apply, result.params, x)
    np.testing.assert_array_equal(a, jl.predict(apply, result.params, x))


def test_nnx_module_with_dropout_and_batchnorm_trains_and_evaluates_deterministically():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(64, 32, rngs=rngs)
            self.bn = nnx.BatchNorm(32, rngs=rngs)
            self.drop = nnx.Dropout(0.3, rngs=rngs)
            self.l2 = nnx.Linear(32, 3, rngs=rngs)

        def __call__(self, x):
            x = x.reshape(x.shape[0], -1)
            return self.l2(self.drop(nnx.relu(self.bn(self.l1(x)))))

    x, y = _images(n=96)
    apply, variables = jl.from_nnx(Net(nnx.Rngs(0)))
    kw = dict(loss=CE, optimizer=optax.adam(1e-2), batch_size=16, epochs=15)
    a = jl.fit(apply, variables, x, y, key=jax.random.key(1), **kw)
    b = jl.fit(apply, variables, x, y, key=jax.random.key(1), **kw)
    c = jl.fit(apply, variables, x, y, key=jax.random.key(2), **kw)
    chex.assert_trees_all_equal(a.params, b.params)  # same key: same dropout masks
    assert not np.array_equal(jax.tree.leaves(a.params)[0],
                              jax.tree.leaves(c.params)[0])
    assert jl.evaluate(apply, a.params, x, y)["accuracy"] >= 0.95
    np.testing.assert_array_equal(apply(a.params, x), apply(a.params, x))  # eval: no dropout
    # the running statistics were carried and updated
    before = apply.split(variables)[1]
    after = apply.split(a.params)[1]
    assert not np.allclose(jax.tree.leaves(before)[0],
                           jax.tree.leaves(after)[0])


def test_linen_params_only_still_trains_a_stateless_module():
    class Net(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.Dense(3)(x.reshape(x.shape[0], -1))

    x, y = _images()
    module = Net()
    params = module.init(jax.random.key(0), x[:1])["params"]
    apply = jl.from_linen(module)
    result = jl.fit(apply, params, x, y, loss=CE, optimizer=optax.adam(1e-2),
                    key=jax.random.key(1), batch_size=16, epochs=5)
    assert set(result.params) == set(params)
    assert jl.evaluate(apply, result.params, x, y)["accuracy"] > 0.9


def test_as_apply_passes_only_the_keywords_a_function_takes_and_caches_the_wrapper():
    def plain(params, x):
        return x * params

    def with_train(params, x, train=False):
        return x * params + train

    wrapped = apply_lib.as_apply(plain)
    assert wrapped is apply_lib.as_apply(plain)
    assert wrapped(2.0, 3.0, key=jax.random.key(0), train=True) == 6.0
    assert apply_lib.as_apply(with_train)(2.0, 3.0, train=True) == 7.0
    with pytest.raises(TypeError, match="`apply_fn` must be callable"):
        apply_lib.as_apply(3)
