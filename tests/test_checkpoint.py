"""Tests for jaxlearn.checkpoint: the format, atomic keep-K saving, refusal of bad files, and
bitwise resume of fit, including after a real SIGKILL."""

import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlearn import checkpoint, losses, nn, train

CE = losses.SOFTMAX_CE_INT


def _setup():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    model = nn.mlp((8,), 2, dropout=0.1)
    _, params = model.init(jax.random.key(0), (6,))
    return model, params, x, y


def _state(step=5, params=None):
    model, p, _, _ = _setup()
    params = p if params is None else params
    opt_state = optax.adam(1e-3).init(params)
    return checkpoint.TrainState(params, opt_state, jax.random.key(7), epoch=2, step=step,
                                 history={"loss": [1.0, 0.5]}, meta={"batch_size": 16})


def _equal(a, b):
    """Bitwise equal trees, structure included."""
    try:
        chex.assert_trees_all_equal(a, b)
    except AssertionError:
        return False
    return True


def test_roundtrip_is_bitwise_and_keeps_last_k(tmp_path):
    state = _state()
    for step in range(1, 6):
        checkpoint.save_checkpoint(str(tmp_path), state._replace(step=step), keep=2)
    files = checkpoint.list_checkpoints(str(tmp_path))
    assert [os.path.basename(f) for f in files] == ["ckpt_0000000004.jlck",
                                                   "ckpt_0000000005.jlck"]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    loaded = checkpoint.load_checkpoint(files[-1], params=state.params,
                                        opt_state=state.opt_state)
    assert _equal(loaded.params, state.params) and _equal(loaded.opt_state, state.opt_state)
    assert type(loaded.opt_state[0]).__name__ == "ScaleByAdamState"
    assert jnp.array_equal(jax.random.key_data(loaded.key), jax.random.key_data(state.key))
    assert (loaded.step, loaded.epoch, loaded.history, loaded.meta) == (5, 2, {"loss": [1.0, 0.5]},
                                                                       {"batch_size": 16})


def _corrupt(path, how):
    blob = open(path, "rb").read()
    if how == "truncated":
        blob = blob[: len(blob) // 2]
    elif how == "flipped":
        blob = blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:]
    elif how == "version":
        blob = blob[:14] + b"0099" + blob[18:]
    elif how == "header":
        blob = blob[:20]
    with open(path, "wb") as f:
        f.write(blob)


@pytest.mark.parametrize("how, message", [
    ("truncated", "truncated or corrupted"),
    ("flipped", "checksum mismatch"),
    ("version", "format version 99"),
    ("header", "truncated"),
])
def test_bad_file_is_refused_naming_it_and_previous_stays_loadable(tmp_path, how, message):
    state = _state()
    good = checkpoint.save_checkpoint(str(tmp_path), state._replace(step=1))
    bad = checkpoint.save_checkpoint(str(tmp_path), state._replace(step=2))
    _corrupt(bad, how)
    with pytest.raises(checkpoint.CheckpointError, match=message) as info:
        checkpoint.load_checkpoint(bad, params=state.params)
    assert bad in str(info.value)
    with pytest.warns(RuntimeWarning, match="skipping unusable checkpoint"):
        found, path = checkpoint.latest_checkpoint(str(tmp_path), params=state.params,
                                                   opt_state=state.opt_state)
    assert path == good and found.step == 1 and _equal(found.params, state.params)


def test_wrong_structure_is_refused_with_the_leaf_named(tmp_path):
    state = _state()
    path = checkpoint.save_checkpoint(str(tmp_path), state)
    other = nn.mlp((9,), 2, dropout=0.1).init(jax.random.key(0), (6,))[1]
    with pytest.raises(checkpoint.CheckpointError, match=r"`params\[0\]\[0\]\['b'\]` is "
                                                          r"float32\[8\], expected float32\[9\]"):
        checkpoint.load_checkpoint(path, params=other)
    with pytest.raises(checkpoint.CheckpointError, match="does not match the expected structure"):
        checkpoint.load_checkpoint(path, params={"w": jnp.zeros(3)})


class _Exploit:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_file_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "ckpt_0000000009.jlck"
    path.write_bytes(pickle.dumps({"params": _Exploit(str(marker))}))
    with pytest.raises(checkpoint.CheckpointError, match="not a jaxlearn checkpoint"):
        checkpoint.load_checkpoint(str(path), params=_state().params)
    # Even with our magic and a valid checksum in front, the payload is msgpack, not pickle.
    payload = pickle.dumps(_Exploit(str(marker)))
    import hashlib
    blob = checkpoint.MAGIC + b"0001" + hashlib.sha256(payload).digest() + payload
    path.write_bytes(blob)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load_checkpoint(str(path), params=_state().params)
    assert not marker.exists()


