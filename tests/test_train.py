"""Tests for jaxlearn.train: the trainer, its callbacks, guards, adapters and evaluation."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlearn import losses, nn, train

CE = "softmax_cross_entropy_with_integer_labels"


def _blobs(n=120, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (k, d))
    y = rng.integers(0, k, n).astype(np.int32)
    x = (centers[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
    return x, y


def _model_and_params(d=5, k=3, dropout=0.0, seed=0):
    model = nn.mlp((16,), k, dropout=dropout)
    _, params = model.init(jax.random.key(seed), (d,))
    return model, params


def _fit(model, params, x, y, **kw):
    kw.setdefault("loss", CE)
    kw.setdefault("optimizer", optax.adam(1e-2))
    kw.setdefault("key", jax.random.key(1))
    kw.setdefault("batch_size", 16)
    if "steps" not in kw:
        kw.setdefault("epochs", 5)
    return train.fit(model.apply, params, x, y, **kw)


def _leaves_equal(a, b):
    return all(np.array_equal(np.asarray(u), np.asarray(v))
               for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_fit_learns_separable_blobs():
    x, y = _blobs()
    model, params = _model_and_params()
    before = train.evaluate(model.apply, params, x, y, loss=CE)
    result = _fit(model, params, x, y, epochs=30)
    after = train.evaluate(model.apply, result.params, x, y, loss=CE)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] >= 0.95
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert result.steps == 30 * (120 // 16) and result.epochs == 30
    assert result.stop_reason is None
    assert result.compile_time > 0 and result.train_time > 0


def test_same_key_is_bitwise_reproducible_and_other_key_differs():
    # Bitwise equality on CPU: the same compiled program on the same inputs (dropout included).
    x, y = _blobs()
    model, params = _model_and_params(dropout=0.2)
    a = _fit(model, params, x, y)
    b = _fit(model, params, x, y)
    c = _fit(model, params, x, y, key=jax.random.key(2))
    assert _leaves_equal(a.params, b.params)
    assert a.history["loss"] == b.history["loss"]
    assert not _leaves_equal(a.params, c.params)


def test_input_params_are_not_donated_or_modified():
    x, y = _blobs()
    model, params = _model_and_params()
    copy = jax.tree_util.tree_map(np.array, params)
    _fit(model, params, x, y)
    assert _leaves_equal(params, copy)  # still readable (not donated) and unchanged


def test_full_batch_sgd_equals_hand_written_gradient_descent():
    # With batch_size = n every step sees all samples (in a shuffled order): the mean loss is the
    # same up to float32 summation order, so params agree to ~1e-5 relative.
    x, y = _blobs(n=64)
    model, params = _model_and_params()
    result = _fit(model, params, x, y, batch_size=64, steps=20, optimizer=optax.sgd(0.1))

    def objective(p):
        return jnp.mean(losses.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y))

    p = params
    for _ in range(20):
        p = jax.tree_util.tree_map(lambda w, g: w - 0.1 * g, p, jax.grad(objective)(p))
    for u, v in zip(jax.tree_util.tree_leaves(result.params), jax.tree_util.tree_leaves(p)):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)


def test_every_sample_seen_once_per_epoch():
    # A loss that records nothing but which rows it saw: with a linear "model" returning the
    # sample index, the gradient of sum(out) w.r.t. a one-hot selection counts visits.
    n, batch = 12, 4
    x = np.eye(n, dtype=np.float32)
    y = np.zeros((n, 1), np.float32)

    def apply(params, xb):
        return xb @ params["count"][:, None]

    result = train.fit(apply, {"count": jnp.zeros(n)}, x, y,
                       loss=lambda out, t: -out[:, 0], optimizer=optax.sgd(1.0),
                       key=jax.random.key(0), batch_size=batch, epochs=1)
    # Each step adds 1/batch to the rows of its batch: after one epoch every row was seen once.
    np.testing.assert_allclose(result.params["count"], np.full(n, 1.0 / batch), rtol=1e-6)


def test_steps_not_multiple_of_epoch_runs_a_partial_last_epoch():
    x, y = _blobs(n=48)
    model, params = _model_and_params()
    result = _fit(model, params, x, y, batch_size=16, steps=7)
    assert result.steps == 7 and result.epochs == 3
    assert len(result.history["loss"]) == 3


def test_validation_history_and_early_stopping_restores_best():
    x, y = _blobs(n=60, seed=3)
    xv, yv = _blobs(n=60, seed=4)
    model, params = _model_and_params()
    stopper = train.EarlyStopping("val_loss", patience=2)
    result = _fit(model, params, x, y, epochs=200, batch_size=8, optimizer=optax.adam(5e-2),
                  validation_data=(xv, yv), callbacks=[stopper])
    val = result.history["val_loss"]
    assert len(val) == len(result.history["loss"]) < 200
    assert result.stop_reason is not None and "callback" in result.stop_reason
    best = min(val)
    assert stopper.best == best and val.index(best) == stopper.best_epoch
    assert len(val) == stopper.best_epoch + 1 + 2  # patience epochs after the best
    restored = train.evaluate(model.apply, result.params, xv, yv, loss=CE)
    np.testing.assert_allclose(restored["loss"], best, rtol=1e-5)  # float32 batch-sum order
    assert "val_accuracy" in result.history


def test_function_callback_sees_logs_and_can_stop():
    x, y = _blobs()
    model, params = _model_and_params()
    seen = []

    def cb(epoch, logs, params):
        seen.append((epoch, logs["loss"]))
        return epoch == 2

    result = _fit(model, params, x, y, epochs=10, callbacks=[cb])
    assert [e for e, _ in seen] == [0, 1, 2]
    assert result.epochs == 3
    assert [v for _, v in seen] == result.history["loss"]


def _diverging_least_squares(n):
    """Least squares on large inputs, ``n`` samples: SGD with lr 5 diverges to inf."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 10, (n, 4)).astype(np.float32)
    y = rng.normal(0, 1, (n, 1)).astype(np.float32)
    model = nn.dense(1)
    _, params = model.init(jax.random.key(0), (4,))
    return x, y, model, params


