"""The API reference (docs/build.py) builds without a warning and covers every public name."""

import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("pdoc")  # the `docs` extra; `all` includes it, so CI always runs these

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_build", ROOT / "docs" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


@pytest.mark.slow
def test_reference_builds_without_problems_and_renders_the_docstrings(tmp_path):
    # The README's command, in a fresh process: pdoc's warnings, broken cross-references, a
    # module without a page or a public name without an anchor all make it exit 1.
    proc = subprocess.run([sys.executable, "docs/build.py", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    modules = build.public_modules()
    assert f"API reference: {len(modules)} modules" in proc.stdout
    pages = {m: build.page_path(tmp_path, m).read_text(encoding="utf-8") for m in modules}

    # Google sections, reST roles (links, without Sphinx's ``~``) and ``>>>`` examples render.
    fit = pages["jaxlearn.train"].split('<section id="fit">', 1)[1].split("</section>", 1)[0]
    assert '<h6 id="arguments">Arguments:</h6>' in fit and '<h6 id="returns">Returns:</h6>' in fit
    assert re.search(r'<code><a href="[^"]*#StatefulApply">jaxlearn.apply.StatefulApply</a>', fit)
    assert '<span class="gp">&gt;&gt;&gt; </span>' in pages["jaxlearn.losses"]
    for module, html in pages.items():
        for docstring in re.findall(r'<div class="docstring">(.*?)</div>\n', html, flags=re.S):
            prose = re.sub(r"<pre>.*?</pre>", "", docstring, flags=re.S)  # examples keep text
            assert not re.search(r":(func|class|mod|meth|attr|data):|~<a", prose), module


def test_public_modules_are_the_package_and_its_non_private_modules():
    modules = build.public_modules()
    assert {"jaxlearn", "jaxlearn.losses", "jaxlearn.cli", "jaxlearn.stats"} <= set(modules)
    assert not [m for m in modules if "._" in m or m.endswith(".conftest")]


def test_readme_links_every_public_module_to_its_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## API reference", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"\| `([\w.]+)`[^|]*\| \[([^\]]+)\]\(([^)]+)\) \|", section)
    expected = {m: str(build.page_path(Path("docs/api"), m)) for m in build.public_modules()}
    assert {module: target for module, _, target in links} == expected
    assert all(text == target for _, text, target in links)


@pytest.fixture
def flawed_package(tmp_path, monkeypatch):
    """A package with one flaw of each kind the build must report."""
    root = tmp_path / "src" / "flawedpkg"
    root.mkdir(parents=True)
    files = {
        "__init__.py": '''
            """A package whose reference must fail."""
            from flawedpkg.mod import documented

            __all__ = ["documented", "vanished"]  # `vanished` does not exist
            ''',
        "mod.py": '''
            """A module without ``__all__``."""
            from os.path import join  # imported: not a public name of this module

            LIMIT = 3


            def documented():
                """Calls :func:`nowhere`; :func:`helper` and :func:`os.path.join` are fine."""


            def helper():
                """A helper."""


            def _private():
                """:func:`not_checked`: pdoc does not show a private function."""
            ''',
        "_hidden.py": '"""Private: no page."""\n',
        "conftest.py": '"""pytest settings: no page."""\n',
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    monkeypatch.syspath_prepend(str(root.parent))
    yield "flawedpkg"
    for name in [m for m in sys.modules if m.split(".")[0] == "flawedpkg"]:
        del sys.modules[name]


def test_build_reports_warnings_broken_references_and_missing_names(flawed_package, tmp_path):
    out = tmp_path / "api"
    problems = build.build(out, package=flawed_package)
    assert len(problems) == 2, problems
    assert "Found 'vanished' in flawedpkg.__all__, but it does not resolve" in problems[0]
    assert problems[1] == "flawedpkg.mod.documented: reference 'nowhere' resolves to nothing"
    assert sorted(p.name for p in (out / "flawedpkg").iterdir()) == ["mod.html"]


def test_coverage_check_reports_a_missing_page_and_a_missing_anchor(flawed_package, tmp_path):
    out = tmp_path / "api"
    build.build(out, package=flawed_package)
    mod = importlib.import_module("flawedpkg.mod")
    assert build.public_names(mod) == ["LIMIT", "documented", "helper"]
    assert build.missing_from_pages(out, ["flawedpkg.mod"]) == []

    page = out / "flawedpkg" / "mod.html"
    page.write_text(page.read_text().replace('id="helper"', 'id="renamed"'))
    assert build.missing_from_pages(out, ["flawedpkg.mod"]) == [
        f"flawedpkg.mod: public name 'helper' is missing from {page}"]
    page.unlink()
    assert build.missing_from_pages(out, ["flawedpkg.mod"]) == [f"flawedpkg.mod: no page {page}"]
