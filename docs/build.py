"""Build jaxlearn's API reference from its docstrings: one HTML page per public module (pdoc).

    python docs/build.py [OUT]        # default docs/api/; open OUT/index.html

The build fails (a list of problems, exit status 1) when

- pdoc warns (an annotation it cannot resolve, a name in ``__all__`` that does not exist, ...);
- a cross-reference in a docstring (``:func:`fit```, ``:mod:`jaxlearn.data```, ...) names
  nothing: a ``jaxlearn`` target must be a documented name, any other must import;
- a public module of ``jaxlearn`` has no page, or a public name of a module is missing from its
  page. The public names of a module are its ``__all__`` or, without one, the names it defines
  (not imports) that do not start with ``_``.

The docstrings are Google style (``Args:``, ``Returns:``) with reST roles and ``>>>`` examples:
pdoc's ``google`` docformat renders all three.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import sys
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pdoc
import pdoc.doc
import pdoc.render
from jinja2 import pass_context

PACKAGE = "jaxlearn"
DEFAULT_OUT = Path(__file__).resolve().parent / "api"
_NOT_DOCUMENTED = ("conftest",)  # the doctests' pytest settings, not the library
_ROLE = re.compile(r"(?::py)?:(?:mod|func|data|const|class|meth|attr|exc|obj):`([^`]+)`")
# Sphinx's ``:func:`~a.b.c``` shows only ``c``; pdoc does not know the ``~`` and would print it.
_SHORT_ROLE = re.compile(r"(:(?:mod|func|data|const|class|meth|attr|exc|obj):`)~")


def public_modules(package: str = PACKAGE) -> list[str]:
    """The modules that must have a page: the package and every submodule with no ``_`` part."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        parts = info.name.split(".")[1:]
        if not any(p.startswith("_") for p in parts) and parts[-1] not in _NOT_DOCUMENTED:
            names.append(info.name)
    return sorted(names)


def public_names(module: ModuleType) -> list[str]:
    """``module.__all__``, or else the names its own source binds at top level without ``_``."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    tree = ast.parse(inspect.getsource(module))
    names: list[str] = []

    def visit(body: Iterable[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names.extend(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", ()):
                    visit(handler.body)

    visit(tree.body)
    return sorted({n for n in names if not n.startswith("_")})


def page_path(out: Path, module: str) -> Path:
    """Where the page of ``module`` lands: ``OUT/jaxlearn/losses.html`` for ``jaxlearn.losses``."""
    return out / (module.replace(".", "/") + ".html")


def missing_from_pages(out: Path, modules: Iterable[str]) -> list[str]:
    """Public modules without a page and public names without an anchor on their module's page."""
    problems = []
    for name in modules:
        page = page_path(out, name)
        if not page.exists():
            problems.append(f"{name}: no page {page}")
            continue
        html = page.read_text(encoding="utf-8")
        module = importlib.import_module(name)
        for public in public_names(module):
            submodule = f"{name}.{public}"
            if isinstance(getattr(module, public, None), ModuleType) or submodule in sys.modules:
                found = f'href="{name.rsplit(".", 1)[-1]}/{public}.html"' in html
            else:
                found = f'id="{public}"' in html
            if not found:
                problems.append(f"{name}: public name {public!r} is missing from {page}")
    return problems


def _resolves_outside(target: str) -> bool:
    """Whether ``target`` (``optax.adam``, ``jax.numpy``) imports, for a non-jaxlearn reference."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def _documented(target: str, modules: dict[str, pdoc.doc.Module]) -> bool:
    """Whether the absolute ``jaxlearn...`` ``target`` is a module or a name on some page."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        module = modules.get(".".join(parts[:i]))
        if module is not None:
            return i == len(parts) or module.get(".".join(parts[i:])) is not None
    return False


def _shown(qualname: str) -> bool:
    """Whether pdoc shows a member: no part is private (``__init__`` and other dunders are)."""
    return not any(p.startswith("_") and not p.endswith("__") for p in qualname.split("."))


