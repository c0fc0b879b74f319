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

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlearn import checkpoint, nn, train

CE = "softmax_cross_entropy_with_integer_labels"


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
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(u), np.asarray(v))
                                      for u, v in zip(la, lb))


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
    return train.fit(model.apply, params, x, y, loss=CE, optimizer=optax.adam(1e-2),
                     key=jax.random.key(3), batch_size=16, epochs=6, **kw)


def test_stop_then_resume_equals_uninterrupted_run_bitwise(tmp_path):
    model, params, x, y = _setup()
    full = _fit(model, params, x, y)
    ckpt = checkpoint.Checkpoint(str(tmp_path), keep=2)
    first = _fit(model, params, x, y, callbacks=[ckpt, lambda e, logs, p: e == 2])
    assert first.epochs == 3 and ckpt.last_path.endswith("ckpt_0000000018.jlck")
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


@pytest.mark.parametrize("kwargs, match", [
    (dict(every=0), "`every` must be > 0"), (dict(keep=0), "`keep` must be > 0"),
])
def test_checkpoint_callback_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        checkpoint.Checkpoint(str(tmp_path), **kwargs)


_SCRIPT = textwrap.dedent("""
    import sys, time
    import jax, numpy as np, optax
    from jaxlearn import checkpoint, nn, train
    out, ckpt_dir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 10)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    model = nn.mlp((32, 32), 2, dropout=0.1)
    _, params = model.init(jax.random.key(0), (10,))
    callbacks = []
    if mode != "plain":
        callbacks = [checkpoint.Checkpoint(ckpt_dir, keep=2),
                     lambda e, logs, p: time.sleep(0.05)]   # slow epochs: room to kill
    result = train.fit(model.apply, params, x, y,
                       loss="softmax_cross_entropy_with_integer_labels",
                       optimizer=optax.adam(1e-2), key=jax.random.key(5), batch_size=32,
                       epochs=40, callbacks=callbacks,
                       resume_from=ckpt_dir if mode == "resume" else None)
    leaves = jax.tree_util.tree_leaves(result.params)
    np.savez(out, *[np.asarray(leaf) for leaf in leaves])
""")


@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_resume_is_bitwise_equal(tmp_path):
    script = tmp_path / "train_script.py"
    script.write_text(_SCRIPT)
    ckpt_dir = tmp_path / "ckpts"
    run = [sys.executable, str(script)]
    victim = subprocess.Popen([*run, str(tmp_path / "killed.npz"), str(ckpt_dir), "resume"])
    deadline = time.time() + 300
    while not checkpoint.list_checkpoints(str(ckpt_dir)) and time.time() < deadline:
        time.sleep(0.05)
    assert checkpoint.list_checkpoints(str(ckpt_dir)), "no checkpoint appeared"
    time.sleep(random.Random().uniform(0.0, 1.0))  # a random moment, mid-epoch or mid-write
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed.npz").exists()
    n_before = len(checkpoint.list_checkpoints(str(ckpt_dir)))
    assert n_before >= 1
    subprocess.run([*run, str(tmp_path / "resumed.npz"), str(ckpt_dir), "resume"], check=True,
                   timeout=600)
    subprocess.run([*run, str(tmp_path / "plain.npz"), str(tmp_path / "unused"), "plain"],
                   check=True, timeout=600)
    resumed = np.load(tmp_path / "resumed.npz")
    plain = np.load(tmp_path / "plain.npz")
    assert len(resumed.files) == len(plain.files) > 0
    for name in plain.files:
        np.testing.assert_array_equal(resumed[name], plain[name])
