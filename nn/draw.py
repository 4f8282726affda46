"""Pictures of a network, at two levels.

* :func:`network_graph`: the neurons of an MLP in columns, weights as edges, for one
  sample: outputs and weights, or gradients (:mod:`nn.network`).
* :func:`layer_explorer`: a page stepping through back-propagation layer by layer, the
  lecture's L12–L17 with their vectors and matrices, each entry tied to the edges of
  the scalar graph it sums (:mod:`nn.layer_page`).
* :class:`TrainingRecorder` and :func:`watch_training`: a page to watch a two-input
  network learn, every hidden unit drawn as its output over the input plane
  (:mod:`nn.training_page`).

Rendered with :func:`autodiff.render.save` (graphs) or ``.save(path)`` (pages), like
the Value graphs and the explorer.
"""

from __future__ import annotations

from nn.layer_page import layer_explorer
from nn.network import EDGE_LABELS_UP_TO, network_graph
from nn.training_page import TrainingPage, TrainingRecorder, recorded_steps, watch_training

__all__ = [
    "EDGE_LABELS_UP_TO",
    "TrainingPage",
    "TrainingRecorder",
    "layer_explorer",
    "network_graph",
    "recorded_steps",
    "watch_training",
]
