"""Tests for the `jaxlearn` command line: arguments, failure isolation, the written report."""

import json
import os
import subprocess
import sys
import types

import pytest
from matplotlib.figure import Figure

import experiments
from jaxlearn import cli, report


def _fake_experiment(name, *, fail=False, holds=True):
    def run(*, quick=False, seeds=3, progress=None):
        if fail:
            raise RuntimeError(f"{name} exploded")
        if progress:
            progress(1, 1)
        fig = Figure()
        ax = fig.subplots()
        ax.plot([0, 1], [0, seeds])
        ax.set(title=name, xlabel="x", ylabel="y")
        return report.Outcome(name=name, claim=f"{name} claim",
                              checks=[report.Check("value", 1.0 if holds else 0.0, ">=", 0.5)],
                              numbers={"seeds": seeds, "quick": quick}, figures={"plot": fig})
    return types.SimpleNamespace(CLAIM=f"{name} claim", run=run)


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
    assert good["numbers"] == {"seeds": 2, "quick": True}
    md = (tmp_path / "report.md").read_text()
    assert "good — holds" in md and "broken — failed" in md and "false — does not hold" in md
    assert (tmp_path / "good_plot.png").read_bytes().startswith(b"\x89PNG")
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # the two experiments that made figures
    assert "1/3 claims hold" in capsys.readouterr().out


def test_run_named_experiment_only(fake_experiments, tmp_path):
    assert cli.main(["run", "good", "--out", str(tmp_path), "--no-progress"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert [e["name"] for e in results["experiments"]] == ["good"]
    assert results["meta"]["seeds"] == 3 and results["meta"]["mode"] == "full"


@pytest.mark.parametrize("argv, message", [
    (["run", "nope"], "unknown experiment 'nope'"),
    (["reproduce", "--seeds", "0"], "--seeds must be >= 1, got 0"),
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


@pytest.mark.slow
def test_reproduce_quick_end_to_end(tmp_path):
    """The real command on a fresh process: every experiment runs and its verdict is recorded."""
    proc = subprocess.run([sys.executable, "-m", "jaxlearn.cli", "reproduce", "--quick",
                           "--seeds", "1", "--no-progress", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    names = [e["name"] for e in results["experiments"]]
    assert names == list(experiments.discover())
    for e in results["experiments"]:
        assert e["verdict"] == "holds", (e["name"], e["checks"], e["error"])
    for name in ("report.md", "report.html"):
        assert (tmp_path / name).stat().st_size > 1000
    pngs = [f for f in os.listdir(tmp_path) if f.endswith(".png")]
    assert len(pngs) >= len(names)
