"""Execute the course notebooks in place and store their outputs (text and PNG figures).

Usage, from anywhere::

    python notebooks/execute.py                    # every notebooks/*.ipynb
    python notebooks/execute.py notebooks/03_*.ipynb
    python notebooks/execute.py --check            # execute copies, report stale outputs

Each notebook runs top to bottom in a fresh ``python3`` kernel (the interpreter running this
script) with the repository root as working directory, so ``import experiments`` works; the
notebooks turn on the persistent compilation cache themselves (``jl.enable_compilation_cache()``),
so a second run compiles almost nothing. The outputs are committed in quick mode: every notebook
has exactly one code cell tagged ``parameters`` that reads ``QUICK = True`` and ``SEEDS = None``,
and this script refuses a notebook whose parameters cell says otherwise.

The stored file is a function of the notebook and the machine: the same notebook executed twice on
one machine gives the same bytes. To that end

- before the first cell, a hidden setup (not stored) fixes how figures are rendered: PNG only, a
  fixed dpi, no ``Software`` entry in the PNG metadata (:data:`SETUP`); JAX is deterministic on a
  CPU, and every notebook draws its randomness from fixed keys;
- volatile metadata is dropped: execution timestamps, the kernel's language version, widget state;
  ``execution_count`` runs 1, 2, 3, ... over the code cells;
- adjacent stream outputs of one cell are merged (the kernel splits a cell's prints at arbitrary
  points in time);
- the platform JAX ran on is recorded in ``metadata["jaxlearn"]["platform"]``: the tests compare
  numbers only against outputs made on the same kind of device.

:func:`compare_outputs` is the comparison the tests use to call stored outputs stale; notebooks
should print no timings and show no progress bars, since those change from run to run.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import re
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"

#: Dots per inch of the stored PNG figures.
DPI = 80

#: Run in the kernel before the first cell and not stored: deterministic PNG figures, and the one
#: warning JAX gives on CPU when a donated buffer cannot be reused (as pytest filters it).
SETUP = f"""\
import warnings as _warnings
import matplotlib as _mpl
_mpl.rcParams["figure.dpi"] = {DPI}
_mpl.rcParams["savefig.dpi"] = {DPI}
_mpl.rcParams["svg.hashsalt"] = "jaxlearn"
get_ipython().run_line_magic("config", 'InlineBackend.figure_formats = ["png"]')
get_ipython().run_line_magic(
    "config",
    'InlineBackend.print_figure_kwargs = '
    '{{"bbox_inches": "tight", "metadata": {{"Software": None}}}}')
_warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
del _warnings, _mpl
"""

#: The parameters cell as committed (quick mode, each experiment's own seeds).
QUICK_PARAMETERS = {"QUICK": "True", "SEEDS": "None"}

#: Tolerances of :func:`compare_outputs`: two printed numbers agree when they differ by at most
#: ``max(ABS_TOL, REL_TOL * max(|a|, |b|))``, or by one unit in the last digit printed when the
#: number is printed rounded (it has a fractional part). On the machine that stored the outputs
#: the numbers are bitwise the same; the tolerance is for another CPU, whose XLA may order a
#: reduction differently and move a value in its last bits.
REL_TOL = 1e-3
ABS_TOL = 1e-6

_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|\b(?:nan|inf)\b")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_TEXT_MIMES = ("text/plain", "text/markdown", "text/html", "text/latex")


def notebooks(paths: list[str] | None = None) -> list[Path]:
    """The notebooks named by ``paths`` (files), or every ``notebooks/*.ipynb`` in order."""
    if paths:
        return [Path(p).resolve() for p in paths]
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def parameters_cell(book: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The one code cell tagged ``parameters``; ValueError if there is none or more than one."""
    cells = [c for c in book.cells
             if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"a notebook has exactly one code cell tagged 'parameters'; "
                         f"this one has {len(cells)}")
    return cells[0]


def parameters(book: nbformat.NotebookNode) -> dict[str, str]:
    """The parameters cell's top-level assignments ``NAME = value``, as source text."""
    found = {}
    for line in parameters_cell(book).source.splitlines():
        match = re.match(r"^([A-Za-z_]\w*)\s*=\s*([^#]*?)\s*(#.*)?$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def _platform() -> str:
    import jax

    return jax.default_backend()


def _merge_streams(outputs: list) -> list:
    """Adjacent stream outputs of the same name merged into one."""
    merged: list = []
    for out in outputs:
        if (out.get("output_type") == "stream" and merged
                and merged[-1].get("output_type") == "stream"
                and merged[-1]["name"] == out["name"]):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(out)
    return merged


def normalize(book: nbformat.NotebookNode, platform: str) -> nbformat.NotebookNode:
    """Drop volatile metadata, merge adjacent streams, number the code cells 1, 2, 3, ..."""
    book.metadata.pop("widgets", None)
    book.metadata["language_info"] = {"name": "python"}
    book.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                   "name": "python3"}
    book.metadata["jaxlearn"] = {"platform": platform}
    count = 0
    for cell in book.cells:
        for key in ("execution", "ExecuteTime", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        count += 1
        cell.execution_count = count
        cell.outputs = _merge_streams(cell.outputs)
        for out in cell.outputs:
            if "execution_count" in out:
                out["execution_count"] = count
            out.get("metadata", {}).pop("execution", None)
    return book


def execute(book: nbformat.NotebookNode, *, timeout: int = 600,
            cell_times: list | None = None) -> nbformat.NotebookNode:
    """Execute a copy of ``book`` (outputs replaced) and return it normalised (:func:`normalize`).

    Raises nbclient's ``CellExecutionError`` on the first cell that fails. ``cell_times``, a list,
    receives ``(execution_count, seconds, first line)`` per code cell.
    """
    from nbclient import NotebookClient

    book = copy.deepcopy(book)
    book.cells.insert(0, nbformat.v4.new_code_cell(SETUP))
    env = dict(os.environ, PYTHONHASHSEED="0", TQDM_DISABLE="1")
    client = NotebookClient(book, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute(env=env)
    finally:
        book.cells.pop(0)
    if cell_times is not None:
        code = [c for c in book.cells if c.cell_type == "code"]
        for count, cell in enumerate(code, start=1):
            stamps = cell.metadata.get("execution", {})
            start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
            if start and end:
                seconds = (_timestamp(end) - _timestamp(start))
                cell_times.append((count, seconds, cell.source.split("\n", 1)[0][:60]))
    return normalize(book, _platform())


def _timestamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _numbers_agree(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(x) or math.isnan(y) or math.isinf(x) or math.isinf(y):
        return x == y or (math.isnan(x) and math.isnan(y))
    tol = max(ABS_TOL, REL_TOL * max(abs(x), abs(y)))
    for text in (a, b):
        mantissa, _, exponent = text.lower().partition("e")
        if "." in mantissa:  # printed rounded: allow one unit in its last digit
            decimals = len(mantissa.split(".")[1])
            tol = max(tol, 1.000001 * 10.0 ** (int(exponent or 0) - decimals))
    return abs(x - y) <= tol


def _compare_text(where: str, stored: str, fresh: str) -> list[str]:
    stored, fresh = _ADDRESS.sub("0x", stored), _ADDRESS.sub("0x", fresh)
    if _NUMBER.split(stored) != _NUMBER.split(fresh):
        return [f"{where}: the text differs:\n  stored: {stored[:300]!r}\n"
                f"  now:    {fresh[:300]!r}"]
    bad = [(a, b) for a, b in zip(_NUMBER.findall(stored), _NUMBER.findall(fresh))
           if not _numbers_agree(a, b)]
    if bad:
        pairs = ", ".join(f"{a} -> {b}" for a, b in bad[:5])
        return [f"{where}: {len(bad)} number(s) differ beyond tolerance (rel {REL_TOL:g}, "
                f"abs {ABS_TOL:g}, or one unit in the last printed digit): {pairs}"]
    return []


def _summary(outputs: list) -> list[tuple[str, dict]]:
    """A cell's outputs as comparable items: stdout text (stderr dropped: warnings depend on the
    platform), and for each result or display its text forms and whether it holds an image."""
    items: list[tuple[str, dict]] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            if out.get("name") != "stdout":
                continue
            if items and items[-1][0] == "stdout":
                items[-1][1]["text"] += out["text"]
            else:
                items.append(("stdout", {"text": out["text"]}))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            texts = {m: "".join(data[m]) if isinstance(data[m], list) else data[m]
                     for m in _TEXT_MIMES if m in data}
            if any(m.startswith("image/") for m in data):
                texts.pop("text/plain", None)  # "<Figure size 640x480 with 1 Axes>" and the like
                texts["image"] = "yes"
            items.append((kind, texts))
        elif kind == "error":
            items.append(("error", {"text": f"{out.get('ename')}: {out.get('evalue')}"}))
    return items


def compare_outputs(stored: nbformat.NotebookNode, fresh: nbformat.NotebookNode,
                    *, numbers: bool = True) -> list[str]:
    """How ``fresh`` (just executed) differs from ``stored`` (committed); empty when they agree.

    Both must have the same code cells; per cell, the same outputs in the same order (stderr
    ignored): the same text with every number within tolerance (:data:`REL_TOL`, :data:`ABS_TOL`,
    or one unit in the last printed digit), and an image wherever one is stored (PNG bytes are not
    compared: they are the same on the machine that stored them, not across machines). With
    ``numbers=False`` (outputs made on another kind of device), only the structure and the text
    around the numbers is compared.
    """
    problems = []
    old = [c for c in stored.cells if c.cell_type == "code"]
    new = [c for c in fresh.cells if c.cell_type == "code"]
    if [c.source for c in old] != [c.source for c in new]:
        return ["the code cells differ (not the same notebook)"]
    for index, (a, b) in enumerate(zip(old, new), start=1):
        where = f"code cell {index}"
        if a.get("execution_count") is None:
            problems.append(f"{where}: no stored outputs (never executed)")
            continue
        items_a, items_b = _summary(a.outputs), _summary(b.outputs)
        if [k for k, _ in items_a] != [k for k, _ in items_b]:
            problems.append(f"{where}: outputs {[k for k, _ in items_a]} stored, "
                            f"{[k for k, _ in items_b]} now")
            continue
        for n, ((kind, ta), (_, tb)) in enumerate(zip(items_a, items_b), start=1):
            if sorted(ta) != sorted(tb):
                problems.append(f"{where}, output {n} ({kind}): forms {sorted(ta)} stored, "
                                f"{sorted(tb)} now")
                continue
            for mime in sorted(ta):
                if numbers:
                    problems += _compare_text(f"{where}, output {n} ({mime})", ta[mime], tb[mime])
                elif _NUMBER.split(ta[mime]) != _NUMBER.split(tb[mime]):
                    problems.append(f"{where}, output {n} ({mime}): the text differs")
    return problems


def check_quick(book: nbformat.NotebookNode, path: Path) -> None:
    """ValueError unless the parameters cell is the committed quick setting."""
    found = parameters(book)
    wrong = {k: found.get(k) for k, v in QUICK_PARAMETERS.items() if found.get(k) != v}
    if wrong:
        raise ValueError(f"{path.name}: the parameters cell must read QUICK = True and "
                         f"SEEDS = None when outputs are stored; it has {wrong}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="execute copies and report stale outputs; write nothing")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--cell-times", action="store_true",
                        help="print each code cell's time, slowest first")
    args = parser.parse_args(argv)
    failed = 0
    for path in notebooks(args.notebooks):
        book = nbformat.read(path, as_version=4)
        check_quick(book, path)
        start = time.perf_counter()
        times: list = []
        fresh = execute(book, timeout=args.timeout, cell_times=times)
        seconds = time.perf_counter() - start
        if args.check:
            problems = compare_outputs(book, fresh, numbers=book.metadata.get("jaxlearn", {})
                                       .get("platform") == fresh.metadata["jaxlearn"]["platform"])
            failed += bool(problems)
            status = "stale:\n  " + "\n  ".join(problems) if problems else "up to date"
            print(f"{path.name}: {seconds:6.1f} s  {status}", flush=True)
        else:
            nbformat.validate(fresh)
            nbformat.write(fresh, path)
            print(f"{path.name}: {seconds:6.1f} s", flush=True)
        if args.cell_times:
            for count, cell_seconds, line in sorted(times, key=lambda t: -t[1]):
                print(f"  cell {count:2d} {cell_seconds:6.1f} s  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
