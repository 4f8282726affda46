"""Draw the graph: the forward pass (values) and back-propagation (gradients).

* :func:`forward_graph`: one box per Value with its label and data, one small
  node per operation; edges follow the data from the inputs to the root.
* :func:`backward_graph`: the same Values with their gradients; edges run from
  the root back to the leaves, the way gradients flow, each labelled with its
  local derivative ∂child/∂parent, so that grad(parent) = Σ local × grad(child)
  can be checked by eye.

Both return a :class:`graphviz.Digraph`: ``.source`` is the DOT text (always
available), Jupyter shows it inline, and :func:`save` writes SVG or PNG.

Rendering needs a ``dot`` program. A system Graphviz on PATH is used when there
is one; otherwise the ``graphviz-pure`` command from PyPI (a dependency of this
package, so a plain ``pip install`` is enough). Importing this module points the
``graphviz`` package at whichever it finds; :func:`renderer` says which.

This module needs the ``graphviz`` package; the engine itself does not.
"""

from __future__ import annotations

import html
import math
import os
import pathlib
import shutil
import sys
import sysconfig

import graphviz
import graphviz.backend.dot_command

from autodiff.engine import Value, topological_order
from autodiff.functional import adjoints
from autodiff.rules import RULES

__all__ = [
    "DEFAULT_MAX_NODES",
    "RendererNotFoundError",
    "backward_graph",
    "find_renderer",
    "forward_graph",
    "renderer",
    "save",
]

#: Graphs with more Values than this are cut, with a note saying how many are hidden.
DEFAULT_MAX_NODES = 300

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


def _text(s: str) -> str:
    """User text made safe inside a DOT HTML-like label (<, >, &, quotes, newlines)."""
    return html.escape(s, quote=True).replace("\n", "<BR/>")


def _record(cells: list[str]) -> str:
    row = "".join(f"<TD>{c}</TD>" for c in cells)
    return (
        f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4"><TR>{row}</TR></TABLE>>'
    )


def _kept(root: Value, max_nodes: int | None) -> tuple[list[Value], dict[Value, str], int]:
    """The Values to draw (root first), their DOT ids, and how many were left out."""
    if not isinstance(root, Value):
        raise TypeError(f"render: root must be a Value, got {type(root).__name__} {root!r}")
    limit = DEFAULT_MAX_NODES if max_nodes is None else max_nodes
    if limit < 1:
        raise ValueError(f"render: max_nodes must be at least 1, got {limit!r}")
    order = topological_order(root)
    kept = order[:limit]
    return kept, {v: f"v{i}" for i, v in enumerate(kept)}, len(order) - len(kept)


def _digraph(name: str, rankdir: str) -> graphviz.Digraph:
    g = graphviz.Digraph(name, graph_attr={"rankdir": rankdir}, node_attr={"fontsize": "11"})
    g.attr("edge", fontsize="10")
    return g


def _note_hidden(g: graphviz.Digraph, hidden: int) -> str:
    g.node(
        "hidden",
        f"… {hidden} more value{'s' if hidden != 1 else ''} not shown (max_nodes)",
        shape="note",
        style="dashed",
    )
    return "hidden"


# -- the two graphs -----------------------------------------------------------------


def forward_graph(
    root: Value, rankdir: str = "LR", *, max_nodes: int | None = None
) -> graphviz.Digraph:
    """The forward pass that computed `root`: each Value's label and data, and each operation.

    Args:
        root: the Value to draw, with everything it was computed from.
        rankdir: graphviz layout direction ("LR": inputs left, root right; "TB": top down).
        max_nodes: draw at most this many Values (default :data:`DEFAULT_MAX_NODES`),
            those nearest the root; a note says how many were left out.
    """
    kept, ids, hidden = _kept(root, max_nodes)
    g = _digraph("forward", rankdir)
    more = _note_hidden(g, hidden) if hidden else None
    for v in reversed(kept):  # inputs first: reads in the order things were computed
        vid = ids[v]
        cells = [f"<B>{_text(v.label)}</B>"] if v.label else []
        cells.append(f"data {_num(v._data)}")
        g.node(vid, _record(cells), shape="none", margin="0")
        if v.parents:
            g.node(f"{vid}_op", RULES[v.op].symbol, shape="circle", width="0.3", fixedsize="false")
            g.edge(f"{vid}_op", vid)
            for p in v.parents:
                g.edge(ids.get(p, more), f"{vid}_op")  # type: ignore[arg-type]
    return g


def backward_graph(
    root: Value, rankdir: str = "RL", *, max_nodes: int | None = None
) -> graphviz.Digraph:
    """Back-propagation from `root`: each Value's gradient, each edge's local derivative.

    Edges point from `root` back towards the leaves; the edge child → parent is
    labelled ∂child/∂parent. Run ``root.backward()`` first: a graph whose
    gradients are missing, or were overwritten by a backward pass from another
    root, raises ValueError.

    Args:
        root: the Value back-propagated from.
        rankdir: layout direction; the default "RL" keeps the inputs on the left,
            as in :func:`forward_graph`, with the arrows pointing back at them.
        max_nodes: as in :func:`forward_graph`.
    """
    kept, ids, hidden = _kept(root, max_nodes)
    _check_gradients(root)
    g = _digraph("backward", rankdir)
    more = _note_hidden(g, hidden) if hidden else None
    for v in kept:
        vid = ids[v]
        cells = [f"<B>{_text(v.label)}</B>"] if v.label else []
        if v.parents:
            cells.append(f"<I>{_text(RULES[v.op].symbol)}</I>")
        cells.append(f"grad {_num(v.grad)}")
        g.node(vid, _record(cells), shape="none", margin="0")
        for p, local in zip(v.parents, v.local_grads):
            g.edge(vid, ids.get(p, more), label=_num(local), color="firebrick")  # type: ignore[arg-type]
    return g


def _check_gradients(root: Value) -> None:
    """Raise ValueError unless the interior gradients are those of a pass from `root`."""
    if root.grad == 0.0:
        raise ValueError(
            f"backward_graph: no gradients to draw: {root!r} has grad 0.0; "
            "call root.backward() first"
        )
    for node, g in adjoints(root, root.grad).items():
        if node.parents and g != node.grad:
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
    renderer cannot write (``graphviz-pure`` writes SVG and PNG but not PDF).
    """
    path = os.fspath(path)
    fmt = (format or os.path.splitext(path)[1].lstrip(".")).lower()
    if not fmt:
        raise ValueError(
            f"save: give the file a suffix such as .svg or .png, or a format: {path!r}"
        )
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
        data = graph.pipe(format=fmt, quiet=True)
    except graphviz.ExecutableNotFound as e:  # the renderer vanished since import
        raise RendererNotFoundError(f"save: the Graphviz renderer {_renderer!r} is gone") from e
    with open(path, "wb") as f:
        f.write(data)
    return path
