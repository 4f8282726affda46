"""The layer explorer: the lecture's L12–L17 on any MLP, every number the scalar engine's."""

from __future__ import annotations

import json
import math
import re
import struct

import pytest
from browser import page
from test_render import needs_renderer

from autodiff import Value, grad
from autodiff.render import style
from nn import lecture
from nn.draw import layer_explorer
from nn.module import MLP


def page_data(html: str) -> dict:
    return json.loads(re.search(r'id="data">(.*?)</script>', html, re.S).group(1))


def engine_gradients(model: MLP, x, y) -> dict[str, float]:
    """∂L/∂(every parameter) by grad() on a graph built the plain way: model(x)."""
    z = model([Value(v) for v in x])
    L = ((1 - 2 * y) * z).softplus()
    out = {}
    params = {}
    for k, layer in enumerate(model.layers[:-1], start=1):
        for j, n in enumerate(layer.neurons):
            for i, w in enumerate(n.w):
                params[f"W{k}_{i}_{j}"] = w
            params[f"c{k}_{j}"] = n.b
    last = model.layers[-1].neurons[0]
    for i, w in enumerate(last.w):
        params[f"w_{i}"] = w
    params["b"] = last.b
    for key, d in zip(params, grad(L, list(params.values()))):
        out[key] = d.data
    return out


def cells(data: dict) -> dict[str, set[str]]:
    """key -> every way the page shows it (its 4-decimal text), over all steps."""
    seen: dict[str, set[str]] = {}
    for s in data["steps"]:
        for block in s["blocks"]:
            for row in block["rows"]:
                for cell in row:
                    if "k" in cell:
                        seen.setdefault(cell["k"], set()).add(cell["x"])
    return seen


def test_every_gradient_on_the_page_is_the_engines_and_the_layer_rules_hold():
    model = MLP(2, [3, 2, 1], seed=4)
    x, y = [0.7, -1.3], 0
    data = page_data(layer_explorer(model, x, y).html)
    truth = engine_gradients(model, x, y)
    shown = cells(data)
    for key, value in truth.items():
        assert shown[key] == {repr(value)}, key  # bit for bit, as repr
    # the layer rules, recomputed from the page's own vectors, give the engine's numbers
    rules = {s["rule"]: s for s in data["steps"]}
    for k in (1, 2):
        sup = "¹²"[k - 1]
        W_step = rules[f"∇_W{sup} L = {'x' if k == 1 else 'h¹'} (f{sup} ⊙ ∇_h{sup} L)ᵀ"]
        col, row, result = W_step["blocks"]
        xs = [float(r[0]["x"]) for r in col["rows"]]
        gs = [float(c["x"]) for c in row["rows"][0]]
        for i, r in enumerate(result["rows"]):
            for j, cell in enumerate(r):
                assert float(cell["x"]) == pytest.approx(xs[i] * gs[j], rel=1e-12, abs=1e-300)
        c_step = rules[f"∇_c{sup} L = f{sup} ⊙ ∇_h{sup} L"]
        f, gh, gc = (b["rows"] for b in c_step["blocks"])
        for a, b, c in zip(f, gh, gc):
            assert float(c[0]["x"]) == pytest.approx(float(a[0]["x"]) * float(b[0]["x"]))
    claims = {s["claim"] for s in data["steps"]}
    for claim in ("L12", "L13, L17", "L16, L17", "L14, L17", "L12, L17"):
        assert claim in claims


def test_drawing_the_layers_changes_nothing():
    model = MLP(2, [3, 1], seed=0)
    z = model([1.0, 2.0])
    z.backward()
    before = [struct.pack("<dd", p.data, p.grad) for p in model.parameters()]
    layer_explorer(model, [0.5, -0.5], 1)
    assert [struct.pack("<dd", p.data, p.grad) for p in model.parameters()] == before


def test_the_lecture_network_shows_the_slides_numbers(tmp_path):
    from nn.xor import main

    assert main(["--lecture", "--out", str(tmp_path)]) == 0
    data = page_data((tmp_path / "layers.html").read_text(encoding="utf-8"))
    rules = {s["rule"]: s for s in data["steps"]}
    dz = rules["∂L/∂z = σ(u⁴)(1−2y)"]["blocks"][-1]["rows"][0][0]["s"]
    assert dz == "-0.2689"
    gh = rules["∇_h L = (∂L/∂z) w"]["blocks"][-1]["rows"]
    assert [r[0]["s"] for r in gh] == ["-0.2689", "0.5379"]  # L12: ∇_h L = σ(u⁴)(1−2y) w
    assert "∇_W L = x (f ⊙ ∇_h L)ᵀ" in rules  # L16, in the lecture's own notation


