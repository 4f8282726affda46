"""The README's Python examples run, and its claims about the project hold."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.fixture(autouse=True)
def _rules(restore_rules):
    """Operations added here (autodiff.op) leave the rule table as it was."""


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


def _needs(block: str) -> None:
    """Skip a block that needs JAX where it is not installed (CI installs it)."""
    if "import jax" in block:
        pytest.importorskip("jax", reason="the block runs JAX, which is not installed")


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys, tmp_path, monkeypatch):
    _needs(BLOCKS[index])
    monkeypatch.chdir(tmp_path)  # the examples write their pictures where they run
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_when_pasted_into_the_python_prompt(index, tmp_path, monkeypatch):
    # the interactive prompt reads a block line by line: a compound statement must end
    # with a blank line before the next statement, or the paste stops with a SyntaxError
    import code

    _needs(BLOCKS[index])
    monkeypatch.chdir(tmp_path)
    errors: list[str] = []

    class Prompt(code.InteractiveConsole):
        def showsyntaxerror(self, filename=None, **kwargs):
            errors.append("SyntaxError")

        def showtraceback(self):
            import traceback

            errors.append(traceback.format_exc())

    prompt = Prompt({"__name__": "__main__"})
    for line in BLOCKS[index].splitlines():
        prompt.push(line)
    prompt.push("")
    assert errors == [], f"README block {index}: {errors[0][-500:]}"


def _smallest_text_px(svg: str, column: float = 830.0) -> float:
    """The smallest text of an SVG, in CSS px, when it is shown `column` px wide at most
    (a README column: an image wider than that is scaled down to fit)."""
    width_pt = float(re.search(r'<svg width="([\d.]+)pt"', svg).group(1))
    view_w = float(re.search(r'viewBox="[\d.-]+ [\d.-]+ ([\d.]+)', svg).group(1))
    scale = float(re.search(r'transform="scale\(([\d.]+)', svg).group(1))
    shown_px = min(column, width_pt * 4 / 3)  # 1 pt = 4/3 px at 96 dpi
    sizes = [float(f) for f in re.findall(r'font-size="([\d.]+)"', svg)]
    return min(sizes) * scale * shown_px / view_w


def test_every_svg_in_the_readme_is_legible_in_an_830_px_column():
    figures = [p for p in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README) if p.endswith(".svg")]
    assert len(figures) >= 3
    for path in figures:
        px = _smallest_text_px((ROOT / path).read_text(encoding="utf-8"))
        assert px >= 8.0, (path, round(px, 2))
    # and the check can fail: the old 1,920-px-wide layout of the lecture's graph could not
    from autodiff.render import backward_graph, render_bytes
    from nn import lecture

    W, c, w, b = lecture.parameters()
    wide = backward_graph(lecture.forward([1.0, 0.0], 1, W, c, w, b).L, "LR")
    assert _smallest_text_px(render_bytes(wide).decode()) < 8.0


def test_quick_start_is_what_ci_runs():
    assert 'pip install -e ".[dev]" && python -m nn.xor\npython -m pytest' in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]"' in ci and "python -m nn.xor" in ci
    assert "python -m pytest" in ci


def test_readme_figures_exist():
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert len(figures) >= 7
    for path in figures:
        assert (ROOT / path).stat().st_size > 1000, path


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'(?:href|src)="([^"]+)"', text)


def _documents() -> dict[pathlib.Path, str]:
    """Every document a reader of a clone opens: markdown files and the notebook's prose."""
    import json

    docs = {p: p.read_text(encoding="utf-8") for p in [ROOT / "README.md", ROOT / "CHANGELOG.md"]}
    docs.update({p: p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md")})
    nb = ROOT / "notebooks" / "lecture.ipynb"
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    docs[nb] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return docs


def test_every_link_resolves_inside_a_clone():
    checked = 0
    for path, text in _documents().items():
        assert "shared/lecture" not in text, path  # the lecture's own folder is not in a clone
        for link in _links(text):
            assert "://" not in link, f"{path.name} links outside the repository: {link}"
            target = (path.parent / link.split("#")[0]).resolve()
            assert target.is_relative_to(ROOT), f"{path.name}: {link} leaves the repository"
            assert target.exists(), f"{path.name}: {link} does not exist"
            checked += 1
    assert checked >= 15


def test_the_first_screen_shows_how_to_draw_a_graph():
    first = "\n".join(README.splitlines()[:45])
    for name in ("forward_graph", "backward_graph", "save(", "explorer("):
        assert name in first, name


def test_the_main_job_listing_is_what_it_prints(xor_job):
    listing = re.search(r"\$ python -m nn.xor\n.*?\n(.*?)```", README, flags=re.S).group(1)
    _, out, _, status = xor_job
    assert status == 0
    assert out == listing


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


def test_the_digits_listing_is_what_it_prints(digits_job):
    listing = re.search(r"\$ python -m nn.digits\n(.*?)```", README, flags=re.S).group(1)
    _, out, _, status = digits_job
    assert status == 0
    assert out == listing
