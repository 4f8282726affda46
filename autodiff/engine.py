"""`Value`, a scalar that remembers how it was computed, and `backward`.

Every arithmetic operation on a :class:`Value` returns a new Value that records

* ``parents``: the Values it was computed from, and
* ``local_grads``: the partial derivative of itself with respect to each parent,
  as numbers, computed once when the node is made (see :mod:`autodiff.rules`).

Back-propagation is then the chain rule, one line per edge::

    parent.grad += local_grad * node.grad        # ∇ₓz = Jᵀ ∇_y z, one row at a time

visited in reverse topological order, so that a node's gradient is complete
before it is passed on.  The order is found without recursion, and a node holds
no closure, only numbers and its parents, so a graph contains no reference
cycles and is freed by reference counting the moment it is dropped.
"""

from __future__ import annotations

import numbers
from types import TracebackType

from autodiff.rules import RULES, Rule

__all__ = ["Value", "no_grad", "is_grad_enabled", "Number"]

#: What an operation accepts besides a Value.
Number = int | float

# Grad mode is process-wide, not thread-local: one flag read per new node.
_grad_enabled = True


def is_grad_enabled() -> bool:
    """True unless inside :class:`no_grad`."""
    return _grad_enabled


class no_grad:  # noqa: N801 -- named like PyTorch's, which users know
    """Context manager: operations inside record no parents (a graph is not built).

    Use it for parameter updates and evaluation.  Nests, and restores the
    previous mode on exit, also when an exception leaves the block.
    """

    __slots__ = ("_prev",)

    def __enter__(self) -> no_grad:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _grad_enabled
        _grad_enabled = self._prev


def _as_float(x: object, where: str) -> float:
    """The float of a real number; TypeError naming `where` for anything else."""
    if type(x) is float:
        return x  # type: ignore[return-value]
    if isinstance(x, numbers.Real):
        return float(x)
    raise TypeError(f"{where}: expected a real number (int or float), got {type(x).__name__} {x!r}")


class Value:
    """A scalar node of a computational graph.

    Attributes:
        data: the number (a float).
        grad: ∂root/∂self after ``root.backward()``; 0.0 before.
        label: a name for display (settable).
        op: the name of the operation that produced this Value, "" for a leaf.
        parents: the Values it was computed from (empty for a leaf).
        local_grads: ∂self/∂parent for each parent, as floats.
    """

    __slots__ = ("data", "grad", "label", "op", "parents", "local_grads", "__weakref__")

    data: float
    grad: float
    label: str
    op: str
    parents: tuple[Value, ...]
    local_grads: tuple[float, ...]

    def __init__(self, data: Number, label: str = "") -> None:
        self.data = _as_float(data, "Value")
        self.grad = 0.0
        self.label = label
        self.op = ""
        self.parents = ()
        self.local_grads = ()

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        op = f", op={self.op!r}" if self.op else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{label}{op})"

    def __float__(self) -> float:
        return self.data

    def item(self) -> float:
        """The number held, as a float (PyTorch's name for it)."""
        return self.data

    # -- arithmetic ---------------------------------------------------------

    # + and × make most of the nodes of a network, so they record their node
    # in place (one call fewer each); their derivatives still come from RULES.

    def __add__(self, other: Value | Number) -> Value:
        if type(other) is not Value:
            other = _lift(other, _ADD)
        a = self.data
        b = other.data  # type: ignore[union-attr]
        v = _new(Value)
        v.data = out = a + b
        v.grad = 0.0
        v.label = ""
        if _grad_enabled:
            v.op = "add"
            v.parents = (self, other)
            v.local_grads = _add_local(a, b, out)
        else:
            v.op = ""
            v.parents = v.local_grads = ()
        return v

    __radd__ = __add__  # a + b = b + a; only the order the parents are drawn in differs

    def __sub__(self, other: Value | Number) -> Value:
        return _apply2(_SUB, self, other)

    def __rsub__(self, other: Number) -> Value:
        return _apply2(_SUB, other, self)

    def __mul__(self, other: Value | Number) -> Value:
        if type(other) is not Value:
            other = _lift(other, _MUL)
        a = self.data
        b = other.data  # type: ignore[union-attr]
        v = _new(Value)
        v.data = out = a * b
        v.grad = 0.0
        v.label = ""
        if _grad_enabled:
            v.op = "mul"
            v.parents = (self, other)
            v.local_grads = _mul_local(a, b, out)
        else:
            v.op = ""
            v.parents = v.local_grads = ()
        return v

    __rmul__ = __mul__  # a × b = b × a

    def __truediv__(self, other: Value | Number) -> Value:
        return _apply2(_DIV, self, other)

    def __rtruediv__(self, other: Number) -> Value:
        return _apply2(_DIV, other, self)

    def __pow__(self, other: Value | Number) -> Value:
        return _apply2(_POW, self, other)

    def __rpow__(self, other: Number) -> Value:
        return _apply2(_POW, other, self)

    def __neg__(self) -> Value:
        return _apply1(_NEG, self)

    def __pos__(self) -> Value:
        return self

    # -- functions ----------------------------------------------------------

    def exp(self) -> Value:
        """e^self. OverflowError above ~709.78."""
        return _apply1(_EXP, self)

    def log(self) -> Value:
        """Natural logarithm. ValueError unless self > 0."""
        return _apply1(_LOG, self)

    def tanh(self) -> Value:
        """Hyperbolic tangent; derivative 1 − tanh²."""
        return _apply1(_TANH, self)

    def sigmoid(self) -> Value:
        """Logistic σ(x) = 1/(1+e^−x), stable for every float; derivative σ(1−σ)."""
        return _apply1(_SIGMOID, self)

    def softplus(self) -> Value:
        """ζ(x) = log(1+e^x), stable for every float; derivative σ(x)."""
        return _apply1(_SOFTPLUS, self)

    def relu(self) -> Value:
        """max(0, x); derivative 1 for x > 0 and 0 otherwise (0 at 0, as PyTorch)."""
        return _apply1(_RELU, self)

    # -- back-propagation -----------------------------------------------------

    def backward(self, gradient: float = 1.0) -> None:
        """Fill in ``.grad`` of every Value this one depends on, by back-propagation.

        The root is seeded with ``gradient`` (1.0: the derivative of itself).
        Leaves (Values with no parents) accumulate across calls, as in PyTorch;
        every interior node's gradient is recomputed from scratch, so a second
        call adds exactly the same amounts to the leaves again.
        """
        order = topological_order(self)
        # This pass sums each leaf's contributions on their own and adds the
        # total to what the leaf held once, so a repeated pass adds the very
        # same float again: backward() twice is exactly 2×, not 2× ± rounding.
        held = []
        for node in order:
            if not node.parents:
                held.append((node, node.grad))
            node.grad = 0.0
        self.grad = gradient
        for node in order:
            g = node.grad
            for parent, local in zip(node.parents, node.local_grads):
                parent.grad += local * g
        for leaf, before in held:
            leaf.grad += before