def _fit(model, params, x, y, **kw):
    kw.setdefault("optimizer", optax.adam(1e-2))
    kw.setdefault("epochs", 6)
    return train.fit(model.apply, params, x, y, loss=CE, key=jax.random.key(3), batch_size=16,
                     **kw)


class _Interrupted(Exception):
    pass


def _interrupt_at(epoch):
    """A callback that interrupts the run (like Ctrl-C or a crash) in ``epoch``'s
    ``on_epoch_end``, before that epoch's checkpoint is written."""

    def callback(e, logs, params):
        if e == epoch:
            raise _Interrupted

    return callback


def _fit_interrupted(model, params, x, y, epoch, callbacks, **kw):
    with pytest.raises(_Interrupted):
        _fit(model, params, x, y, callbacks=[*callbacks, _interrupt_at(epoch)], **kw)


def test_interrupt_then_resume_equals_uninterrupted_run_bitwise(tmp_path):
    model, params, x, y = _setup()
    full = _fit(model, params, x, y)
    ckpt = checkpoint.Checkpoint(str(tmp_path), keep=2)
    _fit_interrupted(model, params, x, y, 3, [ckpt])
    assert ckpt.last_path.endswith("ckpt_0000000018.jlck")  # 3 epochs of 6 steps
    resumed = _fit(model, params, x, y, resume_from=str(tmp_path))
    assert _equal(resumed.params, full.params)
    assert _equal(resumed.opt_state, full.opt_state)
    assert resumed.history["loss"] == full.history["loss"]
    assert resumed.steps == full.steps and resumed.epochs == 6


def test_resume_from_empty_folder_starts_fresh_and_mismatch_is_refused(tmp_path):
    model, params, x, y = _setup()
    fresh = _fit(model, params, x, y, resume_from=str(tmp_path / "none"))
    assert _equal(fresh.params, _fit(model, params, x, y).params)
    _fit(model, params, x, y, callbacks=[checkpoint.Checkpoint(str(tmp_path))])
    with pytest.raises(ValueError, match="made with batch_size=16, this run has batch_size=8"):
        train.fit(model.apply, params, x, y, loss=CE, optimizer=optax.adam(1e-2),
                  key=jax.random.key(3), batch_size=8, epochs=6, resume_from=str(tmp_path))
    with pytest.raises(ValueError, match="different `key`"):
        train.fit(model.apply, params, x, y, loss=CE, optimizer=optax.adam(1e-2),
                  key=jax.random.key(4), batch_size=16, epochs=6, resume_from=str(tmp_path))
    with pytest.raises(ValueError, match="another optimizer or other hyperparameters"):
        _fit(model, params, x, y, optimizer=optax.adam(1e-3), resume_from=str(tmp_path))
    with pytest.raises(ValueError, match="other data"):
        _fit(model, params, x, y[::-1].copy(), resume_from=str(tmp_path))
    other_model = nn.mlp((9,), 2, dropout=0.1)
    with pytest.raises(ValueError, match="a model of other structure or shapes"):
        _fit(other_model, other_model.init(jax.random.key(0), (6,))[1], x, y,
             resume_from=str(tmp_path))


@pytest.mark.parametrize("kwargs, match", [
    (dict(every=0), "`every` must be > 0"), (dict(keep=0), "`keep` must be > 0"),
])
def test_checkpoint_callback_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        checkpoint.Checkpoint(str(tmp_path), **kwargs)


def test_checkpoint_of_an_older_run_with_higher_steps_never_deletes_the_new_file(tmp_path):
    # An older run (12 epochs) left higher-step files; a new, different run must keep its own
    # newest file and resume it, not the older run.
    model, params, x, y = _setup()
    folder = str(tmp_path)
    _fit(model, params, x, y, epochs=12, callbacks=[checkpoint.Checkpoint(folder, keep=2)])
    older = set(checkpoint.list_checkpoints(folder))
    ckpt = checkpoint.Checkpoint(folder, keep=2)
    with pytest.warns(RuntimeWarning, match="2 checkpoint\\(s\\) of another run"):
        _fit_interrupted(model, params, x, y, 3, [ckpt])
    assert os.path.exists(ckpt.last_path) and ckpt.last_path not in older
    assert older <= set(checkpoint.list_checkpoints(folder))  # the other run's files are kept
    full = _fit(model, params, x, y)
    resumed = _fit(model, params, x, y, resume_from=folder)
    assert resumed.epochs == 6
    assert _equal(resumed.params, full.params)


