"""Experiment results and the report: claim -> evidence -> verdict.

An experiment returns an :class:`Outcome`: the lecture's claim, the measured numbers, a list of
:class:`Check` (each a measured value, a comparison and a threshold, so a verdict is never a matter
of taste), figures (matplotlib) and optional markdown tables. :func:`write_report` turns a list of
outcomes into ``report.md``, ``report.html`` (figures embedded), one PNG per figure and
``results.json`` (every number), each file written atomically (temp file + rename).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxlearn._io import atomic_write

_OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


@dataclass(frozen=True)
class Check:
    """One measured claim: ``value op threshold`` (e.g. ``0.97 >= 0.95``)."""

    what: str
    value: float
    op: str
    threshold: float

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"`op` must be one of {sorted(_OPS)}, got {self.op!r}")

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.value)) and bool(_OPS[self.op](self.value, self.threshold))

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "value": _jsonable(self.value), "op": self.op,
                "threshold": self.threshold, "passed": self.passed}


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

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "failed"
        return "holds" if self.checks and all(c.passed for c in self.checks) else "does not hold"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "claim": self.claim, "verdict": self.verdict,
                "checks": [c.as_dict() for c in self.checks], "numbers": _jsonable(self.numbers),
                "tables": self.tables, "notes": self.notes, "figures": sorted(self.figures),
                "seconds": _jsonable(self.seconds), "error": self.error}


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), sd


def fmt_mean_sd(values: Sequence[float], digits: int = 3) -> str:
    """``"0.934 +- 0.006"`` over seeds."""
    m, s = mean_sd(values)
    return f"{m:.{digits}f} +- {s:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; floats printed with 4 significant digits."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.4g}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


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


def summary_table(outcomes: Sequence[Outcome]) -> str:
    """The report's summary: one row per experiment with its verdict and key evidence."""
    rows = []
    for o in outcomes:
        if o.error is not None:
            evidence = "error: " + (o.error.strip().splitlines() or [""])[-1]
        else:
            evidence = "; ".join(f"{c.what}: {c.value:.4g} {c.op} {c.threshold:g}"
                                 for c in o.checks)
        rows.append((o.name, o.verdict, evidence, f"{o.seconds:.1f}"))
    return markdown_table(("experiment", "verdict", "evidence (measured op threshold)", "time (s)"),
                          rows)


def write_report(outcomes: Sequence[Outcome], out_dir: str, *, title: str = "jaxlearn report",
                 meta: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Writes report.md, report.html, results.json and ``<experiment>_<figure>.png`` in ``out_dir``.

    Returns the paths written. Figures are rendered once and reused for the PNGs and the HTML.
    """
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(meta or {})
    pngs: dict[tuple[str, str], bytes] = {}
    paths: dict[str, str] = {}
    for o in outcomes:
        for fig_name, fig in o.figures.items():
            data = _figure_png(fig)
            pngs[(o.name, fig_name)] = data
            path = os.path.join(out_dir, f"{o.name}_{fig_name}.png")
            atomic_write(path, data)
            paths[f"{o.name}/{fig_name}"] = path

    md = [f"# {title}", ""]
    if meta:
        md += [", ".join(f"{k}: {v}" for k, v in meta.items()), ""]
    md += ["## Summary", "", summary_table(outcomes), ""]
    htm = [f"<h1>{html.escape(title)}</h1>"]
    if meta:
        htm.append(f"<p>{html.escape(', '.join(f'{k}: {v}' for k, v in meta.items()))}</p>")
    htm += ["<h2>Summary</h2>", _md_table_to_html(summary_table(outcomes))]
    for o in outcomes:
        md += [f"## {o.name} — {o.verdict}", "", f"**Claim.** {o.claim}", ""]
        htm += [f"<h2 id='{o.name}'>{html.escape(o.name)} — {html.escape(o.verdict)}</h2>",
                f"<p><b>Claim.</b> {html.escape(o.claim)}</p>"]
        if o.error:
            md += ["**Failed:**", "", "```", o.error, "```", ""]
            htm.append(f"<pre>{html.escape(o.error)}</pre>")
        if o.checks:
            table = markdown_table(("check", "measured", "op", "threshold", "passed"),
                                   [(c.what, c.value, c.op, c.threshold,
                                     "yes" if c.passed else "NO") for c in o.checks])
            md += ["**Evidence.**", "", table, ""]
            htm += ["<p><b>Evidence.</b></p>", _md_table_to_html(table)]
        for t_title, table in o.tables.items():
            md += [f"**{t_title}**", "", table, ""]
            htm += [f"<p><b>{html.escape(t_title)}</b></p>", _md_table_to_html(table)]
        if o.notes:
            md += [o.notes, ""]
            htm.append(f"<p>{html.escape(o.notes)}</p>")
        for fig_name in o.figures:
            md += [f"![{o.name} {fig_name}]({o.name}_{fig_name}.png)", ""]
            b64 = base64.b64encode(pngs[(o.name, fig_name)]).decode()
            htm.append(f"<figure><img alt='{html.escape(fig_name)}' "
                       f"src='data:image/png;base64,{b64}'/><figcaption>"
                       f"{html.escape(o.name)}: {html.escape(fig_name)}</figcaption></figure>")
        md += [f"*{o.seconds:.1f} s*", ""]
    style = ("body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}"
             "img{max-width:100%}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>{''.join(htm)}</body></html>")
    results = {"meta": _jsonable(meta), "experiments": [o.as_dict() for o in outcomes]}
    for name, content in (("report.md", "\n".join(md)), ("report.html", page),
                          ("results.json", json.dumps(results, indent=2))):
        path = os.path.join(out_dir, name)
        atomic_write(path, content)
        paths[name] = path
    return paths


def _md_table_to_html(table: str) -> str:
    lines = [ln for ln in table.splitlines() if ln.strip()]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    body = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body]
    return "".join(out) + "</table>"
