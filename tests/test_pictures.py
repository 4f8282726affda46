"""Every picture tells the truth: drawing changes nothing, figures claim only what holds,
pages survive any graph and any label, and the equation stays on screen."""

from __future__ import annotations

import json
import math
import re
import struct

import pytest
from browser import page
from test_render import lecture_loss, needs_renderer

from autodiff import Value, grad, topological_order
from autodiff.render import (
    DEFAULT_MAX_NODES,
    WHOLE_UP_TO,
    backward_graph,
    explorer,
    forward_graph,
    render_bytes,
    style,
)
from nn import plots
from nn.data import xor
from nn.draw import layer_explorer, network_graph
from nn.module import MLP


def bits(x: float) -> bytes:
    """A float's exact bits: tells −0.0 from 0.0 and one NaN from another."""
    return struct.pack("<d", x)


def snapshot(values: list[Value]) -> list[tuple[bytes, bytes, str]]:
    return [(bits(v._data), bits(v.grad), v.label) for v in values]


def sample_loss(model: MLP, x: list[float], y: int) -> Value:
    """One sample's loss as the main job builds it: L = ζ((1−2y)z)."""
    z = model([Value(x[0], "x₁"), Value(x[1], "x₂")])
    return ((1 - 2 * y) * z).softplus()  # type: ignore[operator]


# -- drawing changes nothing ---------------------------------------------------------------


