"""Experiment results and the report: claim -> evidence -> verdict.

An experiment returns an :class:`Outcome`: the lecture's claim, the measured numbers, a list of
:class:`Check` (each a measured value, a comparison and a threshold, so a verdict is never a matter
of taste), figures (matplotlib) and optional markdown tables. :func:`write_report` turns a list of
outcomes into ``report.md``, ``report.html`` (figures embedded), one PNG per figure and
``results.json`` (every number), each file written atomically (temp file + rename).

Each figure is rendered once: :func:`render_figures` turns an outcome's live matplotlib figures
into PNG bytes (``Outcome.pngs``) and closes them, and :func:`write_report` builds the report from
those bytes. So a report rewritten after every experiment costs one render per figure, and an
experiment's figures are freed as soon as it ends.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxlearn import report_html
from jaxlearn._io import atomic_write

_OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


VERDICT_RULE = (
    "Verdict rule: a check measured over seeds holds when the whole 95% confidence interval of its "
    "mean (Student t unless stated) lies on the claimed side of the threshold, does not hold when "
    "the whole interval lies on the other side, and is inconclusive when it straddles; checks "
    "marked (exact) have no seed noise (sanity checks), and those marked (n=1) are a single "
    "measurement judged on its value. An experiment holds when all its checks hold.")


@dataclass(frozen=True)
class Check:
    """One measured claim: ``value op threshold`` (e.g. ``0.97 >= 0.95``).

    A claim measured over seeds passes its per-seed values (or per-seed paired differences of two
    methods) as ``values``: ``value`` is then their mean, and the verdict comes from the 95%
    confidence interval of the mean (:mod:`jaxlearn.stats`): **holds** when the whole interval is on
    the claimed side of ``threshold``, **does not hold** when it is all on the other side,
    **inconclusive** when it straddles. ``exact=True`` marks a quantity without seed noise (a
    closed form, a theorem checked numerically, a property that holds by construction): a labelled
    sanity check, judged on its value. A check with neither is a single measurement, judged on its
    value and shown as ``n=1``. ``source`` says where the threshold comes from (the lecture, a
    paper, a stated practical margin).
    """

    what: str
    value: float
    op: str
    threshold: float
    values: tuple[float, ...] | None = None
    method: str = "t"
    exact: bool = False
    source: str = ""

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"`op` must be one of {sorted(_OPS)}, got {self.op!r}")
        if self.values is not None:
            object.__setattr__(self, "values", tuple(float(v) for v in np.ravel(self.values)))

    @classmethod
    def sample(cls, what: str, values, op: str, threshold: float, *, method: str = "t",
               source: str = "") -> Check:
        """A check on the mean of per-seed ``values``, judged by its confidence interval."""
        values = tuple(float(v) for v in np.ravel(values))
        return cls(what, float(np.mean(values)), op, threshold, values=values, method=method,
                   source=source)

    @property
    def estimate(self):
        from jaxlearn import stats

        if self.values is not None:
            return stats.estimate(self.values, method=self.method)
        return stats.estimate(self.value, exact=True)

    @property
    def verdict(self) -> str:
        """``"holds"``, ``"inconclusive"`` or ``"does not hold"``."""
        from jaxlearn import stats

        if self.values is None:  # exact, or a single measurement judged on its value
            ok = bool(np.isfinite(self.value)) and bool(_OPS[self.op](self.value, self.threshold))
            return "holds" if ok else "does not hold"
        return stats.verdict(self.estimate, self.op, self.threshold)

    @property
    def passed(self) -> bool:
        return self.verdict == "holds"

    @property
    def kind(self) -> str:
        """``"interval"`` (per-seed values), ``"sanity"`` (exact) or ``"single"`` (n=1)."""
        return "interval" if self.values is not None else ("sanity" if self.exact else "single")

    def measured(self) -> str:
        """The measurement as text: the mean with its interval and n, or the single value."""
        if self.values is not None:
            return str(self.estimate)
        return f"{self.value:.4g}" + (" (exact)" if self.exact else " (n=1)")

    def as_dict(self) -> dict[str, Any]:
        out = {"what": self.what, "value": _jsonable(self.value), "op": self.op,
               "threshold": self.threshold, "passed": self.passed, "verdict": self.verdict,
               "kind": self.kind, "source": self.source}
        if self.values is not None:
            est = self.estimate
            out.update(values=list(self.values), n=est.n, sd=_jsonable(est.sd),
                       ci=[_jsonable(est.low), _jsonable(est.high)], ci_method=est.method,
                       confidence=est.confidence)
        return out


@dataclass
class Outcome:
    """What an experiment returns (and what the report prints for it)."""

    name: str
    claim: str
    checks: list[Check]
    numbers: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)   # name -> matplotlib Figure
    tables: dict[str, str] = field(default_factory=dict)     # title -> markdown table
    notes: str = ""
    seconds: float = float("nan")
    error: str | None = None
    # name -> PNG bytes of the figures already rendered (and closed) by `render_figures`.
    pngs: dict[str, bytes] = field(default_factory=dict, repr=False)
    # Rows of "against the literature" (see `literature_row`).
    literature: list[dict[str, Any]] = field(default_factory=list)
    # Which data the numbers came from (a file and its checksum, or the synthetic stand-in).
    data: str = ""

    @property
    def figure_names(self) -> list[str]:
        """Names of all figures: those already rendered (``pngs``), then those still live."""
        return [*self.pngs, *(name for name in self.figures if name not in self.pngs)]

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "failed"
        verdicts = {c.verdict for c in self.checks}
        if not self.checks or "does not hold" in verdicts:
            return "does not hold"
        return "inconclusive" if "inconclusive" in verdicts else "holds"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "claim": self.claim, "verdict": self.verdict,
                "checks": [c.as_dict() for c in self.checks], "numbers": _jsonable(self.numbers),
                "tables": self.tables, "notes": self.notes, "figures": sorted(self.figure_names),
                "literature": _jsonable(self.literature), "data": self.data,
                "seconds": _jsonable(self.seconds), "error": self.error}


def literature_row(source: str, quantity: str, published: float, ours: Sequence[float], *,
                   spread: float | None = None, note: str = "") -> dict[str, Any]:
    """One row of the report's "against the literature" section: a paper's figure (with its sd
    where the paper gives one), ours over seeds (mean and 95% CI) and whether they agree.

    With a published ``spread`` the rule is "our mean lies within published +- spread"; without
    one, "the published figure lies inside our CI" (``n/a`` for a single seed). ``note`` says how
    our setting differs from the paper's (another data set, a smaller network...).
    """
    from jaxlearn import stats

    est = stats.estimate(list(np.ravel(ours)))
    if spread is not None:
        within = "yes" if abs(est.mean - published) <= spread else "no"
        rule = "our mean within published +- sd"
    elif est.n >= 2:
        within = "yes" if est.low <= published <= est.high else "no"
        rule = "published figure inside our 95% CI"
    else:
        within, rule = "n/a", "one seed: no interval"
    return {"source": source, "quantity": quantity, "published": float(published),
            "published_sd": None if spread is None else float(spread), "ours": str(est),
            "ours_mean": est.mean, "ours_ci": [est.low, est.high], "n": est.n,
            "within": within, "rule": rule, "note": note}


def literature_table(outcomes: Sequence[Outcome]) -> str:
    """The "against the literature" rows of all outcomes as one markdown table."""
    rows = []
    for o in outcomes:
        for r in o.literature:
            pub = f"{r['published']:.4g}" + (f" +- {r['published_sd']:.2g}"
                                             if r["published_sd"] is not None else "")
            rows.append((o.name, r["source"], r["quantity"], pub, r["ours"],
                         f"{r['within']} (rule: {r['rule']})", r["note"] or "-"))
    return markdown_table(("experiment", "source", "quantity", "published", "ours",
                           "agrees?", "our setting"), rows)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), sd


def fmt_mean_sd(values: Sequence[float], digits: int = 3) -> str:
    """``"0.934 +- 0.006"`` over seeds."""
    m, s = mean_sd(values)
    return f"{m:.{digits}f} +- {s:.{digits}f}"


class MarkdownTable(str):
    """A markdown table (the text) that also carries its ``header`` and ``rows`` (the cells as
    text), so the HTML report is built from the cells rather than by parsing markdown."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _md_cell(text: str) -> str:
    # A bare | would split the cell and newlines end the row: escape the one, fold the other.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> MarkdownTable:
    """A markdown table; floats printed with 4 significant digits; ``|`` in a cell is escaped
    (``\\|``) so every row keeps its header's cell count.

    Raises ``ValueError`` for a row whose length differs from the header's.
    """
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.4g}"
        return str(v)
    header = tuple(str(h) for h in header)
    cells = []
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a table row has {len(row)} cells but the header has "
                             f"{len(header)}: {tuple(row)!r}")
        cells.append(tuple(cell(v) for v in row))
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in cells]
    out = MarkdownTable("\n".join(lines))
    out.header, out.rows = header, tuple(cells)
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy / jax arrays and scalars
        return _jsonable(np.asarray(obj).tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def _figure_png(fig) -> bytes:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _close_figure(fig) -> None:
    """Frees a figure: its artists (and the arrays they plot) and, if pyplot manages it, its
    pyplot window. Figures made with ``matplotlib.figure.Figure()`` are not known to pyplot."""
    pyplot = sys.modules.get("matplotlib.pyplot")  # not imported: no figure of pyplot's to close
    if pyplot is not None:
        pyplot.close(fig)
    fig.clear()


def _png_path(out_dir: str, experiment: str, figure: str) -> str:
    return os.path.join(out_dir, f"{experiment}_{figure}.png")


def render_figures(outcome: Outcome, out_dir: str) -> dict[str, str]:
    """Renders each live figure of ``outcome`` once, to ``out_dir/<experiment>_<figure>.png``.

    The PNG bytes move to ``outcome.pngs`` and the figure is closed and dropped from
    ``outcome.figures`` (so it is never rendered again and its memory is freed); figures
    already rendered are left alone. Returns ``{"<experiment>/<figure>": path}`` of the PNGs
    written now.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for fig_name, fig in list(outcome.figures.items()):
        data = _figure_png(fig)
        path = _png_path(out_dir, outcome.name, fig_name)
        atomic_write(path, data)
        outcome.pngs[fig_name] = data
        del outcome.figures[fig_name]
        _close_figure(fig)
        paths[f"{outcome.name}/{fig_name}"] = path
    return paths


def summary_table(outcomes: Sequence[Outcome]) -> MarkdownTable:
    """The report's summary: one row per experiment — its name (a link to its section), the
    verdict, the claim in a few words, the key number with its interval and the time."""

    rows = []
    for o in outcomes:
        key, what = report_html.key_number(o)
        rows.append((f"[{o.name}](#{o.name})", o.verdict, report_html.short_claim(o.claim),
                     f"{key} ({what})" if o.error is None else key, f"{o.seconds:.1f}"))
    return markdown_table(("experiment", "verdict", "claim", "key number", "time (s)"), rows)


def checks_table(outcome: Outcome) -> MarkdownTable:
    """An experiment's checks, one row each."""
    return markdown_table(
        ("check", "measured (mean [95% CI], n)", "claim", "verdict", "threshold source"),
        [(c.what, c.measured(), f"{c.op} {c.threshold:g}", c.verdict, c.source or "-")
         for c in outcome.checks])


def write_report(outcomes: Sequence[Outcome], out_dir: str, *, title: str = "jaxlearn report",
                 meta: Mapping[str, Any] | None = None,
                 skipped: Sequence[str] = ()) -> dict[str, str]:
    """Writes report.md, report.html, results.json and ``<experiment>_<figure>.png`` in ``out_dir``.

    ``skipped`` holds one line per experiment that did not run (e.g. a real-data case whose files
    are absent); the report lists them under "Skipped".

    Returns the paths written. Figures not yet rendered are rendered here with
    :func:`render_figures` (which closes them and keeps their PNGs in the outcome); the report is
    then built from the stored PNGs, so calling this again after each new experiment renders only
    the new experiment's figures.
    """
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(meta or {})
    paths: dict[str, str] = {}
    for o in outcomes:
        render_figures(o, out_dir)
        for fig_name, data in o.pngs.items():
            path = _png_path(out_dir, o.name, fig_name)
            if not os.path.exists(path):  # rendered for another folder
                atomic_write(path, data)
            paths[f"{o.name}/{fig_name}"] = path

    md = [f"# {title}", ""]
    if meta:
        md += [", ".join(f"{k}: {v}" for k, v in meta.items()), ""]
    md += [VERDICT_RULE, "", "## Summary", "", summary_table(outcomes), ""]
    if skipped:
        md += ["## Skipped", "", *(f"- {line}" for line in skipped), ""]
    lit = literature_table(outcomes) if any(o.literature for o in outcomes) else None
    if lit is not None:
        md += ["## Against the literature", "", lit, ""]
    for o in outcomes:
        md += [f"## {o.name}", "", f"**Verdict: {o.verdict}.** **Claim.** {o.claim}", ""]
        if o.data:
            md += [f"**Data.** {o.data}", ""]
        if o.error:
            md += ["**Failed:**", "", "```", o.error, "```", ""]
        if o.checks:
            md += ["**Checks.**", "", checks_table(o), ""]
        for t_title, table in o.tables.items():
            md += [f"**{t_title}**", "", table, ""]
        if o.notes:
            md += [o.notes, ""]
        for fig_name in o.pngs:
            md += [f"![{o.name}: {fig_name}]({o.name}_{fig_name}.png)", ""]
        md += [f"*{o.seconds:.1f} s*", ""]
    page = report_html.render(
        outcomes, title=title, meta=meta, verdict_rule=VERDICT_RULE,
        literature_header=lit.header if lit is not None else (),
        literature_rows=lit.rows if lit is not None else (), skipped=skipped)
    results = {"meta": _jsonable(meta), "experiments": [o.as_dict() for o in outcomes],
               "skipped": list(skipped),
               "literature": [{"experiment": o.name, **_jsonable(r)} for o in outcomes
                              for r in o.literature]}
    for name, content in (("report.md", "\n".join(md)), ("report.html", page),
                          ("results.json", json.dumps(results, indent=2))):
        path = os.path.join(out_dir, name)
        atomic_write(path, content)
        paths[name] = path
    return paths
