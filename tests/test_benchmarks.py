"""Smoke tests of the benchmark scripts in ``benchmarks/``: each runs end to end on a few steps and
prints its table. The times of these short runs mean nothing; the figures quoted in notes come
from full runs of the same scripts (their commands are in ``benchmarks/README.md``)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _env():
    """The scripts' environment: this session's persistent compilation cache (tests/conftest.py)
    passed on through JAX's own environment variables, so a second test session loads the smoke
    runs' programs instead of compiling them (their times mean nothing here anyway)."""
    import jax

    env = dict(os.environ)
    folder = jax.config.jax_compilation_cache_dir
    if folder:
        env.update(JAX_COMPILATION_CACHE_DIR=folder,
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    return env


@pytest.mark.parametrize("script, args, expected", [
    ("bench_fit.py", ["--steps", "80", "--repeats", "1", "--models", "logistic", "cnn"],
     ["| fit / floor |", "| logistic |", "| cnn |"]),
    ("profile_step.py", ["--steps", "80", "--repeats", "1", "--models", "mlp"],
     ["XLA kernels per Adam step", "| + shuffle (floor) |", "| fit |"]),
    # N = 2 fits both members sequentially, N = 4 only 2 of them (times scaled by 2).
    ("bench_fit_many.py", ["--quick", "--sequential-members", "2"],
     ["| N |", "check: after one epoch", "N = 4: sequential times extrapolated from the first 2"]),
    ("bench_peers.py", ["--quick", "--workloads", "mlp"],
     ["| mlp | jaxlearn |", "| mlp | jax one-scan floor |", "| target"]),
    ("count_compiles.py", ["tests/test_taxonomy.py", "-k", "aggregation"],
     ["| tests/test_taxonomy.py |", "| **total** |"]),
    ("bench_trust.py", ["--batch", "16", "--repeats", "1", "--n-eps", "2", "--restarts", "2",
                        "--steps", "3"],
     ["| PGD, 2 eps x 2 restarts", "| integrated gradients", "| deletion curves", "| equal |"]),
    ("bench_real_sizes.py", ["--sizes", "28", "--steps", "5", "--n", "300", "20", "40"],
     ["| 28x28x3 |", "| memory budget MiB |"]),
    ("bench_conv.py", ["--steps", "2", "--repeats", "1", "--models", "mnist1d_cnn"],
     ["| mnist1d_cnn | 2 | im2col |", "| mnist1d_cnn | 2 | xla |", "check mnist1d_cnn"]),
])
def test_benchmark_script_runs_and_prints_its_table(script, args, expected):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                          env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for text in expected:
        assert text in proc.stdout, (text, proc.stdout[-3000:])


def test_profile_step_rejects_a_partial_epoch():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "profile_step.py"),
                           "--steps", "50"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "--steps must be a positive multiple of 40" in proc.stderr


def _results(folder, checks):
    folder.mkdir()
    experiments = [{"name": "e", "error": None,
                    "checks": [{"what": w, "verdict": v, "value": 0.5, "kind": "interval",
                                "ci": [0.4, 0.6], "n": 3} for w, v in checks]}]
    (folder / "results.json").write_text(json.dumps({"meta": {}, "experiments": experiments}))
    return folder


def test_verdict_stability_compares_two_runs(tmp_path, capsys):
    # Same verdicts: exit 0. A verdict that changes with the seeds, or a check that does not
    # hold in both runs: exit 1 and named.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import verdict_stability
    finally:
        sys.path.pop(0)
    a = _results(tmp_path / "a", [("x", "holds"), ("y", "inconclusive")])
    b = _results(tmp_path / "b", [("x", "holds"), ("y", "inconclusive")])
    assert verdict_stability.compare(a, b) == 0
    assert "2/2 checks give the same verdict" in capsys.readouterr().out
    c = _results(tmp_path / "c", [("x", "inconclusive"), ("y", "inconclusive")])
    assert verdict_stability.compare(a, c) == 1
    assert "UNSTABLE: e: x" in capsys.readouterr().out
    d = _results(tmp_path / "d", [("x", "does not hold"), ("y", "inconclusive")])
    e = _results(tmp_path / "e", [("x", "does not hold"), ("y", "inconclusive")])
    assert verdict_stability.compare(d, e) == 1
    assert "DOES NOT HOLD in both runs: e: x" in capsys.readouterr().out
