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


def _imports(tree: ast.AST) -> list[ast.AST]:
    """Every import statement, those under ``if TYPE_CHECKING:`` included: a circle that
    only type checkers follow is still a circle in the design."""
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def _edges() -> tuple[dict[str, pathlib.Path], dict[str, set[str]], list[str]]:
    """The project's modules, which import which (type-checking imports too), and every
    private name one module takes from another."""
    mods = _project_modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for m, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}  # a project module imported under a name: that name
        for node in _imports(tree):
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
    return mods, edges, private


def test_no_import_cycles_and_no_private_names_across_modules():
    mods, edges, private = _edges()
    assert private == []
    # no cycle among the imports, type-checking ones included
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


def test_nn_has_few_floors_and_its_model_reaches_neither_files_nor_optimizers():
    """The longest chain of imports inside nn is at most five files (commands, pictures,
    training, files, model: see nn/__init__.py); Module imports nothing else of nn, and
    the optimizers nothing at all, so saving depends on Module and never the reverse."""
    _, edges, _ = _edges()
    inside = {m: {t for t in ts if t.startswith("nn.")} for m, ts in edges.items()}
    assert inside["nn.module"] == set() and inside["nn.optim"] == set()
    assert "nn.module" in inside["nn.serialize"]
    depth: dict[str, int] = {}
    for start in sorted(m for m in inside if m.startswith("nn.")):
        stack = [(start, False)]
        while stack:  # the longest chain from each module, iteratively (imports are a DAG)
            m, done = stack.pop()
            if done:
                depth[m] = 1 + max((depth[t] for t in inside[m]), default=0)
            elif m not in depth:
                stack.append((m, True))
                stack.extend((t, False) for t in inside[m] if t not in depth)
    assert max(depth.values()) <= 5, depth
