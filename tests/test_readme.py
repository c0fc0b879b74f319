"""The README's quick start really runs, and its commands are the ones CI runs."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_a_quick_start_of_at_most_15_lines():
    blocks = _python_blocks()
    assert blocks, "README.md has no ```python block"
    assert len(blocks[0].strip().splitlines()) <= 15


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_blocks_run(index, capsys):
    # Each block runs in a fresh namespace; its own asserts check the numbers it prints.
    exec(compile(_python_blocks()[index], f"README.md[block {index}]", "exec"), {})
    out = capsys.readouterr().out
    assert "test accuracy" in out or index > 0


def test_ci_runs_the_readme_commands_verbatim():
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"`((?:python -m pip install|python -m pytest|jaxlearn reproduce)[^`]*)`",
                          setup.split("The core library")[0])
    assert len(commands) >= 3
    for command in commands:
        assert command in ci, f".ci/run does not run the README command {command!r}"
