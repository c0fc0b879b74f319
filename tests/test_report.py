"""Tests for jaxlearn.report: checks, verdicts, tables and atomic writing."""

import json
import math
import os

import numpy as np
import pytest

from jaxlearn import report


@pytest.mark.parametrize("value, op, threshold, passed", [
    (0.96, ">=", 0.95, True), (0.95, ">=", 0.95, True), (0.94, ">=", 0.95, False),
    (0.70, "<=", 0.75, True), (0.80, "<=", 0.75, False), (1.0, ">", 1.0, False),
    (0.5, "<", 1.0, True), (float("nan"), ">=", 0.0, False), (float("inf"), "<=", 1.0, False),
])
def test_check_passes_exactly_when_the_comparison_holds(value, op, threshold, passed):
    assert report.Check("x", value, op, threshold).passed is passed


def test_check_rejects_unknown_operator():
    with pytest.raises(ValueError, match="`op` must be one of"):
        report.Check("x", 1.0, "~", 1.0)


def test_verdict_rules():
    ok = report.Check("a", 1.0, ">=", 0.0)
    bad = report.Check("b", 0.0, ">=", 1.0)
    assert report.Outcome("e", "c", [ok]).verdict == "holds"
    assert report.Outcome("e", "c", [ok, bad]).verdict == "does not hold"
    assert report.Outcome("e", "c", []).verdict == "does not hold"  # no evidence, no claim
    assert report.Outcome("e", "c", [ok], error="boom").verdict == "failed"


def test_mean_sd_uses_sample_standard_deviation():
    m, s = report.mean_sd([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and math.isclose(s, np.std([1, 2, 3, 4], ddof=1))
    assert report.mean_sd([0.3]) == (0.3, 0.0)
    assert report.fmt_mean_sd([0.9, 0.92]) == "0.910 +- 0.014"


def test_markdown_table_and_json_of_arrays(tmp_path):
    table = report.markdown_table(("a", "b"), [("x", 0.123456), ("y", 2)])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x | 0.1235 |", "| y | 2 |"]
    outcome = report.Outcome("e", "c", [report.Check("a", np.float32(1.5), ">=", 1.0)],
                             numbers={"arr": np.arange(3), "nan": float("nan")})
    paths = report.write_report([outcome], str(tmp_path))
    data = json.loads(open(paths["results.json"]).read())
    assert data["experiments"][0]["numbers"] == {"arr": [0, 1, 2], "nan": "nan"}
    assert data["experiments"][0]["checks"][0]["passed"] is True


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path):
    path = str(tmp_path / "f.txt")
    report.atomic_write(path, "first")

    with pytest.raises(TypeError):  # not bytes: the write fails after the temp file exists
        report.atomic_write(path, object())
    assert open(path).read() == "first"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_written_files_get_the_usual_permissions(tmp_path):
    path = tmp_path / "r.md"
    report.atomic_write(str(path), "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)
