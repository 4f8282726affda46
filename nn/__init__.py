"""nn: neurons, layers and MLPs built on autodiff.Value, with losses, optimizers and data.

Its modules in floors, each importing only floors below it (tests/test_quality.py
holds the longest chain to five files):

* commands -- ``xor``, ``digits``, ``cli``: arguments, files, one-line errors;
* pictures -- ``draw`` (the face), ``network``, ``layer_page``, ``plots``;
* training -- ``compiled`` (compiled steps; owns array parameters while they run),
  ``train`` (plain loops);
* files -- ``serialize``: ``nn.save`` / ``nn.load`` of models and optimizers;
* model -- ``module`` (one walk of the tree), ``losses``, ``optim``, ``data``,
  ``lecture``.

>>> from nn import MLP, losses, optim
>>> model = MLP(2, [16, 1], seed=0)
>>> opt = optim.Adam(model.parameters(), lr=0.05)
>>> len(model.parameters()), model.named_parameters()[0][0]
(65, 'layers.0.neurons.0.w.0')
"""

from nn import data, losses, optim
from nn.module import MLP, Layer, Module, Neuron
from nn.serialize import load, save

__all__ = ["MLP", "Layer", "Module", "Neuron", "data", "load", "losses", "optim", "save"]