def test_nan_guard_stops_and_returns_last_finite_params():
    # Gradient descent on least squares with a far too large step diverges to inf within a few
    # dozen steps; the guard must stop at the first non-finite step and hand back the params
    # reached just before it, bitwise equal to a run stopped there on purpose.
    x, y, model, params = _diverging_least_squares(32)
    kw = dict(loss="mse", optimizer=optax.sgd(5.0), key=jax.random.key(0), batch_size=32)
    with pytest.warns(RuntimeWarning, match="non-finite loss or params at step"):
        result = train.fit(model.apply, params, x, y, steps=500, **kw)
    assert result.stop_reason is not None
    bad = result.steps
    assert 0 < bad < 500
    assert f"step {bad}" in result.stop_reason
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(result.params))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference = train.fit(model.apply, params, x, y, steps=bad, **kw)
    assert _leaves_equal(result.params, reference.params)


def test_hand_written_apply_and_penalty():
    # A hand-written apply without key/train keywords; the penalty shrinks the weights.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], np.float32))[:, None]

    def apply(params, xb):
        return xb @ params["w"][:, None]

    params = {"w": jnp.zeros(3)}
    plain = train.fit(apply, params, x, y, loss="mse", optimizer=optax.adam(5e-2),
                      key=jax.random.key(0), batch_size=64, steps=400)
    np.testing.assert_allclose(plain.params["w"], [1.0, -2.0, 0.5], atol=1e-3)
    shrunk = train.fit(apply, params, x, y, loss="mse", optimizer=optax.adam(5e-2),
                       key=jax.random.key(0), batch_size=64, steps=400,
                       penalty=lambda p: 1.0 * jnp.sum(p["w"] ** 2))
    assert np.linalg.norm(shrunk.params["w"]) < 0.8 * np.linalg.norm(plain.params["w"])


