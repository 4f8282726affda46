"""The code stays as the standards say: ruff clean, formatted, and type-checked."""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is in the dev extra")
def test_ruff_check_and_format():
    lint = run(sys.executable, "-m", "ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy():
    pytest.importorskip("mypy")
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_py_typed_is_shipped():
    assert (ROOT / "autodiff" / "py.typed").exists() and (ROOT / "nn" / "py.typed").exists()


def _project_modules() -> dict[str, pathlib.Path]:
    mods = {}
    for p in [*ROOT.glob("autodiff/**/*.py"), *ROOT.glob("nn/*.py")]:
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    return mods


def _runtime_imports(tree: ast.AST) -> list[ast.AST]:
    """Import statements that run (not those under ``if TYPE_CHECKING:``)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skip
    ]


def test_no_import_cycles_and_no_private_names_across_modules():
    mods = _project_modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for m, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}  # a project module imported under a name: that name
        for node in _runtime_imports(tree):
            if (isinstance(node, ast.ImportFrom) and node.module in mods) or (
                isinstance(node, ast.ImportFrom) and node.module in ("autodiff", "nn")
            ):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    edges[m].add(full if full in mods else node.module)  # type: ignore[arg-type]
                    if full in mods:
                        aliases[a.asname or a.name] = full
                    elif a.name.startswith("_") and node.module != m:
                        private.append(f"{m}: from {node.module} import {a.name}")
        for node in ast.walk(tree):  # module._name, for another module of the project
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and aliases.get(node.value.id, m) != m
            ):
                private.append(f"{m}: {node.value.id}.{node.attr}")
    assert private == []
    # no cycle among the imports that run
    state: dict[str, int] = {}
    for start in mods:
        stack = [(start, iter(sorted(edges[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, nxt]))
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(sorted(edges[nxt]))))
