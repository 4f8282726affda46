"""Watch a network learn: a page with every recorded step of training, every number the engine's.

:class:`TrainingRecorder` follows a two-input :class:`~nn.module.MLP` with one output
(a score z, read as P(y=1|x) = σ(z)) while it trains. At each recorded step it runs
the model -- the scalar engine, under :func:`~autodiff.no_grad` -- on a grid over the
input plane and on the training samples, and keeps

* the loss of the model as it is at that step (after that many updates);
* every unit's output over the plane: the inputs, each hidden unit, and P(y=1|x);
* every weight and bias, and every unit's output at each sample.

:meth:`TrainingRecorder.save` writes one self-contained HTML page (no network
needed) in the manner of TensorFlow Playground: a slider and the ←/→ keys move
through the recorded steps; for the step shown, the network with each unit drawn
as its small map over the plane and each edge coloured by the sign of its weight
and sized by its magnitude; the decision boundary with the samples; the loss curve
with the step marked; hovering or clicking a unit shows its numbers.

:func:`watch_training` is the one-call form: train with Adam on the lecture's
logistic loss, record about `frames` steps (the first and the last included) and
write the page.

Colours, as on every picture of this package: blue > 0, red < 0, grey = 0. The
maps are drawn cell by cell, one cell per grid point (nothing interpolated); their
numbers are kept as float32 (7 significant digits: more than a colour shows), while
the numbers printed on the page -- the loss, the weights, the outputs at the
samples -- are the engine's float64 numbers as they are.
"""

from __future__ import annotations

import base64
import math
import os
import struct
from collections.abc import Callable, Sequence
from typing import Any

from autodiff import Value, no_grad
from autodiff.files import write_file
from autodiff.render import style
from nn.losses import logistic
from nn.module import MLP, check_plain_stack
from nn.optim import Adam

__all__ = ["TrainingPage", "TrainingRecorder", "recorded_steps", "watch_training"]

#: Grid points along each axis of the input plane.
RESOLUTION = 32

Loss = Callable[[list[Value], list[int]], Value]


def _number(x: float) -> float | str:
    """A float for JSON: the number itself, or its name when it is not finite."""
    return x if math.isfinite(x) else str(x)  # 'nan', 'inf', '-inf': JS Number() reads them


def _floats32(xs: Sequence[float]) -> str:
    """Little-endian float32s in base64: a map's numbers, compactly."""
    return base64.b64encode(struct.pack(f"<{len(xs)}f", *xs)).decode("ascii")


def _names(model: MLP) -> list[dict[str, Any]]:
    """The lecture's names for the parameters of each layer: W, c (the hidden layer) and
    w, b (the output) with one hidden layer; Wᵏ, cᵏ and w, b with more."""
    sup = style.superscript
    n = len(model.layers)
    out = []
    for k in range(1, n + 1):
        last = k == n
        mark = "" if n == 2 else sup(k)
        out.append(
            {
                "w": "w" if last else f"W{mark}",
                "b": "b" if last else f"c{mark}",
                "unit": "z" if last else "h" + ("" if n == 2 else sup(k)),
                "activation": model.layers[k - 1].activation,
            }
        )
    return out


