"""The Value graphs: layout, rendering and writing (re-exported by :mod:`autodiff.render`).

The shared layout of every Value picture lives here -- :func:`layout` (boxes, operation
circles, edges), :func:`nearest` (which Values to draw) and :func:`check_root` -- so that
the graphs and the explorer (:mod:`autodiff.render._explorer`) draw alike; and the
renderer: :func:`find_renderer`, :func:`render_bytes`, :func:`save`.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping, Sequence

import graphviz
import graphviz.backend.dot_command

from autodiff.engine import Value, topological_order
from autodiff.files import write_file
from autodiff.functional import adjoints
from autodiff.render import style
from autodiff.render.style import FONT, FONTSIZE
from autodiff.rules import RULES

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NODES",
    "FONT",
    "WHOLE_UP_TO",
    "Graph",
    "RENDERER_VARIABLE",
    "RendererNotFoundError",
    "backward_graph",
    "check_root",
    "find_renderer",
    "forward_graph",
    "nearest",
    "label_lines",
    "layout",
    "render_bytes",
    "renderer",
    "save",
]

#: With the default limits, a graph of at most this many Values is drawn whole.
WHOLE_UP_TO = 60
#: A bigger one is cut to this many Values, those nearest the root, with a note
#: saying how many are hidden ...
DEFAULT_MAX_NODES = 24
#: ... and to Values at most this far from the root (a chain is as wide as it is deep).
DEFAULT_MAX_DEPTH = 8
#: The largest picture, in inches at 96 dpi (a 1920×1080 screen): graphviz shrinks a
#: bigger one to fit (with the defaults above, never below ¾ of its size).
SCREEN = (20.0, 11.25)

RANKDIRS = ("LR", "RL", "TB", "BT")

_PURE = "graphviz-pure"
_PURE_FORMATS = frozenset({"svg", "png", "jpg", "jpeg", "json", "dot", "plain", "xdot"})


class RendererNotFoundError(RuntimeError):
    """No ``dot`` program could be found to turn DOT source into a picture."""


#: The environment variable that picks a renderer: ``dot`` (the system's only) or
#: ``graphviz-pure`` (the PyPI package's only, even where a system ``dot`` exists); unset,
#: a system ``dot`` first, else ``graphviz-pure``. CI runs the picture tests with each.
RENDERER_VARIABLE = "AUTODIFF_RENDERER"


def find_renderer() -> str | None:
    """The path of the ``dot`` program to use: a system ``dot`` first, else ``graphviz-pure``
    (or the one :data:`RENDERER_VARIABLE` asks for)."""
    asked = os.environ.get(RENDERER_VARIABLE, "")
    if asked not in ("", "dot", _PURE):
        raise ValueError(
            f"{RENDERER_VARIABLE} must be 'dot' or '{_PURE}' (or unset), got {asked!r}"
        )
    system = shutil.which("dot") if asked != _PURE else None
    if system or asked == "dot":
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


# -- formatting (see autodiff.render.style) ----------------------------------------------


def label_lines(v: Value) -> tuple[list[str], str | None]:
    """A Value's label as box lines (none when it has no label), and its tooltip: the
    whole label, when the box shows it shortened."""
    if not v.label:
        return [], None
    text = style.visible(v.label)
    short = style.shortened(text)
    return [short], (style.tooltip_text(text) if short != text else None)


def _count(value: object, default: int, what: str, where: str) -> int:
    limit = default if value is None else value
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"{where}: {what} must be an int, got {type(limit).__name__} {limit!r}")
    if limit < 1:
        raise ValueError(f"{where}: {what} must be at least 1, got {limit!r}")
    return limit


def check_root(root: object, rankdir: object, where: str) -> None:
    """TypeError unless `root` is a Value, ValueError for an unknown `rankdir`, naming `where`."""
    if not isinstance(root, Value):
        raise TypeError(f"{where}: root must be a Value, got {type(root).__name__} {root!r}")
    if rankdir not in RANKDIRS:
        raise ValueError(f"{where}: rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")


def _limits(
    order: list[Value], max_nodes: object, max_depth: object, where: str
) -> tuple[int, int | None]:
    """The node and depth limits to draw with: the ones given, checked; by default the
    whole graph up to :data:`WHOLE_UP_TO` Values, else the cut of the defaults."""
    if max_nodes is None and max_depth is None and len(order) <= WHOLE_UP_TO:
        return len(order), None
    return (
        _count(max_nodes, DEFAULT_MAX_NODES, "max_nodes", where),
        _count(max_depth, DEFAULT_MAX_DEPTH, "max_depth", where),
    )


def nearest(
    order: list[Value], limit: int, depth: int | None = None
) -> tuple[list[Value], dict[Value, str], int]:
    """The Values to draw (root first), their DOT ids, and how many were left out.

    `order` is the graph in backward's order (root first). Kept are those nearest the
    root: at most `depth` Values along any path from it (the longest path counts, so
    that every kept node's users are kept), then the first `limit` of them.
    """
    root = order[0]
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


def layout(
    name: str,
    kept: list[Value],
    ids: dict[Value, str],
    rankdir: str,
    *,
    shown: Mapping[Value, Sequence[str]],
    width: Mapping[Value, Sequence[str]],
    grads: dict[Value, float] | None = None,
    fit: bool = True,
    spaced: bool = True,
    note: list[str] | None = None,
) -> Graph:
    """The one layout of every Value graph: a box per kept Value showing the lines
    `shown` (as wide as `width`), a circle per operation, and their edges.

    With `grads` the arrows run back from the root, in red, and each input edge is
    labelled with its local derivative ∂child/∂parent; without, with `spaced`, the input
    edges get blank labels as wide, so that both graphs get one layout. `fit` shrinks
    the picture to a screen. Inputs of a kept node that were not kept are drawn as one
    dashed edge from the `note` box saying what was cut.
    """
    root = kept[0]
    backward = grads is not None
    g = _digraph(name, rankdir, fit=fit)
    if note:
        g.node("hidden", style="dashed", **style.box(note))
    red = "firebrick"
    back = {"dir": "back", "color": red} if backward else {}
    for v in reversed(kept):  # inputs first: reads in the order things were computed
        vid = ids[v]
        _, tooltip = label_lines(v)
        attrs = style.box(shown[v], width[v])
        if tooltip is not None:
            attrs["tooltip"] = style.dot_text(tooltip)
        if v is root:
            attrs["penwidth"] = "2"
        g.node(vid, **attrs)
        if not v.parents:
            continue
        op = f"{vid}_op"
        g.node(op, **style.op_node(RULES[v.op].symbol))
        g.edge(op, vid, **back)
        cut = 0
        for p, local in zip(v.parents, v.local_grads):
            pid = ids.get(p)
            if pid is None:
                cut += 1
                continue
            # the forward graph's label is spaces as wide as the backward graph's derivative
            # (Courier: every character is as wide), so that both get the same layout
            text = style.number(local)
            if backward:
                g.edge(pid, op, label=text, fontcolor=red, **back)
            elif spaced:
                g.edge(pid, op, label=" " * len(text))
            else:
                g.edge(pid, op)
        if cut and note:
            text = f"{cut} input{'s' if cut != 1 else ''}"
            g.edge("hidden", op, label=text, style="dashed", **back)
    return g


def _value_graph(
    root: Value,
    rankdir: str,
    max_nodes: int | None,
    max_depth: int | None,
    backward: bool,
    where: str,
) -> Graph:
    """forward_graph and backward_graph: the same boxes, with data or with gradients."""
    check_root(root, rankdir, where)
    order = topological_order(root)
    limit, depth = _limits(order, max_nodes, max_depth, where)
    kept, ids, hidden = nearest(order, limit, depth)
    # ∂root/∂v for this root, computed here: never a .grad that another pass left. The
    # forward graph computes them too, for the width of its boxes: both graphs get one layout.
    grads = adjoints(root)
    shown, width = {}, {}
    for v in kept:
        label, _ = label_lines(v)
        numbers = (f"data {style.number(v._data)}", f"grad {style.number(grads[v])}")
        shown[v] = (*label, numbers[1] if backward else numbers[0])
        width[v] = (*label, *numbers)
    note = None
    if hidden:
        note = [
            f"… {hidden} more value{'s' if hidden != 1 else ''} not shown",
            f"(max_nodes={limit}, max_depth={depth})",
        ]
    name = "backward" if backward else "forward"
    return layout(
        name,
        kept,
        ids,
        rankdir,
        shown=shown,
        width=width,
        grads=grads if backward else None,
        note=note,
    )


# -- the two graphs -----------------------------------------------------------------


def forward_graph(
    root: Value,
    rankdir: str = "LR",
    *,
    max_nodes: int | None = None,
    max_depth: int | None = None,
) -> Graph:
    """The forward pass that computed `root`: each Value's label and data, and each operation.

    Drawing changes nothing: no ``.data`` and no ``.grad`` is touched.

    Args:
        root: the Value to draw, with everything it was computed from.
        rankdir: layout direction: "LR" (inputs left, root right), "RL", "TB" or "BT".
        max_nodes: draw at most this many Values, those nearest the root; a note says
            how many were left out.
        max_depth: and only Values at most this many steps from the root.

    With neither limit given, a graph of up to :data:`WHOLE_UP_TO` Values (the
    lecture's network has 28) is drawn whole, and a bigger one is cut to
    :data:`DEFAULT_MAX_NODES` Values at most :data:`DEFAULT_MAX_DEPTH` from the root,
    so that the picture fits a screen.
    """
    return _value_graph(root, rankdir, max_nodes, max_depth, False, "forward_graph")


def backward_graph(
    root: Value,
    rankdir: str = "LR",
    *,
    max_nodes: int | None = None,
    max_depth: int | None = None,
) -> Graph:
    """Back-propagation from `root`: each Value's gradient ∂root/∂v, each edge's local
    derivative.

    The gradients drawn are those of *this* root, computed for the picture with the
    engine's own numbers (:func:`autodiff.functional.adjoints`: what ``root.backward()``
    would leave in the interior gradients, bit for bit) -- whatever ``.grad`` holds, be it
    accumulated over several passes, zeroed, from another root's pass, or never
    computed. Nothing is written: every ``.grad`` and ``.data`` stays as it was.

    The layout is the forward graph's; the arrows point from `root` back towards the
    leaves, and each input edge is labelled ∂child/∂parent, so that
    grad(parent) = Σ local × grad(child) holds for the numbers drawn. NaN and
    infinite gradients are drawn as ``nan``, ``inf``.

    Args:
        root: the Value to back-propagate from.
        rankdir, max_nodes, max_depth: as in :func:`forward_graph`.
    """
    return _value_graph(root, rankdir, max_nodes, max_depth, True, "backward_graph")


# -- writing a picture ------------------------------------------------------------------


def save(graph: graphviz.Digraph, path: str | os.PathLike[str], format: str | None = None) -> str:
    """Render `graph` to the file `path`, whole or not at all (:mod:`autodiff.files`); the
    format comes from its suffix (.svg, .png).

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
    return write_file(path, render_bytes(graph, fmt))  # whole or not at all


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
