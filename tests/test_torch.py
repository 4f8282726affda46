"""Optional cross-check against PyTorch (float64), skipped when torch is not installed.

`pip install torch==2.13.0` installs a CPU build; both engines compute in IEEE
double, the same formulas up to the order of operations, so 1e-10 relative.
"""

from __future__ import annotations

import pytest
from graphs import OPS, Graph, graphs
from hypothesis import given

from autodiff import Value

torch = pytest.importorskip("torch")


class TorchNode:
    """Enough of Value's interface, on 0-d float64 tensors, to run a Graph."""

    def __init__(self, t):
        self.t = t

    def _wrap(self, other):
        return other.t if isinstance(other, TorchNode) else other

    def __add__(self, o):
        return TorchNode(self.t + self._wrap(o))

    __radd__ = __add__

    def __sub__(self, o):
        return TorchNode(self.t - self._wrap(o))

    def __rsub__(self, o):
        return TorchNode(o - self.t)

    def __mul__(self, o):
        return TorchNode(self.t * self._wrap(o))

    __rmul__ = __mul__

    def __truediv__(self, o):
        return TorchNode(self.t / self._wrap(o))

    def __rtruediv__(self, o):
        return TorchNode(o / self.t)

    def __pow__(self, o):
        return TorchNode(self.t ** self._wrap(o))

    def __rpow__(self, o):
        return TorchNode(torch.tensor(o, dtype=torch.float64) ** self.t)

    def __neg__(self):
        return TorchNode(-self.t)

    def exp(self):
        return TorchNode(self.t.exp())

    def log(self):
        return TorchNode(self.t.log())

    def tanh(self):
        return TorchNode(self.t.tanh())

    def sigmoid(self):
        return TorchNode(self.t.sigmoid())

    def softplus(self):
        return TorchNode(torch.nn.functional.softplus(self.t))

    def relu(self):
        return TorchNode(self.t.relu())


@given(graphs())
def test_random_graphs_match_pytorch(g: Graph):
    xs = [Value(x) for x in g.point]
    y = g(xs)
    y.backward()
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in g.point]
    ty = g([TorchNode(t) for t in ts]).t
    ty.backward()
    assert y.data == pytest.approx(ty.item(), rel=1e-10, abs=1e-12)
    for x, t in zip(xs, ts):
        expected = 0.0 if t.grad is None else t.grad.item()
        assert x.grad == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_every_graph_op_is_covered():
    assert {"exp", "log", "tanh", "sigmoid", "softplus", "relu", "pow_value"} <= set(OPS)