class TrainingPage:
    """A training page: ``.html`` is the file's text; Jupyter shows it inline."""

    def __init__(self, page: str, steps: list[int]) -> None:
        self.html = page
        #: The recorded steps, in order.
        self.steps = steps

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the page to `path` (an .html file), whole or not at all; returns the path."""
        return write_file(path, self.html)

    def _repr_html_(self) -> str:
        import html

        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width: 100%; height: 720px; border: 1px solid #ccc"></iframe>'
        )


class TrainingRecorder:
    """Records a two-input MLP with one output while it trains (see the module docstring).

    Call :meth:`record` at the steps to show (0: before the first update; k: after k
    updates) and, if the loss is known at other steps, :meth:`track` to add them to the
    loss curve; then :meth:`page` or :meth:`save`.

    Args:
        model: an :class:`~nn.module.MLP` with 2 inputs and 1 output, a plain stack of
            layers (a subclass with its own ``forward`` is refused: the page draws layers).
        xs, ys: the training samples (pairs of numbers) and their labels, 0 or 1.
        loss: the loss of the scores and labels (default the lecture's
            :func:`~nn.losses.logistic`); the page shows it for the model at each step.
        bounds: ``((x₁ min, x₁ max), (x₂ min, x₂ max))`` of the plane drawn; default the
            samples' range with a margin of a quarter of it (at least 0.5).
        resolution: grid points along each axis (2 to 128).
    """

    def __init__(
        self,
        model: MLP,
        xs: Sequence[Sequence[float]],
        ys: Sequence[int],
        *,
        loss: Loss = logistic,
        bounds: tuple[tuple[float, float], tuple[float, float]] | None = None,
        resolution: int = RESOLUTION,
    ) -> None:
        check_plain_stack(model, "TrainingRecorder")
        if model.nin != 2 or model.layers[-1].nout != 1:
            raise ValueError(
                f"TrainingRecorder: the page draws the input plane and one output, so it "
                f"needs a model with 2 inputs and 1 output; got {model.nin} inputs and "
                f"{model.layers[-1].nout} outputs"
            )
        self.xs = [[float(a) for a in x] for x in xs]
        self.ys = [int(y) for y in ys]
        if not self.xs or len(self.xs) != len(self.ys) or any(len(x) != 2 for x in self.xs):
            raise ValueError(
                "TrainingRecorder: expected as many labels as samples (at least one), "
                "each sample a pair of numbers"
            )
        if any(y not in (0, 1) for y in self.ys):
            raise ValueError(f"TrainingRecorder: labels must be 0 or 1, got {sorted(set(self.ys))}")
        if not isinstance(resolution, int) or not 2 <= resolution <= 128:
            raise ValueError(
                f"TrainingRecorder: resolution must be an int in 2..128, got {resolution!r}"
            )
        self.model = model
        self.loss = loss
        self.resolution = resolution
        self.bounds = bounds or _bounds(self.xs)
        for lo, hi in self.bounds:
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(
                    f"TrainingRecorder: bounds must be finite, low < high; got {self.bounds}"
                )
        (x0, x1), (y0, y1) = self.bounds
        r = resolution
        # cell centres, row by row from the top (x₂ largest) as a picture is stored
        self.grid = [
            [x0 + (i + 0.5) * (x1 - x0) / r, y1 - (j + 0.5) * (y1 - y0) / r]
            for j in range(r)
            for i in range(r)
        ]
        self.snapshots: list[dict[str, Any]] = []
        self.curve: dict[int, float] = {}

    def _outputs(self, x: Sequence[float]) -> list[list[float]]:
        """Every unit's output for one sample, layer by layer (the inputs first)."""
        outs = [list(x)]
        h: Any = list(x)
        for layer in self.model.layers:
            h = layer(h)
            outs.append([v.data for v in h])
        return outs

    def record(self, step: int) -> float:
        """Record the model as it is now, as step `step` (after that many updates); returns
        its loss. Steps are recorded in increasing order."""
        if self.snapshots and step <= self.snapshots[-1]["step"]:
            raise ValueError(
                f"TrainingRecorder.record: step {step} comes after step "
                f"{self.snapshots[-1]['step']}; record steps in increasing order"
            )
        with no_grad():
            loss = self.loss([self.model(x) for x in self.xs], self.ys).data  # type: ignore[misc]
            grid = [self._outputs(p) for p in self.grid]
            samples = [self._outputs(x) for x in self.xs]
            prob = [Value(g[-1][0]).sigmoid().data for g in grid]
            sample_prob = [Value(s[-1][0]).sigmoid().data for s in samples]
        n_layers = len(self.model.layers)
        maps = [
            [_floats32([g[k][j] for g in grid]) for j in range(len(grid[0][k]))]
            for k in range(n_layers)  # the inputs and the hidden layers
        ]
        hidden = [g[k][j] for g in grid for k in range(1, n_layers) for j in range(len(g[k]))]
        self.snapshots.append(
            {
                "step": step,
                "loss": _number(loss),
                "lossText": f"{loss:.4g}",
                "weights": [
                    [[_number(w.data) for w in n.w] for n in layer.neurons]
                    for layer in self.model.layers
                ],
                "biases": [
                    [_number(n.b.data) for n in layer.neurons] for layer in self.model.layers
                ],
                "maps": maps,
                "output": _floats32(prob),
                "hiddenScale": _number(max((abs(v) for v in hidden if v == v), default=0.0)),
                "samples": [[[_number(v) for v in layer] for layer in s] for s in samples],
                "sampleP": [_number(p) for p in sample_prob],
            }
        )
        self.curve[step] = loss
        return loss

    def track(self, step: int, loss: float) -> None:
        """Add the loss of the model after `step` updates to the curve (no snapshot)."""
        self.curve[step] = float(loss)

    def page(self, *, title: str | None = None) -> TrainingPage:
        """The page of what was recorded (at least one step)."""
        if not self.snapshots:
            raise ValueError("TrainingRecorder.page: nothing recorded yet; call record(step)")
        sizes = "-".join(str(n) for n in [self.model.nin, *(lay.nout for lay in self.model.layers)])
        heading = title or f"MLP {sizes} learning, step by step"
        weights = [
            abs(w)
            for s in self.snapshots
            for layer in s["weights"]
            for row in layer
            for w in row
            if isinstance(w, float)
        ]
        curve = sorted(self.curve.items())
        data = {
            "title": heading,
            "sizes": [self.model.nin, *(lay.nout for lay in self.model.layers)],
            "names": _names(self.model),
            "resolution": self.resolution,
            "bounds": [list(b) for b in self.bounds],
            "xs": self.xs,
            "ys": self.ys,
            "snapshots": self.snapshots,
            "curve": [[s, _number(v)] for s, v in curve],
            "maxWeight": max(weights, default=0.0),
            "lossName": getattr(self.loss, "__name__", "loss"),
        }
        page = style.html_page("nn", "training", title=heading, svg="", data=data)
        return TrainingPage(page, [s["step"] for s in self.snapshots])

    def save(self, path: str | os.PathLike[str], *, title: str | None = None) -> str:
        """Write the page to `path`, whole or not at all; returns the path."""
        return self.page(title=title).save(path)


