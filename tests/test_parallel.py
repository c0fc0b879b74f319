"""Data-parallel fit: 8 simulated CPU devices and 2 processes agree with one device.

JAX fixes its device count when it starts, so the multi-device runs happen in subprocesses with
JAX_NUM_CPU_DEVICES set; each prints or saves its params and the test compares them here. Equal
params alone would also come from every device training on the whole batch, so the 8-device run
also dumps its compiled programs (XLA_FLAGS=--xla_dump_to) and the test reads the training
program's per-device HLO: each device holds batch_size / 8 rows, and the gradients are summed
across devices by an all-reduce.
Tolerance 1e-5 absolute: the batch mean and the gradient all-reduce sum in another order than on
one device (float32 rounding, ~1e-7 per step, seen at 2e-7 after 40 steps).
"""

import os
import re
import socket
import subprocess
import sys
import textwrap
from collections import Counter

import jax
import numpy as np
import optax
import pytest

import jaxlearn as jl

_SCRIPT = textwrap.dedent("""
    import sys
    mode, out = sys.argv[1], sys.argv[2]
    if mode == "multi":
        from jaxlearn import parallel
        parallel.initialize(f"127.0.0.1:{sys.argv[4]}", 2, int(sys.argv[3]))
    import jax, numpy as np, optax
    import jaxlearn as jl
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 10)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    model = jl.nn.mlp((32, 32), 2, dropout=0.1)
    _, params = model.init(jax.random.key(0), (10,))
    kw = dict(loss="softmax_cross_entropy_with_integer_labels", optimizer=optax.adam(1e-2),
              key=jax.random.key(5), epochs=5, validation_data=(x[:100], y[:100]))
    mesh = jl.parallel.data_mesh()
    if mode == "errors":
        try:
            jl.fit(model.apply, params, x, y, mesh=mesh, batch_size=60, **kw)
        except ValueError as err:
            print("ERROR:", err)
        sys.exit(0)
    result = jl.fit(model.apply, params, x, y, mesh=mesh, batch_size=64, **kw)
    leaves = jax.tree.leaves(result.params)
    assert all(leaf.sharding.is_fully_replicated for leaf in leaves)
    np.savez(out, *[np.asarray(leaf.addressable_data(0)) for leaf in leaves],
             devices=jax.device_count(), processes=jax.process_count(),
             val_accuracy=result.history["val_accuracy"][-1])
""")


def _reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 10)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    model = jl.nn.mlp((32, 32), 2, dropout=0.1)
    _, params = model.init(jax.random.key(0), (10,))
    result = jl.fit(model.apply, params, x, y, loss="softmax_cross_entropy_with_integer_labels",
                    optimizer=optax.adam(1e-2), key=jax.random.key(5), epochs=5, batch_size=64,
                    validation_data=(x[:100], y[:100]))
    return [np.asarray(leaf) for leaf in jax.tree.leaves(result.params)]


def _env(n_devices, dump_to=None):
    env = dict(os.environ)
    env["JAX_NUM_CPU_DEVICES"] = str(n_devices)
    env.pop("XLA_FLAGS", None)
    if dump_to is not None:
        # Every program XLA compiles, as optimised per-device HLO text; a program read from a
        # persistent compilation cache would not be compiled, hence not dumped.
        env["XLA_FLAGS"] = f"--xla_dump_to={dump_to} --xla_dump_hlo_as_text"
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def _shapes(hlo_types):
    """The f32 shapes in an HLO type string, each as a sorted tuple of dims (so a transposed
    gradient matches its parameter)."""
    return [tuple(sorted(int(d) for d in dims.split(",") if d))
            for dims in re.findall(r"f32\[([0-9,]*)\]", hlo_types)]


