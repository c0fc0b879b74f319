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


def _outcome_with_figures(name, n_figures):
    from matplotlib.figure import Figure
    figures = {}
    for i in range(n_figures):
        fig = Figure()
        fig.subplots().plot([0, 1], [0, i])
        figures[f"fig{i}"] = fig
    return report.Outcome(name, "c", [report.Check("a", 1.0, ">=", 0.0)], figures=figures)


def test_render_figures_moves_each_figure_to_a_png_once(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    renders, render = [], report._figure_png

    def counting_render(fig):
        renders.append(fig)
        return render(fig)

    monkeypatch.setattr(report, "_figure_png", counting_render)
    first, second = _outcome_with_figures("a", 2), _outcome_with_figures("b", 1)
    paths = report.render_figures(first, str(tmp_path))
    assert sorted(paths) == ["a/fig0", "a/fig1"] and len(renders) == 2
    assert first.figures == {} and list(first.pngs) == ["fig0", "fig1"]
    assert (tmp_path / "a_fig1.png").read_bytes() == first.pngs["fig1"]
    assert first.pngs["fig0"].startswith(b"\x89PNG")
    # Rewriting the report after the second experiment renders only its figure.
    report.write_report([first], str(tmp_path))
    report.write_report([first, second], str(tmp_path))
    assert len(renders) == 3
    assert report.render_figures(first, str(tmp_path)) == {}
    data = json.loads((tmp_path / "results.json").read_text())
    assert [e["figures"] for e in data["experiments"]] == [["fig0", "fig1"], ["fig0"]]
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") == 3


def test_write_report_writes_stored_pngs_into_another_folder(tmp_path):
    pytest.importorskip("matplotlib")
    outcome = _outcome_with_figures("a", 1)
    report.render_figures(outcome, str(tmp_path / "first"))
    paths = report.write_report([outcome], str(tmp_path / "second"))
    assert open(paths["a/fig0"], "rb").read() == outcome.pngs["fig0"]


def test_checks_over_seeds_are_judged_by_their_interval():
    holds = report.Check.sample("acc", [0.70, 0.72, 0.71], ">=", 0.6, source="lecture")
    straddles = report.Check.sample("acc", [0.58, 0.62, 0.61], ">=", 0.6)
    fails = report.Check.sample("acc", [0.50, 0.52, 0.51], ">=", 0.6)
    assert (holds.verdict, straddles.verdict, fails.verdict) == (
        "holds", "inconclusive", "does not hold")
    assert straddles.value == pytest.approx(0.6033333) and not straddles.passed
    assert report.Outcome("e", "c", [holds, straddles]).verdict == "inconclusive"
    assert report.Outcome("e", "c", [holds, straddles, fails]).verdict == "does not hold"
    d = holds.as_dict()
    assert d["n"] == 3 and d["ci"][0] < 0.71 < d["ci"][1] and d["source"] == "lecture"
    assert "[" in holds.measured() and "n=3" in holds.measured()
    assert report.Check("sum - 1", 1e-7, "<=", 1e-5, exact=True).measured().endswith("(exact)")
    assert report.Check("acc", 0.7, ">=", 0.6).kind == "single"


def test_literature_rows_compare_published_figures_with_our_interval(tmp_path):
    with_sd = report.literature_row("Esteva 2017", "3-way accuracy", 0.721, [0.70, 0.72, 0.73],
                                    spread=0.009, note="MNIST-1D, not skin images")
    no_sd = report.literature_row("Greydanus 2020", "MLP accuracy", 0.68, [0.66, 0.67, 0.69])
    far = report.literature_row("Greydanus 2020", "CNN accuracy", 0.94, [0.80, 0.81, 0.82])
    one = report.literature_row("Greydanus 2020", "CNN accuracy", 0.94, [0.93])
    assert (with_sd["within"], no_sd["within"], far["within"], one["within"]) == (
        "yes", "yes", "no", "n/a")
    o = report.Outcome("e", "c", [report.Check("x", 1.0, ">=", 0.0)],
                       literature=[with_sd, no_sd])
    report.write_report([o], str(tmp_path))
    md = (tmp_path / "report.md").read_text()
    assert "## Against the literature" in md and "MNIST-1D, not skin images" in md
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["source"] for r in data["literature"]] == ["Esteva 2017", "Greydanus 2020"]
    assert data["literature"][0]["experiment"] == "e"


