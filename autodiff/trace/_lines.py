"""Straight-line code: one line per operation, one statement per gradient.

The code is generated from the rule table itself: each rule's ``forward`` and
``local`` functions are evaluated on *symbols*, numbers known only by the code
that computes them, which print themselves as code. Arithmetic comes out
inline (``g3 = (1.0 - v5 * v5) * g7``); where a rule's function needs the
actual numbers -- it branches on them, as relu's derivative and the domain
checks do -- the line calls that function at run time instead
(``d2 = _l_relu(v3, v4)``). No derivative is written twice, and branches
inside an operation stay right at every point.

The backward pass follows ``Value.backward``: nodes in the order it releases
them, and each gradient the sum of its contributions in the order it adds
them, ``g = t₁ + t₂ + …`` with ``tᵢ = local × g_child`` -- the same float
operations, so the same numbers. Sums and ``dot`` nodes longer than
:data:`CHUNK` terms are split over several statements, so no expression nests
deeper than a constant (Python's compiler recurses on nesting).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from autodiff.rules import RULES, UNCHECKED_OVERFLOW, sigmoid_float
from autodiff.trace._tape import Tape

__all__ = ["CHUNK", "ArraySym", "LineCode", "NeedsNumbersError", "Sym", "literal"]

#: The most terms one generated expression adds up.
CHUNK = 32


class NeedsNumbersError(Exception):
    """A rule's function asked for an actual number: call it at run time instead."""


# Precedence, to print as few parentheses as keep Python's evaluation order.
_ATOM, _UNARY, _MUL, _ADD = 4, 3, 2, 1


def literal(x: float) -> str:
    """A float as Python source."""
    return repr(x) if math.isfinite(x) else f"float({str(x)!r})"


class Sym:
    """A number known only by the code that computes it."""

    __slots__ = ("code", "prec")

    def __init__(self, code: str, prec: int = _ATOM) -> None:
        self.code = code
        self.prec = prec

    @classmethod
    def const(cls, x: float) -> Sym:
        return cls(literal(x), _ATOM if x >= 0 or x != x else _UNARY)

    def _operand(self, other: object) -> Sym:
        if isinstance(other, Sym):
            return other
        if type(other) is float or type(other) is int:
            return self.const(float(other))  # type: ignore[arg-type]
        raise NeedsNumbersError

    def _bin(self, op: str, prec: int, left: Sym, right: Sym) -> Sym:
        lc = left.code if left.prec >= prec else f"({left.code})"
        rc = right.code if right.prec > prec else f"({right.code})"  # a - (b - c) stays
        return type(self)(f"{lc} {op} {rc}", prec)

    def __add__(self, o: object) -> Sym:
        return self._bin("+", _ADD, self, self._operand(o))

    def __radd__(self, o: object) -> Sym:
        return self._bin("+", _ADD, self._operand(o), self)

    def __sub__(self, o: object) -> Sym:
        return self._bin("-", _ADD, self, self._operand(o))

    def __rsub__(self, o: object) -> Sym:
        return self._bin("-", _ADD, self._operand(o), self)

    def __mul__(self, o: object) -> Sym:
        return self._bin("*", _MUL, self, self._operand(o))

    def __rmul__(self, o: object) -> Sym:
        return self._bin("*", _MUL, self._operand(o), self)

    def __truediv__(self, o: object) -> Sym:
        return self._bin("/", _MUL, self, self._operand(o))

    def __rtruediv__(self, o: object) -> Sym:
        return self._bin("/", _MUL, self._operand(o), self)

    def __neg__(self) -> Sym:
        code = f"-{self.code}" if self.prec >= _UNARY else f"-({self.code})"
        return type(self)(code, _UNARY)

    # the generic helpers of rules.py call these on anything that is not a float
    def exp(self) -> Sym:
        return type(self)(f"_exp({self.code})")

    def log(self) -> Sym:
        return type(self)(f"_log({self.code})")

    def sigmoid(self) -> Sym:
        return type(self)(f"_sigmoid({self.code})")

    def _refuse(self, *args: object) -> Any:
        raise NeedsNumbersError

    # a branch, a power or a comparison needs the numbers: the rule is called at run time
    _select = _power = _number = _refuse
    __float__ = __bool__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse  # type: ignore[assignment]
    __eq__ = __ne__ = __pow__ = __rpow__ = __abs__ = _refuse  # type: ignore[assignment]
    __hash__ = None  # type: ignore[assignment]


