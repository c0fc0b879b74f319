"""The course notebooks: each one uses the library in view, stores its outputs, and those outputs
are what running it gives now.

Fast tests read the committed files: outputs and figures stored, a dozen direct ``jl.`` calls, a
"Try it" cell, the parameters cell in quick mode. The slow tests execute every notebook again
(``notebooks/execute.py``, the script that stores the outputs) and fail on any error, on stale
outputs (:func:`execute.compare_outputs`: same outputs, every number within tolerance — bitwise on
the machine that stored them, a relative 1e-3 / absolute 1e-6 / last-printed-digit tolerance for
another CPU's XLA; on another kind of device, such as a GPU, only the text around the numbers), and
on an experiment verdict that the lecture's claims do not allow.
"""

import ast
import copy
import importlib.util
import os
import re

import pytest
from experiment_checks import FINDINGS

nbformat = pytest.importorskip("nbformat")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT, "notebooks")
NOTEBOOKS = sorted(f for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))

_spec = importlib.util.spec_from_file_location("notebook_execute",
                                               os.path.join(NOTEBOOK_DIR, "execute.py"))
execute = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(execute)

#: Direct library calls a notebook makes at least (``jl.nn.mlp(...)``, ``jl.fit(...)``, ...).
MIN_LIBRARY_CALLS = 12


def _read(name):
    return nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)


def _code(book):
    return [c for c in book.cells if c.cell_type == "code"]


