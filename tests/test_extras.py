"""Dependencies follow the layers: the engine and its renders need no extra, the rest
says which extra it needs when it is missing (autodiff.extras)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import pytest

from autodiff import dot, trace
from autodiff.extras import EXTRAS, MissingExtraError, check, require

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVERY_EXTRA_MODULE = sorted({m for ms in EXTRAS.values() for m in ms})


def block(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make `modules` (and their submodules) fail to import, as if not installed."""
    for name in list(sys.modules):
        if name.split(".")[0] in modules:
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_pyproject_declares_what_autodiff_extras_says():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0] for d in project["dependencies"]] == ["graphviz", "graphviz-pure"]
    extras = project["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        declared = {d.split(">")[0].split("=")[0].replace("-", "_") for d in extras[extra]}
        assert declared == set(modules), extra
    assert "scalar-autodiff[arrays,nn]" in extras["dev"]  # the README's install has them all


def test_the_engine_the_renders_and_nn_import_without_any_extra():
    code = textwrap.dedent(
        f"""
        import sys
        for name in {EVERY_EXTRA_MODULE!r}:
            sys.modules[name] = None  # as if not installed
        import autodiff, autodiff.render, autodiff.trace, nn, nn.draw, nn.plots, nn.xor
        from autodiff import Value, grad, trace
        from autodiff.render import backward_graph, explorer
        x = Value(2.0, "x")
        y = (x * x).tanh() + x.sqrt()
        y.backward()
        traced = trace(lambda v: v[0] * v[1], [2.0, 3.0])
        assert traced.value_and_grad([2.0, 3.0]) == (6.0, [3.0, 2.0])
        assert "<svg" in explorer(y).html and backward_graph(y).source
        print("ok")
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_grouped_and_batched_traces_name_the_arrays_extra(monkeypatch):
    block(monkeypatch, "numpy", "array_api_compat")

    def f(v):
        return v[0] * v[1]

    for kwargs in ({"mode": "groups"}, {"batched": True}):
        with pytest.raises(MissingExtraError, match=r"'arrays' extra.*scalar-autodiff\[arrays\]"):
            trace(f, [1.0, 2.0], **kwargs)

    # "auto" picks straight-line code for a large wide graph instead: right, slower to build
    def wide(v):  # 3,001 operations at 2 depths: grouped code, when numpy is there
        return dot([v[0] * float(k) for k in range(3000)], [1.0] * 3000)

    traced = trace(wide, [1.0])
    assert traced.mode == "lines" and traced.value_and_grad([2.0]) == (8997000.0, [4498500.0])
    monkeypatch.undo()
    assert trace(wide, [1.0]).mode == "groups"


def test_the_pictures_and_main_jobs_name_the_nn_extra(monkeypatch, capsys, tmp_path):
    from nn import digits, plots, xor

    block(monkeypatch, "matplotlib", "tqdm")
    with pytest.raises(MissingExtraError, match=r"nn\.plots.*matplotlib.*'nn' extra"):
        plots.confusion_matrix([0, 1], [0, 1], str(tmp_path / "c.png"))
    for job in (xor, digits):
        assert job.main(["--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "'nn' extra" in err and "scalar-autodiff[nn]" in err
    assert not list(tmp_path.iterdir())  # stopped before any work


def test_require_and_check():
    assert require("numpy", "arrays", "a test").__name__ == "numpy"
    check("arrays", "a test")
    with pytest.raises(ValueError, match="not a module of an extra"):
        require("os", "arrays", "a test")
    err = MissingExtraError("a feature", "numpy", "arrays")
    assert isinstance(err, ImportError) and err.name == "numpy" and err.extra == "arrays"