def _bounds(xs: list[list[float]]) -> tuple[tuple[float, float], tuple[float, float]]:
    out = []
    for k in range(2):
        lo, hi = min(x[k] for x in xs), max(x[k] for x in xs)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("TrainingRecorder: the samples must be finite to draw their plane")
        pad = max(0.25 * (hi - lo), 0.5)
        out.append((lo - pad, hi + pad))
    return out[0], out[1]


def recorded_steps(steps: int, frames: int = 20) -> list[int]:
    """About `frames` + 1 evenly spaced steps from 0 to `steps`, both ends included."""
    every = max(1, steps // frames)
    marks = list(range(0, steps + 1, every))
    return marks if marks[-1] == steps else [*marks, steps]


def watch_training(
    model: MLP,
    xs: Sequence[Sequence[float]],
    ys: Sequence[int],
    path: str | os.PathLike[str] | None = None,
    *,
    steps: int = 200,
    lr: float = 0.05,
    frames: int = 20,
    title: str | None = None,
    **options: Any,
) -> TrainingRecorder:
    """Train `model` on (xs, ys) with Adam, full batch, recording
    about `frames` + 1 steps (the first and the last included; every step's loss goes on
    the curve); write the page to `path` if given. Returns the recorder (its
    ``snapshots`` hold every number the page shows). `options` go to
    :class:`TrainingRecorder` (``loss``, default the lecture's logistic loss; ``bounds``;
    ``resolution``)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"watch_training: steps must be an int >= 1, got {steps!r}")
    recorder = TrainingRecorder(model, xs, ys, **options)
    opt = Adam(model.parameters(), lr=lr)
    marks = set(recorded_steps(steps, frames))
    recorder.record(0)
    for step in range(steps):
        loss = recorder.loss([model(x) for x in recorder.xs], recorder.ys)  # type: ignore[misc]
        opt.zero_grad()
        loss.backward()
        opt.step()
        recorder.track(step, loss.data)  # the loss of the model after `step` updates
        if step + 1 in marks:
            recorder.record(step + 1)
    if path is not None:
        recorder.save(path, title=title)
    return recorder
