"""Tests for jaxlearn.train: the trainer, its callbacks, guards, adapters and evaluation."""

import os
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlearn import _programs, losses, nn, train

CE = losses.SOFTMAX_CE_INT


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
    """Bitwise equal trees (same structure, same leaves); False otherwise."""
    try:
        chex.assert_trees_all_equal(a, b)
    except AssertionError:
        return False
    return True


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
    copy = jax.tree.map(np.array, params)
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
        p = jax.tree.map(lambda w, g: w - 0.1 * g, p, jax.grad(objective)(p))
    chex.assert_trees_all_close(result.params, p, rtol=1e-4, atol=1e-5)


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
    with pytest.warns(RuntimeWarning, match="non-finite loss or params .* at step"):
        result = train.fit(model.apply, params, x, y, steps=500, **kw)
    assert result.stop_reason is not None
    bad = result.steps
    assert 0 < bad < 500
    assert f"step {bad}" in result.stop_reason
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(result.params))
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


def test_progress_bar_counts_the_epochs_and_shows_the_loss(monkeypatch):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    bars = []

    class Recorder:
        def __init__(self, *, total, initial, unit, leave):
            self.total, self.n, self.postfix, self.closed = total, initial, None, False
            bars.append(self)

        def update(self, k):
            self.n += k

        def set_postfix(self, postfix):
            self.postfix = postfix

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm_auto, "tqdm", Recorder)
    x, y = _blobs()
    model, params = _model_and_params()
    result = _fit(model, params, x, y, epochs=3, progress=True)
    assert len(bars) == 1
    bar = bars[0]
    assert (bar.total, bar.n, bar.closed) == (3, 3, True)
    assert bar.postfix == {"loss": f"{result.history['loss'][-1]:.4g}"}


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
        member = jax.tree.map(lambda p, i=i: p[i], many.params)
        chex.assert_trees_all_close(member, single.params, rtol=1e-5, atol=1e-5)
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
    def member(tree, i):
        return jax.tree.map(lambda p: p[i], tree)

    chex.assert_trees_all_equal(member(result.params, 0), member(start, 0))
    chex.assert_tree_all_finite(member(result.params, 2))
    assert not _leaves_equal(jax.tree.map(lambda p: p[1], result.params),
                             jax.tree.map(lambda p: p[1], start))


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
        chex.assert_trees_all_equal(jax.tree.map(lambda p, i=i: p[i], stacked), single)


def test_data_too_large_for_the_device_is_refused_up_front(monkeypatch):
    # fit keeps the data on the device and does not stream: it refuses, naming the size needed.
    x, y = _blobs()
    model, params = _model_and_params()
    monkeypatch.setattr(train, "_free_device_bytes", lambda device: 1000)
    with pytest.raises(ValueError, match=r"need \d+\.\d\d KiB on .* but only 1000 B is free"
                                         r".*jl\.datasets\.batches"):
        _fit(model, params, x, y)


def test_memory_check_reads_available_not_free_memory():
    # The CPU backend has no allocator stats: the check must read MemAvailable (free pages plus
    # reclaimable page cache), not MemFree, or a machine with a warm page cache refuses data that
    # fits. Compared with /proc/meminfo read here; 64 MiB of slack for other processes meanwhile.
    if not os.path.exists("/proc/meminfo"):
        pytest.skip("needs /proc/meminfo")
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    free = train._free_device_bytes(jax.devices()[0])
    assert free is not None
    assert abs(free - info["MemAvailable"]) < 64 * 2**20


def test_run_without_host_work_is_one_program_equal_to_per_epoch_calls():
    # With no callbacks, validation or progress bar, fit compiles all full epochs into one program
    # (a scan over epochs); with a callback it calls one program per epoch. Same math, same
    # order: the params, losses and the partial last epoch must agree bitwise on CPU.
    x, y = _blobs(n=100)
    model, params = _model_and_params(dropout=0.2)
    train.clear_compile_cache()
    fast = _fit(model, params, x, y, steps=23)  # 6 steps per epoch: 3 full epochs + 5 steps
    segments = [train.plan(100, 16, steps=23).segments()]
    assert segments == [[train.Segment(0, 3, 6), train.Segment(3, 1, 5)]]
    programs = [k for k in _programs.cached_programs() if k.kind == "fit"]
    assert len(programs) == 2  # one program for the 3 full epochs, one for the partial epoch
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


