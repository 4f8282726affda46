"""The renders: DOT source always; real SVG/PNG rendering (a failure, not a skip, in CI);
and, in a real browser, text inside its box and edges ending on their nodes."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import textwrap

import pytest
from browser import check_svg, page

from autodiff import Value, dot, grad, render
from autodiff.render import (
    RendererNotFoundError,
    backward_graph,
    explorer,
    forward_graph,
    render_bytes,
    save,
)
from nn import lecture
from nn.draw import network_graph
from nn.module import MLP


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


def lecture_loss() -> Value:
    W, c, w, b = lecture.parameters()
    L = lecture.forward([1.0, 0.0], 1, W, c, w, b).L
    L.backward()
    return L


def mlp_loss(sizes=(16, 16, 1)) -> Value:
    m = MLP(2, list(sizes), seed=0)
    z = m([Value(1.0, "x₁"), Value(0.0, "x₂")])
    L = (-z).softplus()
    L.backward()
    return L


def svg_size(svg: str) -> tuple[float, float, float]:
    """(width px, height px, scale) of a graphviz SVG (pt → px at 96 dpi)."""
    w, h = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups()
    scale = re.search(r'transform="scale\(([\d.]+)', svg).group(1)
    return float(w) * 4 / 3, float(h) * 4 / 3, float(scale)


def node_boxes(svg: str) -> dict[str, str]:
    """title -> the points of its box, for comparing two layouts."""
    return dict(
        re.findall(
            r"<title>(v\d+(?:_op)?)</title>\n<(?:polygon|ellipse)[^>]*?(?:points|cx)=\"([^\"]+)\"",
            svg,
        )
    )


# -- the DOT text -------------------------------------------------------------------------


def test_forward_graph_shows_labels_data_and_ops_with_edges_towards_the_root():
    *_, y = small()
    src = forward_graph(y).source
    assert "rankdir=LR" in src and "fontname=Courier" in src
    for text in ['"x\ndata 0.5000"', "data -1.5000", "data 0.2500", "data -0.5000"]:
        assert text in src
    assert "data -0.4621" in src  # tanh(-0.5)
    assert "v0_op -> v0" in src and "v1 -> v0_op" in src and "v2 -> v1_op" in src
    assert "v0_op [label=tanh" in src and 'v1_op [label="+"' in src
    edges = re.findall(r"^\t(\S+) -> (\S+)", src, flags=re.M)
    assert len(edges) == 3 + 5  # op -> value for 3 ops; 5 value -> op inputs
    for tail, head in edges:  # every edge enters an op, or leaves one for its own value
        assert head.endswith("_op") or tail == f"{head}_op"


def test_backward_graph_shows_gradients_and_local_derivatives_towards_the_leaves():
    x, w, b, y = small()
    y.backward()
    src = backward_graph(y).source
    assert "grad 1.0000" in src  # the root
    for v in (x, w, b):
        assert f"grad {v.grad:.4f}" in src
    local = y.local_grads[0]
    assert f"v1 -> v0_op [label={local:.4f} color=firebrick dir=back" in src
    labelled = re.findall(r"(v\d+) -> (v\d+_op) \[label=(-?[\d.]+)", src)
    assert len(labelled) == 5  # every input edge carries its ∂child/∂parent


def test_both_graphs_have_the_same_layout():
    needs_renderer()
    L = lecture_loss()
    f = render_bytes(forward_graph(L, max_nodes=100, max_depth=100)).decode()
    b = render_bytes(backward_graph(L, max_nodes=100, max_depth=100)).decode()
    boxes = node_boxes(f)
    assert len(boxes) > 40 and boxes == node_boxes(b)  # every box in the same place


def test_backward_graph_edge_labels_sum_to_the_parent_gradient():
    # grad(parent) = Σ local × grad(child), readable off the picture: check it from the DOT
    x = Value(2.0, label="x")
    y = x * x + x.exp()
    y.backward()
    src = backward_graph(y).source
    grads = {
        k: float(v) for k, v in re.findall(r"^\t(v\d+) \[label=\"[^\"]*?grad (-?[\d.]+)", src, re.M)
    }
    xid = re.search(r'^\t(v\d+) \[label="x\n', src, re.M).group(1)
    terms = [
        float(local) * grads[child]
        for child, local in re.findall(rf"^\t{xid} -> (v\d+)_op \[label=(-?[\d.]+)", src, re.M)
    ]
    assert len(terms) == 3  # x·x twice, and exp(x)
    assert sum(terms) == pytest.approx(x.grad, rel=1e-4)


def drawn_grads(src: str) -> dict[str, str]:
    """DOT id -> the gradient text its box shows."""
    return dict(re.findall(r'^\t(v\d+) \[label="(?:[^"]*\n)?grad ([^"]+)"', src, re.M))


def true_grads(root: Value) -> dict[str, str]:
    """DOT id -> ∂root/∂v as grad() computes it, formatted as the pictures write numbers."""
    order = _all(root)
    return {f"v{i}": render.style.number(d.data) for i, d in enumerate(grad(root, order))}


def test_backward_graph_draws_this_roots_gradients_whatever_grad_holds():
    x = Value(2.0, "x")
    h = x * 3
    h.label = "h"
    y = h.tanh() * x
    z = h * h  # another root sharing h and x
    truth = true_grads(y)
    assert drawn_grads(backward_graph(y).source) == truth  # never back-propagated
    y.backward()
    y.backward()  # leaves now hold 2× their gradient
    assert x.grad == 2 * (grad(y, [x])[0].data)
    assert drawn_grads(backward_graph(y).source) == truth
    z.backward()  # interior gradients now belong to z
    assert drawn_grads(backward_graph(y).source) == truth
    for v in _all(y):
        v.grad = 0.0
    assert drawn_grads(backward_graph(y).source) == truth
    assert len(truth) == len(_all(y)) and truth["v0"] == "1.0000"


def test_the_main_jobs_backward_graph_is_the_truth_after_training(tmp_path):
    # the case: the sample's graph drawn after training left .grad accumulated
    from nn.xor import main

    assert main(["--out", str(tmp_path), "--steps", "30"]) in (0, 1)
    src = (tmp_path / "backward.svg").read_text(encoding="utf-8")
    for local, child_grad, parent_grad in _edge_checks(src):
        # the numbers are drawn to 4 decimals: each term is off by at most
        # |local|·5e-5 + |grad|·5e-5 + 2.5e-9, the sum by the sum of those, the parent by 5e-5
        slack = 5e-5 * (1 + sum(abs(ell) + abs(g) + 1e-4 for ell, g in zip(local, child_grad)))
        assert parent_grad == pytest.approx(
            sum(ell * g for ell, g in zip(local, child_grad)), abs=slack
        )


def _edge_checks(svg: str) -> list[tuple[list[float], list[float], float]]:
    """From a backward graph's SVG: for every box, the local derivatives on its out-edges,
    the gradients of the boxes they lead to, and its own gradient: grad = Σ local × grad."""
    import xml.etree.ElementTree as ET

    ns = {"s": "http://www.w3.org/2000/svg"}
    root = ET.fromstring(svg)
    grads: dict[str, float] = {}
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        if g.get("class") == "node":
            texts = ["".join(t.itertext()) for t in g.iter("{http://www.w3.org/2000/svg}text")]
            if texts and texts[-1].startswith("grad "):
                grads[g.find("s:title", ns).text] = float(texts[-1][5:])
    into: dict[str, list[tuple[float, str]]] = {}
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        if g.get("class") == "edge":
            tail, head = g.find("s:title", ns).text.split("->")
            texts = ["".join(t.itertext()) for t in g.iter("{http://www.w3.org/2000/svg}text")]
            if texts and head.endswith("_op") and tail != "hidden":
                into.setdefault(tail, []).append((float(texts[0]), head[:-3]))
    checks = [
        ([ell for ell, _ in edges], [grads[c] for _, c in edges], grads[tail])
        for tail, edges in into.items()
    ]
    assert len(checks) >= 10
    return checks


def test_nan_gradients_are_drawn():
    x = Value(math.nan, label="x")
    y = (x * 2.0).relu() + 1.0
    y.backward()
    src = backward_graph(y).source
    assert "grad nan" in src and "data nan" in forward_graph(y).source


def test_output_is_deterministic():
    *_, y = small()
    y.backward()
    assert forward_graph(y).source == forward_graph(y).source
    assert backward_graph(y).source == backward_graph(y).source


def test_special_and_control_characters_are_shown_as_text():
    v = Value(1.0, label='u¹ ∇ ζ <a> | {b} "q" & \\ end') * 2
    v.label = "L\nsecond\tline\x07"
    v.backward()
    for src in (forward_graph(v).source, backward_graph(v).source):
        # DOT-quoted, and & as &amp; (graphviz would pass an entity through to the SVG)
        assert '<a> | {b} \\"q\\" &amp; \\\\ end' in src
        assert "L\\\\nsecond\\\\tline\\\\x07" in src  # control characters as visible escapes
    needs_renderer()
    svg = render_bytes(forward_graph(v)).decode()
    assert "&lt;a&gt; | {b} &quot;q&quot; &amp; \\ end" in svg
    assert "L\\nsecond\\tline\\x07" in svg


def test_arguments_are_checked():
    *_, y = small()
    with pytest.raises(ValueError, match="rankdir must be one of LR, RL, TB, BT, got 'XY'"):
        forward_graph(y, "XY")
    with pytest.raises(ValueError, match="max_nodes must be at least 1"):
        forward_graph(y, max_nodes=0)
    with pytest.raises(TypeError, match="max_nodes must be an int, got float"):
        forward_graph(y, max_nodes=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_depth must be an int, got bool"):
        forward_graph(y, max_depth=True)
    with pytest.raises(TypeError, match="root must be a Value"):
        forward_graph(1.0)  # type: ignore[arg-type]


def test_large_graphs_are_iterative_and_cut_with_a_note():
    y = Value(0.0)
    for _ in range(10**5):
        y = y + 1.0
    src = forward_graph(y, max_nodes=10).source
    assert src.count("data ") == 10
    assert "… 199991 more values not shown" in src
    deep = Value(0.0)
    for _ in range(2 * 10**4):
        deep = deep + 1.0
    full = forward_graph(deep, max_nodes=10**6, max_depth=10**6).source  # no recursion
    assert full.count("data ") == 4 * 10**4 + 1


def test_a_wide_node_draws_one_edge_for_what_was_cut():
    ws = [Value(0.001 * i) for i in range(20000)]
    d = dot(ws, [1.0] * 20000)
    src = forward_graph(d, max_nodes=10).source
    assert src.count("->") <= 12  # was 40,004
    assert 'hidden -> v0_op [label="39992 inputs"' in src  # 40,001 inputs, 9 drawn


def test_the_default_picture_of_any_model_fits_a_screen_at_a_readable_size():
    needs_renderer()
    chain = Value(0.5)
    for _ in range(10**4):
        chain = (chain * 1.0001).tanh()
    wide = dot([Value(0.001 * i) for i in range(20000)], [1.0] * 20000)
    for root in (chain, wide, mlp_loss(), mlp_loss((16, 1))):
        root.backward()
        for graph in (forward_graph(root), backward_graph(root)):
            width, height, scale = svg_size(render_bytes(graph).decode())
            assert width <= 1920.5 and height <= 1080.5, (width, height)
            assert scale >= 0.75  # 11 pt text stays ≥ 8 pt


def test_number_formatting():
    number = render.style.number
    assert number(0.5) == "0.5000"
    assert number(-1234.56789) == "-1234.5679"
    assert number(0.0) == "0.0000" and number(-0.0) == "-0.0000"  # shown as what it is
    assert number(1e-7) == "1.0000e-07"
    assert number(1e300) == "1.0000e+300"
    assert number(float("inf")) == "inf" and number(-math.inf) == "-inf"
    assert number(math.nan) == "nan"


# -- real rendering -------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "magic"), [("svg", b"<?xml"), ("png", b"\x89PNG")])
def test_save_renders_svg_and_png_without_a_word_on_stderr(tmp_path, suffix, magic, capfd):
    needs_renderer()
    L = lecture_loss()  # Unicode labels: ζ, subscripts, superscripts
    for graph in (forward_graph(L), backward_graph(L)):
        path = save(graph, tmp_path / f"g.{suffix}")
        with open(path, "rb") as f:
            assert f.read().startswith(magic)
    assert capfd.readouterr().err == ""


def test_jupyter_shows_graphs_inline_without_a_word_on_stderr(capfd):
    needs_renderer()
    L = lecture_loss()  # Unicode labels: a font-less Graphviz warns about each on stderr,
    L.backward()  # which plain graphviz.Digraph passes on, into the notebook under the picture
    graphs = (forward_graph(L), backward_graph(L), network_graph(MLP(2, [2, 1]), [1.0, 0.0], 1))
    for graph in graphs:
        bundle = graph._repr_mimebundle_()
        assert "<svg" in bundle["image/svg+xml"]
        assert graph._repr_image_png().startswith(b"\x89PNG")
    assert capfd.readouterr().err == ""
    *_, y = small()
    y.backward()
    assert "<iframe srcdoc=" in explorer(y)._repr_html_()
    assert callable(render.explorer)  # still the function, not the module that defines it


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
    monkeypatch.setattr(render.graphs, "_renderer", None)
    with pytest.raises(RendererNotFoundError, match="pip install graphviz-pure"):
        save(g, tmp_path / "g.svg")
    assert "digraph" in g.source  # the DOT text is still there
    assert not (tmp_path / "g.svg").exists()
    # a renderer that fails, says nothing, or has gone: an error naming it, and a file
    # already at the path left as it was (written whole or not at all)
    (tmp_path / "old.svg").write_text("the old picture")
    fails = tmp_path / "fails"
    fails.write_text("#!/bin/sh\necho 'syntax error in line 1' >&2\nexit 1\n")
    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\nexit 0\n")
    for script in (fails, silent):
        script.chmod(0o755)
        monkeypatch.setattr(render.graphs, "_renderer", str(script))
        with pytest.raises(RuntimeError, match=f"save: {script.name} failed"):
            save(g, tmp_path / "old.svg")
    monkeypatch.setattr(render.graphs, "_renderer", str(fails))
    with pytest.raises(RuntimeError, match="syntax error in line 1"):  # its own message
        save(g, tmp_path / "old.svg")
    monkeypatch.setattr(render.graphs, "_renderer", str(tmp_path / "gone"))
    with pytest.raises(RendererNotFoundError, match=r"renderer .*gone'? is gone"):
        save(g, tmp_path / "old.svg")
    assert (tmp_path / "old.svg").read_text() == "the old picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fails", "old.svg", "silent"]


# -- in a browser ---------------------------------------------------------------------


def pictures() -> dict[str, str]:
    """Every kind of picture the project draws, as SVG text."""
    L = lecture_loss()
    big = mlp_loss()
    model = MLP(2, [16, 16, 1], seed=0)
    nan = (Value(math.nan, "x") * 2.0).relu() + 1.0
    nan.backward()
    graphs = {
        "lecture forward": forward_graph(L, max_nodes=100, max_depth=100),
        "lecture backward": backward_graph(L, max_nodes=100, max_depth=100),
        "mlp forward (cut)": forward_graph(big),
        "mlp backward (cut)": backward_graph(big),
        "nan": backward_graph(nan),
        "network forward": network_graph(model, [1.0, 0.0]),
        "network backward": network_graph(model, [1.0, 0.0], 1, kind="backward"),
        "lecture network": network_graph(MLP(2, [2, 1], seed=1), [0.0, 1.0], 0, kind="backward"),
    }
    return {k: render_bytes(g).decode() for k, g in graphs.items()}


def test_in_a_browser_text_stays_in_its_box_and_edges_end_on_their_nodes():
    needs_renderer()
    svgs = pictures()
    with page() as pg:
        for name, svg in svgs.items():
            found = check_svg(svg, pg)
            assert found["texts"] > 3 and found["edges"] > 2, name
            assert found["problems"] == [], (name, found["problems"][:5])
        assert pg.errors == []


def test_the_explorer_steps_through_every_edge_with_the_engines_numbers(tmp_path):
    needs_renderer()
    L = lecture_loss()
    params = [v for v in _leaves(L)]
    path = explorer(L, tmp_path / "backprop.html", title="the lecture").save(
        tmp_path / "backprop.html"
    )
    html = open(path, encoding="utf-8").read()
    assert "http" not in html.replace("http://www.w3.org", "")  # self-contained: no network
    # what the engine says: every edge's contribution, in backward()'s order, and the sums
    expected = _running_sums(L)
    with page(1500, 900) as pg:
        pg.goto(f"file://{path}")
        total = pg.evaluate("window.explorer.steps")
        forward = total - 1 - len(expected)
        assert forward == sum(1 for v in _all(L) if v.parents)
        for k in range(1, total + 1):
            pg.click("#next")
            assert pg.evaluate("window.explorer.step") == k
            if k > forward + 1:  # an edge of back-propagation
                node_id, value = expected[k - forward - 2]
                shown = pg.evaluate(f"window.explorer.grad('{node_id}')")
                assert shown == f"grad {render.style.number(value)}", (k, node_id)
                assert render.style.number(value) in pg.inner_text("#panel")
        assert pg.is_disabled("#next") and "Done" in pg.inner_text("#panel")
        # the final state: backward()'s gradients, on every Value drawn
        ids = pg.evaluate(
            "Object.keys(JSON.parse(document.getElementById('data').textContent).nodes)"
        )
        grads = {f"v{i}": v.grad for i, v in enumerate(_all(L))}
        for node_id in ids:
            assert (
                pg.evaluate(f"window.explorer.grad('{node_id}')")
                == f"grad {render.style.number(grads[node_id])}"
            )
        pg.keyboard.press("ArrowLeft")
        assert pg.evaluate("window.explorer.step") == total - 1
        pg.keyboard.press("Home")
        assert pg.evaluate("window.explorer.step") == 0 and pg.is_disabled("#prev")
        pg.screenshot(path=str(tmp_path / "explorer.png"))
        assert pg.errors == []
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
    assert params


def _all(root: Value) -> list[Value]:
    from autodiff import topological_order

    return topological_order(root)


def _leaves(root: Value) -> list[Value]:
    return [v for v in _all(root) if not v.parents]


def _running_sums(root: Value) -> list[tuple[str, float]]:
    """(node id, its gradient so far) after each edge, in backward()'s order."""
    order = _all(root)
    ids = {v: f"v{i}" for i, v in enumerate(order)}
    grad = {root: 1.0}
    out = []
    for node in order:
        for p, local in zip(node.parents, node.local_grads):
            grad[p] = grad.get(p, 0.0) + local * grad[node]
            out.append((ids[p], grad[p]))
    assert all(grad[v] == v.grad for v in order)  # the sums end at backward()'s gradients
    return out


