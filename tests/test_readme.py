"""The README's quick start really runs, and its commands are the ones CI runs."""

import os
import re

import pytest
from fake_data import write_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_a_quick_start_of_at_most_15_lines():
    blocks = _python_blocks()
    assert blocks, "README.md has no ```python block"
    assert len(blocks[0].strip().splitlines()) <= 15


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_blocks_run(index, capsys, tmp_path, monkeypatch):
    # Each block runs in a fresh namespace, in a fresh folder that holds an image folder
    # `my_lesions/` (two classes of fake images) for the "your own data" block; its own asserts
    # check the numbers it prints.
    write_image_folder(tmp_path / "my_lesions", ("benign", "malignant"), per_class=40,
                       size=(32, 32))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(ROOT)                   # `import experiments` from the checkout
    exec(compile(_python_blocks()[index], f"README.md[block {index}]", "exec"), {})
    out = capsys.readouterr().out
    assert "test accuracy" in out or index > 0
    if "my_lesions" in _python_blocks()[index]:
        names, accuracy = out.strip().rsplit(" ", 1)
        assert names == "('benign', 'malignant')"
        assert float(accuracy) > 0.9          # the fake classes differ in mean colour


def test_ci_runs_the_readme_commands_verbatim():
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"`((?:python -m pip install|python -m pytest|jaxlearn reproduce)[^`]*)`",
                          setup.split("The core library")[0])
    assert len(commands) >= 3
    for command in commands:
        assert command in ci, f".ci/run does not run the README command {command!r}"