class _Page(__import__("html.parser").parser.HTMLParser):
    """Tables (header and row cell counts), images, ids and internal links of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tables, self.imgs, self.ids, self.links, self.text = [], [], set(), [], []
        self._row = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = 0
        elif tag in ("td", "th") and self._row is not None:
            self._row += 1
        elif tag == "img":
            self.imgs.append(attrs)
        elif tag == "a" and attrs.get("href", "").startswith("#"):
            self.links.append(attrs["href"][1:])

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)


def _md_rows(md):
    """Cell counts of every markdown table row (a bar escaped as \\| does not split)."""
    import re

    counts = []
    for line in md.splitlines():
        if line.startswith("|"):
            counts.append(len(re.split(r"(?<!\\)\|", line.strip())) - 2)
    return counts


def _tricky_outcomes():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    a = report.Outcome(
        "bars", "max |x_T - x*| < 1e-4 & <b>not bold</b>. More text.",
        [report.Check("max |x_T - x*| & <i>", 1e-6, "<=", 1e-4, exact=True, source="a | b"),
         report.Check.sample("acc | <seeds>", [0.7, 0.72, 0.71], ">=", 0.6)],
        tables={"t | <x>": report.markdown_table(("a|b", "c"), [("|z| & <y>", 1.5)])},
        notes="notes with | and <script>alert(1)</script>", figures={"curve": fig}, seconds=1.0,
        literature=[report.literature_row("Paper | 2020", "q <1>", 0.5, [0.4, 0.6])])
    b = report.Outcome("boom", "c", [], error="Traceback\nValueError: x < 0 | y", seconds=0.5)
    return [a, b]


def test_report_tables_keep_their_columns_and_tricky_text_renders_intact(tmp_path):
    report.write_report(_tricky_outcomes(), str(tmp_path), meta={"mode": "quick | test"})
    md = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    # markdown: every row of a table has its header's cell count
    blocks, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(_md_rows("\n".join(current)))
            current = []
    assert len(blocks) == 4  # summary, literature, the checks and the table of "bars"
    for counts in blocks:
        assert len(set(counts)) == 1, counts
    assert "max \\|x_T - x*\\| & <i>" in md
    # HTML: parsed by a real parser
    parsed = _Page()
    parsed.feed(page)
    assert parsed.tables and all(len(set(rows)) == 1 for rows in parsed.tables), parsed.tables
    text = "".join(parsed.text)
    for fragment in ("max |x_T - x*| & <i>", "|z| & <y>", "<script>alert(1)</script>",
                     "x < 0 | y", "Paper | 2020", "quick | test"):
        assert fragment in text, fragment
    assert "<script>" not in page and "<b>not bold</b>" not in page
    assert parsed.imgs and all(img.get("alt") for img in parsed.imgs)
    assert all(img["src"].startswith("data:image/png;base64,") for img in parsed.imgs)
    assert set(parsed.links) <= parsed.ids and {"literature", "exp-bars", "exp-boom"} <= set(
        parsed.links)
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched


def test_summary_is_one_row_per_experiment():
    outcomes = _tricky_outcomes()
    table = report.summary_table(outcomes)
    assert len(table.rows) == 2 and table.header[1] == "verdict"
    assert table.rows[0][1] == "holds" and table.rows[1][1] == "failed"
    assert "n=3" in table.rows[0][3]  # the key number is the first check over seeds


def test_markdown_table_refuses_ragged_rows():
    with pytest.raises(ValueError, match="2 cells but the header has 3"):
        report.markdown_table(("a", "b", "c"), [(1, 2)])


def test_literature_table_states_the_agreement_and_its_rule_apart():
    # "no" must not read as if the published figure were inside our interval.
    inside = report.literature_row("Paper A", "accuracy", 0.50, [0.49, 0.50, 0.51])
    outside = report.literature_row("Paper B", "accuracy", 0.90, [0.49, 0.50, 0.51])
    with_sd = report.literature_row("Paper C", "error", 0.52, [0.49, 0.50, 0.51], spread=0.01)
    assert [r["within"] for r in (inside, outside, with_sd)] == ["yes", "no", "no"]
    out = report.Outcome(name="e", claim="c", checks=[], literature=[inside, outside, with_sd])
    table = report.literature_table([out])
    assert "| yes (rule: published figure inside our 95% CI) |" in table
    assert "| no (rule: published figure inside our 95% CI) |" in table
    assert "| no (rule: our mean within published +- sd) |" in table
    assert "0.52 +- 0.01" in table