def test_every_drawing_function_leaves_every_data_and_grad_bit_identical(tmp_path):
    model = MLP(2, [3, 1], seed=0)
    L = sample_loss(model, [1.0, 0.0], 1)
    L.backward()
    L.backward()  # leaves hold 2×: a state no picture may show, or change
    odd = [math.nan, -0.0, math.inf, 1e-300]
    for v, g in zip(topological_order(L)[1:], odd * 20):
        v.grad = g  # whatever .grad holds must survive drawing
    graph = topological_order(L)
    params = model.parameters()
    before = snapshot(graph), snapshot(params)

    xs, ys = xor()
    hs = [[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [0.5, 0.5, 0.5], [2.0, 2.0, 0.0]]
    line = (
        [p.data for p in model.layers[-1].neurons[0].w],
        model.layers[-1].neurons[0].b.data,
        0.0,
    )

    def prob(p: list[float]) -> float:
        return sample_loss(model, p, 1).data

    drawings = {
        "forward_graph": lambda: forward_graph(L).source,
        "backward_graph": lambda: backward_graph(L).source,
        "explorer": lambda: explorer(L).html,
        "network forward": lambda: network_graph(model, [1.0, 0.0]).source,
        "network backward": lambda: network_graph(model, [1.0, 0.0], 1, kind="backward").source,
        "layer_explorer": lambda: layer_explorer(model, [1.0, 0.0], 1).html,
        "decision_boundary": lambda: plots.decision_boundary(prob, xs, ys, resolution=10),
        "feature_space": lambda: plots.feature_space(xs, hs, ys, line=line),
        "training_animation": lambda: plots.training_animation(
            [(1, 0.5, prob, hs, line), (2, 0.4, prob, hs, line)], xs, ys, tmp_path / "t.gif"
        ),
    }
    for name, draw in drawings.items():
        draw()
        assert (snapshot(graph), snapshot(params)) == before, name


def test_network_graph_between_backward_and_step_does_not_change_the_update():
    model = MLP(2, [4, 1], seed=1)
    sample_loss(model, [1.0, 1.0], 0).backward()
    grads = [bits(p.grad) for p in model.parameters()]
    network_graph(model, [1.0, 0.0], 1, kind="backward")
    assert [bits(p.grad) for p in model.parameters()] == grads


@pytest.mark.parametrize(
    ("args", "kw", "error", "match"),
    [
        ((object(), [0.0, 1.0]), {}, TypeError, "model must be an MLP, got object"),
        ((MLP(2, [2, 1]), [0.0, 1.0]), {"kind": "side"}, ValueError, "'forward' or 'backward'"),
        ((MLP(2, [2, 1]), [0.0]), {}, ValueError, "expected 2 inputs, got 1"),
        ((MLP(2, [2, 2]), [0.0, 1.0]), {}, ValueError, "one output"),
        ((MLP(2, [2, 1]), [0.0, 1.0]), {"kind": "backward", "y": 2}, ValueError, "0 or 1, got 2"),
    ],
)
def test_network_graph_refuses_what_it_cannot_draw_truly(args, kw, error, match):
    with pytest.raises(error, match=f"network_graph: .*{match}"):
        network_graph(*args, **kw)


def test_network_graph_shows_the_gradients_of_its_own_sample():
    model = MLP(2, [2, 1], seed=3)
    src = network_graph(model, [1.0, 0.0], 1, kind="backward").source
    L = sample_loss(model, [1.0, 0.0], 1)
    for p, d in zip(model.parameters(), grad(L, model.parameters())):
        if p in [w for n in model.layers[0].neurons for w in n.w]:
            assert f"∂L/∂w = {style.number(d.data)}" in src


# -- figures claim only what holds -----------------------------------------------------------


def _texts(fig) -> list[str]:
    out = []
    for ax in fig.axes:
        out.append(ax.get_title())
        out += [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return out


def test_feature_space_title_says_how_many_samples_are_on_the_wrong_side():
    xs, ys = xor()
    # the lecture's features (L7): separated by wᵀh + b = ½
    hs = [[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 1.0]]
    fig = plots.feature_space(xs, hs, ys, line=([1.0, -2.0], 0.0, 0.5))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "input space x: not linearly separable",
        "features h = φ(x): separated by the output layer",
    ]
    # one hidden unit that died for three samples: they land on one point
    fig = plots.feature_space(xs, [[0.0], [0.0], [0.0], [1.7]], ys, line=([-3.0], 0.7, 0.0))
    texts = _texts(fig)
    assert "features h = φ(x): 1 of 4 on the wrong side of wᵀh + b = 0" in texts
    assert "y = 0 and y = 1 on one point" in texts  # the split marker, in the legend
    named = [t for t in texts if "(0, 0): y = 0" in t]
    assert named == ["(0, 0): y = 0\n(1, 0): y = 1\n(0, 1): y = 1"]  # every sample named
    # a separable input space is called so
    fig = plots.feature_space(xs, hs, [0, 0, 1, 1], line=([1.0, -2.0], 0.0, 0.5))
    assert fig.axes[0].get_title() == "input space x: linearly separable"
    assert "wrong side" in fig.axes[1].get_title()


def test_the_main_job_with_one_hidden_unit_does_not_claim_separation(tmp_path, monkeypatch):
    from nn import xor as job

    seen = []
    real = job.feature_space

    def spy(*args, **kwargs):
        fig = real(*args, **kwargs)
        seen.append(_texts(fig))
        return fig

    monkeypatch.setattr(job, "feature_space", spy)
    assert job.main(["--hidden", "1", "--out", str(tmp_path)]) == 0
    (texts,) = seen
    assert any("on the wrong side" in t for t in texts), texts
    assert not any("separated" in t for t in texts)


def test_the_animation_keeps_one_colour_scale_and_fixed_axes_and_shows_progress(
    tmp_path, monkeypatch, capsys
):
    xs, ys = xor()
    calls = []
    real_db, real_fs = plots.decision_boundary, plots.feature_space

    def db(*args, **kwargs):
        calls.append(("vrange", kwargs.get("vrange")))
        return real_db(*args, **kwargs)

    def fs(*args, **kwargs):
        fig = real_fs(*args, **kwargs)
        ax = kwargs["axes"]
        calls.append(("limits", (ax.get_xlim(), ax.get_ylim())))
        return fig

    monkeypatch.setattr(plots, "decision_boundary", db)
    monkeypatch.setattr(plots, "feature_space", fs)
    frames = [
        (
            k,
            1.0 / k,
            lambda p, k=k: min(1.0, k * p[0] / 4),
            [[0.0, k], [k, 0.0], [1.0, 1.0], [2.0, 0.0]],
            ([1.0, -1.0], 0.0, 0.0),
        )
        for k in (1, 2, 3)
    ]
    plots.training_animation(frames, xs, ys, tmp_path / "t.gif")
    assert [v for k, v in calls if k == "vrange"] == [(0.0, 1.0)] * 3
    limits = [v for k, v in calls if k == "limits"]
    assert len(limits) == 3 and limits[0] == limits[1] == limits[2]
    (x0, x1), (y0, y1) = limits[0]
    assert x0 < 0.0 and x1 > 3.0 and y0 < 0.0 and y1 > 3.0  # every frame's points inside
    assert "animation" in capsys.readouterr().err  # the progress bar


# -- defaults draw the lecture whole --------------------------------------------------------


def test_default_arguments_draw_the_lecture_whole_and_cut_bigger_graphs():
    L = lecture_loss()
    n = len(topological_order(L))
    assert n == 28 <= WHOLE_UP_TO
    for src in (forward_graph(L).source, backward_graph(L).source):
        assert "not shown" not in src
        assert len(re.findall(r"^\tv\d+ \[", src, re.M)) == n
        for name in ("x₁", "x₂", "W1,1", "W2,2"):
            assert f'"{name}\n' in src
    chain = Value(0.5)
    for _ in range(WHOLE_UP_TO):  # 61 Values with its constants? more: 2 per step
        chain = chain * 1.0001
    src = forward_graph(chain).source
    assert "not shown" in src
    assert len(re.findall(r"^\tv\d+ \[", src, re.M)) <= DEFAULT_MAX_NODES


# -- pages that survive any graph -------------------------------------------------------------

HOSTILE = [
    "</script><script>window.injected = 1</script>",
    "<!--<script>",
    "&amp; &lt;b&gt; &#60;",
    "\" ' ` ${x} {{JS}} \\ \\n",
    "line\u2028sep\u2029para\x00nul\ttab",
    '<img src=x onerror="window.injected = 2">',
    "]]> <![CDATA[ x",
]


def hostile_graph() -> tuple[Value, list[Value]]:
    """A graph with NaN, ±inf and −0.0 in its data, NaN and inf in its gradients, and
    hostile labels (a gradient is never −0.0: backward() sums onto +0.0)."""
    values = [1.0, -0.0, 2.0, 3.0, 0.5, math.nan, 4.0]
    leaves = [Value(v, label) for v, label in zip(values, HOSTILE)]
    a, b, c, d, e, f, g = leaves
    inf = Value(math.inf, "∞")
    y = (a * inf) + (b * f) + (c * -0.0) + d.exp() * e + (g * -1.0).relu()
    y.label = "x" * 100_000  # 100 kB
    return y, [*leaves, inf]


def test_hostile_labels_and_special_numbers_in_the_svg_renders():
    needs_renderer()
    y, _ = hostile_graph()
    for graph in (forward_graph(y), backward_graph(y)):
        svg = render_bytes(graph).decode()
        with page() as pg:
            pg.set_content("<html><body>" + svg[svg.index("<svg") :] + "</body></html>")
            text = pg.inner_text("body")
            assert pg.evaluate("window.injected") is None
            for label in ("&amp; &lt;b&gt; &#60;", "<!--<script>", "]]> <![CDATA[ x"):
                assert label in text, label
            assert style.shortened("x" * 100_000) in text  # shortened, with a visible …
            assert "x" * 100 not in text
            tips = pg.evaluate(
                "[...document.querySelectorAll('a')].map(a => a.getAttribute('xlink:title') ||"
                " a.getAttribute('title') || '')"
            )
            # the label in a tooltip: cut at TOOLTIP_CHARS (Graphviz 2.43 refuses quoted
            # strings over 16 KiB), saying how long it is and where the whole of it is
            assert style.tooltip_text("x" * 100_000) in tips
            assert "(100,000 characters; the whole label is the Value's .label)" in tips[-1]
            assert pg.errors == []


def test_the_explorer_survives_nan_inf_negative_zero_and_any_label(tmp_path):
    needs_renderer()
    y, _ = hostile_graph()
    path = explorer(y, tmp_path / "hostile.html").save(tmp_path / "hostile.html")
    html = open(path, encoding="utf-8").read()
    data = json.loads(re.search(r'id="data">(.*?)</script>', html, re.S).group(1))
    assert data["nodes"]  # valid JSON, NaN and inf included
    with page(1366, 768) as pg:
        pg.goto(f"file://{path}")
        total = pg.evaluate("window.explorer.steps")
        pg.keyboard.press("End")
        assert pg.evaluate("window.explorer.step") == total  # the stepper reaches its end
        assert "Done" in pg.inner_text("#panel")
        text = pg.inner_text("#graph")
        for label in ("&amp; &lt;b&gt; &#60;", "<!--<script>", "]]> <![CDATA[ x"):
            assert label in text, label
        shown = [pg.evaluate(f"window.explorer.grad('v{i}')") for i in range(len(data["nodes"]))]
        assert "grad nan" in shown and "grad inf" in shown
        assert "data inf" in text and "data nan" in text and "data -0.0000" in text
        # the steps write the labels literally too
        steps = []
        for k in range(total + 1):
            pg.evaluate(f"window.explorer.go({k})")
            steps.append(pg.inner_text("#panel"))
        joined = "\n".join(steps)
        assert style.shortened(HOSTILE[0]) in joined and "<!--<script>" in joined
        tips = pg.evaluate(
            "[...document.querySelectorAll('#graph a')].map(a => a.getAttribute('xlink:title'))"
        )
        assert HOSTILE[0] in tips  # whole labels as tooltips; a very long one cut there
        assert style.tooltip_text("x" * 100_000) in tips
        assert pg.evaluate("window.injected") is None  # no injected script ran
        assert pg.errors == []


# -- fits the screen, equation in view -----------------------------------------------------


def _in_view(pg) -> dict:
    return pg.evaluate(
        """() => {
          const inside = (r, v) => r.left >= v.left - 1 && r.right <= v.right + 1 &&
                                   r.top >= v.top - 1 && r.bottom <= v.bottom + 1;
          const screen = {left: 0, top: 0, right: innerWidth, bottom: innerHeight};
          const panel = document.getElementById('panel').getBoundingClientRect();
          const graph = document.getElementById('graph').getBoundingClientRect();
          const cur = document.querySelector('.node.current');
          const node = cur ? cur.getBoundingClientRect() : null;
          return {panel: inside(panel, screen),
                  node: node === null || (inside(node, graph) && inside(node, screen))};
        }"""
    )


@pytest.mark.parametrize("which", ["mlp", "lecture"])
def test_at_1366x768_the_equation_and_the_current_node_are_always_in_view(tmp_path, which):
    needs_renderer()
    if which == "mlp":
        root = sample_loss(MLP(2, [4, 1], seed=0), [1.0, 0.0], 1)
        assert len(topological_order(root)) >= 30
    else:
        root = lecture_loss()
    path = explorer(root).save(tmp_path / "page.html")
    with page(1366, 768) as pg:
        pg.goto(f"file://{path}")
        # at the start, the root is in view
        box = pg.evaluate(
            "(() => { const r = [...document.querySelectorAll('g.node')].find("
            "g => g.querySelector('title').textContent === 'v0').getBoundingClientRect();"
            " const v = document.getElementById('graph').getBoundingClientRect();"
            " return r.left >= v.left && r.right <= v.right && r.top >= v.top &&"
            " r.bottom <= v.bottom; })()"
        )
        assert box, "the root is not in view at the start"
        total = pg.evaluate("window.explorer.steps")
        for k in range(1, total + 1):
            pg.click("#next")
            seen = _in_view(pg)
            assert seen == {"panel": True, "node": True}, (k, seen)
        # "fit" shows the whole graph inside the window
        pg.click("#fit")
        whole = pg.evaluate(
            "(() => { const s = document.querySelector('#graph svg').getBoundingClientRect();"
            " return s.right <= innerWidth && s.bottom <= innerHeight; })()"
        )
        assert whole
        assert pg.errors == []


def test_the_explorer_writes_each_local_derivative_as_a_formula_with_its_number():
    L = lecture_loss()
    page_ = explorer(L)
    steps = json.loads(re.search(r'id="data">(.*?)</script>', page_.html, re.S).group(1))["steps"]
    first = next(s for s in steps if s["kind"] == "backward")
    lines = first["text"].splitlines()
    # the root's own edge: the local derivative is written with the operation, never as
    # ∂L/∂u⁴, which is the gradient
    assert lines[0] == "∂L/∂u⁴ += ∂ζ(u⁴)/∂u⁴ · ∂L/∂L"
    assert "σ(u⁴) = 0.2689" in lines[1]
    texts = [s["text"] for s in steps]
    assert any("∂u⁴/∂(1−2y)" in t for t in texts)  # compound labels get parentheses
    assert any("1[u²₁ > 0]" in t for t in texts)  # relu's derivative, the step function
    # unnamed values are numbered in the order they were computed
    forward = [s["text"] for s in steps if s["kind"] == "forward"]
    unnamed = [re.match(r"v([₀-₉]+) =", t) for t in forward]
    numbers = [m.group(1) for m in unnamed if m]
    assert numbers == sorted(
        numbers, key=lambda d: int(d.translate(str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")))
    )
    assert numbers[0] == "₁"


def test_confusion_counts_are_checked_cell_by_cell_and_drawn_as_counted():
    from nn.plots import confusion_counts, confusion_matrix

    true = [0, 0, 1, 2, 2, 2, 1]
    pred = [0, 1, 1, 2, 0, 2, 2]
    counts = confusion_counts(true, pred, 3)
    assert counts == [[1, 1, 0], [0, 1, 1], [1, 0, 2]]  # rows: true, columns: predicted
    fig = confusion_matrix(true, pred, classes=3)
    drawn = fig.axes[0].images[0].get_array().tolist()
    assert drawn == counts  # not transposed
    texts = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
        for t in fig.axes[0].texts
    }
    assert texts == {(i, j): str(c) for i, row in enumerate(counts) for j, c in enumerate(row) if c}
    assert "4 of 7 right (57.1%)" in fig.axes[0].get_title()


@pytest.mark.parametrize(
    ("true", "pred", "match"),
    [
        ([0, 1, 2, 3], [0, 1], r"4 true labels but 2 predictions"),
        ([0, 1], [0, -1], r"pred\[1\] = -1 is not a class index"),
        ([0, 10], [0, 1], r"true\[1\] = 10 is not a class index"),
        ([0, 1.5], [0, 1], r"true\[1\] = 1.5 is not a class index"),
        ([True], [0], r"true\[0\] = True is not a class index"),
        ([], [], "no samples"),
    ],
)
def test_confusion_matrix_refuses_what_it_cannot_count(true, pred, match):
    from nn.plots import confusion_matrix

    with pytest.raises(ValueError, match=match):
        confusion_matrix(true, pred, classes=10)


def test_network_edges_are_coloured_as_the_legend_says_zero_grey():
    """blue > 0, red < 0, grey = 0 (dashed: NaN): a zero weight or gradient is not blue."""
    import re

    from autodiff.render import render_bytes
    from nn.draw import network_graph
    from nn.module import MLP

    model = MLP(2, [3, 1], seed=0)
    first = model.layers[0].neurons
    first[0].w[0].data, first[1].w[1].data, first[2].w[0].data = 0.0, -0.0, math.nan
    svg = render_bytes(network_graph(model, [1.0, -1.0], 1, kind="forward"), "svg").decode()
    assert "blue &gt; 0, red &lt; 0, grey = 0 (dashed: not a number)" in svg
    edges = re.findall(
        r'xlink:title="w = ([^"]*)">\s*<path fill="none" stroke="(#[0-9a-f]+)"([^>]*)', svg
    )
    assert len(edges) == 9  # 2×3 + 3×1
    for shown, colour, rest in edges:
        x = float(shown.replace("&#45;", "-"))
        want = "#1f77b4" if x > 0 else "#d62728" if x < 0 else "#8c8c8c"
        assert colour == want, (shown, colour)
        assert ("stroke-dasharray" in rest) == (x != x), shown
    assert sum(c == "#8c8c8c" for _, c, _ in edges) == 3


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (1920, 1080)])
def test_the_explorer_panel_shows_each_steps_whole_text(tmp_path, width, height):
    """At every step of the lecture's explorer, the panel is as tall as its text (up to 40%
    of the window): nothing is cut, the last step's closing line included."""
    import pathlib

    from browser import page

    from nn import lecture

    needs_renderer()
    W, c, w, b = lecture.parameters()
    L = lecture.forward([1.0, 0.0], 1, W, c, w, b).L
    path = explorer(L).save(tmp_path / "backprop.html")
    with page(width, height) as pg:
        pg.goto(pathlib.Path(path).resolve().as_uri())
        total = pg.evaluate("window.explorer.steps")
        for k in range(total + 1):
            pg.evaluate(f"window.explorer.go({k})")
            hidden = pg.evaluate(
                "(() => {const p = document.getElementById('panel');"
                " return p.scrollHeight - p.clientHeight})()"
            )
            assert hidden <= 1, (k, hidden)
        assert "Done: these are the gradients backward() computes." in pg.inner_text("#panel")
        assert pg.errors == []


