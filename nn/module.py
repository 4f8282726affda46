"""Modules: Neuron, Layer and MLP, built from autodiff Values.

Initialisation is scaled to the fan-in ``nin`` so that a layer's outputs start
with about the variance of its inputs, whatever its width:

* relu: He (Kaiming) uniform, w ~ U(−√(6/nin), √(6/nin)), variance 2/nin: relu
  zeroes about half of its inputs, and the factor 2 makes up for that;
* tanh, sigmoid, linear: LeCun uniform, w ~ U(−√(3/nin), √(3/nin)), variance 1/nin.

Biases start at 0, except in relu units, which start at 0.1: a relu unit whose
pre-activation is exactly 0 on a sample gets no gradient from it (relu'(0) = 0),
and with zero biases that is every unit on the input (0, 0) -- XOR's first
sample. With 0.1 every unit starts active there. (On XOR with 8 hidden units
this takes the seeds solved from 93/100 to 100/100.)

Every random number comes from one ``random.Random``, made
from ``seed`` or passed in as ``rng``, so a model is reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from autodiff import Value, dot

__all__ = ["ACTIVATIONS", "RELU_BIAS", "MLP", "Layer", "Module", "Neuron"]

Input = Sequence["Value | float"]

#: The initial bias of a relu unit (see the module docstring).
RELU_BIAS = 0.1

#: Activation name -> function of a Value.
ACTIVATIONS: dict[str, Callable[[Value], Value]] = {
    "relu": Value.relu,
    "tanh": Value.tanh,
    "sigmoid": Value.sigmoid,
    "linear": lambda v: v,
}


def _activation(name: str, where: str) -> Callable[[Value], Value]:
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"{where}: unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


def _rng(seed: int | None, rng: random.Random | None) -> random.Random:
    if rng is not None and seed is not None:
        raise ValueError("give seed= or rng=, not both")
    return rng if rng is not None else random.Random(seed)


def _check_size(n: object, what: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{what} must be a positive int, got {n!r}")
    return n


class Module:
    """Something with parameters: ``parameters()`` lists them, ``zero_grad()`` resets them."""

    def parameters(self) -> list[Value]:
        """Every trainable Value of this module, in a fixed order."""
        return []

    def zero_grad(self) -> None:
        """Set every parameter's gradient to 0 (before the next backward pass)."""
        for p in self.parameters():
            p.grad = 0.0

    @contextmanager
    def bound(self, values: Sequence[Value]) -> Iterator[Module]:
        """Use `values` as the parameters inside the block (in ``parameters()`` order).

        This makes a loss a function of the parameters, which is what
        ``autodiff.trace`` needs: ``with model.bound(ps): loss = ...``. The
        module's own parameters are back in place on exit.
        """
        own = self.parameters()
        if len(values) != len(own):
            raise ValueError(f"bound: expected {len(own)} values, got {len(values)}")
        self._assign(list(values))
        try:
            yield self
        finally:
            self._assign(own)

    def _assign(self, values: list[Value]) -> None:
        """Make `values` this module's parameters (as many as parameters() lists)."""
        if values:
            raise NotImplementedError(f"{type(self).__name__} does not implement _assign")


class Neuron(Module):
    """One unit: activation(w · x + b), the weighted sum being one ``dot`` node."""

    def __init__(
        self,
        nin: int,
        activation: str = "relu",
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.nin = _check_size(nin, "Neuron: nin")
        self.activation = activation
        self._act = _activation(activation, "Neuron")
        gen = _rng(seed, rng)
        bound = math.sqrt((6.0 if activation == "relu" else 3.0) / nin)
        self.w = [Value(gen.uniform(-bound, bound)) for _ in range(nin)]
        self.b = Value(RELU_BIAS if activation == "relu" else 0.0)

    def __call__(self, x: Input) -> Value:
        if len(x) != self.nin:
            raise ValueError(f"Neuron: expected {self.nin} inputs, got {len(x)}")
        return self._act(dot(self.w, x, self.b))  # b + Σ wᵢxᵢ as one node

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]

    def _assign(self, values: list[Value]) -> None:
        self.w, self.b = values[:-1], values[-1]

    def __repr__(self) -> str:
        return f"Neuron({self.nin}, activation={self.activation!r})"


class Layer(Module):
    """`nout` neurons reading the same `nin` inputs; returns a list of `nout` Values."""

    def __init__(
        self,
        nin: int,
        nout: int,
        activation: str = "relu",
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        _check_size(nout, "Layer: nout")
        gen = _rng(seed, rng)
        self.nin, self.nout, self.activation = nin, nout, activation
        self.neurons = [Neuron(nin, activation, rng=gen) for _ in range(nout)]

    def __call__(self, x: Input) -> list[Value]:
        if len(x) != self.nin:
            raise ValueError(f"Layer: expected {self.nin} inputs, got {len(x)}")
        x = [v if type(v) is Value else Value(v) for v in x]  # type: ignore[arg-type]  # once
        return [n(x) for n in self.neurons]

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def _assign(self, values: list[Value]) -> None:
        _assign_parts(self.neurons, values)

    def __repr__(self) -> str:
        return f"Layer({self.nin}, {self.nout}, activation={self.activation!r})"


class MLP(Module):
    """A multi-layer perceptron: f(x) = lᴺ(… l²(l¹(x))), the lecture's L2.

    Args:
        nin: the number of inputs.
        nouts: the width of each layer, the last being the number of outputs.
        activation: of every hidden layer.
        output_activation: of the last layer ("linear" gives raw scores z).
        seed, rng: where the initial weights come from (one of them, or neither).

    Called on one sample, it returns a Value when there is one output, else a list.
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        activation: str = "relu",
        output_activation: str = "linear",
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        _check_size(nin, "MLP: nin")
        if not nouts:
            raise ValueError("MLP: nouts must list at least one layer width")
        _activation(activation, "MLP")
        _activation(output_activation, "MLP")
        gen = _rng(seed, rng)
        sizes = [nin, *nouts]
        acts = [activation] * (len(nouts) - 1) + [output_activation]
        self.nin = nin
        self.layers = [Layer(sizes[i], sizes[i + 1], acts[i], rng=gen) for i in range(len(nouts))]

    def hidden(self, x: Input) -> list[Value]:
        """The last hidden layer's output: the learned features h = φ(x) (the lecture's L7)."""
        if len(self.layers) < 2:
            raise ValueError("MLP.hidden: this MLP has no hidden layer")
        for layer in self.layers[:-1]:
            x = layer(x)
        return x  # type: ignore[return-value]

    def __call__(self, x: Input) -> Value | list[Value]:
        if len(x) != self.nin:
            raise ValueError(f"MLP: expected {self.nin} inputs, got {len(x)}")
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x  # type: ignore[return-value]

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def _assign(self, values: list[Value]) -> None:
        _assign_parts(self.layers, values)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"MLP([{inner}])"


def _assign_parts(parts: Sequence[Module], values: list[Value]) -> None:
    start = 0
    for part in parts:
        n = len(part.parameters())
        part._assign(values[start : start + n])
        start += n