def test_flax_linen_module_through_adapter():
    flax_nn = pytest.importorskip("flax.linen")

    class Net(flax_nn.Module):
        @flax_nn.compact
        def __call__(self, x, deterministic=True):
            x = flax_nn.relu(flax_nn.Dense(16)(x))
            x = flax_nn.Dropout(0.1, deterministic=deterministic)(x)
            return flax_nn.Dense(3)(x)

    x, y = _blobs()
    module = Net()
    params = module.init(jax.random.key(0), x[:1])["params"]
    apply = train.from_linen(module, train_kwarg="deterministic")
    result = train.fit(apply, params, x, y, loss=CE, optimizer=optax.adam(1e-2),
                       key=jax.random.key(1), batch_size=16, epochs=20)
    assert train.evaluate(apply, result.params, x, y)["accuracy"] >= 0.95


def test_flax_nnx_module_through_adapter():
    nnx = pytest.importorskip("flax.nnx")

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(5, 16, rngs=rngs)
            self.l2 = nnx.Linear(16, 3, rngs=rngs)

        def __call__(self, x):
            return self.l2(nnx.relu(self.l1(x)))

    x, y = _blobs()
    apply, params = train.from_nnx(Net(nnx.Rngs(0)))
    result = train.fit(apply, params, x, y, loss=CE, optimizer=optax.adam(1e-2),
                       key=jax.random.key(1), batch_size=16, epochs=20)
    assert train.evaluate(apply, result.params, x, y)["accuracy"] >= 0.95


def test_predict_matches_apply_with_padding():
    x, _ = _blobs(n=37)
    model, params = _model_and_params()
    np.testing.assert_allclose(train.predict(model.apply, params, x, batch_size=8),
                               model.apply(params, x), rtol=1e-6, atol=1e-6)


def test_progress_bar_runs(capsys):
    pytest.importorskip("tqdm")
    x, y = _blobs()
    model, params = _model_and_params()
    result = _fit(model, params, x, y, epochs=2, progress=True)
    assert len(result.history["loss"]) == 2


_X, _Y = _blobs()
_MODEL, _PARAMS = _model_and_params()
_BAD_FIT = [
    (dict(batch_size=0), ValueError, "`batch_size` must be > 0"),
    (dict(batch_size=500), ValueError, "only 120 samples"),
    (dict(batch_size=2.5), TypeError, "`batch_size` must be an int"),
    (dict(epochs=3, steps=4), ValueError, "exactly one of `epochs` and `steps`"),
    (dict(epochs=0), ValueError, "`epochs` must be > 0"),
    (dict(steps=-1), ValueError, "`steps` must be > 0"),
    (dict(y=_Y + 3), ValueError, "but `n_classes` is 3"),
    (dict(y=_Y.astype(np.float32)), TypeError, "integer class labels"),
    (dict(y=_Y[:-1]), ValueError, "`x` has 120 samples but `y` has 119"),
    (dict(x=np.where(np.arange(5) == 2, np.nan, _X).astype(np.float32)), ValueError, "NaN"),
    (dict(x=_X[:, :4]), ValueError, "initialised for 5 input features"),
    (dict(x=_X.astype(np.int32)), TypeError, "`x` must have a floating dtype"),
    (dict(x=_X[:0], y=_Y[:0]), ValueError, "`x` is empty"),
    (dict(optimizer="adam"), TypeError, "optax.GradientTransformation"),
    (dict(key=0), TypeError, "`key` must be a jax.random key"),
    (dict(loss="hinge"), ValueError, "`loss` must be one of"),
    (dict(loss="mse"), ValueError, "targets shaped like the model's outputs"),
    (dict(validation_data=(_X,)), TypeError, "`validation_data` must be a pair"),
    (dict(validation_data=(_X, _Y + 5)), ValueError, "label 7 but `n_classes` is 3"),
    (dict(metrics=["accuracy"]), TypeError, "`metrics` must be None or a dict"),
    (dict(callbacks=[3]), TypeError, r"`callbacks\[0\]`"),
    (dict(penalty=1.0), TypeError, "`penalty` must be callable"),
]