def test_the_decision_boundary_is_blue_for_class_1_red_for_class_0_grey_at_the_boundary():
    """The sign convention on the input plane: P(y=1|x) above ½ blue, below red, ½ grey
    (the key says so), and the samples in their class's colour: ● y = 1 blue, ■ y = 0 red,
    as on the training page."""
    fig = plots.decision_boundary(
        lambda p: 0.0 if p[0] < -0.1 else 1.0 if p[0] > 0.1 else 0.5, [[0.0, 0.0]], [1]
    )
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    ax = fig.axes[0]
    pixels = bytes(canvas.buffer_rgba())
    width, height = canvas.get_width_height()

    def colour_at(x: float, y: float) -> tuple[int, int, int]:
        px, py = ax.transData.transform((x, y))
        i = ((height - 1 - int(py)) * width + int(px)) * 4  # rows from the top
        return pixels[i], pixels[i + 1], pixels[i + 2]

    r, g, b = colour_at(-0.4, -0.4)
    assert r > b + 60, (r, g, b)  # P = 0: red
    r, g, b = colour_at(0.4, -0.4)
    assert b > r + 60, (r, g, b)  # P = 1: blue
    r, g, b = colour_at(0.0, -0.4)
    assert max(r, g, b) - min(r, g, b) < 30, (r, g, b)  # P = ½: grey
    assert "grey: 0.5, the boundary" in fig.axes[1].get_ylabel()
    marks = [c for c in ax.collections if c.get_label() == "y = 1"]
    assert marks and tuple(marks[0].get_facecolor()[0][:3]) == pytest.approx(
        (0x1F / 255, 0x77 / 255, 0xB4 / 255)
    )
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "P(y=1|x) = ½"  # the black line has its entry
