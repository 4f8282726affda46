"""Draw the graph: the forward pass (values) and back-propagation (gradients).

* :func:`forward_graph`: one box per Value with its label and data, one small
  circle per operation; edges follow the data from the inputs to the root.
* :func:`backward_graph`: the same picture -- the same boxes in the same places
  -- with each Value's gradient, the arrows reversed (the way gradients flow),
  and each input edge labelled with its local derivative ∂child/∂parent, so
  that grad(parent) = Σ local × grad(child) can be checked by eye.
* :func:`explorer`: one HTML file stepping through the forward pass and then
  back-propagation, edge by edge, with the chain rule's numbers (see
  :mod:`autodiff.render._explorer`).

Both graphs are :class:`Graph` objects (a :class:`graphviz.Digraph` that shows itself
quietly): ``.source`` is the DOT text (always available), Jupyter shows them inline, and
:func:`save` writes SVG or PNG.

Readable on any machine. Text is set in Courier (a monospace font every
renderer has metrics for, and browsers replace with another monospace font of
the same advance), and every box is sized from its longest line, so no text
leaves its box whatever fonts the viewer has; the boxes are the nodes' real
shapes, so edges end on them. Large graphs are cut to the ``max_nodes`` Values
nearest the root (:data:`DEFAULT_MAX_NODES` by default, so that a picture fits
a screen); a note says how many were left out, and the edges into them are
drawn as one edge per cut node.

Rendering needs a ``dot`` program. A system Graphviz on PATH is used when there
is one; otherwise the ``graphviz-pure`` command from PyPI (a dependency of this
package, so a plain ``pip install`` is enough). Importing this module points the
``graphviz`` package at whichever it finds; :func:`renderer` says which.

This module needs the ``graphviz`` package; the engine itself does not.
"""

from __future__ import annotations

import math
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable

import graphviz
import graphviz.backend.dot_command

from autodiff.engine import Value, topological_order
from autodiff.functional import adjoints
from autodiff.rules import RULES

__all__ = [
    "DEFAULT_MAX_NODES",
    "Explorer",
    "Graph",
    "RendererNotFoundError",
    "backward_graph",
    "explorer",
    "find_renderer",
    "forward_graph",
    "renderer",
    "save",
]

#: Graphs with more Values than this are cut, with a note saying how many are hidden.
DEFAULT_MAX_NODES = 24
#: And Values further than this from the root (a chain is as wide as it is deep).
DEFAULT_MAX_DEPTH = 8
#: The largest picture, in inches at 96 dpi (a 1920×1080 screen): graphviz shrinks a
#: bigger one to fit (with the defaults above, never below ¾ of its size).
SCREEN = (20.0, 11.25)

RANKDIRS = ("LR", "RL", "TB", "BT")
FONT = "Courier"  # known to every renderer's metrics; browsers use a monospace font alike
FONTSIZE = 11.0
_CHAR = 0.6 * FONTSIZE  # Courier's advance is 0.6 em
_LINE = 1.25 * FONTSIZE

_PURE = "graphviz-pure"
_PURE_FORMATS = frozenset({"svg", "png", "jpg", "jpeg", "json", "dot", "plain", "xdot"})


class RendererNotFoundError(RuntimeError):
    """No ``dot`` program could be found to turn DOT source into a picture."""


def find_renderer() -> str | None:
    """The path of the ``dot`` program to use: a system ``dot`` first, else ``graphviz-pure``."""
    system = shutil.which("dot")
    if system:
        return system
    pure = shutil.which(_PURE)
    if pure:
        return pure
    # installed beside this interpreter but not on PATH (a venv used without activating it),
    # looked for in a fixed order: the scheme's scripts, the interpreter's folder, its target's
    here = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    here.append(os.path.dirname(os.path.realpath(sys.executable)))
    for folder in dict.fromkeys(here):
        candidate = os.path.join(folder, _PURE)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


_renderer = find_renderer()
if _renderer is not None and os.path.basename(_renderer) == _PURE:
    graphviz.backend.dot_command.DOT_BINARY = pathlib.Path(_renderer)


def renderer() -> str | None:
    """The ``dot`` program this module renders with (None: no renderer was found)."""
    return _renderer


# -- formatting ------------------------------------------------------------------


def _num(x: float) -> str:
    """A number to 4 decimal places; scientific notation where that would say nothing."""
    if x == 0.0:
        return "0.0000"  # also for -0.0
    if math.isfinite(x) and 1e-4 <= abs(x) < 1e6:
        return f"{x:.4f}"
    return f"{x:.4e}" if math.isfinite(x) else str(x)


