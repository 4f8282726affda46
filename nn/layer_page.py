"""Back-propagation at the level of layers: the lecture's L12–L17 as a page to step through.

:func:`layer_explorer` takes an :class:`~nn.module.MLP` with one output, one sample
(x, y) and the lecture's logistic loss L = ζ((1−2y)z), and writes one self-contained
HTML page that steps through

1. the forward pass, layer by layer: u = Wᵀx + c, h = f(u), …, z = wᵀh + b,
   u⁴ = (1−2y)z, L = ζ(u⁴);
2. back-propagation, one layer rule per step, in the lecture's notation:
   ∂L/∂u⁴ = σ(u⁴), ∂L/∂z = σ(u⁴)(1−2y) (L12); ∂L/∂b = ∂L/∂z, ∇_w L = (∂L/∂z) h,
   ∇_h L = (∂L/∂z) w (L12, L17); then, for each hidden layer from the top,
   ∇_c L = f ⊙ ∇_h L (L13, L17), ∇_W L = x (f ⊙ ∇_h L)ᵀ (L16, L17) and, below it,
   ∇_x L = W (f ⊙ ∇_h L) -- the chain rule with the Jacobian ∂u/∂x = Wᵀ (L14) --
   down to ∇_W L of the first layer.

Each step shows its vectors and matrices with their numbers, and highlights its layer
in the network view (:func:`nn.draw.network_graph`), which draws what the step computes:
the values and weights in the forward steps, the gradients in the backward ones. Every
number is the scalar engine's: the page builds the loss as a graph of Values and reads
the gradients off it (:func:`autodiff.functional.adjoints`, ``backward()``'s own
numbers), so that each layer rule is *checked* by the scalar graph rather than
assumed. Two levels, one story: click any entry of a gradient and the page lists the
edges of the scalar graph it sums (∂L/∂W₁,₂ = ∂u₂/∂W₁,₂ · ∂L/∂u₂ = x₁ × ∂L/∂u₂), in
``backward()``'s order.

Notation: with one hidden layer, the lecture's own (W, c, u², h, w, b); with more,
each hidden layer k gets superscripts (Wᵏ, cᵏ, aᵏ = Wᵏᵀhᵏ⁻¹ + cᵏ, hᵏ). ``f`` is the
activation's derivative at u, as on the slides (1[u > 0] for the ReLU).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from autodiff import Value, no_grad, topological_order
from autodiff.functional import adjoints
from autodiff.render import Explorer, render_bytes, style
from nn.module import MLP, check_plain_stack
from nn.network import network_graph

__all__ = ["layer_explorer"]

#: f = the activation's derivative, written in the layer's names (u: its input, h: output)
_DERIVATIVE = {
    "relu": "1[{u} > 0]",
    "tanh": "1 − {h}²",
    "sigmoid": "{h}(1 − {h})",
    "linear": "1",
}


class _Names:
    """The lecture's names for a network of `n_layers` layers (the last one: z)."""

    def __init__(self, n_layers: int) -> None:
        self.one = n_layers == 2  # one hidden layer: the lecture's own notation

    def sup(self, k: int) -> str:
        return "" if self.one else style.superscript(k)

    def inp(self, k: int) -> str:  # what layer k reads
        return "x" if k == 1 else f"h{self.sup(k - 1)}"

    def pre(self, k: int) -> str:  # its pre-activation
        return "u²" if self.one else f"a{self.sup(k)}"

    def w(self, k: int) -> str:
        return f"W{self.sup(k)}"

    def c(self, k: int) -> str:
        return f"c{self.sup(k)}"

    def h(self, k: int) -> str:
        return f"h{self.sup(k)}"

    def f(self, k: int) -> str:
        return f"f{self.sup(k)}"


def _cell(x: float, key: str | None = None) -> dict[str, Any]:
    cell: dict[str, Any] = {"s": style.number(x), "x": repr(x)}
    if key is not None:
        cell["k"] = key
    return cell


def _vector(name: str, xs: Sequence[float], keys: Sequence[str | None] | None = None) -> dict:
    """A column vector block."""
    keys = keys or [None] * len(xs)
    return {"name": name, "rows": [[_cell(x, k)] for x, k in zip(xs, keys)]}


def _row(name: str, xs: Sequence[float], keys: Sequence[str | None] | None = None) -> dict:
    keys = keys or [None] * len(xs)
    return {"name": name, "rows": [[_cell(x, k) for x, k in zip(xs, keys)]]}


