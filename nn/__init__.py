"""nn: neurons, layers and MLPs built on autodiff.Value, with losses, optimizers and data.

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
