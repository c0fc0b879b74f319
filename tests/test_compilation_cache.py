"""jaxlearn.compilation_cache: where the cache lives, that programs land in it and are read back,
the opt-out, and that importing jaxlearn leaves JAX's configuration alone.

Each case runs in a fresh interpreter: JAX opens its cache once per process, and the test session
itself already uses one (tests/conftest.py).
"""

import os
import subprocess
import sys
import textwrap

import pytest

from jaxlearn import compilation_cache


def _run(code: str, **env: str) -> str:
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("JAXLEARN_CACHE_DIR", "JAXLEARN_NO_COMPILATION_CACHE")}
    full_env.update(env)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


# One program, compiled in a fresh process; prints the cache folder, the programs it holds, and
# how many programs this process got from the cache rather than compiling.
_COMPILE = """
    import os, jax, jax.numpy as jnp
    import jaxlearn as jl
    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kw: event == '/jax/compilation_cache/cache_hits' and hits.append(1))
    folder = jl.enable_compilation_cache({path})
    x = jnp.arange(12.0).reshape(3, 4)
    jax.jit(lambda a: jnp.tanh(a @ a.T).sum())(x).block_until_ready()
    files = sorted(os.listdir(folder)) if folder else []
    print(repr((folder, [f for f in files if '_lambda' in f], len(hits))))
"""


def test_compiled_program_is_written_then_read_back(tmp_path):
    folder = str(tmp_path / "xla")
    first = eval(_run(_COMPILE.format(path=repr(folder))))
    assert first[0] == folder
    assert len(first[1]) == 1, first  # the jitted lambda, however quick it was to compile
    assert first[2] == 0
    second = eval(_run(_COMPILE.format(path=repr(folder))))
    assert second[1] == first[1]      # same key: nothing new written
    assert second[2] >= 1             # and the lambda came from the disk


@pytest.mark.parametrize("env, expected", [
    ({"JAXLEARN_CACHE_DIR": "{tmp}/root"}, "{tmp}/root/xla"),
    ({"XDG_CACHE_HOME": "{tmp}/xdg"}, "{tmp}/xdg/jaxlearn/xla"),
    ({"HOME": "{tmp}/home", "XDG_CACHE_HOME": ""}, "{tmp}/home/.cache/jaxlearn/xla"),
])
def test_default_folder_follows_the_environment(tmp_path, env, expected):
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    folder, programs, _ = eval(_run(_COMPILE.format(path=None), **env))
    assert folder == expected.format(tmp=tmp_path)
    assert len(programs) == 1


def test_opt_out_leaves_jax_alone(tmp_path):
    out = _run("""
        import jax, jaxlearn as jl
        print(repr((jl.enable_compilation_cache(), jax.config.jax_compilation_cache_dir)))
    """, JAXLEARN_CACHE_DIR=str(tmp_path), JAXLEARN_NO_COMPILATION_CACHE="1")
    assert eval(out) == (None, None)
    assert not (tmp_path / "xla").exists()


def test_import_does_not_change_jax_config():
    out = _run("""
        import jax
        names = ('jax_compilation_cache_dir', 'jax_persistent_cache_min_compile_time_secs',
                 'jax_persistent_cache_min_entry_size_bytes', 'jax_numpy_rank_promotion',
                 'jax_enable_x64')
        before = [getattr(jax.config, n) for n in names]
        import jaxlearn, jaxlearn.cli
        print([getattr(jax.config, n) for n in names] == before)
    """)
    assert out == "True"


def test_clear_deletes_the_folder(tmp_path):
    folder = tmp_path / "xla"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "entry-cache").write_bytes(b"x")
    assert compilation_cache.clear_compilation_cache(folder) == str(folder)
    assert not folder.exists()
    assert compilation_cache.clear_compilation_cache(folder) == str(folder)  # absent: no error


def test_clear_then_compile_writes_again(tmp_path):
    out = _run("""
        import os, jax, jax.numpy as jnp, jaxlearn as jl
        folder = jl.enable_compilation_cache()
        jax.jit(lambda a: a * 3.0)(jnp.ones(3)).block_until_ready()
        jl.clear_compilation_cache()
        jax.jit(lambda a: a * 5.0 - 1.0)(jnp.ones(3)).block_until_ready()
        print(sum('_lambda' in f for f in os.listdir(folder)))
    """, JAXLEARN_CACHE_DIR=str(tmp_path))
    assert out == "1"
