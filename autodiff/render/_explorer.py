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
import json
import os
import re
from importlib import resources
from typing import Any

from autodiff.engine import Value, topological_order
from autodiff.render import (
    _box,
    _check,
    _digraph,
    _kept,
    _num,
    _visible,
    render_bytes,
)
from autodiff.rules import RULES

__all__ = ["Explorer", "explorer"]

#: The explorer's default node limit: every step must be reachable, so more than the graphs'.
EXPLORER_MAX_NODES = 60


class Explorer:
    """An explorer page: ``.html`` is the file's text; Jupyter shows it inline."""

    def __init__(self, page: str, steps: int) -> None:
        self.html = page
        #: How many steps the stepper has (forward, seed, backward).
        self.steps = steps

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the page to `path` (an .html file); returns the path."""
        path = os.fspath(path)
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.html)
        return path

    def _repr_html_(self) -> str:
        # an iframe: the page's script runs on its own, whatever the notebook trusts
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width: 100%; height: 620px; border: 1px solid #ccc"></iframe>'
        )


def _name(v: Value, index: int) -> str:
    return _visible(v.label) if v.label else f"v{index}"


def explorer(
    root: Value,
    path: str | os.PathLike[str] | None = None,
    *,
    max_nodes: int | None = None,
    title: str | None = None,
) -> Explorer:
    """An HTML page that steps through the forward pass and back-propagation of `root`.

    Args:
        root: the Value to explore (its graph needs no backward() run first).
        path: where to write the page (optional; ``Explorer.save`` writes it too).
        max_nodes: at most this many Values (default 60): every step of a bigger graph
            could not be drawn; ValueError says so.
        title: the page's heading.
    """
    limit = _check(root, "LR", EXPLORER_MAX_NODES if max_nodes is None else max_nodes, "explorer")
    order = topological_order(root)
    if len(order) > limit:
        raise ValueError(
            f"explorer: the graph has {len(order)} Values, more than max_nodes={limit}; "
            "explore a smaller graph (one sample, one neuron), or raise max_nodes"
        )
    kept, ids, _ = _kept(root, limit)
    index = {v: i for i, v in enumerate(kept)}
    names = {v: _name(v, index[v]) for v in kept}

    # the forward pass: each operation, inputs first (the reverse of the backward order)
    steps: list[dict[str, Any]] = []
    for v in reversed(order):
        if not v.parents:
            continue
        rule = RULES[v.op]
        args = [names[p] for p in v.parents]
        nums = [_num(p._data) for p in v.parents]
        if v.op == "dot":
            n = (len(args) - 1) // 2
            expr = " + ".join([args[0], *(f"{args[1 + i]}·{args[1 + n + i]}" for i in range(n))])
            value = " + ".join([nums[0], *(f"{nums[1 + i]}·{nums[1 + n + i]}" for i in range(n))])
        elif len(args) == 2:
            expr = f"{args[0]} {rule.symbol} {args[1]}"
            value = f"{nums[0]} {rule.symbol} {nums[1]}"
        else:
            expr, value = f"{rule.symbol}({args[0]})", f"{rule.symbol}({nums[0]})"
        steps.append(
            {
                "kind": "forward",
                "node": ids[v],
                "text": f"{names[v]} = {expr} = {value} = {_num(v._data)}",
            }
        )
    # the seed, then every edge in Value.backward's order, with its running sum
    root_name = names[root]
    steps.append(
        {
            "kind": "seed",
            "node": ids[root],
            "grad": 1.0,
            "text": f"∂{root_name}/∂{root_name} = 1: the seed of back-propagation",
        }
    )
    grad: dict[Value, float] = {root: 1.0}
    for node in order:
        g = grad[node]
        for k, (p, local) in enumerate(zip(node.parents, node.local_grads)):
            before = grad.get(p, 0.0)
            after = before + local * g
            grad[p] = after
            steps.append(
                {
                    "kind": "backward",
                    "node": ids[p],
                    "child": ids[node],
                    "edge": f"{ids[p]}->{ids[node]}_op",
                    "out": f"{ids[node]}_op->{ids[node]}",
                    "position": k,
                    "local": local,
                    "child_grad": g,
                    "before": before,
                    "grad": after,
                    "text": (
                        f"∂{root_name}/∂{names[p]} += ∂{names[node]}/∂{names[p]} · "
                        f"∂{root_name}/∂{names[node]} = {_num(local)} × {_num(g)}"
                        f" = {_num(local * g)};  {_num(before)} → {_num(after)}"
                    ),
                }
            )
    data = {
        "title": title or f"back-propagation through {root_name}",
        "root": ids[root],
        "nodes": {
            ids[v]: {
                "name": names[v],
                "data": v._data,
                "shown_data": _num(v._data),
                "grad": grad.get(v, 0.0),
                "shown_grad": _num(grad.get(v, 0.0)),
            }
            for v in kept
        },
        "steps": steps,
    }
    for s in steps:  # numbers as the page shows them
        if "grad" in s:
            s["shown_grad"] = _num(s["grad"])
    svg = render_bytes(_explorer_graph(root, kept, ids), "svg").decode("utf-8")
    page = _page(data, svg[svg.index("<svg") :])
    result = Explorer(page, len(steps))
    if path is not None:
        result.save(path)
    return result


def _explorer_graph(root: Value, kept: list[Value], ids: dict[Value, str]) -> Any:
    """The forward graph's layout, each box holding its name, its data and a gradient to come."""
    g = _digraph("explorer", "LR")
    for v in reversed(kept):
        vid = ids[v]
        label = [_visible(v.label) if v.label else vid]  # the name the steps call it by
        lines = [*label, f"data {_num(v._data)}", "grad"]
        attrs = _box([*label, f"data {_num(v._data)}", "grad -0.00000e+00"])
        attrs["label"] = "\n".join(lines)
        if v is root:
            attrs["penwidth"] = "2"
        g.node(vid, **attrs)
        if v.parents:
            op = f"{vid}_op"
            symbol = RULES[v.op].symbol
            size = f"{max(0.3, (len(symbol) * 6.6 + 8) / 72):.3f}"
            g.node(op, symbol, shape="circle", width=size, height=size)
            g.edge(op, vid)
            for p in v.parents:
                g.edge(ids[p], op)
    return g


def _asset(name: str) -> str:
    return (resources.files("autodiff.render") / "assets" / name).read_text(encoding="utf-8")


def _page(data: dict[str, Any], svg: str) -> str:
    """The HTML page: template, style, SVG, data and script, all inline (in one pass, so
    that no label can smuggle in a placeholder)."""
    fills = {
        "TITLE": html.escape(data["title"]),
        "CSS": _asset("explorer.css"),
        "SVG": svg,
        "DATA": json.dumps(data, ensure_ascii=False).replace("</", "<\\/"),
        "JS": _asset("explorer.js"),
    }
    return re.sub(r"\{\{(\w+)\}\}", lambda m: fills[m.group(1)], _asset("explorer.html"))