def _check_data_parallel_program(dump_dir, n_devices, batch_size, param_shapes):
    """The compiled training program splits each batch over the devices and all-reduces the
    gradient: its per-device HLO (after SPMD partitioning) sums tensors of every parameter's
    shape across the devices, and holds the batch as ``batch_size / n_devices`` rows, never
    all ``batch_size``."""
    programs = [path.read_text() for path in sorted(dump_dir.glob("*after_optimizations.txt"))]
    training = [text for text in programs if " all-reduce(" in text]
    assert len(training) == 1, f"{len(training)} compiled programs contain an all-reduce"
    text = training[0]
    reduced = Counter()
    for line in text.splitlines():
        if " all-reduce(" in line:
            reduced.update(_shapes(line.split(" all-reduce(")[0].split("=", 1)[1]))
    missing = Counter(tuple(sorted(s)) for s in param_shapes) - reduced
    assert not missing, f"gradients of shapes {sorted(missing)} are not all-reduced"
    n_features = 10
    assert f"f32[{batch_size // n_devices},{n_features}]" in text  # this device's rows
    assert f"f32[{batch_size},{n_features}]" not in text          # not the whole batch


def _compare(path, reference, devices, processes):
    saved = np.load(path)
    assert int(saved["devices"]) == devices and int(saved["processes"]) == processes
    assert sum(name.startswith("arr_") for name in saved.files) == len(reference)
    arrays = [saved[f"arr_{i}"] for i in range(len(reference))]
    for got, want in zip(arrays, reference):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert float(saved["val_accuracy"]) > 0.8


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("parallel") / "dp_script.py"
    path.write_text(_SCRIPT)
    return path


@pytest.mark.slow
def test_eight_simulated_devices_equal_one_device(script, tmp_path):
    out, dump = tmp_path / "eight.npz", tmp_path / "hlo"
    subprocess.run([sys.executable, str(script), "single", str(out)], env=_env(8, dump),
                   check=True, timeout=600)
    _compare(out, _reference(), devices=8, processes=1)
    model = jl.nn.mlp((32, 32), 2, dropout=0.1)
    _, params = jax.eval_shape(lambda key: model.init(key, (10,)), jax.random.key(0))
    _check_data_parallel_program(dump, n_devices=8, batch_size=64,
                                 param_shapes=[p.shape for p in jax.tree.leaves(params)])


def test_batch_not_divisible_by_device_count_is_refused(script):
    proc = subprocess.run([sys.executable, str(script), "errors", "-"], env=_env(8),
                          capture_output=True, text=True, timeout=600, check=True)
    assert ("ERROR: `batch_size` is 60 but the mesh's 'data' axis has 8 devices; batch_size "
            "must be divisible by 8") in proc.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_on_localhost_equal_one_device(script, tmp_path):
    port = str(_free_port())
    outs = [tmp_path / f"proc{i}.npz" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, str(script), "multi", str(outs[i]), str(i), port],
                              env=_env(2)) for i in range(2)]
    for p in procs:
        assert p.wait(timeout=600) == 0
    reference = _reference()
    for out in outs:
        _compare(out, reference, devices=4, processes=2)


def test_mesh_without_data_axis_is_refused():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("model",))
    model = jl.nn.dense(2)
    _, params = model.init(jax.random.key(0), (3,))
    x = np.zeros((8, 3), np.float32)
    y = np.zeros(8, np.int32)
    with pytest.raises(ValueError, match="`mesh` must have a 'data' axis"):
        jl.fit(model.apply, params, x, y, loss="softmax_cross_entropy_with_integer_labels",
               optimizer=optax.sgd(0.1), key=jax.random.key(0), batch_size=4, epochs=1,
               mesh=mesh)
    with pytest.raises(TypeError, match="`mesh` must be a jax.sharding.Mesh"):
        jl.fit(model.apply, params, x, y, loss="softmax_cross_entropy_with_integer_labels",
               optimizer=optax.sgd(0.1), key=jax.random.key(0), batch_size=4, epochs=1,
               mesh="data")


@pytest.mark.parametrize("call, error, match", [
    (lambda: jl.parallel.data_mesh([]), ValueError, "`devices` is empty"),
    (lambda: jl.parallel.data_mesh(["cpu"]), TypeError, r"`devices\[0\]` must be a jax.Device"),
    (lambda: jl.parallel.initialize("127.0.0.1:1", 2, 2), ValueError, r"`process_id` must lie"),
    (lambda: jl.parallel.initialize("localhost", 2, 0), ValueError, "'host:port'"),
])
def test_parallel_helpers_reject_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