# ------------------------------------------------------- sequences of calls (issue 11's nine)

def test_reused_early_stopping_starts_afresh_in_each_fit():
    # A sweep builds its callback list once. The second fit (another model) must not compare with
    # the first run's best nor hand back the first run's params: it equals a fit with a new object.
    x, y = _blobs(n=60, seed=3)
    xv, yv = _blobs(n=60, seed=4)
    stopper = train.EarlyStopping("val_loss", patience=2)
    kw = dict(epochs=40, batch_size=8, optimizer=optax.adam(5e-2), validation_data=(xv, yv))
    _fit(*_model_and_params(), x, y, callbacks=[stopper], **kw)
    small = nn.mlp((7,), 3)
    _, small_params = small.init(jax.random.key(5), (5,))
    reused = _fit(small, small_params, x, y, callbacks=[stopper], **kw)
    fresh = _fit(small, small_params, x, y, callbacks=[train.EarlyStopping("val_loss",
                                                                           patience=2)], **kw)
    chex.assert_trees_all_equal(reused.params, fresh.params)
    assert reused.history == {k: v for k, v in fresh.history.items()} or \
        reused.history["val_loss"] == fresh.history["val_loss"]
    assert reused.epochs == fresh.epochs


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", losses.softmax_cross_entropy])
def test_one_hot_loss_gets_fitting_metrics_and_checks_by_name_or_function(loss):
    x, y = _blobs()
    y1 = np.eye(3, dtype=np.float32)[y]
    model, params = _model_and_params()
    result = _fit(model, params, x, y1, loss=loss, validation_data=(x, y1), epochs=10)
    assert result.history["val_accuracy"][-1] >= 0.9
    metrics = train.evaluate(model.apply, result.params, x, y1, loss=loss)
    integer = train.evaluate(model.apply, result.params, x, y)
    assert metrics["accuracy"] == integer["accuracy"]
    with pytest.raises(ValueError, match="class probabilities in \\[0, 1\\]"):
        _fit(model, params, x, 2 * y1, loss=loss)


def test_sigmoid_loss_gets_binary_accuracy_and_integer_loss_function_keeps_label_checks():
    x, y = _blobs(k=2)
    model = nn.mlp((16,), 1)
    _, params = model.init(jax.random.key(0), (5,))
    yb = y[:, None].astype(np.float32)
    result = _fit(model, params, x, yb, loss=losses.sigmoid_binary_cross_entropy,
                  validation_data=(x, yb), epochs=10)
    logits = np.asarray(model.apply(result.params, x))
    # float32 mean inside the evaluator against a float64 one here
    assert result.history["val_accuracy"][-1] == pytest.approx(np.mean((logits > 0) == (yb > 0.5)),
                                                               rel=1e-6)
    m, p = _model_and_params()
    with pytest.raises(ValueError, match="but `n_classes` is 3"):
        _fit(m, p, x, y + 3, loss=losses.softmax_cross_entropy_with_integer_labels)
    plain = _fit(m, p, x, y, loss=losses.softmax_cross_entropy_with_integer_labels,
                 validation_data=(x, y), epochs=1)
    assert "val_accuracy" in plain.history


def test_fit_many_leaves_the_callers_hyperparameter_arrays_alive():
    x, y = _blobs()
    model = nn.mlp((16,), 3)
    keys = jax.random.split(jax.random.key(0), 2)
    lrs = jnp.array([0.01, 0.1])
    train.fit_many(model.apply, _stack(model, keys), x, y, loss=CE,
                   optimizer=optax.inject_hyperparams(optax.sgd)(learning_rate=0.1), keys=keys,
                   batch_size=16, epochs=1, hyperparams={"learning_rate": lrs})
    np.testing.assert_array_equal(np.asarray(lrs), np.array([0.01, 0.1], np.float32))


