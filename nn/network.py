"""A network as the lecture draws it: neurons in columns, weights as edges.

:func:`network_graph` draws an :class:`~nn.module.MLP` at the level of its
neurons -- a neuron's ``dot`` is one node already in the Value graph, here it is
one circle -- for one sample: the inputs in the first column, each layer in the
next, the output last. Each edge is a weight; its colour says its sign (blue
positive, red negative, grey zero; dashed grey: not a number) and its width its size,
relative to the largest in the
picture, so a network of 16 or 256 weights per layer still reads at a glance.

* ``kind="forward"``: each neuron shows its output for the sample, each edge its
  weight;
* ``kind="backward"``: each neuron shows ∂L/∂(its output) and each edge ∂L/∂w,
  for the sample's loss L = ζ((1−2y)·z), the lecture's logistic loss (L9).

Numbers are written on the edges too when a layer has few enough of them to
read (:data:`EDGE_LABELS_UP_TO`); every edge carries its number as a tooltip.
Rendered with :func:`autodiff.render.save`, like the Value graphs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from autodiff import Value
from autodiff.functional import adjoints
from autodiff.render import Graph
from autodiff.render.style import FONT, number, subscript, superscript
from nn.losses import logistic
from nn.module import MLP

__all__ = ["EDGE_LABELS_UP_TO", "network_graph"]

#: A layer with at most this many weights has them written on its edges.
EDGE_LABELS_UP_TO = 8

_POSITIVE, _NEGATIVE, _ZERO = "#1f77b4", "#d62728", "#8c8c8c"


def _colour(value: float) -> str:
    """An edge's colour by the sign of its number: blue > 0, red < 0, and a neutral grey
    for 0 (either sign of zero) and for NaN -- as the picture's legend says."""
    if value > 0:
        return _POSITIVE
    if value < 0:
        return _NEGATIVE
    return _ZERO


_FONTSIZE = 9.0


def _name(c: int, j: int, last: int, n_columns: int) -> str:
    """x₁ for an input, z for the output, h₃ for a hidden unit (h²₃ with several layers)."""
    if c == 0:
        return "x" + subscript(j + 1)
    if c == last:
        return "z"
    return "h" + (superscript(c) if n_columns > 3 else "") + subscript(j + 1)


def _short(x: float) -> str:
    """A number in at most 7 characters: enough to see it, small enough for a circle."""
    if x != x:
        return "nan"
    if x == 0.0:
        return "-0" if str(x)[0] == "-" else "0"
    if 1e-2 <= abs(x) < 1e3:
        return f"{x:.3f}".rstrip("0").rstrip(".")
    return f"{x:.1e}"


