"""Every derivative in one table.

Each primitive operation is one :class:`Rule`: a name (recorded on the nodes it
makes, and shown by the renders), a ``forward`` function on plain floats, and a
``local`` function giving the *local derivatives* -- the partial derivative of
the output with respect to each input, i.e. one row of the Jacobian.

``local(*inputs, out)`` is written once and works on two kinds of number:

* on floats, when a node is recorded: the numbers are stored on the node, and
  the backward pass is one line of chain rule, ``parent.grad += local * grad``;
* on :class:`~autodiff.engine.Value` objects, for ``grad(..., create_graph=True)``:
  the same formula then records a graph of its own, which can be differentiated
  again (second and higher derivatives).

So the rules below use only arithmetic and the helpers :func:`exp`, :func:`log`,
:func:`sigmoid` and :func:`where_positive`, which accept either kind (and the
symbols of :mod:`autodiff.trace`, which turn a rule into code).

Forward functions raise a clear error for input outside the operation's
domain; they never return a complex number or a silent overflow to ``inf``.
Local derivatives never raise: where a derivative is infinite or undefined at a
valid input (``sqrt'(0)``, ``d(a**b)/db`` for ``a < 0``) it is ``inf``/``nan``,
as in IEEE arithmetic and PyTorch.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Rule", "RULES", "sigmoid_float", "softplus_float"]

# A number the rules compute with: a float, or a Value (duck-typed, see above).
Num = Any


# ----------------------------------------------------------------------------
# Stable float kernels
# ----------------------------------------------------------------------------


def sigmoid_float(x: float) -> float:
    """σ(x) = 1 / (1 + e^-x), finite for every float: ``exp`` only ever sees -|x|."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def softplus_float(x: float) -> float:
    """ζ(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|); exact to the last bit at both ends."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _exp_float(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        raise OverflowError(
            f"exp({x!r}) overflows a float (the largest is exp(709.78...))"
        ) from None


def _log_float(x: float) -> float:
    if not x > 0.0:  # also catches nan
        raise ValueError(f"log({x!r}): the logarithm is defined only for positive numbers")
    return math.log(x)


def _div_float(a: float, b: float) -> float:
    if b == 0.0:
        raise ZeroDivisionError(f"division by zero: {a!r} / {b!r}")
    return a / b


def _pow_float(a: float, b: float) -> float:
    if a == 0.0 and b < 0.0:
        raise ZeroDivisionError(f"pow: 0.0 raised to a negative power ({a!r} ** {b!r})")
    if a < 0.0 and not b.is_integer():
        raise ValueError(
            "pow: a negative base to a non-integer power has no real value "
            f"(base {a!r}, exponent {b!r})"
        )
    try:
        return a**b
    except OverflowError:
        raise OverflowError(f"pow: {a!r} ** {b!r} overflows a float") from None


# ----------------------------------------------------------------------------
# Helpers that work on floats and on Values alike
# ----------------------------------------------------------------------------


def exp(x: Num) -> Num:
    """e^x of a float or a Value."""
    return math.exp(x) if type(x) is float else x.exp()


def log(x: Num) -> Num:
    """log x of a float or a Value."""
    return math.log(x) if type(x) is float else x.log()


def sigmoid(x: Num) -> Num:
    """σ(x) of a float or a Value."""
    return sigmoid_float(x) if type(x) is float else x.sigmoid()


def where_positive(x: Num, a: Num, b: Num) -> Num:
    """`a` where x > 0, else `b`: a branch on a number (relu).

    A Value answers by its data (a branch is constant almost everywhere, so its
    derivative is 0: nothing to record); a trace symbol prints the conditional.
    """
    if type(x) is float:
        return a if x > 0.0 else b
    return x._where_positive(a, b)


# ----------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One primitive: its name, its value on floats, and its local derivatives.

    ``symbol`` is how the renders draw the operation.
    """

    name: str
    symbol: str
    forward: Callable[..., float]
    local: Callable[..., tuple[Num, ...]]

    @property
    def arity(self) -> int | None:
        """How many inputs the operation takes (None: any number, as ``dot``)."""
        params = inspect.signature(self.local).parameters.values()
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            return None
        return len(params) - 1


_ONES = (1.0, 1.0)
_ONE_MINUS_ONE = (1.0, -1.0)


def _pow_local(a: Num, b: Num, out: Num) -> tuple[Num, Num]:
    # d/da a^b = b·a^(b-1) = b·out/a away from 0 (no overflow: float division gives inf)
    # d/db a^b = out·log(a), real only for a > 0.
    av, bv = float(a), float(b)
    if av == 0.0:
        # forward guarantees b >= 0; 0^b is the constant 0 (b > 0) or 1 (b == 0) in b
        da = 0.0 if (bv == 0.0 or bv > 1.0) else (1.0 if bv == 1.0 else math.inf)
        return da, 0.0
    da = b * out / a
    db = out * log(a) if av > 0.0 else math.nan
    return da, db


def _dot_float(b: float, *wx: float) -> float:
    # b + Σ wᵢxᵢ; the inputs are (b, w₁ … wₙ, x₁ … xₙ)
    n = len(wx) // 2
    return sum(map(operator.mul, wx[:n], wx[n:]), b)


def _dot_local(*args: Num) -> tuple[Num, ...]:
    # ∂/∂b = 1, ∂/∂wᵢ = xᵢ, ∂/∂xᵢ = wᵢ   (args: b, w₁ … wₙ, x₁ … xₙ, out)
    n = (len(args) - 2) // 2
    return (1.0, *args[n + 1 : 2 * n + 1], *args[1 : n + 1])


#: name -> Rule. The op name stored on a node is the key here.
RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("add", "+", lambda a, b: a + b, lambda a, b, out: _ONES),
        Rule("sub", "−", lambda a, b: a - b, lambda a, b, out: _ONE_MINUS_ONE),
        Rule("mul", "×", lambda a, b: a * b, lambda a, b, out: (b, a)),
        Rule("div", "÷", _div_float, lambda a, b, out: (1.0 / b, -out / b)),
        Rule("pow", "^", _pow_float, _pow_local),
        Rule("neg", "−", lambda a: -a, lambda a, out: (-1.0,)),
        Rule("exp", "exp", _exp_float, lambda a, out: (out,)),
        Rule("log", "log", _log_float, lambda a, out: (1.0 / a,)),
        Rule("tanh", "tanh", math.tanh, lambda a, out: (1.0 - out * out,)),
        Rule("sigmoid", "σ", sigmoid_float, lambda a, out: (out * (1.0 - out),)),
        Rule("softplus", "ζ", softplus_float, lambda a, out: (sigmoid(a),)),
        # relu'(0) = 0, as in PyTorch
        Rule(
            "relu",
            "relu",
            lambda a: where_positive(a, a, 0.0),
            lambda a, out: (where_positive(a, 1.0, 0.0),),
        ),
        Rule("dot", "Σ", _dot_float, _dot_local),  # b + Σ wᵢxᵢ in one node: a neuron
    )
}