def test_explorer_refuses_a_graph_too_big_to_step_through():
    with pytest.raises(ValueError, match="more than max_nodes=60"):
        explorer(mlp_loss())


def test_the_renderer_is_the_one_asked_for_and_ci_tests_both():
    """.ci/run installs Debian's graphviz and runs the picture tests twice: with the
    system dot (the default where one is on PATH) and with AUTODIFF_RENDERER=graphviz-pure.
    Under CI each pass must be using the renderer it says it tests."""
    import os
    import shutil
    import subprocess
    import sys

    from autodiff.render.graphs import RENDERER_VARIABLE

    asked = os.environ.get(RENDERER_VARIABLE, "")
    found = render.renderer()
    if asked == "graphviz-pure":
        assert found is not None and os.path.basename(found) == "graphviz-pure"
    elif os.environ.get("CI"):
        assert found == shutil.which("dot") and found is not None, found
    code = "from autodiff import render; print(render.renderer())"
    env = {**os.environ, RENDERER_VARIABLE: "bogus"}
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "AUTODIFF_RENDERER must be 'dot' or 'graphviz-pure'" in bad.stderr
    env[RENDERER_VARIABLE] = "graphviz-pure"
    pure = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert pure.stdout.strip().endswith("graphviz-pure"), pure


def test_a_label_of_any_length_renders_with_either_renderer(tmp_path):
    """Graphviz 2.43 refuses quoted strings over 16,384 bytes: a 100 kB label's tooltip is
    cut (saying so), so the render works with Debian's dot as with graphviz-pure."""
    needs_renderer()
    x = Value(1.0, "&\\" * 50_000)  # escaping makes it longer still
    y = (x * 2.0).tanh()
    y.label = "é" * 100_000
    for graph in (render.forward_graph(y), render.backward_graph(y)):
        svg = render.render_bytes(graph, "svg").decode("utf-8")
        assert "characters; the whole label is the Value" in svg
