"""The README's Python examples run, and its claims about the project hold."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})


def test_quick_start_is_what_ci_runs():
    assert 'pip install -e ".[dev]" && python -m nn.xor\npython -m pytest' in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]"' in ci and "python -m nn.xor" in ci
    assert "python -m pytest" in ci


def test_readme_figures_exist():
    for path in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (ROOT / path).stat().st_size > 1000, path


def test_the_rule_excerpt_is_verbatim_from_rules_py():
    rules = (ROOT / "autodiff" / "rules.py").read_text(encoding="utf-8")
    excerpt = re.search(r"```text\n( +Rule\(.*?)```", README, flags=re.S)
    assert excerpt is not None
    for line in excerpt.group(1).splitlines():
        assert line in rules.splitlines(), line


def test_the_trace_listing_is_what_trace_prints(capsys):
    section = README[README.index("## Trace once, run fast") :]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    listing = re.search(r"prints\n\n```text\n(.*?)```", section, flags=re.S).group(1)
    exec(compile(code, "README.md trace block", "exec"), {})
    assert capsys.readouterr().out == listing