def topological_order(root: Value) -> list[Value]:
    """Every Value `root` depends on, root first, each before all of its parents.

    Kahn's algorithm, iterative: first count how many times each node is used as
    a parent within this graph, then release a node once all its users are out.
    """
    uses: dict[Value, int] = {}
    stack = [root]
    while stack:
        for parent in stack.pop().parents:
            n = uses.get(parent)
            if n is None:
                uses[parent] = 1
                stack.append(parent)
            else:
                uses[parent] = n + 1
    order = [root]
    ready = [root]
    while ready:
        for parent in ready.pop().parents:
            n = uses[parent] - 1
            uses[parent] = n
            if n == 0:
                ready.append(parent)
                order.append(parent)
    return order


# -- recording a node ---------------------------------------------------------

_new = object.__new__


def _node(
    data: float, parents: tuple[Value, ...], local_grads: tuple[float, ...], op: str
) -> Value:
    v = _new(Value)
    v.data = data
    v.grad = 0.0
    v.label = ""
    if _grad_enabled:
        v.op = op
        v.parents = parents
        v.local_grads = local_grads
    else:
        v.op = ""
        v.parents = ()
        v.local_grads = ()
    return v


def _lift(x: object, rule: Rule) -> Value:
    if type(x) is Value:
        return x  # type: ignore[return-value]
    if type(x) is float or type(x) is int or isinstance(x, numbers.Real):
        return _node(float(x), (), (), "")  # type: ignore[arg-type]
    raise TypeError(
        f"{rule.name} ({rule.symbol}): expected a Value or a real number (int or float), "
        f"got {type(x).__name__} {x!r}"
    )


def _apply1(rule: Rule, a: Value) -> Value:
    out = rule.forward(a.data)
    return _node(out, (a,), rule.local(a.data, out), rule.name)


def _apply2(rule: Rule, a: object, b: object) -> Value:
    a = _lift(a, rule)
    b = _lift(b, rule)
    out = rule.forward(a.data, b.data)
    return _node(out, (a, b), rule.local(a.data, b.data, out), rule.name)


_ADD, _SUB, _MUL, _DIV, _POW = (RULES[k] for k in ("add", "sub", "mul", "div", "pow"))
_add_local = _ADD.local
_mul_local = _MUL.local
_NEG, _EXP, _LOG, _TANH, _SIGMOID, _SOFTPLUS, _RELU = (
    RULES[k] for k in ("neg", "exp", "log", "tanh", "sigmoid", "softplus", "relu")
)