class ArraySym(Sym):
    """A symbol for array code (batched traces): the same printing, array helpers."""

    __slots__ = ()


def _unfinite(values: Sequence[float]) -> bool:
    """Whether some number in `values` is inf or nan (cheap: one C-level sum)."""
    return 0.0 * sum(values) != 0.0


#: Helpers the scalar line code calls.
SCALAR_RUNTIME: dict[str, object] = {
    "_exp": math.exp,
    "_log": math.log,
    "_sigmoid": sigmoid_float,
    "_unfinite": _unfinite,
}


class LineCode:
    """The forward and value-and-gradient functions of a tape, as straight-line Python.

    `names` are the inputs' names (validated identifiers). `forward_kernels` and
    `local_kernels` give, for batched code, the array function that replaces a
    rule's ``forward`` or ``local`` where it needs the numbers (None: the rule's
    own function, for floats); an operation missing from them raises
    NotImplementedError. Scalar code ends its forward part with a cheap check
    that every checked-arithmetic result is finite, and else calls
    ``_tape_check`` (:meth:`Tape.check`), which raises the engine's own error.
    """

    def __init__(
        self,
        tape: Tape,
        names: Sequence[str],
        *,
        sym: type[Sym] = Sym,
        forward_kernels: dict[str, Callable[..., Any]] | None = None,
        local_kernels: dict[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.tape = tape
        self.sym = sym
        self.names = list(names)
        self.batched = forward_kernels is not None
        self._fk = forward_kernels
        self._lk = local_kernels
        self.namespace: dict[str, object] = {} if self.batched else dict(SCALAR_RUNTIME)
        if not self.batched:
            self.namespace["_tape_check"] = tape.check
        self._fwd, self._checked, self._values = self._forward()
        self._bwd, self._grads = self._backward()

    # -- pieces ------------------------------------------------------------------

    def _call(self, kind: str, name: str, args: Sequence[Sym]) -> str:
        fn = f"_{kind}_{name}"
        if not self.batched:
            rule = RULES[name]
            self.namespace[fn] = rule.forward if kind == "f" else rule.local
        else:
            table = self._fk if kind == "f" else self._lk
            kernel = table.get(name) if table is not None else None
            if kernel is None:
                raise NotImplementedError(
                    f"trace(batched=True): no array kernel for the "
                    f"{'forward' if kind == 'f' else 'derivative'} of {name!r}"
                )
            self.namespace[fn] = kernel
        return f"{fn}({', '.join(a.code for a in args)})"

    def _forward(self) -> tuple[list[str], list[str], list[Sym]]:
        tape, sym = self.tape, self.sym
        values: list[Sym] = [sym(n) for n in self.names]
        lines: list[str] = []
        checked: list[str] = []
        n_vars = 0
        for s in range(tape.n_in, len(tape.op)):
            name = tape.op[s]
            if not name:
                values.append(sym.const(tape.value[s]))
                continue
            args = [values[a] for a in tape.args[s]]
            var = f"v{n_vars}"
            n_vars += 1
            if name == "dot":
                lines.extend(dot_lines(var, args, sym))
                inline = True
            else:
                try:
                    expr = code_of(RULES[name].forward(*args))
                    inline = True
                except (NeedsNumbersError, TypeError, AttributeError):
                    expr = self._call("f", name, args)
                    inline = False
                lines.append(f"    {var} = {expr}")
            if inline and (name in UNCHECKED_OVERFLOW or name == "dot"):
                checked.append(var)
            values.append(sym(var))
        return lines, checked, values

    def _backward(self) -> tuple[list[str], list[str]]:
        tape, sym, values = self.tape, self.sym, self._values
        lines: list[str] = []
        grad: dict[int, Sym] = {}
        local: dict[int, list[Any]] = {}
        root = tape.root
        if tape.needs[root]:
            grad[root] = sym("g_root")
            lines.append("    g_root = 1.0")
        n_grads = n_locals = 0
        for c in tape.order:
            if not tape.needs[c]:
                continue
            if c != root:
                terms = []
                for child, k in tape.users[c]:
                    d, g = local[child][k], grad[child]
                    code = d.code if isinstance(d, Sym) else literal(d)
                    if code in ("1.0", "-1.0"):  # 1.0·g and −1.0·g are g and −g, exactly
                        terms.append(g if code == "1.0" else -g)
                    else:
                        terms.append(g._operand(d) * g)
                if len(terms) == 1 and terms[0].code == grad[tape.users[c][0][0]].code:
                    grad[c] = terms[0]  # passed on unchanged (through +): another name for it
                else:
                    var = f"g{n_grads}"
                    n_grads += 1
                    lines.extend(sum_lines(var, terms, sym))
                    grad[c] = sym(var)
            name = tape.op[c]
            if name:
                args = [values[a] for a in tape.args[c]] + [values[c]]
                try:
                    local[c] = list(RULES[name].local(*args))
                    for d in local[c]:
                        if not (type(d) is float or isinstance(d, Sym)):
                            raise NeedsNumbersError
                except (NeedsNumbersError, TypeError, AttributeError):
                    var = f"d{n_locals}"
                    n_locals += 1
                    lines.append(f"    {var} = {self._call('l', name, args)}")
                    local[c] = [sym(f"{var}[{k}]") for k in range(len(args) - 1)]
        # backward() sums each gradient onto +0.0, so that a zero gradient is +0.0; this
        # code writes the first term directly, so it adds the +0.0 at the end (exact: only
        # the sign of a zero can differ, and only in the sum's last step)
        grads = [f"{grad[i].code} + 0.0" if i in grad else "0.0" for i in range(tape.n_in)]
        return lines, grads

    # -- the functions -------------------------------------------------------------

    def _check_lines(self) -> list[str]:
        if self.batched or not self._checked:
            return []
        vs = ", ".join(self._checked)
        return [
            f"    if _unfinite(({vs},)):",
            f"        _tape_check([{', '.join(self.names)}])",
        ]

    def forward_source(self) -> str:
        """``def forward(inputs...)``: the value."""
        root = self._values[self.tape.root].code
        body = self._fwd + self._check_lines() + [f"    return {root}"]
        return f"def forward({', '.join(self.names)}):\n" + "\n".join(body) + "\n"

    def value_and_grad_source(self) -> str:
        """``def value_and_grad(inputs...)``: the value and the gradient, as a list."""
        root = self._values[self.tape.root].code
        body = self._fwd + self._check_lines() + self._bwd
        body.append(f"    return {root}, [{', '.join(self._grads)}]")
        return f"def value_and_grad({', '.join(self.names)}):\n" + "\n".join(body) + "\n"


def code_of(result: object) -> str:
    """The code of a rule's result on symbols; NeedsNumbersError if it is not one."""
    if not isinstance(result, Sym):
        raise NeedsNumbersError
    return result.code


def dot_lines(var: str, args: Sequence[Sym], sym: type[Sym]) -> list[str]:
    """`var` = b + Σ wᵢxᵢ as a left fold, at most CHUNK terms per statement."""
    n = (len(args) - 1) // 2
    acc, lines = args[0], []
    for i in range(n):
        if i and i % CHUNK == 0:
            lines.append(f"    {var} = {acc.code}")
            acc = sym(var)
        acc = acc + args[1 + i] * args[1 + n + i]
    lines.append(f"    {var} = {acc.code}")
    return lines


def sum_lines(var: str, terms: Sequence[Sym], sym: type[Sym]) -> list[str]:
    """`var` = t₁ + t₂ + … left to right, at most CHUNK terms per statement."""
    acc, lines = terms[0], []
    for i in range(1, len(terms)):
        if i % CHUNK == 0:
            lines.append(f"    {var} = {acc.code}")
            acc = sym(var)
        acc = acc + terms[i]
    lines.append(f"    {var} = {acc.code}")
    return lines