def test_keep_best_by_a_monitored_metric(tmp_path):
    model, params, x, y = _setup()
    ckpt = checkpoint.Checkpoint(str(tmp_path), keep=2, monitor="val_loss")
    result = _fit(model, params, x, y, epochs=8, validation_data=(x, y), callbacks=[ckpt])
    val = result.history["val_loss"]
    steps_per_epoch = 96 // 16
    best_two = sorted(range(8), key=lambda e: val[e])[:2]
    want = {checkpoint.checkpoint_path(str(tmp_path), (e + 1) * steps_per_epoch)
            for e in best_two + [7]}
    assert set(checkpoint.list_checkpoints(str(tmp_path))) == want
    assert ckpt.best_path == checkpoint.checkpoint_path(
        str(tmp_path), (int(np.argmin(val)) + 1) * steps_per_epoch)


def test_resume_with_early_stopping_equals_the_uninterrupted_run(tmp_path):
    # The early-stopping state (best, patience counter, best params) is in the checkpoint: a run
    # cut after any epoch and resumed ends as the uninterrupted run, and a resumed finished run
    # does not train further.
    model, params, x, y = _setup()
    xv = x[::-1] * 0.9
    kw = dict(epochs=60, validation_data=(xv, y[::-1]), optimizer=optax.adam(5e-2))

    def stopper():
        return train.EarlyStopping("val_loss", patience=3)

    full = _fit(model, params, x, y, callbacks=[stopper()], **kw)
    assert full.stop_reason is not None and full.epochs < 60
    for cut in (1, full.epochs - 2):
        folder = str(tmp_path / f"cut{cut}")
        _fit_interrupted(model, params, x, y, cut,
                         [stopper(), checkpoint.Checkpoint(folder)], **kw)
        resumed = _fit(model, params, x, y, callbacks=[stopper()], resume_from=folder, **kw)
        assert _equal(resumed.params, full.params)
        assert resumed.history == full.history or (
            resumed.history["val_loss"] == full.history["val_loss"])
        assert (resumed.epochs, resumed.steps) == (full.epochs, full.steps)
    finished = str(tmp_path / "finished")
    _fit(model, params, x, y, callbacks=[stopper(), checkpoint.Checkpoint(finished)], **kw)
    again = _fit(model, params, x, y, callbacks=[stopper()], resume_from=finished, **kw)
    assert again.steps == full.steps and again.train_time < 1.0
    assert _equal(again.params, full.params)
    with pytest.raises(ValueError, match="other result-changing callbacks"):
        _fit(model, params, x, y, resume_from=finished, **kw)


def test_temp_files_of_a_killed_write_are_removed(tmp_path):
    model, params, x, y = _setup()
    stale = tmp_path / ".tmp-abc123-ckpt_0000000006.jlck"
    stale.write_bytes(b"half a checkpoint")
    _fit(model, params, x, y, epochs=1, callbacks=[checkpoint.Checkpoint(str(tmp_path))])
    assert not stale.exists()
    assert len(checkpoint.list_checkpoints(str(tmp_path))) == 1


def test_batchnorm_state_is_checkpointed_and_resumed(tmp_path):
    linen = pytest.importorskip("flax.linen")

    class Net(linen.Module):
        @linen.compact
        def __call__(self, x, train=False):
            x = linen.Dense(8)(x)
            x = linen.BatchNorm(use_running_average=not train)(x)
            return linen.Dense(2)(linen.relu(x))

    _, _, x, y = _setup()
    module = Net()
    variables = module.init(jax.random.key(0), x[:2])
    apply = train.from_linen(module, train_kwarg="train")
    kw = dict(loss=CE, optimizer=optax.adam(1e-2), key=jax.random.key(3), batch_size=16,
              epochs=5)
    full = train.fit(apply, variables, x, y, **kw)
    with pytest.raises(_Interrupted):
        train.fit(apply, variables, x, y, callbacks=[checkpoint.Checkpoint(str(tmp_path)),
                                                     _interrupt_at(2)], **kw)
    resumed = train.fit(apply, variables, x, y, resume_from=str(tmp_path), **kw)
    assert set(resumed.params) == {"params", "batch_stats"}
    assert _equal(resumed.params, full.params)


