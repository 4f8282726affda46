"""Step through back-propagation in a browser: one self-contained HTML file.

``explorer(root)`` draws `root`'s graph (the forward graph's layout, each box
with its data and an empty gradient) and a stepper beside it:

1. the forward pass, node by node, in the order the values were computed, each
   step saying ``u = a × b = 1.0000 × 2.0000 = 2.0000``;
2. the seed, ∂L/∂L = 1;
3. back-propagation, edge by edge, in exactly the order ``Value.backward``
   visits the edges (Kahn's algorithm, releasing a node once all its users have
   passed their gradient on), each step showing its chain rule with its numbers:
   ``∂L/∂u += ∂v/∂u · ∂L/∂v = 1.0000 × −0.2689``, the edge highlighted and the
   parent's gradient filling in.

The last state shows the gradients ``backward()`` computes (it is checked: the
steps are computed from the same local derivatives, in the same order, with the
same floating-point additions). Buttons and the ←/→ keys move; Home/End jump.

The file needs nothing else -- no network, no CDN: the SVG, the script and the
style sheet (shipped with the package, in ``autodiff/render/assets``) are
inlined. In Jupyter the returned object displays itself inline.
"""

from __future__ import annotations

import html
import os
import re
from typing import Any

from autodiff.engine import Value, topological_order
from autodiff.files import write_file
from autodiff.render import style
from autodiff.render.formula import local_formulas, operand
from autodiff.render.graphs import check_root, label_lines, layout, nearest, render_bytes
from autodiff.rules import RULES

__all__ = ["EXPLORER_MAX_NODES", "Explorer", "explorer"]

#: The explorer's default node limit: every step must be reachable, so more than the graphs'.
EXPLORER_MAX_NODES = 60


class Explorer:
    """An explorer page: ``.html`` is the file's text; Jupyter shows it inline."""

    def __init__(self, page: str, steps: int) -> None:
        self.html = page
        #: How many steps the stepper has (forward, seed, backward).
        self.steps = steps

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the page to `path` (an .html file), whole or not at all; returns the path."""
        return write_file(path, self.html)  # whole or not at all

    def _repr_html_(self) -> str:
        # an iframe: the page's script runs on its own, whatever the notebook trusts
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width: 100%; height: 640px; border: 1px solid #ccc"></iframe>'
        )


def _names(order: list[Value]) -> dict[Value, str]:
    """What the steps call each Value: its label (shown literally, shortened if long), or
    v₁, v₂, … for the unnamed ones, numbered in the order they were computed."""
    names: dict[Value, str] = {}
    unnamed = 0
    for v in reversed(order):
        label, _ = label_lines(v)
        if label:
            names[v] = label[0]
        else:
            unnamed += 1
            names[v] = "v" + style.subscript(unnamed)
    return names


def _expression(v: Value, names: dict[Value, str], show: Any) -> str:
    """The operation that made `v`, on its parents' names (or numbers: `show`)."""
    symbol = RULES[v.op].symbol
    args = [show(p) for p in v.parents]
    if v.op == "dot":
        n = (len(args) - 1) // 2
        return " + ".join([args[0], *(f"{args[1 + i]}·{args[1 + n + i]}" for i in range(n))])
    if RULES[v.op].arity == 2:
        return f"{args[0]} {symbol} {args[1]}"
    return f"{symbol}({', '.join(args)})"


def _paren(number: str) -> str:
    """A number written as a factor: in parentheses when negative."""
    return f"({number})" if number.startswith("-") else number


def _json(x: float) -> str:
    """A float for the page's data, exactly and as valid JSON (NaN and ±inf included)."""
    return repr(x)