def network_graph(
    model: MLP,
    x: Sequence[float],
    y: int | None = None,
    *,
    kind: str = "forward",
) -> Graph:
    """The neurons of `model` on the sample `x`: outputs (forward) or gradients (backward).

    The gradients are those of this sample's loss, computed for the picture: drawing
    changes no ``.grad`` and no ``.data`` of the model (call it between ``backward()``
    and ``opt.step()`` without changing the step).

    Args:
        model: the network (one output: the score z).
        x: one sample, a sequence of ``model.nin`` numbers.
        y: its label, 0 or 1, for ``kind="backward"`` (the loss is ζ((1−2y)z)).
        kind: "forward" or "backward".
    """
    if not isinstance(model, MLP):
        raise TypeError(f"network_graph: model must be an MLP, got {type(model).__name__}")
    if kind not in ("forward", "backward"):
        raise ValueError(f"network_graph: kind must be 'forward' or 'backward', got {kind!r}")
    if len(x) != model.nin:
        raise ValueError(f"network_graph: expected {model.nin} inputs, got {len(x)}")
    if model.layers[-1].nout != 1:
        raise ValueError("network_graph: the model must have one output (a score z)")
    backward = kind == "backward"
    if backward and y not in (0, 1):
        raise ValueError(f"network_graph: kind='backward' needs the label y, 0 or 1, got {y!r}")

    # one pass through the network, keeping every layer's outputs
    columns: list[list[Value]] = [[Value(float(v)) for v in x]]
    for layer in model.layers:
        columns.append(layer(columns[-1]))
    # the gradients of this sample's loss, computed for the picture: no .grad is touched
    grads = adjoints(logistic([columns[-1][0]], [y])) if backward else {}  # type: ignore[list-item]

    def grad(v: Value) -> float:
        return grads.get(v, 0.0)

    title = (
        f"gradients of L = ζ((1−2y)z) for x = ({', '.join(f'{v:g}' for v in x)}), y = {y}:\n"
        "a neuron shows ∂L/∂(its output), an edge ∂L/∂w"
        if backward
        else f"forward pass for x = ({', '.join(f'{v:g}' for v in x)}):\n"
        "a neuron shows its output, an edge its weight"
    )
    g = Graph(
        kind,
        graph_attr={
            "rankdir": "LR",
            "ranksep": "1.4",
            "nodesep": "0.12",
            "splines": "line",
            "fontname": FONT,
            "fontsize": "12",
            "label": title + "\nblue > 0, red < 0, grey = 0 (dashed: not a number); width ∝ size",
            "labelloc": "t",
            "bgcolor": "white",
            "outputorder": "edgesfirst",  # the neurons' boxes cover the lines under them
        },
        node_attr={
            "fontname": FONT,
            "fontsize": f"{_FONTSIZE:g}",
            "fixedsize": "true",
            "margin": "0",
            "shape": "box",
            "style": "rounded,filled",
            "fillcolor": "white",
        },
        edge_attr={"fontname": FONT, "fontsize": "8", "dir": "none"},
    )
    names = []
    last = len(columns) - 1
    for c, column in enumerate(columns):
        ids = []
        labels = [
            (_name(c, j, last, len(columns)), _short(grad(v) if backward else v._data))
            for j, v in enumerate(column)
        ]
        chars = max(5, *(len(t) for pair in labels for t in pair))  # one width per column
        with g.subgraph(name=f"layer{c}") as col:
            col.attr(rank="same")
            for j, (v, (name, shown)) in enumerate(zip(column, labels)):
                nid = f"n{c}_{j}"
                col.node(
                    nid,
                    f"{name}\n{shown}",
                    width=f"{(chars * 0.6 * _FONTSIZE + 12) / 72:.3f}",
                    height=f"{(2 * 1.25 * _FONTSIZE + 6) / 72:.3f}",
                    penwidth="1" if 0 < c < last else "1.5",
                    tooltip=f"{name} = {number(v._data)}, ∂L/∂{name} = {number(grad(v))}"
                    if backward
                    else f"{name} = {number(v._data)}",
                )
                ids.append(nid)
            for a, b in itertools.pairwise(ids):  # keep the neurons in order, top to bottom
                col.edge(a, b, style="invis")
        names.append(ids)
    for c, layer in enumerate(model.layers):
        weights = [(i, j, w) for j, n in enumerate(layer.neurons) for i, w in enumerate(n.w)]
        numbers = [grad(p) if backward else p._data for _, _, p in weights]
        finite = [abs(v) for v in numbers if v == v and abs(v) != float("inf")]
        biggest = max(finite, default=0.0) or 1.0
        label = len(weights) <= EDGE_LABELS_UP_TO
        for (i, j, _), value in zip(weights, numbers):
            bounded = value == value and abs(value) != float("inf")
            size = abs(value) / biggest if bounded else 1.0
            attrs = {
                "color": _colour(value),
                "penwidth": f"{0.3 + 3.2 * size:.2f}",
                "tooltip": f"{'∂L/∂w' if backward else 'w'} = {number(value)}",
            }
            if value != value:
                attrs["style"] = "dashed"  # not a number: grey, dashed
            if label:
                attrs["label"] = _short(value)
                attrs["fontcolor"] = attrs["color"]
            g.edge(names[c][i], names[c + 1][j], **attrs)
    return g
