"""Tests for the `jaxlearn` command line: arguments, failure isolation, the written report."""

import collections
import gc
import json
import os
import subprocess
import sys
import types
import weakref

import jax
import pytest
from experiment_checks import FINDINGS, quick_run
from matplotlib.figure import Figure

import experiments
import jaxlearn.train
from jaxlearn import cli, report

FREE_COMPILED_PROGRAMS = cli._free_compiled_programs  # the tests below replace it by a recorder


def _fake_experiment(name, *, fail=False, holds=True):
    def run(*, quick=False, seeds=None, seed_offset=0, progress=None):
        if fail:
            raise RuntimeError(f"{name} exploded")
        if progress:
            progress(1, 1)
        fig = Figure()
        ax = fig.subplots()
        ax.plot([0, 1], [0, seed_offset])
        ax.set(title=name, xlabel="x", ylabel="y")
        return report.Outcome(name=name, claim=f"{name} claim",
                              checks=[report.Check("value", 1.0 if holds else 0.0, ">=", 0.5)],
                              numbers={"seeds": seeds, "seed_offset": seed_offset,
                                       "quick": quick}, figures={"plot": fig})
    return types.SimpleNamespace(CLAIM=f"{name} claim", run=run)


@pytest.fixture(autouse=True)
def cache_calls(monkeypatch):
    """Records the CLI's calls that would enable the compilation cache or drop the compiled
    programs, instead of changing JAX's config and caches for the rest of the test session."""
    calls = []
    monkeypatch.setattr(cli, "enable_compilation_cache", lambda: calls.append("enabled"))
    monkeypatch.setattr(cli, "_free_compiled_programs", lambda: calls.append("freed"))
    return calls


@pytest.fixture(autouse=True)
def one_job(monkeypatch):
    """The tests below run ``main`` in this process with stand-in experiments, which worker
    processes would not see: one job unless a test asks for more (``--jobs``)."""
    monkeypatch.setattr(cli, "default_jobs", lambda: 1)


@pytest.fixture
def fake_experiments(monkeypatch):
    fakes = {"good": _fake_experiment("good"), "broken": _fake_experiment("broken", fail=True),
             "false": _fake_experiment("false", holds=False)}
    monkeypatch.setattr(experiments, "discover", lambda: fakes)
    return fakes


