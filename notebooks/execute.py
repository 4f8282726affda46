"""Run notebooks/lecture.ipynb top to bottom and save it with its outputs.

    python notebooks/execute.py [--check]

With --check the notebook is executed but not written (the test suite does this).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parent / "lecture.ipynb"


def execute(path: pathlib.Path = NOTEBOOK, timeout: int = 300) -> nbformat.NotebookNode:
    """Execute the notebook in its own folder; a failing cell raises CellExecutionError."""
    nb = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(path.parent)}}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources)
    client.execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="execute only, do not write")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    nb = execute()
    for cell in nb.cells:  # no run-specific noise in the committed file
        cell.get("metadata", {}).pop("execution", None)
    if not args.check:
        nbformat.write(nb, NOTEBOOK)
    size = NOTEBOOK.stat().st_size
    print(f"executed {NOTEBOOK.name} in {time.perf_counter() - start:.1f} s; {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