def _visible(s: str) -> str:
    """User text as it should appear: control characters shown as escapes (\\n, \\x07)."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")  # DOT reads a backslash as an escape: keep it one backslash
        elif ord(ch) < 32 or ord(ch) == 127:
            shown = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{ord(ch):02x}")
            out.append("\\" + shown)  # a visible backslash, then the letter
        else:
            out.append(ch)
    return "".join(out)


def _width(lines: Iterable[str]) -> int:
    """Characters in the longest line, counting a DOT escape as the one it shows."""
    return max((len(line.replace("\\\\", "\\")) for line in lines), default=1)


def _box(lines: list[str]) -> dict[str, str]:
    """Attributes of a fixed-size box that holds `lines` of Courier text."""
    width = (_width(lines) * _CHAR + 14) / 72
    height = (len(lines) * _LINE + 8) / 72
    return {
        "label": "\n".join(lines),
        "width": f"{width:.3f}",
        "height": f"{height:.3f}",
    }


def _count(value: object, default: int, what: str, where: str) -> int:
    limit = default if value is None else value
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"{where}: {what} must be an int, got {type(limit).__name__} {limit!r}")
    if limit < 1:
        raise ValueError(f"{where}: {what} must be at least 1, got {limit!r}")
    return limit


def _check(root: object, rankdir: object, max_nodes: object, where: str) -> int:
    if not isinstance(root, Value):
        raise TypeError(f"{where}: root must be a Value, got {type(root).__name__} {root!r}")
    if rankdir not in RANKDIRS:
        raise ValueError(f"{where}: rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    return _count(max_nodes, DEFAULT_MAX_NODES, "max_nodes", where)


def _kept(
    root: Value, limit: int, depth: int | None = None
) -> tuple[list[Value], dict[Value, str], int]:
    """The Values to draw (root first), their DOT ids, and how many were left out.

    Those nearest the root: at most `depth` Values along any path from it (the longest
    path counts, so that every kept node's users are kept), then the first `limit` of
    them in backward's order.
    """
    order = topological_order(root)
    if depth is not None:
        far = {root: 1}
        for v in order:
            d = far[v] + 1
            for p in v.parents:
                if far.get(p, 0) < d:
                    far[p] = d
        near = [v for v in order if far[v] <= depth]
    else:
        near = order
    kept = near[:limit]  # every kept node's users are kept (root first)
    return kept, {v: f"v{i}" for i, v in enumerate(kept)}, len(order) - len(kept)


class Graph(graphviz.Digraph):
    """A :class:`graphviz.Digraph` that Jupyter shows through :func:`render_bytes`: with the
    renderer chosen here, and without the renderer's warnings on stderr (a notebook would
    print them under the picture; Graphviz without fonts warns about every non-ASCII label,
    which the fixed-size boxes here do not need)."""

    def _repr_image_svg_xml(self) -> str:
        return render_bytes(self, "svg").decode("utf-8")

    def _repr_image_png(self) -> bytes:
        return render_bytes(self, "png")

    def _repr_image_jpeg(self) -> bytes:
        return render_bytes(self, "jpeg")


def _digraph(name: str, rankdir: str, fit: bool = False) -> Graph:
    g = Graph(
        name,
        graph_attr={
            **({"size": f"{SCREEN[0]:g},{SCREEN[1]:g}"} if fit else {}),
            "rankdir": rankdir,
            "nodesep": "0.18",
            "ranksep": "0.3",
            "fontname": FONT,
            "bgcolor": "white",
        },
        node_attr={
            "shape": "box",
            "fixedsize": "true",
            "fontname": FONT,
            "fontsize": f"{FONTSIZE:g}",
            "margin": "0",
        },
        edge_attr={"fontname": FONT, "fontsize": "9"},
    )
    return g


def _graph(root: Value, rankdir: str, max_nodes: int, max_depth: int, backward: bool) -> Graph:
    """The shared layout of both graphs: boxes, operation circles, and their edges."""
    kept, ids, hidden = _kept(root, max_nodes, max_depth)
    name = "backward" if backward else "forward"
    g = _digraph(name, rankdir, fit=True)
    if hidden:
        note = [
            f"… {hidden} more value{'s' if hidden != 1 else ''} not shown",
            f"(max_nodes={max_nodes}, max_depth={max_depth})",
        ]
        g.node("hidden", style="dashed", **_box(note))
    red = "firebrick"
    for v in reversed(kept):  # inputs first: reads in the order things were computed
        vid = ids[v]
        label = [_visible(v.label)] if v.label else []
        numbers = [f"data {_num(v._data)}", f"grad {_num(v.grad)}"]
        shown = numbers[1] if backward else numbers[0]
        attrs = _box([*label, shown])
        attrs["width"] = _box([*label, *numbers])["width"]  # the same box in both graphs
        if v is root:
            attrs["penwidth"] = "2"
        g.node(vid, **attrs)
        if not v.parents:
            continue
        op = f"{vid}_op"
        symbol = RULES[v.op].symbol
        size = f"{max(0.3, (len(symbol) * _CHAR + 8) / 72):.3f}"
        g.node(op, symbol, shape="circle", width=size, height=size)
        g.edge(op, vid, **({"dir": "back", "color": red} if backward else {}))
        cut = 0
        for p, local in zip(v.parents, v.local_grads):
            pid = ids.get(p)
            if pid is None:
                cut += 1
                continue
            # the forward graph's label is spaces as wide as the backward graph's derivative
            # (Courier: every character is as wide), so that both get the same layout
            text = _num(local)
            if backward:
                g.edge(pid, op, label=text, dir="back", color=red, fontcolor=red)
            else:
                g.edge(pid, op, label=" " * len(text))
        if cut:
            more = {"dir": "back", "color": red} if backward else {}
            text = f"{cut} input{'s' if cut != 1 else ''}"
            g.edge("hidden", op, label=text, style="dashed", **more)
    return g


# -- the two graphs -----------------------------------------------------------------


def forward_graph(
    root: Value,
    rankdir: str = "LR",
    *,
    max_nodes: int | None = None,
    max_depth: int | None = None,
) -> Graph:
    """The forward pass that computed `root`: each Value's label and data, and each operation.

    Args:
        root: the Value to draw, with everything it was computed from.
        rankdir: layout direction: "LR" (inputs left, root right), "RL", "TB" or "BT".
        max_nodes: draw at most this many Values (default :data:`DEFAULT_MAX_NODES`),
            those nearest the root; a note says how many were left out.
        max_depth: and only Values at most this many steps from the root (default
            :data:`DEFAULT_MAX_DEPTH`). The defaults fit a screen.
    """
    limit = _check(root, rankdir, max_nodes, "forward_graph")
    depth = _count(max_depth, DEFAULT_MAX_DEPTH, "max_depth", "forward_graph")
    return _graph(root, rankdir, limit, depth, False)


def backward_graph(
    root: Value,
    rankdir: str = "LR",
    *,
    max_nodes: int | None = None,
    max_depth: int | None = None,
) -> Graph:
    """Back-propagation from `root`: each Value's gradient, each edge's local derivative.

    The layout is the forward graph's; the arrows point from `root` back towards
    the leaves, and each input edge is labelled ∂child/∂parent. Run
    ``root.backward()`` first: a graph whose gradients are missing, or were
    overwritten by a backward pass from another root, raises ValueError.
    NaN gradients are drawn as ``nan``.

    Args:
        root: the Value back-propagated from.
        rankdir, max_nodes, max_depth: as in :func:`forward_graph`.
    """
    limit = _check(root, rankdir, max_nodes, "backward_graph")
    depth = _count(max_depth, DEFAULT_MAX_DEPTH, "max_depth", "backward_graph")
    _check_gradients(root)
    return _graph(root, rankdir, limit, depth, True)


def _check_gradients(root: Value) -> None:
    """Raise ValueError unless the interior gradients are those of a pass from `root`."""
    if root.grad == 0.0:
        raise ValueError(
            f"backward_graph: no gradients to draw: {root!r} has grad 0.0; "
            "call root.backward() first"
        )
    for node, g in adjoints(root, root.grad).items():
        if node.parents and g != node.grad and not (g != g and node.grad != node.grad):
            raise ValueError(
                "backward_graph: the gradients in this graph are not those of a backward pass "
                f"from this root ({node!r} should have grad {g!r}); another root's backward() "
                "has run since: call root.backward() again"
            )


# -- writing a picture ------------------------------------------------------------------


def save(graph: graphviz.Digraph, path: str | os.PathLike[str], format: str | None = None) -> str:
    """Render `graph` to the file `path`; the format comes from its suffix (.svg, .png).

    Returns the path written. Raises :class:`RendererNotFoundError`, saying how to
    get one, when no ``dot`` program can be found; ValueError for a format the
    renderer cannot write (``graphviz-pure`` writes SVG and PNG but not PDF), and
    RuntimeError with the renderer's message when it fails. The renderer's
    warnings are not passed on to stderr.
    """
    path = os.fspath(path)
    fmt = (format or os.path.splitext(path)[1].lstrip(".")).lower()
    if not fmt:
        raise ValueError(
            f"save: give the file a suffix such as .svg or .png, or a format: {path!r}"
        )
    data = render_bytes(graph, fmt)
    with open(path, "wb") as f:
        f.write(data)
    return path


def render_bytes(graph: graphviz.Digraph, fmt: str = "svg") -> bytes:
    """`graph` rendered to the format `fmt`, as bytes (see :func:`save`)."""
    if _renderer is None:
        raise RendererNotFoundError(
            "save: no Graphviz renderer found: `pip install graphviz-pure` (a dependency of "
            "autodiff) or install Graphviz (for example `apt-get install graphviz`) so that "
            "`dot` is on PATH. The DOT text is still available as graph.source."
        )
    if os.path.basename(_renderer) == _PURE and fmt not in _PURE_FORMATS:
        raise ValueError(
            f"save: {_PURE} cannot write {fmt!r}; use one of {sorted(_PURE_FORMATS)} "
            "or install a system Graphviz"
        )
    try:
        run = subprocess.run(
            [_renderer, f"-T{fmt}"],
            input=graph.source.encode("utf-8"),
            capture_output=True,
            timeout=300,
        )
    except FileNotFoundError as e:  # the renderer vanished since import
        raise RendererNotFoundError(f"save: the Graphviz renderer {_renderer!r} is gone") from e
    if run.returncode != 0 or not run.stdout:
        message = run.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"save: {os.path.basename(_renderer)} failed: {message}")
    return run.stdout


# Last, because the explorer builds on everything above (it imports this module).
from autodiff.render._explorer import Explorer, explorer  # noqa: E402