def test_argument_errors():
    with pytest.raises(TypeError, match="model must be an MLP"):
        layer_explorer("net", [1.0], 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected 2 inputs, got 1"):
        layer_explorer(MLP(2, [1]), [1.0], 0)
    with pytest.raises(ValueError, match="one linear output"):
        layer_explorer(MLP(2, [3, 2]), [1.0, 0.0], 0)
    with pytest.raises(ValueError, match="y must be the label 0 or 1"):
        layer_explorer(MLP(2, [3, 1]), [1.0, 0.0], 2)


def _in_view(pg) -> bool:
    return pg.evaluate(
        """() => { const r = document.getElementById('rule').getBoundingClientRect();
                   return r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 &&
                          r.right <= innerWidth; }"""
    )


def test_in_a_browser_each_weight_gradient_of_a_2_3_2_1_mlp_is_found_step_by_step(tmp_path):
    needs_renderer()
    model = MLP(2, [3, 2, 1], seed=4)
    x, y = [0.7, -1.3], 0
    path = layer_explorer(model, x, y).save(tmp_path / "layers.html")
    html = open(path, encoding="utf-8").read()
    assert "http" not in html.replace("http://www.w3.org", "")  # self-contained: no network
    truth = engine_gradients(model, x, y)
    found: dict[str, str] = {}
    with page(1366, 768) as pg:
        pg.goto(f"file://{path}")
        total = pg.evaluate("window.layers.steps")
        for k in range(1, total + 1):
            if k > 1:
                pg.click("#next")
            assert pg.evaluate("window.layers.step") == k
            assert _in_view(pg), k  # the equation is on screen at every step
            for key, text in pg.evaluate(
                "[...document.querySelectorAll('td.key')]"
                ".map(td => [td.dataset.key, td.textContent])"
            ):
                found[key] = text
        assert pg.is_disabled("#next")
        for key, value in truth.items():
            if key.startswith("W"):
                assert found[key] == style.number(value), key
        # from a matrix entry to the chain rule that made it: one scalar edge
        pg.evaluate("window.layers.go(1)")
        pg.keyboard.press("End")
        pg.click("td[data-key='W1_1_2']")
        text = pg.inner_text("#scalar")
        assert text.startswith(f"∂L/∂W¹₂,₃ = {style.number(truth['W1_1_2'])}, the sum of 1 edge")
        assert "∂a¹₃/∂W¹₂,₃ · ∂L/∂a¹₃ = " in text
        # a hidden value sums one edge per unit above it: ∇_h L = W ∇_u L, literally
        pg.keyboard.press("ArrowLeft")
        assert pg.evaluate("window.layers.step") == total - 1
        assert pg.errors == []


def test_in_a_browser_nan_inf_and_a_hostile_title(tmp_path):
    needs_renderer()
    model = MLP(2, [3, 1], seed=1)
    model.layers[0].neurons[1].w[1].data = math.inf
    model.layers[0].neurons[2].b.data = math.nan
    hostile = "</script><script>window.injected = 1</script> &amp; <b>"
    path = layer_explorer(model, [1.0, -0.0], 1, title=hostile).save(tmp_path / "l.html")
    with page(1366, 768) as pg:
        pg.goto(f"file://{path}")
        assert pg.inner_text("h1") == hostile  # literally
        total = pg.evaluate("window.layers.steps")
        texts = []
        for k in range(1, total + 1):
            pg.keyboard.press("ArrowRight") if k > 1 else None
            assert pg.evaluate("window.layers.step") == k
            assert _in_view(pg), k
            texts.append(pg.inner_text("#blocks"))
        joined = "\n".join(texts)
        assert "nan" in joined and "inf" in joined and "-0.0000" in joined
        assert pg.evaluate("window.injected") is None
        assert pg.errors == []


def test_in_a_browser_a_16_wide_layer_scrolls_with_every_number_in_a_tooltip(tmp_path):
    needs_renderer()
    model = MLP(3, [16, 16, 1], seed=1)
    path = layer_explorer(model, [1.0, -0.5, 2.0], 1).save(tmp_path / "wide.html")
    with page(1366, 768) as pg:
        pg.goto(f"file://{path}")
        total = pg.evaluate("window.layers.steps")
        for k in range(1, total + 1):
            pg.evaluate(f"window.layers.go({k})")
            assert _in_view(pg), k
        # the last step: ∇_W¹ L, 3×16, scrolls inside its box; the 16×16 W² before it too
        for k, n in ((total, 3 * 16), (total - 3, 16 * 16)):
            pg.evaluate(f"window.layers.go({k})")
            box = pg.evaluate(
                "(() => { const s = [...document.querySelectorAll('.scroll')].pop();"
                " return [s.scrollWidth > s.clientWidth || s.scrollHeight > s.clientHeight,"
                " [...s.querySelectorAll('td')].filter(td => td.title).length]; })()"
            )
            assert box == [True, n], (k, box)
        assert pg.errors == []


def test_the_lecture_mlp_is_the_slides_network():
    model = lecture.mlp()
    outs = [model(x).data for x in ([0, 0], [1, 0], [0, 1], [1, 1])]
    assert outs == [0.0, 1.0, 1.0, 0.0]  # L6: y = [0 1 1 0]


def test_a_model_with_its_own_forward_is_refused_naming_its_type():
    from nn.module import Layer, Neuron

    class Times3(MLP):
        def forward(self, x):
            return super().forward(x) * 3

    class Loud(Neuron):
        def forward(self, x):
            return super().forward(x) * 2

    with pytest.raises(ValueError, match="Times3 defines its own forward"):
        layer_explorer(Times3(2, [3, 1], seed=0), [1.0, 0.5], 1)
    model = MLP(2, [3, 1], seed=0)
    model.layers[0].neurons[1] = Loud(2, seed=1)
    with pytest.raises(ValueError, match="Loud defines its own forward"):
        layer_explorer(model, [1.0, 0.5], 1)
    assert issubclass(Loud, Neuron) and issubclass(Layer, object)


def test_the_page_shows_the_loss_the_model_computes():
    import re

    from autodiff import Value

    model = MLP(2, [3, 3, 1], seed=4)
    page = layer_explorer(model, [1.0, -0.5], 1).html
    z = model([1.0, -0.5])
    loss = (z * -1.0).softplus()
    shown = {float(m) for m in re.findall(r"-?\d+\.\d+", page)}
    assert any(abs(v - loss.data) < 5e-4 for v in shown)
    assert isinstance(loss, Value)


def test_the_default_title_is_one_a_person_would_write():
    page = layer_explorer(MLP(2, [3, 3, 1], seed=0), [1.0, 0.5], 1)
    assert page_data(page.html)["title"] == "back-propagation, layer by layer: MLP 2-3-3-1"


# Every text of the visible drawing against every other (and against the nodes' shapes),
# unless both belong to one node, edge or the title: a node's name and number are two
# lines of one box, whose glyph boxes may touch.
_OVERLAPS = """() => {
  const out = [];
  const svg = [...document.querySelectorAll('#network svg')].find(
    (s) => s.style.display !== 'none');
  const box = (e) => e.getBoundingClientRect();
  const items = [...svg.querySelectorAll('text')].map(
    (t) => [t.textContent, box(t), t.closest('g.node, g.edge, g.graph')]);
  for (const g of svg.querySelectorAll('g.node'))
    items.push(['node ' + g.querySelector('title').textContent,
                box(g.querySelector('path, polygon, ellipse')), g]);
  for (let i = 0; i < items.length; i++)
    for (let j = i + 1; j < items.length; j++) {
      if (items[i][2] === items[j][2]) continue;
      const a = items[i][1], b = items[j][1];
      if (a.left < b.right - 0.5 && b.left < a.right - 0.5 &&
          a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5)
        out.push(items[i][0] + ' over ' + items[j][0]);
    }
  const title = [...svg.querySelectorAll('g.graph > text')].map((t) => t.textContent);
  return [svg.dataset.kind, title.join(' '), out];
}"""


def test_in_a_browser_the_drawing_shows_values_then_gradients_and_no_label_overlaps(tmp_path):
    """The forward steps draw the values (and weights), the backward steps the gradients;
    no label lies over another or over a node, on MLPs of up to 4 layers of up to 8 units
    (edge labels are written up to 8 weights a layer)."""
    needs_renderer()
    shapes = [(2, [3, 3, 1]), (8, [8, 8, 8, 1]), (3, [1, 8, 1]), (8, [2, 8, 2, 1])]
    shapes.append((1, [7, 5, 3, 1]))
    inputs = [1.0, 0.0, -0.5, 0.25, 2.0, 0.0, 1.0, -1.0]
    with page(1366, 768) as pg:
        for nin, nouts in shapes:
            path = str(tmp_path / f"{nin}-{nouts}.html")
            layer_explorer(MLP(nin, nouts, seed=0), inputs[:nin], 1, path)
            pg.goto(f"file://{path}")
            kind, title, overlaps = pg.evaluate(_OVERLAPS)
            assert (kind, overlaps) == ("forward", []), (nin, nouts)
            assert title.startswith("forward pass") and "its output, an edge its weight" in title
            pg.keyboard.press("End")
            kind, title, overlaps = pg.evaluate(_OVERLAPS)
            assert (kind, overlaps) == ("backward", []), (nin, nouts)
            assert title.startswith("gradients of L")
        # the check sees an overlap: a copy of a label on top of another is reported
        pg.evaluate(
            """() => { const svg = [...document.querySelectorAll('#network svg')].find(
                 (s) => s.style.display !== 'none');
               const t = svg.querySelector('g.node text'); const g = t.closest('g.node');
               const copy = g.cloneNode(true); copy.querySelector('title').textContent = 'copy';
               g.parentNode.appendChild(copy); }"""
        )
        assert pg.evaluate(_OVERLAPS)[2] != []
        assert pg.errors == []