def test_list_shows_every_real_experiment(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in experiments.discover():
        assert name in out
    assert len(experiments.discover()) >= 13


def test_reproduce_isolates_a_failing_experiment(fake_experiments, tmp_path, capsys):
    code = cli.main(["reproduce", "--quick", "--out", str(tmp_path), "--seeds", "2",
                     "--no-progress"])
    assert code == 1  # one experiment raised
    results = json.loads((tmp_path / "results.json").read_text())
    verdicts = {e["name"]: e["verdict"] for e in results["experiments"]}
    assert verdicts == {"good": "holds", "broken": "failed", "false": "does not hold"}
    broken = next(e for e in results["experiments"] if e["name"] == "broken")
    assert "broken exploded" in broken["error"]
    good = next(e for e in results["experiments"] if e["name"] == "good")
    assert good["numbers"] == {"seeds": 2, "seed_offset": 0, "quick": True}
    md = (tmp_path / "report.md").read_text()
    for name, verdict in verdicts.items():
        section = md.split(f"## {name}\n", 1)[1]
        assert section.lstrip().startswith(f"**Verdict: {verdict}.**"), name
    assert (tmp_path / "good_plot.png").read_bytes().startswith(b"\x89PNG")
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # the two experiments that made figures
    assert "1/3 claims hold" in capsys.readouterr().out


def test_run_named_experiment_only(fake_experiments, tmp_path):
    assert cli.main(["run", "good", "--out", str(tmp_path), "--no-progress"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert [e["name"] for e in results["experiments"]] == ["good"]
    assert results["meta"]["seeds"] == "each experiment's default"
    assert results["meta"]["mode"] == "full" and results["meta"]["seed offset"] == 0
    # The experiment chooses its seeds (None) unless told; the offset is passed through.
    assert results["experiments"][0]["numbers"] == {"seeds": None, "seed_offset": 0,
                                                    "quick": False}
    assert cli.main(["run", "good", "--out", str(tmp_path), "--no-progress", "--seeds", "4",
                     "--seed-offset", "100"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["experiments"][0]["numbers"] == {"seeds": 4, "seed_offset": 100,
                                                    "quick": False}


@pytest.mark.parametrize("argv, message", [
    (["run", "nope"], "unknown experiment 'nope'"),
    (["reproduce", "--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["reproduce", "--seed-offset", "-1"], "--seed-offset must be >= 0, got -1"),
    (["reproduce", "--jobs", "0"], "--jobs must be >= 1, got 0"),
    (["reproduce", "--out", "/proc/jaxlearn-not-writable"], "is not a writable folder"),
])
def test_bad_arguments_exit_nonzero_with_one_line(fake_experiments, argv, message, capsys,
                                                  tmp_path):
    if "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_existing_results_survive_a_later_failure(fake_experiments, tmp_path):
    # The report is rewritten after every experiment: a crash later keeps what was finished.
    cli.main(["run", "good", "broken", "--out", str(tmp_path), "--no-progress"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert [e["verdict"] for e in results["experiments"]] == ["holds", "failed"]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


@pytest.mark.parametrize("flag, enabled", [([], ["enabled"]), (["--no-compilation-cache"], [])])
def test_compilation_cache_is_on_unless_turned_off(fake_experiments, tmp_path, cache_calls, flag,
                                                   enabled):
    assert cli.main(["run", "good", "--out", str(tmp_path), "--no-progress", *flag]) == 0
    assert [c for c in cache_calls if c == "enabled"] == enabled


def test_compiled_programs_are_dropped_after_every_experiment(fake_experiments, tmp_path,
                                                             cache_calls):
    cli.main(["run", "good", "broken", "false", "--out", str(tmp_path), "--no-progress",
              "--no-compilation-cache"])
    assert cache_calls == ["freed"] * 3  # the failed experiment's programs too


def test_free_compiled_programs_empties_jaxlearn_and_jax_caches(monkeypatch):
    cleared = []
    monkeypatch.setattr(jaxlearn.train, "clear_compile_cache", lambda: cleared.append("jaxlearn"))
    monkeypatch.setattr(jax, "clear_caches", lambda: cleared.append("jax"))
    FREE_COMPILED_PROGRAMS()
    assert cleared == ["jaxlearn", "jax"]


def test_jobs_run_in_worker_processes_and_a_dead_worker_is_reported(monkeypatch, tmp_path):
    # Two spawned workers: the experiment that holds ran in another process than this one; the
    # one whose worker dies is reported as failed with the reason, the report is still written
    # (in the order of the experiments, not of their ending) and the exit code says so.
    import cli_workers

    fakes = {name: types.SimpleNamespace(CLAIM=f"{name} claim", run=getattr(cli_workers, name))
             for name in ("holds", "also_holds")}
    monkeypatch.setattr(experiments, "discover", lambda: fakes)
    assert cli.main(["reproduce", "--jobs", "2", "--no-progress", "--out",
                     str(tmp_path / "a")]) == 0
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert [e["name"] for e in results["experiments"]] == ["holds", "also_holds"]
    for e in results["experiments"]:
        assert e["verdict"] == "holds" and e["numbers"]["pid"] != os.getpid()
        assert (tmp_path / "a" / f"{e['name']}_plot.png").stat().st_size > 0
    assert results["meta"]["jobs"] == 2
    assert cli.main(["run", "holds", "--jobs", "2", "--no-progress", "--out",
                     str(tmp_path / "one")]) == 0
    results = json.loads((tmp_path / "one" / "results.json").read_text())
    assert results["meta"]["jobs"] == 1  # never more workers than experiments: in this process
    assert results["experiments"][0]["numbers"]["pid"] == os.getpid()

    fakes["dies"] = types.SimpleNamespace(CLAIM="dies claim", run=cli_workers.dies)
    assert cli.main(["reproduce", "--jobs", "2", "--no-progress", "--out",
                     str(tmp_path / "b")]) == 1
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert [e["name"] for e in results["experiments"]] == ["holds", "also_holds", "dies"]
    dead = results["experiments"][2]
    assert dead["verdict"] == "failed" and "worker process died" in dead["error"]


def test_list_does_not_touch_the_compilation_cache(fake_experiments, cache_calls, capsys):
    assert cli.main(["list"]) == 0
    assert cache_calls == []


def test_each_figure_is_rendered_once_and_then_freed(monkeypatch, tmp_path):
    """The report is rewritten after each experiment, but each figure is rendered once (when its
    experiment ends) and closed: pyplot forgets it and nothing keeps it alive."""
    plt = pytest.importorskip("matplotlib.pyplot")
    made = []  # weak references to every figure the experiments made

    def experiment(name):
        def run(*, quick=False, seeds=None, seed_offset=0, progress=None):
            bare = Figure()
            bare.subplots().plot([0, 1], [1, 0])
            managed = plt.figure()  # a pyplot figure stays alive until plt.close
            managed.subplots().plot([0, 1], [0, 1])
            made.extend([weakref.ref(bare), weakref.ref(managed)])
            return report.Outcome(name=name, claim="c", checks=[report.Check("v", 1.0, ">=", 0.5)],
                                  figures={"bare": bare, "managed": managed})
        return types.SimpleNamespace(CLAIM="c", run=run)

    monkeypatch.setattr(experiments, "discover",
                        lambda: {"first": experiment("first"), "second": experiment("second")})
    renders = collections.Counter()
    savefig = Figure.savefig

    def counting_savefig(fig, *args, **kwargs):
        renders[id(fig)] += 1
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", counting_savefig)
    open_before = set(plt.get_fignums())
    assert cli.main(["reproduce", "--out", str(tmp_path), "--no-progress"]) == 0
    assert len(made) == 4 and sorted(renders.values()) == [1, 1, 1, 1]
    assert set(plt.get_fignums()) == open_before
    gc.collect()
    assert [ref() for ref in made] == [None] * 4
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    for name in ("first_bare", "first_managed", "second_bare", "second_managed"):
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert f"]({name}.png)" in (tmp_path / "report.md").read_text()


def test_a_figure_that_cannot_be_rendered_fails_only_its_experiment(monkeypatch, tmp_path):
    def broken_savefig(*args, **kwargs):
        raise RuntimeError("no canvas")

    def unrenderable(*, quick=False, seeds=None, seed_offset=0, progress=None):
        bad = Figure()
        bad.subplots().plot([0, 1], [0, 1])
        bad.savefig = broken_savefig
        return report.Outcome(name="bad", claim="c", checks=[report.Check("v", 1.0, ">=", 0.5)],
                              figures={"plot": bad})
    fakes = {"bad": types.SimpleNamespace(CLAIM="c", run=unrenderable),
             "good": _fake_experiment("good")}
    monkeypatch.setattr(experiments, "discover", lambda: fakes)
    assert cli.main(["reproduce", "--out", str(tmp_path), "--no-progress"]) == 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert [e["verdict"] for e in results["experiments"]] == ["failed", "holds"]
    assert "no canvas" in results["experiments"][0]["error"]


@pytest.mark.slow
def test_reproduce_quick_report_of_every_experiment(monkeypatch, tmp_path):
    """``reproduce --quick`` over the 25 real experiments: every one runs, its verdict is
    recorded and the report holds them all. The experiments' quick runs are the ones their own
    tests check (shared per session by ``experiment_checks.quick_run``, each experiment with its
    quick seeds); everything after the runs (rendering, report, results.json, exit code) is the
    CLI's code."""
    real = experiments.discover()
    proxies = {name: types.SimpleNamespace(
        CLAIM=module.CLAIM,
        run=lambda *, quick, seeds, seed_offset, progress, name=name: quick_run(name)[0])
        for name, module in real.items()}
    monkeypatch.setattr(experiments, "discover", lambda: proxies)
    assert cli.main(["reproduce", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    names = [e["name"] for e in results["experiments"]]
    assert names == list(real) and len(names) == 25
    for e in results["experiments"]:
        # With few seeds a check over seeds may stay inconclusive; anything else must hold (no
        # "does not hold" from noise, no failure), except the stated findings.
        assert e["error"] is None, (e["name"], e["error"])
        stated = FINDINGS.get(e["name"], ())
        for c in e["checks"]:
            if any(c["what"].startswith(prefix) for prefix in stated):
                assert c["verdict"] in ("does not hold", "inconclusive"), (e["name"], c)
            else:
                assert c["verdict"] == "holds" or (c["kind"] == "interval"
                                                   and c["verdict"] == "inconclusive"), (
                    e["name"], c)
        assert e["verdict"] in ("holds", "inconclusive") or stated, (e["name"], e["verdict"])
    for name in ("report.md", "report.html"):
        assert (tmp_path / name).stat().st_size > 1000
    pngs = [f for f in os.listdir(tmp_path) if f.endswith(".png")]
    assert len(pngs) >= len(names)


@pytest.mark.slow
def test_run_in_a_fresh_process(tmp_path):
    """The installed command in a new process (imports, compile cache, files, exit code), on two
    of the fastest experiments, each in its own worker process (``--jobs 2``); the whole
    reproduce is the test above and the README's command."""
    proc = subprocess.run([sys.executable, "-m", "jaxlearn.cli", "run", "losses", "ridge",
                           "--quick", "--seed-offset", "0", "--jobs", "2", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "claims hold" in proc.stdout and "failed" not in proc.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert [e["name"] for e in results["experiments"]] == ["losses", "ridge"]
    # The same numbers as the in-process quick runs that the experiment tests check.
    for e in results["experiments"]:
        assert e["verdict"] in ("holds", "inconclusive"), e
        shared = quick_run(e["name"])[0]
        assert [c["values"] for c in e["checks"] if c["kind"] == "interval"] == \
            [list(c.values) for c in shared.checks if c.kind == "interval"], e["name"]
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") >= 2
    assert results["meta"]["jobs"] == 2
    assert "2 workers" in proc.stderr  # the progress bar over experiments