_SCRIPT = textwrap.dedent("""
    import os, sys, time
    import jax, numpy as np, optax
    from jaxlearn import _io, checkpoint, nn, train
    out, ckpt_dir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if os.environ.get("PAUSE_IN_WRITE"):
        # Hold the 3rd checkpoint write after its temp file is complete, before the rename,
        # and say so: the test kills the process exactly there.
        writes = []
        real_replace = os.replace
        def slow_replace(src, dst):
            writes.append(dst)
            if len(writes) == 3:
                open(os.environ["PAUSE_IN_WRITE"], "w").close()
                time.sleep(600)
            real_replace(src, dst)
        _io.os.replace = slow_replace
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 10)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    xv = rng.normal(size=(128, 10)).astype(np.float32)
    yv = (xv[:, 0] * xv[:, 1] > 0).astype(np.int32)
    model = nn.mlp((32, 32), 2, dropout=0.1)
    _, params = model.init(jax.random.key(0), (10,))
    callbacks = [train.EarlyStopping("val_loss", patience=4),
                 lambda e, logs, p: time.sleep(0.1)]   # slow epochs: room to kill
    if mode != "plain":
        callbacks.append(checkpoint.Checkpoint(ckpt_dir, keep=2, monitor="val_loss"))
    result = train.fit(model.apply, params, x, y,
                       loss="softmax_cross_entropy_with_integer_labels",
                       optimizer=optax.adam(1e-2), key=jax.random.key(5), batch_size=32,
                       epochs=40, callbacks=callbacks, validation_data=(xv, yv),
                       resume_from=ckpt_dir if mode == "resume" else None)
    leaves = jax.tree.leaves(result.params)
    np.savez(out, *[np.asarray(leaf) for leaf in leaves], steps=result.steps)
""")


@pytest.fixture(scope="module")
def _uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    script = folder / "train_script.py"
    script.write_text(_SCRIPT)
    subprocess.run([sys.executable, str(script), str(folder / "plain.npz"), str(folder / "unused"),
                    "plain"], check=True, timeout=600)
    return script, np.load(folder / "plain.npz")


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["between_epochs", "mid_epoch", "during_write"])
def test_sigkill_then_resume_is_bitwise_equal_with_early_stopping_and_keep_best(
        tmp_path, _uninterrupted, moment):
    # Reproducible kill moments: right after a checkpoint appears (between epochs), a seeded
    # random fraction of an epoch later (mid-epoch), and inside the 3rd checkpoint write after
    # its temp file is complete but before the rename.
    script, plain = _uninterrupted
    ckpt_dir = tmp_path / "ckpts"
    marker = tmp_path / "in_write"
    env = dict(os.environ)
    if moment == "during_write":
        env["PAUSE_IN_WRITE"] = str(marker)
    victim = subprocess.Popen([sys.executable, str(script), str(tmp_path / "killed.npz"),
                               str(ckpt_dir), "resume"], env=env)
    deadline = time.time() + 300
    if moment == "during_write":
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.01)
        assert marker.exists(), "the third write never started"
    else:
        while len(checkpoint.list_checkpoints(str(ckpt_dir))) < 2 and time.time() < deadline:
            time.sleep(0.005)
        assert checkpoint.list_checkpoints(str(ckpt_dir)), "no checkpoint appeared"
        if moment == "mid_epoch":
            time.sleep(random.Random(1234).uniform(0.02, 0.09))
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed.npz").exists()
    if moment == "during_write":
        assert [n for n in os.listdir(ckpt_dir) if n.startswith(".tmp-")]
    subprocess.run([sys.executable, str(script), str(tmp_path / "resumed.npz"), str(ckpt_dir),
                    "resume"], check=True, timeout=600)
    assert not [n for n in os.listdir(ckpt_dir) if n.startswith(".tmp-")]
    resumed = np.load(tmp_path / "resumed.npz")
    assert resumed.files == plain.files and len(plain.files) > 1
    for name in plain.files:
        np.testing.assert_array_equal(resumed[name], plain[name])


def test_only_process_zero_writes(tmp_path, monkeypatch):
    model, params, x, y = _setup()
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    ckpt = checkpoint.Checkpoint(str(tmp_path / "p1"))
    _fit(model, params, x, y, epochs=2, callbacks=[ckpt])
    assert ckpt.last_path is None and not (tmp_path / "p1").exists()
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    _fit(model, params, x, y, epochs=2, callbacks=[ckpt])
    assert len(checkpoint.list_checkpoints(str(tmp_path / "p1"))) == 2
