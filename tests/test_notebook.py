"""The lecture notebook runs top to bottom, and what is committed is what it prints."""

from __future__ import annotations

import importlib.util
import pathlib
import re

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "lecture.ipynb"
SPEC = importlib.util.spec_from_file_location("nb_execute", ROOT / "notebooks" / "execute.py")
runner = importlib.util.module_from_spec(SPEC)  # type: ignore[arg-type]
SPEC.loader.exec_module(runner)  # type: ignore[union-attr]


def text_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """Each code cell's printed text, joined: a busy kernel may send it in several pieces."""
    return [
        "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")
        for cell in nb.cells
        if cell.cell_type == "code"
    ]


@pytest.fixture(scope="module")
def executed() -> nbformat.NotebookNode:
    return runner.execute()  # raises on the first failing cell: every claim cell asserts


def test_notebook_runs_top_to_bottom_without_a_word_on_stderr(executed):
    outputs = [o for c in executed.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]


def test_committed_outputs_are_what_it_prints_now(executed):
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert text_outputs(committed) == text_outputs(executed)  # seeded, deterministic, current
    assert sum(bool(t) for t in text_outputs(committed)) >= 15


def test_notebook_follows_the_lecture_and_shows_its_pictures():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    headings = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for k in range(1, 18):
        assert re.search(rf"\bL{k}\b", headings), f"L{k} missing"
    assert "argmin" in headings and "Typo" in headings
    kinds = [k for c in nb.cells for o in c.get("outputs", []) for k in o.get("data", {})]
    assert kinds.count("image/png") >= 6 and kinds.count("image/svg+xml") >= 3
    asserting = [c for c in nb.cells if c.cell_type == "code" and "assert" in c.source]
    assert len(asserting) >= 17
    assert NOTEBOOK.stat().st_size < 2_000_000


def test_the_notebook_reads_well_in_a_900_px_column():
    """What a student sees: no "-0.0" printed, every graph fitting a 900 px column with its
    smallest text at 8 px or more, the L16/L17 example with gradients that are not all 0,
    and the L15 cell explained in the lecture's names before any generated code."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    printed = "\n".join(text_outputs(nb))
    assert not re.search(r"(?<![\w.])-0\.0*(?![\d.]*[1-9])\b", printed), "a -0.0 is printed"
    svgs = [
        o["data"]["image/svg+xml"]
        for c in nb.cells
        for o in c.get("outputs", [])
        if "image/svg+xml" in o.get("data", {})
    ]
    assert svgs
    for svg in svgs:
        width_px = float(re.search(r'<svg width="([\d.]+)pt"', svg).group(1)) * 4 / 3
        scale = min(1.0, 900 / width_px)  # a wider drawing is shrunk to the column
        smallest = min(float(f) for f in re.findall(r'font-size="([\d.]+)"', svg)) * 4 / 3
        assert smallest * scale >= 8.0, (width_px, smallest)
    l16 = next(t for t in text_outputs(nb) if t.startswith("L16 and L17 hold"))
    both_on = re.search(r"f = \[1\.0, 1\.0\], ∇_W L = (.*)", l16).group(1)
    assert "0.0000" not in both_on
    l15 = next(t for t in text_outputs(nb) if "dot nodes u1_j" in t)
    assert l15.index("layer 1: 4 dot nodes u1_j = Σᵢ W1_ij x_i") < l15.index("def mean_value")
