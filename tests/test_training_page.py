"""The training page (nn.draw.TrainingRecorder, watch_training, the XOR job's training.html).

Its numbers are read back from the written file and compared with a model trained
independently to the same step: the weights and the loss bit for bit, the maps to
float32 (the page keeps them as float32s: 7 digits, more than a colour shows; the
comparison is exact after rounding the engine's float64 to float32 once).
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct

import pytest

from autodiff import no_grad
from nn.data import moons
from nn.draw import TrainingRecorder, recorded_steps, watch_training
from nn.losses import logistic
from nn.module import MLP
from nn.optim import Adam
from tests.browser import page


def _data(path) -> dict:
    """The page's numbers, as the page's script reads them."""
    text = open(path, encoding="utf-8").read()
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    assert m is not None
    return json.loads(m.group(1))


def _f32(b64: str) -> list[float]:
    raw = base64.b64decode(b64)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _as_f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _number(x: float | str) -> float:
    return float(x)  # 'nan', 'inf', '-inf' as Python writes them


def test_recorded_steps_are_about_twenty_evenly_spaced_first_and_last_included():
    assert recorded_steps(200) == list(range(0, 201, 10))
    assert recorded_steps(1) == [0, 1]
    assert recorded_steps(45) == [*range(0, 45, 2), 45]  # the last always, once
    assert len(recorded_steps(1000)) >= 21


def test_a_recorded_step_holds_the_numbers_of_the_model_at_that_step(tmp_path):
    xs, ys = moons(16, noise=0.2, seed=3)
    path = tmp_path / "t.html"
    watch_training(
        MLP(2, [4, 3, 1], seed=2), xs, ys, path, steps=30, lr=0.05, frames=10, resolution=6
    )
    data = _data(path)
    steps = [s["step"] for s in data["snapshots"]]
    assert steps == recorded_steps(30, 10) and steps[0] == 0 and steps[-1] == 30

    # the same training, independently, stopped at a recorded step in the middle
    k = steps[len(steps) // 2]
    twin = MLP(2, [4, 3, 1], seed=2)
    opt = Adam(twin.parameters(), lr=0.05)
    for _ in range(k):
        loss = logistic([twin(x) for x in xs], ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
    snap = data["snapshots"][steps.index(k)]
    for layer, ws, bs in zip(twin.layers, snap["weights"], snap["biases"]):
        assert [[w.data for w in n.w] for n in layer.neurons] == ws  # bit for bit
        assert [n.b.data for n in layer.neurons] == bs
    with no_grad():
        assert snap["loss"] == logistic([twin(x) for x in xs], ys).data
        assert snap["lossText"] == f"{snap['loss']:.4g}"
        # every unit's map: the engine's output at each grid point (cell centres, top row first)
        (x0, x1), (y0, y1) = data["bounds"]
        r = data["resolution"]
        grid = [
            [x0 + (i + 0.5) * (x1 - x0) / r, y1 - (j + 0.5) * (y1 - y0) / r]
            for j in range(r)
            for i in range(r)
        ]
        hidden = [twin.layers[0], twin.layers[1]]
        for p_index, p in enumerate(grid):
            h1 = hidden[0](p)
            h2 = hidden[1](h1)
            for j, v in enumerate(h1):
                assert _f32(snap["maps"][1][j])[p_index] == _as_f32(v.data)
            for j, v in enumerate(h2):
                assert _f32(snap["maps"][2][j])[p_index] == _as_f32(v.data)
            assert _f32(snap["output"])[p_index] == _as_f32(twin(p).sigmoid().data)
        # and at the samples, as float64
        for x, outs, prob in zip(xs, snap["samples"], snap["sampleP"]):
            assert outs[1] == [v.data for v in hidden[0](x)]
            assert outs[3] == [twin(x).data] and prob == twin(x).sigmoid().data
    # the loss curve: every step's loss, the recorded ones the snapshots' own
    curve = dict(data["curve"])
    assert sorted(curve) == list(range(31))
    assert all(curve[s["step"]] == s["loss"] for s in data["snapshots"])


def test_the_recorder_refuses_what_it_cannot_draw():
    xs, ys = [[0.0, 1.0], [1.0, 0.0]], [0, 1]
    with pytest.raises(ValueError, match="2 inputs and 1 output; got 3 inputs"):
        TrainingRecorder(MLP(3, [2, 1]), [[0, 0, 0]], [0])
    with pytest.raises(ValueError, match="got 2 inputs and 2 outputs"):
        TrainingRecorder(MLP(2, [2, 2]), xs, ys)

    class Twice(MLP):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(ValueError, match="TrainingRecorder: Twice defines its own forward"):
        TrainingRecorder(Twice(2, [2, 1]), xs, ys)
    with pytest.raises(TypeError, match="expected an MLP"):
        TrainingRecorder(lambda x: x, xs, ys)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        TrainingRecorder(MLP(2, [2, 1]), xs, [0, 2])
    with pytest.raises(ValueError, match="as many labels as samples"):
        TrainingRecorder(MLP(2, [2, 1]), xs, [0])
    with pytest.raises(ValueError, match=r"resolution must be an int in 2\.\.128"):
        TrainingRecorder(MLP(2, [2, 1]), xs, ys, resolution=1)
    with pytest.raises(ValueError, match="bounds must be finite"):
        TrainingRecorder(MLP(2, [2, 1]), xs, ys, bounds=((0, 1), (1, 1)))
    r = TrainingRecorder(MLP(2, [2, 1]), xs, ys)
    with pytest.raises(ValueError, match="nothing recorded yet"):
        r.page()
    r.record(3)
    with pytest.raises(ValueError, match="step 3 comes after step 3"):
        r.record(3)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        watch_training(MLP(2, [2, 1]), xs, ys, steps=0)


def _nan_page(tmp_path) -> str:
    """A page of a model with a NaN weight and an infinite one: drawn, not hidden."""
    model = MLP(2, [3, 1], seed=0)
    r = TrainingRecorder(model, [[0.0, 0.0], [1.0, 1.0]], [0, 1], resolution=8)
    r.record(0)
    model.layers[0].neurons[0].w[0].data = math.nan
    model.layers[1].neurons[0].w[1].data = math.inf
    r.record(1)
    path = str(tmp_path / "nan.html")
    r.save(path, title='a </script><b>title</b> & "quotes"')
    snap = _data(path)["snapshots"][1]
    assert snap["loss"] == "nan" and snap["lossText"] == "nan"
    assert snap["weights"][0][0][0] == "nan" and snap["weights"][1][0][1] == "inf"
    assert math.isnan(_number(snap["samples"][1][1][0]))
    return path


def _geometry(pg) -> dict:
    return pg.evaluate(
        """() => {
      const box = (e) => { const r = e.getBoundingClientRect();
        return [r.left, r.top, r.right, r.bottom]; };
      const units = [...document.querySelectorAll('.unit')].map(box);
      const panel = document.getElementById('panel');
      return {
        units, network: box(document.getElementById('network')),
        panel: box(panel), panelCut: panel.scrollHeight > panel.clientHeight + 1,
        keys: box(document.getElementById('keys')),
        curve: box(document.getElementById('curve')),
        output: box(document.getElementById('outputBox')),
        step: document.getElementById('step').textContent,
        loss: document.getElementById('loss').textContent,
        panelText: panel.textContent,
        edges: [...document.querySelectorAll('svg.edges line')].map(
          (l) => [l.getAttribute('stroke'), l.firstChild.textContent]),
        h1: document.querySelector('h1').textContent,
      };
    }"""
    )


def _overlap(a, b) -> bool:
    return a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_the_xor_jobs_page_in_chromium_shows_the_printed_losses_and_fits_the_window(
    xor_job, tmp_path, size
):
    folder, stdout, _, status = xor_job
    assert status == 0
    first, last = re.search(r"loss (\S+) -> (\S+)", stdout).groups()
    path = folder / "xor-out" / "training.html"
    data = _data(path)
    assert len(data["snapshots"]) >= 21  # 20 steps apart, the first and the last included
    html = path.read_text(encoding="utf-8")
    assert "http" not in html.replace("http://www.w3.org", "")  # self-contained: no network
    width, height = size
    with page(width, height) as pg:
        pg.goto(path.as_uri())
        g = _geometry(pg)
        assert g["loss"] == f"loss {first}" and g["step"].startswith("step 0 of 200")
        pg.keyboard.press("End")
        g = _geometry(pg)
        assert g["loss"] == f"loss {last}" and g["step"].startswith("step 200 of 200")
        pg.keyboard.press("ArrowLeft")
        assert _geometry(pg)["step"].startswith("step 190 of 200")
        # the slider moves through the same steps
        pg.locator("#slider").fill("3")
        g = _geometry(pg)
        snap = data["snapshots"][3]
        assert (
            g["step"].startswith(f"step {snap['step']} of")
            and g["loss"] == f"loss {snap['lossText']}"
        )
        # edges coloured by the sign of the weight the data holds, its name and number on hover
        first_edge = snap["weights"][0][0][0]  # W₁,₁: x₁ to h₁
        colour = {True: "#1f77b4", False: "#d62728"}[first_edge > 0]
        assert g["edges"][0][0] == colour and g["edges"][0][1].startswith("W₁,₁ = ")
        # everything on screen, nothing over anything else, the panel's text whole
        for name in ("panel", "keys", "curve", "output", "network"):
            left, top, right, bottom = g[name]
            assert 0 <= left and right <= width and 0 <= top and bottom <= height, name
        assert not g["panelCut"]
        units = g["units"]
        assert len(units) == 2 + 16 + 1
        assert not any(_overlap(a, b) for i, a in enumerate(units) for b in units[i + 1 :])
        n = g["network"]
        assert all(n[0] <= u[0] and u[2] <= n[2] and n[1] <= u[1] and u[3] <= n[3] for u in units)
        for a, b in [
            ("network", "output"),
            ("panel", "curve"),
            ("panel", "keys"),
            ("network", "panel"),
        ]:
            assert not _overlap(g[a], g[b]), (a, b)
        # hovering a unit shows its numbers, in the lecture's names
        pg.hover('[data-unit="1,2"]')
        text = _geometry(pg)["panelText"]
        w13 = snap["weights"][0][2][0]
        assert text.startswith("h₃ = relu(W₁,₃·x₁ + W₂,₃·x₂ + c₃)")
        assert f"W₁,₃ = {f'{w13:.4g}'.replace('-', '−')}" in text
        assert pg.errors == []


def test_a_page_of_nan_and_inf_and_any_title_loads_and_says_so(tmp_path):
    path = _nan_page(tmp_path)
    with page(1366, 768) as pg:
        pg.goto("file://" + path)
        pg.keyboard.press("End")
        g = _geometry(pg)
        assert g["loss"] == "loss nan"
        assert g["h1"] == 'a </script><b>title</b> & "quotes"'
        assert next(e for e in g["edges"] if e[1].endswith("= nan"))[0] == "#8c8c8c"
        assert pg.errors == []


def test_an_infinite_parameter_is_kept_as_such_in_strict_json():
    # the page's JSON has no NaN or Infinity literal (strict JSON): it names them
    model = MLP(2, [1, 1], seed=0)
    model.layers[0].neurons[0].b.data = -math.inf
    r = TrainingRecorder(model, [[0.0, 0.0]], [1], resolution=2)
    r.record(0)
    snap = r.snapshots[0]
    assert snap["biases"][0] == ["-inf"]
    assert snap["samples"][0][1] == [0.0]  # relu(-inf) = 0, the engine's number
    text = re.search(r'id="data">(.*?)</script>', r.page().html, re.S).group(1)

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    assert json.loads(text, parse_constant=refuse)["snapshots"][0]["biases"] == [["-inf"], [0.0]]


def test_recording_changes_nothing_it_draws():
    """The recorder only reads: every parameter's .data and .grad (bits) are as they were,
    a NaN among them included, and the page of an odd label is still whole."""
    model = MLP(2, [3, 1], seed=0)
    params = model.parameters()
    for k, p in enumerate(params):
        p.grad = [0.0, -0.0, math.nan, math.inf, 1e-300, 2.5][k % 6]
    params[1].data = -0.0
    before = [struct.pack("<dd", p.data, p.grad) for p in params]
    r = TrainingRecorder(model, [[0.0, 1.0], [1.0, 0.0]], [0, 1], resolution=4)
    r.record(0)
    r.page(title="x\u202e\n<&>")
    assert [struct.pack("<dd", p.data, p.grad) for p in params] == before
