"""The rule table, printed: a node's local derivatives as formulas in its inputs' names.

Each :class:`~autodiff.rules.Rule` writes its ``local`` once, for floats and Values
alike (see :mod:`autodiff.rules`). Called on :class:`Formula` objects instead, the
same function writes itself out: ``local_formulas(RULES["softplus"], ["u⁴"], "L")``
is ``("σ(u⁴)",)`` and ``local_formulas(RULES["mul"], ["W", "x"], "u")`` is
``("x", "W")``. The explorer shows these beside their numbers.

A rule that branches on a number (``pow``, ``relu``, ``abs``) gets it from the
inputs' values, so the printed formula is the branch the node took; a sign test
is printed as a formula of its own (``1[u > 0]``, ``sign(u)``). A ``local`` may use
anything the engine accepts -- ``**``, ``abs()``, the helpers, Value methods, other
operations, the user's own (:func:`autodiff.op`): each prints as itself. Where no
formula can be printed (a ``local`` that computes with plain numbers, or fails on
these), the derivative is given as its number, with :data:`NO_FORMULA` saying so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from autodiff.rules import Rule

__all__ = ["NO_FORMULA", "Formula", "local_formulas", "operand"]

#: Printed after a local derivative's number where its rule gives no formula to print.
NO_FORMULA = "(its rule's code gives no formula to print)"


class _NoFormulaError(Exception):
    """The rule took a number out of a formula: print its numbers instead."""


# Precedence: a sum, a product or quotient, a negation, a power, an atom.
_SUM, _PRODUCT, _NEG, _POWER, _ATOM = range(5)


def _const(x: float) -> str:
    """A number in a formula, its minus sign the formula's own (−0.5, −inf, −0)."""
    return (str(x) if x != x or math.isinf(x) else f"{x:g}").replace("-", "−")


def operand(name: str) -> str:
    """`name` as an operand: in parentheses if it is itself an expression (``(1−2y)``)."""
    compound = any(ch.isspace() or ch in "+-−*×/÷·=<>^()" for ch in name)
    return f"({name})" if compound and not (name[:1] == "(" and name[-1:] == ")") else name


class Formula:
    """An expression printed as it is built: ``text``, its precedence, and -- for an
    input or the output -- the number it stands for (what a branching rule reads)."""

    __slots__ = ("text", "prec", "value")

    def __init__(self, text: str, prec: int = _ATOM, value: float = math.nan) -> None:
        self.text, self.prec, self.value = text, prec, value

    def __repr__(self) -> str:
        return f"Formula({self.text!r})"

    # -- building ------------------------------------------------------------

    @staticmethod
    def _of(x: Formula | float) -> Formula:
        if isinstance(x, Formula):
            return x
        x = float(x)
        return Formula(_const(x), _NEG if x < 0.0 else _ATOM, x)

    @staticmethod
    def _wrap(f: Formula, prec: int, right: bool = False) -> str:
        tight = f.prec < prec or (right and f.prec == prec)
        return f"({f.text})" if tight else f.text

    def _binary(self, other: Formula | float, symbol: str, prec: int, swap: bool) -> Formula:
        a, b = (self._of(other), self) if swap else (self, self._of(other))
        return Formula(f"{self._wrap(a, prec)}{symbol}{self._wrap(b, prec, True)}", prec)

    def __add__(self, other: Formula | float) -> Formula:
        return self._binary(other, " + ", _SUM, False)

    def __radd__(self, other: float) -> Formula:
        return self._binary(other, " + ", _SUM, True)

    def __sub__(self, other: Formula | float) -> Formula:
        return self._binary(other, " − ", _SUM, False)

    def __rsub__(self, other: float) -> Formula:
        return self._binary(other, " − ", _SUM, True)

    def __mul__(self, other: Formula | float) -> Formula:
        if isinstance(other, float) and other == 1.0:
            return self
        return self._binary(other, "·", _PRODUCT, False)

    def __rmul__(self, other: float) -> Formula:
        if other == 1.0:
            return self
        return self._binary(other, "·", _PRODUCT, True)

    def __truediv__(self, other: Formula | float) -> Formula:
        return self._binary(other, " / ", _PRODUCT, False)

    def __rtruediv__(self, other: float) -> Formula:
        return self._binary(other, " / ", _PRODUCT, True)

    def __neg__(self) -> Formula:
        return Formula("−" + self._wrap(self, _POWER), _NEG)

    def __pow__(self, other: Formula | float) -> Formula:
        return self._power(other)

    def __rpow__(self, other: float) -> Formula:
        return self._of(other)._power(self)

    def __abs__(self) -> Formula:
        return Formula(f"|{self.text}|")

    def __float__(self) -> float:
        raise _NoFormulaError  # math.sin(formula): a number, not a formula

    __int__ = __round__ = __bool__ = __float__  # type: ignore[assignment]

    def _rule_call(self, rule: Rule, args: Sequence[Formula | float]) -> Formula:
        """An operation (autodiff.op's, called inside a rule) applied to formulas."""
        return Formula(f"{rule.symbol}({', '.join(self._of(a).text for a in args)})")

    def _call(self, name: str) -> Formula:
        return Formula(f"{name}({self.text})")

    def exp(self) -> Formula:
        """exp(…) of this formula (what rules.exp calls on a non-float)."""
        return self._call("exp")

    def log(self) -> Formula:
        """log(…) of this formula."""
        return self._call("log")

    def sigmoid(self) -> Formula:
        """σ(…) of this formula."""
        return self._call("σ")

    # -- what the rules' helpers call on a non-float (see autodiff.rules) ------

    def _power(self, e: Formula | float) -> Formula:
        exponent = self._of(e)
        return Formula(f"{self._wrap(self, _ATOM)}^{self._wrap(exponent, _ATOM)}", _POWER)

    def _number(self) -> float:
        return self.value

    def _select(self, neg: object, zero: object, pos: object) -> Formula:
        cases = (neg, zero, pos)
        if cases == (0.0, 0.0, 1.0):
            return Formula(f"1[{self.text} > 0]")
        if cases == (-1.0, 0.0, 1.0):
            return self._call("sign")
        n, z, p = (self._of(c).text for c in cases)  # type: ignore[arg-type]
        return Formula(f"({p} if {self.text} > 0, {z} if {self.text} = 0, else {n})")


def local_formulas(
    rule: Rule, inputs: Sequence[str], output: str, values: Sequence[float] = ()
) -> tuple[str, ...]:
    """The rule's local derivatives ∂output/∂input as formulas in the names given.

    `values` are the inputs' numbers and then the output's (for the rules that branch
    on a number); missing ones are NaN.
    """
    nums = [*values, *[math.nan] * (len(inputs) + 1 - len(values))]
    args = [Formula(operand(n), _ATOM, v) for n, v in zip([*inputs, output], nums)]
    try:
        forms = tuple(rule.local(*args))
        if len(forms) == len(inputs) and all(isinstance(d, (Formula, float, int)) for d in forms):
            return tuple(Formula._of(d).text for d in forms)
    except Exception:  # any failure of user code means: print the numbers
        pass
    try:
        numbers = tuple(rule.local(*nums[: len(inputs) + 1]))
    except Exception:  # the numbers are not computable either: NaN, said so
        numbers = (math.nan,) * len(inputs)
    return tuple(f"{_const(float(d))} {NO_FORMULA}" for d in numbers)