def broken_references(modules: dict[str, pdoc.doc.Module]) -> list[str]:
    """Every ``:role:`target``` in a documented docstring that names nothing."""
    problems = []
    seen = set()
    for module in modules.values():
        for doc in [module, *module.flattened_own_members]:
            source = (doc.taken_from, doc.docstring)
            if source in seen or not doc.docstring or not _shown(doc.qualname):
                continue
            seen.add(source)
            home, qualname = doc.taken_from
            scope = qualname.split(".")[:-1] if doc is not module else []
            for raw in _ROLE.findall(doc.docstring):
                target = raw.lstrip("~.").removesuffix("()")
                candidates = [
                    f"{home}.{'.'.join(scope[:i] + [target])}"
                    for i in range(len(scope), -1, -1)
                ]
                if any(_documented(c, modules) for c in candidates):
                    continue
                if target.split(".")[0] == PACKAGE:
                    ok = _documented(target, modules)
                else:
                    ok = _resolves_outside(target)
                if not ok:
                    problems.append(f"{home}.{qualname}: reference {raw!r} resolves to nothing")
    return problems


def _named_tuple_constructors_in_their_module(modules: Iterable[pdoc.doc.Module]) -> None:
    # pdoc reads a NamedTuple's signature from its generated ``__new__``, which lives in a module
    # ``namedtuple_<Name>`` that does not exist, so string annotations (``from __future__ import
    # annotations``) cannot resolve and warn: https://github.com/mitmproxy/pdoc/issues/765.
    # Pointing ``__new__`` at the class's module lets them resolve (and link) as the fields do.
    for module in modules:
        for cls in module.classes:
            new = getattr(vars(cls.obj).get("__new__"), "__func__", None)  # a staticmethod
            if issubclass(cls.obj, tuple) and new is not None:
                if new.__module__.startswith("namedtuple_"):
                    new.__module__ = cls.obj.__module__


def build(out: Path, package: str = PACKAGE) -> list[str]:
    """Writes the reference of ``package`` into ``out``; returns the problems (empty: all good)."""
    expected = public_modules(package)
    problems: list[str] = []
    pdoc.render.configure(docformat="google", search=True, show_source=True)
    to_markdown = pdoc.render.env.filters["to_markdown"]

    @pass_context
    def to_markdown_short_roles(context, docstring: str) -> str:
        return to_markdown(context, _SHORT_ROLE.sub(r"\1", docstring))

    pdoc.render.env.filters["to_markdown"] = to_markdown_short_roles
    try:
        modules = _render(out, expected, problems)
    finally:
        pdoc.render.env.filters["to_markdown"] = to_markdown
    problems += broken_references(modules)
    problems += missing_from_pages(out, expected)
    return problems


def _render(out: Path, expected: list[str], problems: list[str]) -> dict[str, pdoc.doc.Module]:
    """Writes the pages, index and search index; adds pdoc's warnings to ``problems``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Named one by one: pdoc itself walks only the submodules in a package's ``__all__``.
        modules = {}
        for name in expected:
            try:
                modules[name] = pdoc.doc.Module.from_name(name)
            except RuntimeError as e:  # pdoc's "Error importing ...", raised from the real error
                problems.append(f"{name}: cannot import: {e.__cause__!r}")
        _named_tuple_constructors_in_their_module(modules.values())
        for module in modules.values():
            page = page_path(out, module.fullname)
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(pdoc.render.html_module(module, modules), encoding="utf-8")
        (out / "index.html").write_text(pdoc.render.html_index(modules), encoding="utf-8")
        (out / "search.js").write_text(pdoc.render.search_index(modules), encoding="utf-8")
    problems += sorted({f"pdoc warns: {w.category.__name__}: {w.message}" for w in caught})
    return modules


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print(f"usage: python docs/build.py [OUT]   (default: {DEFAULT_OUT})", file=sys.stderr)
        return 2
    out = Path(args[0]) if args else DEFAULT_OUT
    start = time.perf_counter()
    problems = build(out)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"API reference: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    n_pages = len(public_modules())
    print(f"API reference: {n_pages} modules in {out / 'index.html'} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