def test_params_given_to_callbacks_stay_valid_after_the_epoch():
    x, y = _blobs()
    model, params = _model_and_params()
    snapshots = []
    result = _fit(model, params, x, y, epochs=3,
                  callbacks=[lambda epoch, logs, p: snapshots.append(p)])
    host = [jax.tree.map(np.asarray, s) for s in snapshots]  # deleted buffers raise
    assert len(host) == 3 and not _leaves_equal(host[0], host[1])
    chex.assert_trees_all_equal(host[-1], jax.tree.map(np.asarray, result.params))


def test_nan_guard_checks_each_epoch_without_changing_the_arithmetic():
    # The guard checks once per epoch and reruns a bad epoch step by step; on a finite run it
    # must not change a bit of the result (params, optimizer state, history) against no guard.
    x, y = _blobs()
    model, params = _model_and_params()
    kw = dict(epochs=3, optimizer=optax.adam(1e-2))
    guarded = _fit(model, params, x, y, **kw)
    bare = _fit(model, params, x, y, nan_guard=False, **kw)
    assert guarded.stop_reason is None and guarded.history["loss"] == bare.history["loss"]
    chex.assert_trees_all_equal(guarded.params, bare.params)
    chex.assert_trees_all_equal(guarded.opt_state, bare.opt_state)


def test_nan_guard_finds_the_step_inside_a_later_epoch_of_one_program():
    # Divergence in the middle of epoch >= 1 of a single multi-epoch program: the step found by
    # the rerun must be the same as the per-step guard of fit_many (one member) finds.
    x, y, model, params = _diverging_least_squares(64)
    kw = dict(loss="mse", optimizer=optax.sgd(5.0), batch_size=16, steps=500)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        one = train.fit(model.apply, params, x, y, key=jax.random.key(0), **kw)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        many = train.fit_many(model.apply, jax.tree.map(lambda p: p[None], params),
                              x, y, keys=jax.random.key(0)[None], **kw)
    assert one.steps > 4  # inside epoch >= 1 (4 steps an epoch)
    assert f"steps [{one.steps}]" in many.stop_reason
    chex.assert_trees_all_equal(one.params, jax.tree.map(lambda p: p[0], many.params))


def test_nan_guard_covers_the_optimizer_state():
    # Inputs of 1e20 make the gradient ~1e20: Adam's nu = g^2 overflows to inf while its update
    # mu / (sqrt(nu) + eps) is 0, so params and loss stay finite and training would freeze
    # silently. The guard must stop at the first step and name it.
    x = np.full((8, 2), 1e20, np.float32)
    y = np.zeros((8, 1), np.float32)

    def apply(params, xb):
        return xb @ params["w"]

    def loss(out, t):
        return out[:, 0] - t[:, 0]

    params = {"w": jnp.full((2, 1), 1e-19)}
    with pytest.warns(RuntimeWarning, match="optimizer state"):
        result = train.fit(apply, params, x, y, loss=loss, optimizer=optax.adam(1e-3),
                           key=jax.random.key(0), batch_size=8, steps=10)
    assert result.steps == 0 and "step 0" in result.stop_reason
    chex.assert_tree_all_finite(result.opt_state)


def test_compiled_programs_key_on_the_trace_context():
    # A program compiled under the default matmul precision must not be reused inside
    # jax.default_matmul_precision("highest") (on a GPU that would silently mean TF32).
    x, y = _blobs()
    model, params = _model_and_params()
    opt = optax.adam(1e-2)  # the same object: programs are keyed on it
    train.clear_compile_cache()
    _fit(model, params, x, y, epochs=1, optimizer=opt)
    _fit(model, params, x, y, epochs=1, optimizer=opt)
    assert len([k for k in _programs.cached_programs() if k.kind == "fit"]) == 1
    with jax.default_matmul_precision("highest"):
        _fit(model, params, x, y, epochs=1, optimizer=opt)
    keys = [k for k in _programs.cached_programs() if k.kind == "fit"]
    assert len(keys) == 2 and keys[0].context != keys[1].context