def _matrix(name: str, m: Sequence[Sequence[float]], keys: Any = None) -> dict:
    return {
        "name": name,
        "rows": [
            [_cell(x, keys[i][j] if keys else None) for j, x in enumerate(row)]
            for i, row in enumerate(m)
        ],
    }


def _scalar(name: str, x: float, key: str | None = None) -> dict:
    return {"name": name, "rows": [[_cell(x, key)]]}


def layer_explorer(
    model: MLP,
    x: Sequence[float],
    y: int,
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
) -> Explorer:
    """A page stepping through back-propagation in `model` layer by layer (see the module).

    Args:
        model: an MLP with one output, a linear score z (``output_activation="linear"``).
        x: one sample, ``model.nin`` numbers.
        y: its label, 0 or 1: the loss is L = ζ((1−2y)z).
        path: where to write the page (optional; ``.save(path)`` writes it too).
        title: the page's heading (shown literally).

    Drawing changes nothing: no ``.data`` or ``.grad`` of the model is touched. The
    result saves itself (``.save``) and shows itself inline in Jupyter.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"layer_explorer: model must be an MLP, got {type(model).__name__}")
    check_plain_stack(model, "layer_explorer")
    if len(x) != model.nin:
        raise ValueError(f"layer_explorer: expected {model.nin} inputs, got {len(x)}")
    out_layer = model.layers[-1]
    if out_layer.nout != 1 or out_layer.activation != "linear":
        raise ValueError(
            "layer_explorer: the model must end in one linear output, the score z "
            f"(got {out_layer.nout} output(s), activation {out_layer.activation!r})"
        )
    if y not in (0, 1) or isinstance(y, bool):
        raise ValueError(f"layer_explorer: y must be the label 0 or 1, got {y!r}")
    xs = [float(v) for v in x]
    K = len(model.layers)
    nm = _Names(K)
    with no_grad():  # the model's own output, to check the stack of layers against
        own = model(xs)

    # -- the scalar graph: every Value the page speaks of, by name -------------------------
    names: dict[Value, str] = {}
    keys: dict[str, Value] = {}

    def name(v: Value, text: str, key: str | None = None) -> None:
        names[v] = text
        if key is not None:
            keys[key] = v

    inputs = [Value(v) for v in xs]
    for i, v in enumerate(inputs):
        name(v, f"x{style.subscript(i + 1)}", f"x_{i}")
    columns: list[list[Value]] = [inputs]
    pre: list[list[Value]] = [[]]
    for k, layer in enumerate(model.layers, start=1):
        last = k == K
        outs = layer(columns[-1])
        us = [h if h.op == "dot" else h.parents[0] for h in outs]
        for j, neuron in enumerate(layer.neurons):
            for i, w in enumerate(neuron.w):
                if last:
                    name(w, f"w{style.subscript(i + 1)}", f"w_{i}")
                else:
                    name(
                        w,
                        f"{nm.w(k)}{style.subscript(i + 1)},{style.subscript(j + 1)}",
                        f"W{k}_{i}_{j}",
                    )
            if last:
                name(neuron.b, "b", "b")
            else:
                name(neuron.b, f"{nm.c(k)}{style.subscript(j + 1)}", f"c{k}_{j}")
        for j, (u, h) in enumerate(zip(us, outs)):
            if last:
                name(u, "z", "z")
            else:
                name(u, f"{nm.pre(k)}{style.subscript(j + 1)}", f"u{k}_{j}")
                if h is not u:
                    name(h, f"{nm.h(k)}{style.subscript(j + 1)}", f"h{k}_{j}")
                else:
                    keys[f"h{k}_{j}"] = h
        columns.append(outs)
        pre.append(us)
    z = columns[-1][0]
    if not (z._data == own._data or (z._data != z._data and own._data != own._data)):
        raise ValueError(  # (a check the type check above makes redundant, kept as a net)
            f"layer_explorer: {type(model).__name__}'s output {own._data!r} is not its stack "
            f"of layers' {z._data!r}"
        )
    u4 = z * float(1 - 2 * y)
    name(u4.parents[1], "(1−2y)")
    name(u4, "u⁴", "u4")
    L = u4.softplus()
    name(L, "L")
    grad = adjoints(L)  # the engine's numbers: what backward() computes, bit for bit

    def g(v: Value) -> float:
        return grad.get(v, 0.0)

    def data(vs: Sequence[Value]) -> list[float]:
        return [v._data for v in vs]

    # -- forward steps -------------------------------------------------------------------
    steps: list[dict[str, Any]] = []

    def step(kind: str, rule: str, claim: str, blocks: list[dict], layer: int, note: str = ""):
        steps.append(
            {
                "kind": kind,
                "rule": rule,
                "claim": claim,
                "blocks": blocks,
                "layer": layer,
                "note": note,
            }
        )

    for k in range(1, K):
        layer = model.layers[k - 1]
        W = [[n.w[i]._data for n in layer.neurons] for i in range(layer.nin)]
        c = [n.b._data for n in layer.neurons]
        act = layer.activation
        step(
            "forward",
            f"{nm.pre(k)} = {nm.w(k)}ᵀ{nm.inp(k)} + {nm.c(k)}",
            "L5, L11",
            [
                _matrix(nm.w(k), W),
                _vector(nm.inp(k), data(columns[k - 1])),
                _vector(nm.c(k), c),
                _vector(nm.pre(k), data(pre[k])),
            ],
            k,
            f"{nm.w(k)} is {layer.nin}×{layer.nout}: row i holds the weights out of input i",
        )
        applied = {
            "relu": f"max(0, {nm.pre(k)})",
            "linear": nm.pre(k),
        }.get(act, f"{act}({nm.pre(k)})")
        step(
            "forward",
            f"{nm.h(k)} = {applied}",
            "L5, L11",
            [_vector(nm.pre(k), data(pre[k])), _vector(nm.h(k), data(columns[k]))],
            k,
        )
    last_h = columns[K - 1]
    wv = [w._data for w in out_layer.neurons[0].w]
    hn = nm.inp(K)
    step(
        "forward",
        f"z = wᵀ{hn} + b",
        "L8, L11",
        [
            _vector("w", wv),
            _vector(hn, data(last_h)),
            _scalar("b", out_layer.neurons[0].b._data),
            _scalar("z", z._data),
        ],
        K,
    )
    step(
        "forward",
        "u⁴ = (1−2y) z",
        "L9, L11",
        [_scalar("y", float(y)), _scalar("z", z._data), _scalar("u⁴", u4._data)],
        K,
    )
    step(
        "forward",
        "L = ζ(u⁴) = log(1 + e^u⁴)",
        "L9, L11",
        [_scalar("u⁴", u4._data), _scalar("L", L._data)],
        K,
        "L = −log P(y|x): the softplus of (1−2y)z",
    )

    # -- back-propagation, one layer rule per step ------------------------------------------
    step(
        "backward",
        "∂L/∂u⁴ = σ(u⁴)",
        "L12",
        [_scalar("u⁴", u4._data), _scalar("∂L/∂u⁴", g(u4), "u4")],
        K,
    )
    step(
        "backward",
        "∂L/∂z = σ(u⁴)(1−2y)",
        "L12",
        [_scalar("σ(u⁴)", g(u4)), _scalar("1−2y", float(1 - 2 * y)), _scalar("∂L/∂z", g(z), "z")],
        K,
    )
    bias = out_layer.neurons[0].b
    step(
        "backward",
        "∂L/∂b = ∂L/∂z",
        "L12, L17",
        [_scalar("∂L/∂z", g(z), "z"), _scalar("∂L/∂b", g(bias), "b")],
        K,
    )
    out_w = out_layer.neurons[0].w
    step(
        "backward",
        f"∇_w L = (∂L/∂z) {hn}",
        "L12, L17",
        [
            _scalar("∂L/∂z", g(z), "z"),
            _vector(hn, data(last_h)),
            _vector("∇_w L", [g(w) for w in out_w], [f"w_{i}" for i in range(len(out_w))]),
        ],
        K,
    )
    if K > 1:
        step(
            "backward",
            f"∇_{hn} L = (∂L/∂z) w",
            "L12, L17",
            [
                _scalar("∂L/∂z", g(z), "z"),
                _vector("w", wv),
                _vector(
                    f"∇_{hn} L",
                    [g(h) for h in last_h],
                    [f"h{K - 1}_{j}" for j in range(len(last_h))],
                ),
            ],
            K,
        )
    for k in range(K - 1, 0, -1):
        layer = model.layers[k - 1]
        f_name, h_name, x_name = nm.f(k), nm.h(k), nm.inp(k)
        fs = [h.local_grads[0] if h is not u else 1.0 for h, u in zip(columns[k], pre[k])]
        derivative = _DERIVATIVE[layer.activation].format(u=nm.pre(k), h=h_name)
        grad_h = [g(h) for h in columns[k]]
        grad_c = [g(n.b) for n in layer.neurons]
        c_keys = [f"c{k}_{j}" for j in range(layer.nout)]
        step(
            "backward",
            f"∇_{nm.c(k)} L = {f_name} ⊙ ∇_{h_name} L",
            "L13, L17",
            [
                _vector(f"{f_name} = {derivative}", fs),
                _vector(f"∇_{h_name} L", grad_h, [f"h{k}_{j}" for j in range(layer.nout)]),
                _vector(f"∇_{nm.c(k)} L", grad_c, c_keys),
            ],
            k,
            f"= ∇_{nm.pre(k)} L: the Jacobian of {h_name} = f({nm.pre(k)}) is diagonal, "
            f"with {f_name} on its diagonal",
        )
        gW = [[g(n.w[i]) for n in layer.neurons] for i in range(layer.nin)]
        W_keys = [[f"W{k}_{i}_{j}" for j in range(layer.nout)] for i in range(layer.nin)]
        step(
            "backward",
            f"∇_{nm.w(k)} L = {x_name} ({f_name} ⊙ ∇_{h_name} L)ᵀ",
            "L16, L17",
            [
                _vector(x_name, data(columns[k - 1])),
                _row(f"({f_name} ⊙ ∇_{h_name} L)ᵀ", grad_c, c_keys),
                _matrix(f"∇_{nm.w(k)} L", gW, W_keys),
            ],
            k,
            f"entry i,j is {x_name}ᵢ · (∇_{nm.c(k)} L)ⱼ: click one for its scalar edges",
        )
        if k > 1:
            W = [[n.w[i]._data for n in layer.neurons] for i in range(layer.nin)]
            below = columns[k - 1]
            step(
                "backward",
                f"∇_{x_name} L = (∂{nm.pre(k)}/∂{x_name})ᵀ ∇_{nm.pre(k)} L = "
                f"{nm.w(k)} ({f_name} ⊙ ∇_{h_name} L)",
                "L14, L17",
                [
                    _matrix(nm.w(k), W),
                    _vector(f"∇_{nm.pre(k)} L", grad_c, c_keys),
                    _vector(
                        f"∇_{x_name} L",
                        [g(h) for h in below],
                        [f"h{k - 1}_{j}" for j in range(len(below))],
                    ),
                ],
                k,
                f"the chain rule with the Jacobian ∂{nm.pre(k)}/∂{x_name} = {nm.w(k)}ᵀ",
            )

    # -- the scalar edges behind every entry ------------------------------------------------
    edges: dict[Value, list[tuple[Value, float]]] = {}
    for node in topological_order(L):
        for p, local in zip(node.parents, node.local_grads):
            edges.setdefault(p, []).append((node, local))
    scalar: dict[str, list[str]] = {}
    for key, v in keys.items():
        if key.startswith("x_"):
            continue
        vname = names.get(v, key)
        terms = edges.get(v, [])
        lines = [
            f"∂L/∂{vname} = {style.number(g(v))}, the sum of {len(terms)} edge"
            f"{'s' if len(terms) != 1 else ''} of the scalar graph, in backward()'s order:"
        ]
        total = 0.0
        for child, local in terms:
            cname = names.get(child, "?")
            term = local * g(child)
            total += term
            lines.append(
                f"  ∂{cname}/∂{vname} · ∂L/∂{cname} = {style.number(local)} × "
                f"{style.number(g(child))} = {style.number(term)}"
            )
        scalar[key] = lines

    # the diagram shows what the step computes: values and weights in the forward steps,
    # gradients in the backward ones (two drawings of one layout; the page shows one)
    views = []
    for kind in ("forward", "backward"):
        svg = render_bytes(network_graph(model, xs, y, kind=kind), "svg").decode("utf-8")
        views.append(svg[svg.index("<svg") :].replace("<svg", f'<svg data-kind="{kind}"', 1))
    network = "".join(views)
    sizes = "-".join(str(n) for n in [model.nin, *(layer.nout for layer in model.layers)])
    heading = title or f"back-propagation, layer by layer: MLP {sizes}"
    data_ = {
        "title": heading,
        "columns": K + 1,
        "steps": steps,
        "scalar": scalar,
    }
    page = style.html_page("nn", "layers", title=heading, svg=network, data=data_)
    result = Explorer(page, len(steps))
    if path is not None:
        result.save(path)
    return result
