"""The renders: DOT source always; real SVG/PNG rendering (a failure, not a skip, in CI)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from autodiff import Value, render
from autodiff.render import RendererNotFoundError, backward_graph, forward_graph, save


def small() -> tuple[Value, Value, Value, Value]:
    x, w, b = Value(0.5, label="x"), Value(-1.5, label="w"), Value(0.25, label="b")
    y = (x * w + b).tanh()
    y.label = "y"
    return x, w, b, y


def needs_renderer() -> None:
    """Skip without a renderer, except in CI, where a missing renderer is a failure."""
    if render.renderer() is None:
        if os.environ.get("CI"):
            pytest.fail("no Graphviz renderer found in CI: graphviz-pure should be installed")
        pytest.skip("no Graphviz renderer (dot or graphviz-pure) installed")


def test_forward_graph_shows_labels_data_and_ops_with_edges_towards_the_root():
    *_, y = small()
    src = forward_graph(y).source
    assert "rankdir=LR" in src
    for text in ["<B>x</B>", "data 0.5000", "data -1.5000", "data 0.2500", "data -0.5000"]:
        assert text in src
    assert "data -0.4621" in src  # tanh(-0.5)
    # root is v0, tanh; its parent v1 is the sum; the sum's parents are v2 (product) and b
    assert "v0_op -> v0" in src and "v1 -> v0_op" in src
    assert "v0_op [label=tanh" in src and 'v1_op [label="+"' in src
    assert "v2 -> v1_op" in src
    edges = re.findall(r"^\t(\S+) -> (\S+)$", src, flags=re.M)
    assert len(edges) == 3 + 5  # op -> value for 3 ops; 5 value -> op inputs
    for tail, head in edges:  # every edge enters an op, or leaves one for its own value
        assert head.endswith("_op") or tail == f"{head}_op"


def test_backward_graph_shows_gradients_and_local_derivatives_towards_the_leaves():
    x, w, b, y = small()
    y.backward()
    src = backward_graph(y).source
    assert "rankdir=RL" in src
    assert "grad 1.0000" in src  # the root
    assert f"grad {x.grad:.4f}" in src and f"grad {w.grad:.4f}" in src
    assert f"grad {b.grad:.4f}" in src
    local = y.local_grads[0]
    assert f"v0 -> v1 [label={local:.4f}" in src  # from the root back to its parent
    edges = re.findall(r"(v\d+) -> (v\d+) \[label=(-?[\d.]+)", src)
    assert len(edges) == 5  # tanh→sum, sum→product, sum→b, product→x, product→w
    for child, parent, _ in edges:
        assert int(child[1:]) < int(parent[1:])  # the root has the smallest id


def test_backward_graph_edge_labels_sum_to_the_parent_gradient():
    x = Value(1.5, label="x")
    y = x * x + x.exp()  # x is used three times
    y.backward()
    src = backward_graph(y).source
    assert f"grad {x.grad:.4f}" in src


def test_backward_graph_without_a_backward_pass_is_a_clear_error():
    *_, y = small()
    with pytest.raises(ValueError, match=r"call root\.backward\(\) first"):
        backward_graph(y)


def test_backward_graph_after_another_roots_pass_is_a_clear_error():
    x = Value(2.0)
    h = x * 3
    y = h.tanh()
    y.backward()
    z = h * h  # shares h: its pass overwrites h.grad
    z.backward()
    with pytest.raises(ValueError, match="another root"):
        backward_graph(y)
    y.backward()
    assert "grad" in backward_graph(y).source


def test_output_is_deterministic():
    def build() -> str:
        *_, y = small()
        y.backward()
        return forward_graph(y).source + backward_graph(y).source

    assert build() == build()


def test_special_characters_and_unicode_are_escaped():
    weird = 'u¹ ∇ ζ <a> | {b} "q" & \\ end'
    v = Value(1.0, label=weird) * 2
    v.label = "L\nsecond line"
    v.backward()
    for src in (forward_graph(v).source, backward_graph(v).source):
        assert "u¹ ∇ ζ &lt;a&gt; | {b} &quot;q&quot; &amp; \\ end" in src
        assert "L<BR/>second line" in src
        assert "<a>" not in src and '"q"' not in src


def test_large_graphs_are_iterative_and_truncated_with_a_note():
    y = Value(0.0)
    for _ in range(10**5):
        y = y + 1.0
    src = forward_graph(y, max_nodes=10).source
    assert src.count("data ") == 10
    assert "… 199991 more values not shown" in src
    full = forward_graph(y, max_nodes=10**6).source  # 2·10⁵ + 1 Values, no recursion
    assert full.count("data ") == 2 * 10**5 + 1
    with pytest.raises(ValueError, match="max_nodes must be at least 1"):
        forward_graph(y, max_nodes=0)
    with pytest.raises(TypeError, match="root must be a Value"):
        forward_graph(1.0)  # type: ignore[arg-type]


def test_number_formatting():
    assert render._num(0.5) == "0.5000"
    assert render._num(-1234.56789) == "-1234.5679"
    assert render._num(0.0) == render._num(-0.0) == "0.0000"
    assert render._num(1e-7) == "1.0000e-07"
    assert render._num(1e300) == "1.0000e+300"
    assert render._num(float("inf")) == "inf"


# -- real rendering -------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "magic"), [("svg", b"<?xml"), ("png", b"\x89PNG")])
def test_save_renders_svg_and_png(tmp_path, suffix, magic):
    needs_renderer()
    *_, y = small()
    y.backward()
    for graph in (forward_graph(y), backward_graph(y)):
        path = save(graph, tmp_path / f"g.{suffix}")
        with open(path, "rb") as f:
            assert f.read().startswith(magic)


def test_jupyter_shows_graphs_inline():
    needs_renderer()
    *_, y = small()
    y.backward()
    for graph in (forward_graph(y), backward_graph(y)):
        bundle = graph._repr_mimebundle_()
        assert "<svg" in bundle["image/svg+xml"]


def test_rendering_works_with_system_dot_hidden_from_path(tmp_path):
    # The pip-only path: no `dot` on PATH, and not even `graphviz-pure` (as in a venv used
    # without activating it): it must be found beside the interpreter.
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    path = os.pathsep.join(
        d
        for d in dirs
        if not any(os.path.exists(os.path.join(d, exe)) for exe in ("dot", "graphviz-pure"))
    )
    code = textwrap.dedent(
        f"""
        import os
        from autodiff import Value, render
        assert os.path.basename(render.renderer()) == "graphviz-pure", render.renderer()
        y = (Value(2.0, label="x") * 3).tanh()
        y.backward()
        render.save(render.backward_graph(y), {str(tmp_path / "b.svg")!r})
        render.save(render.forward_graph(y), {str(tmp_path / "f.png")!r})
        """
    )
    env = dict(os.environ, PATH=path)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert (tmp_path / "b.svg").read_bytes().startswith(b"<?xml")
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")


def test_save_errors(tmp_path, monkeypatch):
    *_, y = small()
    g = forward_graph(y)
    with pytest.raises(ValueError, match="suffix"):
        save(g, tmp_path / "noext")
    if render.renderer() and os.path.basename(render.renderer()) == "graphviz-pure":
        with pytest.raises(ValueError, match="graphviz-pure cannot write 'pdf'"):
            save(g, tmp_path / "g.pdf")
    monkeypatch.setattr(render, "_renderer", None)
    with pytest.raises(RendererNotFoundError, match="pip install graphviz-pure"):
        save(g, tmp_path / "g.svg")
    assert "digraph" in g.source  # the DOT text is still there
    assert not (tmp_path / "g.svg").exists()