def explorer(
    root: Value,
    path: str | os.PathLike[str] | None = None,
    *,
    max_nodes: int | None = None,
    title: str | None = None,
    rankdir: str = "LR",
) -> Explorer:
    """An HTML page that steps through the forward pass and back-propagation of `root`.

    The gradients shown are ∂root/∂v for this root, computed for the page from the
    local derivatives stored on the nodes, in ``backward()``'s order and rounding:
    its last step shows what ``root.backward()`` computes, whatever ``.grad`` holds
    now (no ``backward()`` run is needed, and none of the graph's ``.grad`` or
    ``.data`` is touched). Each backward step shows its chain rule, the local
    derivative's formula from the rule table with its number, and the sum.

    Args:
        root: the Value to explore.
        path: where to write the page (optional; ``Explorer.save`` writes it too).
        max_nodes: at most this many Values (default :data:`EXPLORER_MAX_NODES`): every
            step of a bigger graph could not be drawn; ValueError says so.
        title: the page's heading (any text: it is shown literally).
        rankdir: the graph's layout direction, as in :func:`~autodiff.render.forward_graph`
            ("TB" suits a narrow screen).
    """
    check_root(root, rankdir, "explorer")
    limit = EXPLORER_MAX_NODES if max_nodes is None else max_nodes
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise (ValueError if isinstance(limit, int) else TypeError)(
            f"explorer: max_nodes must be an int of at least 1, got {limit!r}"
        )
    order = topological_order(root)
    if len(order) > limit:
        raise ValueError(
            f"explorer: the graph has {len(order)} Values, more than max_nodes={limit}; "
            "explore a smaller graph (one sample, one neuron), or raise max_nodes"
        )
    kept, ids, _ = nearest(order, limit)
    names = _names(order)
    num = style.number

    def term(v: Value) -> str:  # a name as an operand of an expression
        return operand(names[v])

    # the forward pass: each operation, inputs first (the reverse of the backward order)
    steps: list[dict[str, Any]] = []
    for v in reversed(order):
        if v.parents:
            expr = _expression(v, names, term)
            value = _expression(v, names, lambda p: num(p._data))
            text = f"{names[v]} = {expr} = {value} = {num(v._data)}"
            steps.append({"kind": "forward", "node": ids[v], "text": text})
    # the seed, then every edge in Value.backward's order, with its running sum
    r = term(root)
    steps.append(
        {
            "kind": "seed",
            "node": ids[root],
            "grad": _json(1.0),
            "shown_grad": num(1.0),
            "text": f"∂{r}/∂{r} = 1: the seed of back-propagation",
        }
    )
    grad: dict[Value, float] = {root: 1.0}
    for node in order:
        if not node.parents:
            continue
        g = grad[node]
        parents = node.parents
        formulas = local_formulas(
            RULES[node.op],
            [names[p] for p in parents],
            names[node],
            [*(p._data for p in parents), node._data],
        )
        # ∂child/∂parent, the local derivative; for the root's own edges it is written
        # with the operation (∂ζ(u⁴)/∂u⁴), so that it never reads as the gradient ∂L/∂u⁴
        if node is root:
            expr = _expression(node, names, term)
            child = expr if len(parents) == 1 and node.op != "dot" else f"({expr})"
        else:
            child = term(node)
        for k, (p, local) in enumerate(zip(parents, node.local_grads)):
            before = grad.get(p, 0.0)
            after = before + local * g
            grad[p] = after
            d_local = f"∂{child}/∂{term(p)}"
            formula = formulas[k]
            value = num(local)
            is_number = re.fullmatch(r"[−-]?[\d.]+", formula) is not None
            local_text = f"{d_local} = {value}" if is_number else f"{d_local} = {formula} = {value}"
            lines = [
                f"∂{r}/∂{term(p)} += {d_local} · ∂{r}/∂{term(node)}",
                f"  local:     {local_text}",
                f"  from {names[node]}:".ljust(13) + f"∂{r}/∂{term(node)} = {num(g)}",
                f"  sum:       ∂{r}/∂{term(p)} = {num(before)} + {_paren(num(local))} × "
                f"{_paren(num(g))} = {num(after)}",
            ]
            steps.append(
                {
                    "kind": "backward",
                    "node": ids[p],
                    "child": ids[node],
                    "edge": f"{ids[p]}->{ids[node]}_op",
                    "out": f"{ids[node]}_op->{ids[node]}",
                    "position": k,
                    "local": _json(local),
                    "formula": formula,
                    "child_grad": _json(g),
                    "before": _json(before),
                    "grad": _json(after),
                    "shown_grad": num(after),
                    "text": "\n".join(lines),
                }
            )
    heading = title or f"back-propagation through {names[root]}"
    data = {
        "title": heading,
        "root": ids[root],
        "nodes": {
            ids[v]: {
                "name": names[v],
                "label": style.visible(v.label),
                "data": _json(v._data),
                "shown_data": num(v._data),
                "grad": _json(grad.get(v, 0.0)),
                "shown_grad": num(grad.get(v, 0.0)),
            }
            for v in kept
        },
        "steps": steps,
    }
    # each box as wide as the widest gradient it will show, at any step
    widest = {ids[v]: "grad" for v in kept}
    for s in steps:
        if "shown_grad" in s and len(s["shown_grad"]) + 5 > len(widest[s["node"]]):
            widest[s["node"]] = "grad " + s["shown_grad"]
    shown = {v: (names[v], f"data {num(v._data)}", "grad") for v in kept}
    width = {v: (names[v], f"data {num(v._data)}", widest[ids[v]]) for v in kept}
    graph = layout(
        "explorer", kept, ids, rankdir, shown=shown, width=width, fit=False, spaced=False
    )
    svg = render_bytes(graph, "svg").decode("utf-8")
    page = style.html_page("autodiff.render", "explorer", title=heading, svg=svg, data=data)
    result = Explorer(page, len(steps))
    if path is not None:
        result.save(path)
    return result