def test_compile_cache_is_bounded_and_clearing_it_frees_user_functions():
    import gc
    import weakref

    x, y = _blobs()
    _, params = _model_and_params()
    model = nn.mlp((16,), 3)

    def apply(p, xb):
        return model.apply(p, xb)

    ref = weakref.ref(apply)
    train.fit(apply, params, x, y, loss=CE, optimizer=optax.sgd(0.1), key=jax.random.key(0),
              batch_size=16, epochs=1)
    del apply
    gc.collect()
    assert ref() is not None  # kept alive by the cache, as documented
    train.clear_compile_cache()
    gc.collect()
    assert ref() is None
    assert _programs.MAX_PROGRAMS == 64


# ------------------------------------------------------------------ what Keras users expect

def _hand_weighted_gd(model, params, x, y, w, lr, n_steps):
    def objective(p):
        per = losses.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y)
        return jnp.sum(per * w) / x.shape[0]

    p = params
    for _ in range(n_steps):
        p = jax.tree.map(lambda a, g: a - lr * g, p, jax.grad(objective)(p))
    return p


def test_sample_and_class_weights_equal_the_weighted_objective():
    # Full batch: every step sees all samples, so fit must equal gradient descent on
    # sum_i w_i loss_i / n up to float32 summation order (1e-5).
    x, y = _blobs(n=64)
    model, params = _model_and_params()
    w = np.linspace(0.0, 2.0, 64).astype(np.float32)
    kw = dict(batch_size=64, steps=15, optimizer=optax.sgd(0.1))
    weighted = _fit(model, params, x, y, sample_weight=w, **kw)
    chex.assert_trees_all_close(weighted.params,
                                _hand_weighted_gd(model, params, x, y, w, 0.1, 15),
                                rtol=1e-4, atol=1e-5)
    by_class = _fit(model, params, x, y, class_weight={0: 3.0, 1: 1.0, 2: 0.0}, **kw)
    as_samples = _fit(model, params, x, y,
                      sample_weight=np.array([3.0, 1.0, 0.0], np.float32)[y], **kw)
    chex.assert_trees_all_equal(by_class.params, as_samples.params)
    unweighted = _fit(model, params, x, y, **kw)
    assert not _leaves_equal(by_class.params, unweighted.params)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(sample_weight=np.ones(5, np.float32)), ValueError, r"shape \(120,\)"),
    (dict(sample_weight=-np.ones(120, np.float32)), ValueError, "must be >= 0"),
    (dict(sample_weight=np.ones(120, np.int32)), TypeError, "floating dtype"),
    (dict(class_weight={0: 1.0}), ValueError, r"no weight for classes \[1, 2\]"),
    (dict(class_weight=[1.0, 2.0]), ValueError, "sequence of 3 weights"),
    (dict(class_weight={0: 1.0, 1: 1.0, 2: 1.0, 7: 1.0}), ValueError, "class 7"),
])
def test_bad_weights_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        _fit(_MODEL, _PARAMS, _X, _Y, epochs=1, **kwargs)


def test_optimizer_receives_the_loss_value_for_reduce_on_plateau():
    # With a learning rate of 0 the loss never improves: reduce_on_plateau must see the values
    # (passed as value=) and cut its scale; without value= optax raises.
    x, y = _blobs()
    model, params = _model_and_params()
    opt = optax.chain(optax.sgd(0.0),
                      optax.contrib.reduce_on_plateau(patience=2, factor=0.5, cooldown=0,
                                                      accumulation_size=1))
    result = _fit(model, params, x, y, optimizer=opt, epochs=2)
    assert float(result.opt_state[1].scale) < 1.0


def test_plan_segments():
    p = train.plan(100, 16, steps=23)
    assert (p.steps_per_epoch, p.total_steps, p.n_epochs) == (6, 23, 4)
    assert p.segments(per_epoch=True) == [(0, 1, 6), (1, 1, 6), (2, 1, 6), (3, 1, 5)]
    assert p.segments(2) == [(2, 1, 6), (3, 1, 5)]
    assert p.segments(4) == []
    assert train.plan(96, 16, epochs=2).segments() == [(0, 2, 6)]