@pytest.mark.parametrize("overrides, error, match", _BAD_FIT)
def test_fit_rejects_bad_arguments(overrides, error, match):
    kw = dict(loss=CE, optimizer=optax.sgd(0.1), key=jax.random.key(0), batch_size=16, epochs=1)
    x = overrides.pop("x", _X)
    y = overrides.pop("y", _Y)
    kw.update(overrides)
    if "steps" in overrides and "epochs" not in overrides:
        kw.pop("epochs")
    with pytest.raises(error, match=match):
        train.fit(_MODEL.apply, _PARAMS, x, y, **kw)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(patience=0), ValueError, "`patience` must be > 0"),
    (dict(mode="up"), ValueError, "`mode` must be one of"),
    (dict(min_delta=-1.0), ValueError, "`min_delta` must be >= 0"),
])
def test_early_stopping_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        train.EarlyStopping(**kwargs)


def test_early_stopping_on_missing_metric_names_it():
    x, y = _blobs()
    with pytest.raises(ValueError, match="'val_loss' but the epoch logs have"):
        _fit(*_model_and_params(), x, y, callbacks=[train.EarlyStopping("val_loss")])


# ------------------------------------------------------------------------------- fit_many

def _stack(model, keys, d=5):
    return nn.init_stacked(model, keys, (d,))


def test_fit_many_matches_separate_fits():
    # Same keys -> same batches and dropout masks; only the batched matmuls may round differently,
    # and SGD with momentum does not amplify rounding (Adam can, where its second moment is ~0),
    # so the params agree to float32 rounding accumulated over the run.
    x, y = _blobs()
    model = nn.mlp((16,), 3, dropout=0.2)
    init_keys = jax.random.split(jax.random.key(0), 3)
    fit_keys = jax.random.split(jax.random.key(1), 3)
    opt = optax.sgd(0.05, momentum=0.9)
    many = train.fit_many(model.apply, _stack(model, init_keys), x, y, loss=CE, optimizer=opt,
                          keys=fit_keys, batch_size=16, epochs=5)
    assert many.steps == 5 * (120 // 16)
    for i in range(3):
        _, p_i = model.init(init_keys[i], (5,))
        single = train.fit(model.apply, p_i, x, y, loss=CE, optimizer=opt, key=fit_keys[i],
                           batch_size=16, epochs=5)
        leaves = zip(jax.tree_util.tree_leaves(many.params),
                     jax.tree_util.tree_leaves(single.params))
        for u, v in leaves:
            np.testing.assert_allclose(u[i], v, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose([h[i] for h in many.history["loss"]], single.history["loss"],
                                   rtol=1e-5)


def test_fit_many_per_member_learning_rates_and_nan_freeze():
    x, y = _blobs()
    model = nn.mlp((16,), 3)
    keys = jax.random.split(jax.random.key(0), 3)
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    lrs = jnp.array([0.0, 0.1, 1e30])
    with pytest.warns(RuntimeWarning, match=r"members \[2\] went non-finite"):
        result = train.fit_many(model.apply, _stack(model, keys), x, y, loss=CE, optimizer=opt,
                                keys=keys, batch_size=16, epochs=3,
                                hyperparams={"learning_rate": lrs})
    start = _stack(model, keys)
    # lr 0 leaves member 0 where it started; member 1 moved; member 2 diverged and stayed finite.
    for u, v in zip(jax.tree_util.tree_leaves(result.params), jax.tree_util.tree_leaves(start)):
        np.testing.assert_array_equal(u[0], v[0])
        assert np.all(np.isfinite(u[2]))
    assert not _leaves_equal(jax.tree_util.tree_map(lambda p: p[1], result.params),
                             jax.tree_util.tree_map(lambda p: p[1], start))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(keys=jax.random.key(0)), TypeError, "batch of jax.random keys"),
    (dict(keys=jax.random.split(jax.random.key(0), 4)), ValueError, "leading axis of 4"),
    (dict(hyperparams={"learning_rate": jnp.ones(3)}), ValueError, "optax.inject_hyperparams"),
    (dict(optimizer=optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
          hyperparams={"momentum": jnp.ones(3)}), ValueError, "hyperparameters are"),
    (dict(optimizer=optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
          hyperparams={"learning_rate": jnp.ones(2)}), ValueError, r"shape \(3,\)"),
    (dict(batch_size=1000), ValueError, "only 120 samples"),
])
def test_fit_many_rejects_bad_arguments(kwargs, error, match):
    x, y = _blobs()
    model = nn.mlp((16,), 3)
    kw = dict(loss=CE, optimizer=optax.sgd(0.1), keys=jax.random.split(jax.random.key(1), 3),
              batch_size=16, epochs=1)
    kw.update(kwargs)
    with pytest.raises(error, match=match):
        train.fit_many(model.apply, _stack(model, jax.random.split(jax.random.key(0), 3)), x, y,
                       **kw)


