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
shapes, so edges end on them. Labels are shown literally, whatever they hold
(:mod:`autodiff.render.style`). A graph of up to :data:`WHOLE_UP_TO` Values is
drawn whole; a bigger one is cut to the Values nearest the root
(:data:`DEFAULT_MAX_NODES`, :data:`DEFAULT_MAX_DEPTH`, or the ``max_nodes`` and
``max_depth`` given), so that a picture fits a screen; a note says how many were
left out, and the edges into them are drawn as one edge per cut node.

Drawing is a pure function of the graph: it reads ``.data`` and the local
derivatives stored on the nodes, computes the gradients it shows, and writes
nothing -- no ``.grad`` or ``.data`` changes.

Rendering needs a ``dot`` program. A system Graphviz on PATH is used when there
is one; otherwise the ``graphviz-pure`` command from PyPI (a dependency of this
package, so a plain ``pip install`` is enough). Importing this module points the
``graphviz`` package at whichever it finds; :func:`renderer` says which.

This module needs the ``graphviz`` package; the engine itself does not.
"""

from autodiff.render._explorer import Explorer, explorer
from autodiff.render.graphs import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_NODES,
    FONT,
    WHOLE_UP_TO,
    Graph,
    RendererNotFoundError,
    backward_graph,
    find_renderer,
    forward_graph,
    render_bytes,
    renderer,
    save,
)

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NODES",
    "FONT",
    "WHOLE_UP_TO",
    "Explorer",
    "Graph",
    "RendererNotFoundError",
    "backward_graph",
    "explorer",
    "find_renderer",
    "forward_graph",
    "render_bytes",
    "renderer",
    "save",
]
