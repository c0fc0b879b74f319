"""The medical cases on real files (experiments/real_data.py) and ``--data DIR``, on fake MedMNIST
files in the real format (tests/fake_data.py): no network, no real data needed."""

import json
import os

import numpy as np
import pytest
from fake_data import fake_medmnist_info, write_fake_medmnist

from experiments import real_data
from jaxlearn import cli

# Enough test images per rare diagnosis for 5-shot episodes; small enough to train in seconds.
SPLITS = (420, 40, 280)


FILES = {  # folder -> (file name, flag, size, splits, channels, classes, seed)
    "medmnist": [("dermamnist.npz", "dermamnist", 28, SPLITS, 3, 7, 0),
                 ("pneumoniamnist.npz", "pneumoniamnist", 28, SPLITS, 1, 2, 1)],
    # The same file as above (one MD5 per flag and size in the metadata).
    "derma_only": [("dermamnist.npz", "dermamnist", 28, SPLITS, 3, 7, 0)],
    "sizes": [("dermamnist_128.npz", "dermamnist", 128, (7, 2, 2), 3, 7, 3),
              ("dermamnist_64.npz", "dermamnist", 64, (7, 2, 2), 3, 7, 3)]}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The fake files, and MedMNIST's metadata (as the installed package would give it) holding
    their MD5s: the real-data path verifies every file as it would a real one."""
    info, paths = {}, {}
    for folder, files in FILES.items():
        root = tmp_path_factory.mktemp(folder)
        paths[folder] = str(root)
        for name, flag, size, n, channels, classes, seed in files:
            path = write_fake_medmnist(os.path.join(root, name), flag=flag, size=size, n=n,
                                       n_channels=channels, n_classes=classes, seed=seed)
            entry = fake_medmnist_info(path, flag=flag, size=size, n=n, n_channels=channels,
                                       n_classes=classes)[flag]
            info.setdefault(flag, {}).update(entry)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("jaxlearn.datasets._installed_medmnist_info", lambda: info)
        yield paths


@pytest.fixture(scope="module")
def data_dir(folders):
    return folders["medmnist"]


@pytest.fixture(scope="module")
def derma_only(folders):
    return folders["derma_only"]


@pytest.fixture(scope="module")
def outcomes(data_dir):
    # 60 steps: the fake classes (a mean colour each) are learnt in far fewer; the default 300
    # would only add run time.
    return {name: real_data.run(name, data_dir, quick=True, seeds=2, steps=60)
            for name in real_data.CASES}


def test_find_files_takes_the_smallest_size_and_names_what_is_missing(folders, data_dir,
                                                                     derma_only):
    assert real_data.find_files(data_dir) == {
        "dermamnist": os.path.join(data_dir, "dermamnist.npz"),
        "pneumoniamnist": os.path.join(data_dir, "pneumoniamnist.npz")}
    assert real_data.find_files(folders["sizes"]) == {
        "dermamnist": os.path.join(folders["sizes"], "dermamnist_64.npz")}
    assert real_data.missing("taxonomy", derma_only) == []
    assert real_data.missing("transfer", derma_only) == ["pneumoniamnist"]
    note = real_data.skip_note("shortcut_token", derma_only)
    assert "skipped" in note and "pneumoniamnist.npz" in note and derma_only in note
    with pytest.raises(FileNotFoundError, match="pneumoniamnist"):
        real_data.run("shortcut_token", derma_only, quick=True)
    with pytest.raises(ValueError, match="no real-data case 'xor'"):
        real_data.run("xor", derma_only)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(real_data.CASES))
def test_every_case_runs_on_the_files_and_names_them(outcomes, data_dir, name):
    outcome = outcomes[name]
    assert outcome.error is None
    assert outcome.name == f"{name} (real data)"
    for flag in real_data.CASES[name]:
        assert f"{flag}.npz (md5 " in outcome.data
    assert "verified against MedMNIST's metadata" in outcome.data
    assert "subsample" not in outcome.data       # the fake files are smaller than the caps
    assert outcome.checks and all(c.values is not None and len(c.values) == 2
                                  for c in outcome.checks)
    assert all(np.all(np.isfinite(c.values)) for c in outcome.checks)
    assert outcome.verdict in ("holds", "inconclusive", "does not hold")


@pytest.mark.slow
def test_the_fake_classes_are_learnt(outcomes):
    """The fake files carry a class signal; the real-data path must find it (a path that
    scrambled images or labels would sit at chance)."""
    auc = outcomes["erased_object"].numbers["full image"]
    assert min(auc) > 0.75
    tax = outcomes["taxonomy"].numbers["balanced_accuracy"]
    assert min(min(v) for v in tax.values()) > 0.5      # 3 classes: chance is 1/3


def test_transfer_refuses_files_of_two_sizes(tmp_path, monkeypatch):
    write_fake_medmnist(str(tmp_path / "dermamnist.npz"), flag="dermamnist", n=(70, 10, 20),
                        n_channels=3, n_classes=7, seed=0)
    write_fake_medmnist(str(tmp_path / "pneumoniamnist_64.npz"), flag="pneumoniamnist",
                        size=64, n=(70, 10, 20), n_channels=1, n_classes=2, seed=1)
    monkeypatch.setattr("jaxlearn.datasets._installed_medmnist_info", lambda: None)
    with pytest.raises(ValueError, match="same size"):
        real_data.run("transfer", str(tmp_path), quick=True, seeds=1)


def test_a_damaged_file_is_refused(tmp_path, monkeypatch):
    path = write_fake_medmnist(str(tmp_path / "dermamnist.npz"), flag="dermamnist",
                               n=(70, 10, 20), n_channels=3, n_classes=7, seed=0)
    info = fake_medmnist_info(path, flag="dermamnist", n=(70, 10, 20), md5="0" * 32)
    monkeypatch.setattr("jaxlearn.datasets._installed_medmnist_info", lambda: info)
    with pytest.raises(ValueError, match="has MD5 .* but the published MD5"):
        real_data.run("taxonomy", str(tmp_path), quick=True, seeds=1)


def test_without_metadata_the_report_says_the_checksum_was_not_verified(tmp_path,
                                                                         monkeypatch):
    write_fake_medmnist(str(tmp_path / "dermamnist.npz"), flag="dermamnist", n=(70, 10, 20),
                        n_channels=3, n_classes=7, seed=0)
    monkeypatch.setattr("jaxlearn.datasets._installed_medmnist_info", lambda: None)
    _, description = real_data._load(str(tmp_path / "dermamnist.npz"), quick=False)
    assert "checksum not verified" in description and "pip install --no-deps medmnist" in \
        description


def test_quick_mode_subsamples_only_above_its_caps(tmp_path, monkeypatch):
    write_fake_medmnist(str(tmp_path / "dermamnist.npz"), flag="dermamnist", n=(70, 10, 20),
                        n_channels=3, n_classes=7, seed=0)
    monkeypatch.setattr("jaxlearn.datasets._installed_medmnist_info", lambda: None)
    monkeypatch.setattr(real_data, "QUICK_TRAIN", 50)
    data, description = real_data._load(str(tmp_path / "dermamnist.npz"), quick=True)
    assert len(data.y_train) == 50 and len(data.y_test) == 20
    assert "a fixed subsample of 50 training and 20 test images" in description
    again, _ = real_data._load(str(tmp_path / "dermamnist.npz"), quick=True)
    np.testing.assert_array_equal(again.y_train, data.y_train)      # fixed, not per call
    full, description = real_data._load(str(tmp_path / "dermamnist.npz"), quick=False)
    assert len(full.y_train) == 70 and "subsample" not in description


def test_jobs_put_each_case_after_its_synthetic_twin_and_skip_absent_files(derma_only):
    jobs, skipped = cli._jobs(["xor", "taxonomy", "shortcut_token"], derma_only)
    assert [j.name for j in jobs] == ["xor", "taxonomy", "taxonomy (real data)",
                                      "shortcut_token"]
    assert jobs[1].data.startswith("synthetic stand-in: MNIST-1D")
    assert len(skipped) == 1 and skipped[0].startswith("shortcut_token on real data: skipped")
    jobs, skipped = cli._jobs(["taxonomy"], None)
    assert [j.name for j in jobs] == ["taxonomy"] and skipped == []


def test_data_must_be_a_folder(tmp_path, capsys):
    code = cli.main(["run", "xor", "--quick", "--data", str(tmp_path / "nope"),
                     "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--data" in capsys.readouterr().err


@pytest.mark.slow
def test_run_with_data_writes_the_real_data_section(derma_only, tmp_path, monkeypatch):
    """``jaxlearn run NAME --data DIR`` end to end: the synthetic experiment, its real-data case
    (its own section naming the file) and a skipped line for the case whose file is absent. The
    synthetic runs are replaced by a stub to keep the test fast; the real-data case runs."""
    import experiments
    from jaxlearn.report import Check, Outcome

    modules = experiments.discover()
    for name in ("erased_object", "shortcut_token"):
        monkeypatch.setattr(modules[name], "run", lambda name=name, **kw: Outcome(
            name=name, claim="stub", checks=[Check("stub", 1.0, ">=", 0.0, exact=True)]))
    out = tmp_path / "out"
    code = cli.main(["run", "erased_object", "shortcut_token", "--quick", "--seeds", "1",
                     "--jobs", "1", "--no-progress", "--data", derma_only, "--out", str(out)])
    assert code == 0
    md = (out / "report.md").read_text()
    assert "## erased_object (real data)" in md
    assert "**Data.** dermamnist.npz (md5 " in md
    assert "**Data.** stand-in: scikit-learn's bundled 8x8 digits" in md
    assert "## Skipped" in md and "- shortcut_token on real data: skipped" in md
    results = json.loads((out / "results.json").read_text())
    names = [e["name"] for e in results["experiments"]]
    assert names == ["erased_object", "erased_object (real data)", "shortcut_token"]
    assert results["experiments"][1]["data"].startswith("dermamnist.npz")
    assert results["meta"]["real data"] == os.path.abspath(derma_only)
    assert results["skipped"][0].startswith("shortcut_token on real data")
    html = (out / "report.html").read_text()
    assert "<h2 id='skipped'>Skipped</h2>" in html and "<b>Data.</b> dermamnist.npz" in html