def test_init_stacked_equals_separate_inits_bitwise():
    model = nn.mlp((16, 16), 3, residual=True)
    keys = jax.random.split(jax.random.key(0), 3)
    stacked = nn.init_stacked(model, keys, (5,))
    for i in range(3):
        single = model.init(keys[i], (5,))[1]
        for u, v in zip(jax.tree_util.tree_leaves(stacked), jax.tree_util.tree_leaves(single)):
            np.testing.assert_array_equal(u[i], v)


def test_data_too_large_for_the_device_is_refused_up_front(monkeypatch):
    # fit keeps the data on the device and does not stream: it refuses, naming the size needed.
    x, y = _blobs()
    model, params = _model_and_params()
    monkeypatch.setattr(train, "_free_device_bytes", lambda device: 1000)
    with pytest.raises(ValueError, match=r"need \d+\.\d\d KiB on .* but only 1000 B is free"):
        _fit(model, params, x, y)


def test_free_device_bytes_is_positive_here():
    free = train._free_device_bytes(jax.devices()[0])
    assert free is None or free > 0


def test_run_without_host_work_is_one_program_equal_to_per_epoch_calls():
    # With no callbacks, validation or progress bar, fit compiles all full epochs into one program
    # (a scan over epochs); with a callback it calls one program per epoch. Same math, same
    # order: the params, losses and the partial last epoch must agree bitwise on CPU.
    x, y = _blobs(n=100)
    model, params = _model_and_params(dropout=0.2)
    train._COMPILED.clear()
    fast = _fit(model, params, x, y, steps=23)  # 6 steps per epoch: 3 full epochs + 5 steps
    programs = [k[0] for k in train._COMPILED]
    assert sorted((p[6], p[7]) for p in programs) == [(5, 1), (6, 3)]  # (steps, epochs)
    slow = _fit(model, params, x, y, steps=23, callbacks=[lambda epoch, logs, params: None])
    assert fast.steps == slow.steps == 23 and fast.epochs == slow.epochs == 4
    assert fast.history["loss"] == slow.history["loss"]
    assert len(fast.history["epoch_time"]) == 4
    assert _leaves_equal(fast.params, slow.params)
    assert _leaves_equal(fast.opt_state, slow.opt_state)


def test_nan_guard_inside_a_multi_epoch_program_matches_per_epoch_calls():
    x, y, model, params = _diverging_least_squares(64)
    kw = dict(loss="mse", optimizer=optax.sgd(5.0), key=jax.random.key(0), batch_size=16,
              steps=500)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        fast = train.fit(model.apply, params, x, y, **kw)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        slow = train.fit(model.apply, params, x, y, callbacks=[lambda e, logs, p: None], **kw)
    assert 4 < fast.steps == slow.steps < 500  # stops inside a later epoch, not the first
    assert fast.stop_reason == slow.stop_reason
    assert fast.epochs == slow.epochs and len(fast.history["loss"]) == fast.epochs
    np.testing.assert_array_equal(fast.history["loss"], slow.history["loss"])  # NaN == NaN here
    assert _leaves_equal(fast.params, slow.params)
