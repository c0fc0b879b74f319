"""``report.html``, built from the outcomes' data (never by converting markdown).

One self-contained page (figures embedded as PNG data, no network): a header with the run's
metadata, a summary that fits on one screen (one row per experiment: name linking to its section,
the claim in a few words, the verdict as a coloured badge, the key number with its interval, the
time), a table of contents, the literature section, then one section per experiment (claim, checks
table, figures beside their captions, tables, notes). Every text is escaped; tables scroll inside
their box on a phone-width screen; the print style drops colours and keeps rows together.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

BADGE_COLOURS = {"holds": "#1a7f37", "inconclusive": "#9a6700", "does not hold": "#cf222e",
                 "failed": "#6e7781"}

STYLE = """
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;line-height:1.45;margin:0;
     color:#1f2328;background:#fff}
main{max-width:72rem;margin:auto;padding:1rem 1.25rem 4rem}
h1{font-size:1.6rem;margin:.5rem 0}
h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
.meta{font-size:.8rem;color:#57606a;margin:.2rem 0}
.meta span{white-space:nowrap;margin-right:1rem}.meta b{color:#1f2328;font-weight:600}
nav.toc{font-size:.85rem;margin:.4rem 0}nav.toc a{white-space:nowrap}
.box{overflow-x:auto;margin:.5rem 0 1rem}
table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;vertical-align:top;text-align:left}
th{background:#f6f8fa}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.summary td{white-space:nowrap}
.summary td.claim{max-width:24rem;overflow:hidden;text-overflow:ellipsis}
.badge{display:inline-block;color:#fff;border-radius:1rem;padding:.05rem .55rem;
       font-size:.78rem;font-weight:600;white-space:nowrap}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:.85rem;color:#57606a}
pre{white-space:pre-wrap;background:#f6f8fa;padding:.5rem}
.rule{font-size:.85rem;color:#57606a}
@media (max-width:40rem){main{padding:.5rem}h1{font-size:1.3rem}
  .summary td.claim{max-width:12rem}}
@media print{.badge{color:#000;border:1px solid #000;background:none!important}
  nav{display:none}tr,figure{break-inside:avoid}main{max-width:none}}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def anchor(name: str) -> str:
    """The id of an experiment's section."""
    return "exp-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def badge(verdict: str) -> str:
    colour = BADGE_COLOURS.get(verdict, "#6e7781")
    return f"<span class='badge' style='background:{colour}'>{esc(verdict)}</span>"


def table(header: Sequence[Any], rows: Sequence[Sequence[Any]], *, cls: str = "",
          raw_columns: Sequence[int] = (), num_columns: Sequence[int] = ()) -> str:
    """An HTML table; cells are escaped except those in ``raw_columns`` (already HTML)."""
    out = [f"<div class='box'><table class='{esc(cls)}'><thead><tr>"]
    out += [f"<th scope='col'>{esc(h)}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a table row has {len(row)} cells but the header has "
                             f"{len(header)}: {row!r}")
        cells = []
        for j, v in enumerate(row):
            text = v if j in raw_columns else esc(_cell(v))
            attr = " class='num'" if j in num_columns else ""
            cells.append(f"<td{attr}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def short_claim(claim: str, limit: int = 90) -> str:
    """The claim in a few words: its first sentence, cut at a word boundary. A period after an
    abbreviation ("et al.", "e.g.", "i.e.", "vs.") or inside a number ends no sentence.

    >>> short_claim("Training as in Esteva et al. 2017 beats direct training. More text.")
    'Training as in Esteva et al. 2017 beats direct training.'
    """
    first = re.split(r"(?<!\bal\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bvs\.)(?<=[.;:])\s",
                     claim.strip(), maxsplit=1)[0]
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0] + " ..."


def key_number(outcome) -> tuple[str, str]:
    """The experiment's key number and what it measures: its first check over seeds (else its
    first check), as ``"mean [low, high] (n=...) op threshold"``."""
    if outcome.error is not None:
        return "error: " + (outcome.error.strip().splitlines() or [""])[-1][:60], outcome.error
    if not outcome.checks:
        return "-", "no checks"
    checks = [c for c in outcome.checks if c.values is not None] or list(outcome.checks)
    c = checks[0]
    return f"{c.measured()} {c.op} {c.threshold:g}", c.what


def render(outcomes: Sequence[Any], *, title: str, meta: Mapping[str, Any], verdict_rule: str,
           literature_rows: Sequence[Sequence[Any]], literature_header: Sequence[str],
           skipped: Sequence[str] = ()) -> str:
    """The whole page as a string."""
    counts = {v: sum(o.verdict == v for o in outcomes) for v in BADGE_COLOURS}
    body = [f"<header><h1>{esc(title)}</h1>"]
    if meta:
        body.append("<p class='meta'>" + " ".join(
            f"<span><b>{esc(k)}</b> {esc(v)}</span>" for k, v in meta.items()) + "</p>")
    body.append("<p>" + " ".join(f"{badge(v)} {n}" for v, n in counts.items() if n) + "</p>")
    links = ["<a href='#summary'>summary</a>"]
    if literature_rows:
        links.append("<a href='#literature'>against the literature</a>")
    links += [f"<a href='#{anchor(o.name)}'>{esc(o.name)}</a>" for o in outcomes]
    body.append("<nav class='toc' aria-label='contents'><b id='contents'>Contents:</b> "
                + " &middot; ".join(links) + "</nav></header>")

    body.append("<h2 id='summary'>Summary</h2>")
    rows = []
    for o in outcomes:
        key, key_title = key_number(o)
        rows.append(f"<tr><td><a href='#{anchor(o.name)}'>{esc(o.name)}</a></td>"
                    f"<td>{badge(o.verdict)}</td>"
                    f"<td class='claim' title='{esc(o.claim)}'>{esc(short_claim(o.claim))}</td>"
                    f"<td class='num' title='{esc(key_title)}'>"
                    f"{esc(key)}</td><td class='num'>{esc(f'{o.seconds:.1f}')}</td></tr>")
    body.append("<div class='box'><table class='summary'><thead><tr>"
                + "".join(f"<th scope='col'>{h}</th>" for h in
                          ("experiment", "verdict", "claim", "key number", "time (s)"))
                + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")
    body.append(f"<p class='rule'>{esc(verdict_rule)}</p>")
    if skipped:
        body.append("<h2 id='skipped'>Skipped</h2><ul>"
                    + "".join(f"<li>{esc(line)}</li>" for line in skipped) + "</ul>")
    if literature_rows:
        body.append("<h2 id='literature'>Against the literature</h2>")
        body.append(table(literature_header, literature_rows))

    for o in outcomes:
        body.append(f"<section id='{anchor(o.name)}'><h2>{esc(o.name)} {badge(o.verdict)}</h2>")
        body.append(f"<p><b>Claim.</b> {esc(o.claim)}</p>")
        if o.data:
            body.append(f"<p><b>Data.</b> {esc(o.data)}</p>")
        if o.error:
            body.append(f"<pre>{esc(o.error)}</pre>")
        if o.checks:
            body.append("<p><b>Checks.</b></p>")
            body.append(table(
                ("check", "measured (mean [95% CI], n)", "claim", "verdict", "threshold source"),
                [(esc(c.what), esc(c.measured()), esc(f"{c.op} {c.threshold:g}"),
                  badge(c.verdict), esc(c.source or "-")) for c in o.checks],
                raw_columns=(0, 1, 2, 3, 4)))
        for name, data in o.pngs.items():
            b64 = base64.b64encode(data).decode()
            caption = f"{o.name}: {name}"
            body.append(f"<figure><img alt='{esc(caption)}' loading='lazy' "
                        f"src='data:image/png;base64,{b64}'><figcaption>{esc(caption)}"
                        "</figcaption></figure>")
        for t_title, t in o.tables.items():
            header, rows = table_data(t)
            body.append(f"<p><b>{esc(t_title)}</b></p>")
            body.append(table(header, rows))
        if o.notes:
            body.append(f"<p><b>Notes.</b> {esc(o.notes)}</p>")
        body.append(f"<p class='meta'>{esc(f'{o.seconds:.1f}')} s</p></section>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>")


_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def table_data(markdown: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a markdown table made by :func:`jaxlearn.report.markdown_table` (its
    ``header``/``rows`` when it carries them; otherwise parsed, with ``\\|`` as a literal bar)."""
    if hasattr(markdown, "header") and hasattr(markdown, "rows"):
        return list(markdown.header), [list(r) for r in markdown.rows]
    lines = [ln for ln in str(markdown).splitlines() if ln.strip()]

    def split(line):
        cells = _UNESCAPED_PIPE.split(line.strip())[1:-1]
        return [c.strip().replace("\\|", "|") for c in cells]

    return split(lines[0]), [split(ln) for ln in lines[2:]]