def library_calls(source: str) -> list[str]:
    """The calls in ``source`` whose function is an attribute chain starting at ``jl``
    (``jl.fit``, ``jl.data.xor``). IPython magics and shell lines are skipped."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    calls = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            parts, func = [], node.func
            while isinstance(func, ast.Attribute):
                parts.append(func.attr)
                func = func.value
            if isinstance(func, ast.Name) and func.id == "jl":
                calls.append(".".join(["jl", *reversed(parts)]))
    return calls


def test_there_is_a_notebook_per_part_of_the_lecture():
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_outputs_and_figures_are_stored(name):
    book = _read(name)
    code = _code(book)
    missing = [i for i, c in enumerate(code, start=1) if c.get("execution_count") is None]
    assert not missing, f"code cells {missing} have no stored outputs: run notebooks/execute.py"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert book.metadata.get("jaxlearn", {}).get("platform"), "not stored by notebooks/execute.py"
    images = sum("image/png" in out.get("data", {}) for c in code for out in c.outputs)
    assert images >= 1, "no figure stored"
    errors = [out for c in code for out in c.outputs if out.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_library_is_used_in_view(name):
    calls = [call for c in _code(_read(name)) for call in library_calls(c.source)]
    assert len(calls) >= MIN_LIBRARY_CALLS, calls


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_there_is_a_try_it_cell(name):
    book = _read(name)
    tagged = [c for c in book.cells if "try-it" in c.metadata.get("tags", [])]
    headed = [c for c in book.cells if c.cell_type == "markdown"
              and re.search(r"^#+\s*try it", c.source, re.IGNORECASE | re.MULTILINE)]
    assert tagged or headed, "a markdown heading 'Try it' or a cell tagged 'try-it'"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_is_in_quick_mode(name):
    book = _read(name)
    params = execute.parameters(book)  # ValueError unless exactly one cell is tagged
    assert params.get("QUICK") == "True" and params.get("SEEDS") == "None", params


def test_library_calls_are_counted_from_the_syntax_tree():
    source = ("import jaxlearn as jl\n%matplotlib inline\nm = jl.nn.mlp((8,), 2)\n"
              "r = jl.fit(m.apply, p)\nf = jl.fit\nx = np.mean(jl.metrics.accuracy(y, z))\n"
              "# jl.data.xor(key, 4)\ns = 'jl.evaluate(a)'\n")
    assert sorted(library_calls(source)) == ["jl.fit", "jl.metrics.accuracy", "jl.nn.mlp"]


def _stored_cell(outputs):
    cell = nbformat.v4.new_code_cell("print(x)")
    cell.execution_count = 1
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return cell


def _book(outputs):
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_markdown_cell("# t"), _stored_cell(outputs)]
    return book


_STDOUT = {"output_type": "stream", "name": "stdout",
           "text": "test accuracy 0.667 (sd 0.012), loss 1.234e-02, n=4000\n"}
_IMAGE = {"output_type": "display_data", "metadata": {},
          "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480 with 1 Axes>"}}


@pytest.mark.parametrize("text, stale", [
    ("test accuracy 0.667 (sd 0.012), loss 1.234e-02, n=4000\n", False),   # the same
    ("test accuracy 0.668 (sd 0.012), loss 1.234e-02, n=4000\n", False),   # last digit, rounding
    ("test accuracy 0.667 (sd 0.012), loss 1.235e-02, n=4002\n", False),   # within 1e-3
    ("test accuracy 0.672 (sd 0.012), loss 1.234e-02, n=4000\n", True),    # one number changed
    ("test accuracy 0.667 (sd 0.012), loss 1.334e-02, n=4000\n", True),
    ("test accuracy 0.667 (sd 0.012), loss 1.234e-02, n=4100\n", True),
    ("test accuracy 0.667 (sd 0.012), loss 1.234e-02\n", True),            # text changed
])
def test_stale_outputs_are_detected(text, stale):
    stored = _book([_STDOUT, _IMAGE])
    fresh = _book([dict(_STDOUT, text=text), _IMAGE])
    problems = execute.compare_outputs(stored, fresh)
    assert bool(problems) == stale, problems


def test_a_missing_figure_or_output_is_stale():
    stored = _book([_STDOUT, _IMAGE])
    assert execute.compare_outputs(stored, _book([_STDOUT]))
    no_image = dict(_IMAGE, data={"text/plain": "<Figure size 640x480 with 1 Axes>"})
    assert execute.compare_outputs(stored, _book([_STDOUT, no_image]))
    # stderr (warnings differ between platforms) and how the kernel split the prints do not count
    split = [dict(_STDOUT, text="test accuracy 0.667 (sd 0.012), "),
             {"output_type": "stream", "name": "stderr", "text": "W0101 a warning\n"},
             dict(_STDOUT, text="loss 1.234e-02, n=4000\n"), _IMAGE]
    assert execute.compare_outputs(stored, _book(split)) == []


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_committed_notebook_with_one_number_changed_is_stale(name):
    book = _read(name)
    assert execute.compare_outputs(book, book) == []
    changed = copy.deepcopy(book)
    for cell in _code(changed):
        for out in cell.outputs:
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                match = re.search(r"\d+\.\d+", out["text"])
                if match and float(match.group()) > 0.1:
                    doubled = f"{2 * float(match.group()):.{len(match.group().split('.')[1])}f}"
                    out["text"] = out["text"][:match.start()] + doubled + out["text"][match.end():]
                    problems = execute.compare_outputs(changed, book)
                    assert len(problems) == 1 and "differ beyond tolerance" in problems[0], problems
                    return
    pytest.fail("no printed number found to change")


def _verdict_checks(text):
    # Few quick seeds may leave checks over seeds inconclusive; none may fail or not hold,
    # except the stated findings (tests/experiment_checks.FINDINGS), printed as
    # "DOES NOT HOLD   <what>: ..." by the notebook's show().
    stated = [p for prefixes in FINDINGS.values() for p in prefixes]
    not_holding = [line for line in text.splitlines() if line.startswith("DOES NOT HOLD")]
    unexpected = [line for line in not_holding
                  if not any(line[len("DOES NOT HOLD"):].strip().startswith(p) for p in stated)]
    assert not unexpected, unexpected
    if not not_holding:
        assert "Verdict: does not hold" not in text
    assert "Verdict: failed" not in text
    # Every experiment shows its verdict, and some measured check holds (few quick seeds may leave
    # a whole experiment inconclusive, but not every check of a notebook).
    assert "Verdict: holds" in text or "Verdict: inconclusive" in text
    assert any(line.startswith("HOLDS") for line in text.splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes_and_its_outputs_are_up_to_date(name):
    pytest.importorskip("nbclient")
    stored = _read(name)
    execute.check_quick(stored, execute.Path(name))
    fresh = execute.execute(stored, timeout=900)  # raises CellExecutionError on a failing cell
    same_device = stored.metadata.get("jaxlearn", {}).get("platform") == \
        fresh.metadata["jaxlearn"]["platform"]
    problems = execute.compare_outputs(stored, fresh, numbers=same_device)
    assert not problems, ("stale outputs; run `python notebooks/execute.py notebooks/"
                          f"{name}`:\n" + "\n".join(problems))
    if any("experiments." in c.source for c in _code(stored)):
        text = "\n".join(out.get("text", "") + str(out.get("data", {}).get("text/markdown", ""))
                         for c in _code(fresh) for out in c.outputs)
        _verdict_checks(text)
