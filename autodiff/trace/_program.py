"""One program: a recorded graph's forward and adjoint statements, in ``backward()``'s order.

Every kind of generated code -- straight-line Python (:mod:`._lines`), grouped numpy
(:mod:`._grouped`), the batched mean with its layers (:mod:`._layers`) -- is a printer
or a rewriter of the one :class:`Program` made here from a :class:`~._tape.Tape`:

* **forward statements**, one per operation, parents before children;
* **adjoint statements**, in the order ``Value.backward`` visits the nodes: each
  gradient the sum of its contributions in the order backward adds them up
  (``g = t₁ + t₂ + …`` with ``tᵢ = local × g_child``, where a local of exactly
  1.0 or −1.0 contributes ``g`` or ``−g``: the same floats), then the node's
  local derivatives.

How each operation is written is decided here, once per rule and number of inputs:
its ``forward`` and ``local`` functions are evaluated on *symbols* -- numbers known
only by the code that computes them, which print themselves as code -- named after
their inputs (``{0}``, ``{1}``, …; ``{n}`` is the output). What comes out is a
*template*, ``1.0 - {1} * {1}``, that every printer fills with its own names; where
the function needs the actual numbers (it branches on them, as relu's derivative
does), it is called at run time instead. :meth:`Program.run` executes the program on
floats: the tests hold it to the engine bit for bit, and every printer to it.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from autodiff import engine
from autodiff.functional import chain_rule
from autodiff.rules import (
    RULES,
    Rule,
    is_numpy,
    pow_ieee,
    select_array,
    select_float,
    sigmoid_float,
)
from autodiff.trace._tape import Tape

__all__ = [
    "CHUNK",
    "ArraySym",
    "Grad",
    "Local",
    "NeedsNumbersError",
    "Op",
    "Program",
    "Sym",
    "compile_function",
    "dot_lines",
    "fill",
    "forward_form",
    "helpers",
    "literal",
    "local_forms",
    "local_kinds",
    "placeholder_index",
    "sum_lines",
]

#: The most terms one generated expression adds up (Python's compiler recurses on nesting).
CHUNK = 32


class NeedsNumbersError(Exception):
    """A rule's function asked for an actual number: call it at run time instead."""


# Precedence, to print as few parentheses as keep Python's evaluation order.
_ATOM, _UNARY, _MUL, _ADD = 4, 3, 2, 1


def literal(x: float) -> str:
    """A float as Python source."""
    return repr(x) if math.isfinite(x) else f"float({str(x)!r})"


def _operator(op: str, prec: int, reflected: bool) -> Callable[[Sym, object], Sym]:
    """Sym's ``op`` (``a op b``, or ``b op a`` for the reflected method), printed."""

    def method(self: Sym, o: object) -> Sym:
        other = self._operand(o)
        return self._bin(op, prec, other, self) if reflected else self._bin(op, prec, self, other)

    return method


class Sym:
    """A number known only by the code that computes it."""

    __slots__ = ("code", "prec")

    def __init__(self, code: str, prec: int = _ATOM) -> None:
        self.code = code
        self.prec = prec

    @property
    def arithmetic(self) -> bool:
        """Whether the code is arithmetic (+ − × ÷ or a minus): on arrays, a new array."""
        return self.prec < _ATOM

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

    __add__ = _operator("+", _ADD, False)
    __radd__ = _operator("+", _ADD, True)
    __sub__ = _operator("-", _ADD, False)
    __rsub__ = _operator("-", _ADD, True)
    __mul__ = _operator("*", _MUL, False)
    __rmul__ = _operator("*", _MUL, True)
    __truediv__ = _operator("/", _MUL, False)
    __rtruediv__ = _operator("/", _MUL, True)

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

    # a branch on the sign and a power (rules.select, rules.power): printed as calls of the
    # helpers every kind of code has (:func:`helpers`), so that a derivative is written once
    def _select(self, neg: object, zero: object, pos: object) -> Sym:
        args = [self, *(self._operand(v) for v in (neg, zero, pos))]
        return type(self)(f"_select({', '.join(a.code for a in args)})")

    def _power(self, e: object) -> Sym:
        return type(self)(f"_pow({self.code}, {self._operand(e).code})")

    def _refuse(self, *args: object) -> Any:
        raise NeedsNumbersError

    # a user operation (autodiff.op) called inside a rule: its code runs at run time
    _rule_call = _refuse

    # the number itself or a comparison: the rule is called at run time
    _number = _refuse
    __float__ = __bool__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse  # type: ignore[assignment]
    __eq__ = __ne__ = __pow__ = __rpow__ = __abs__ = _refuse  # type: ignore[assignment]
    __hash__ = None  # type: ignore[assignment]


class ArraySym(Sym):
    """A symbol for array code (batched traces): the same printing, array helpers."""

    __slots__ = ()


# -- the helpers the templates call: one namespace, three kinds of numbers ----------


def helpers(xp: Any = None, mapped: Callable[..., Any] | None = None) -> dict[str, object]:
    """The functions the templates call -- ``_exp``, ``_log``, ``_sigmoid``, ``_select``,
    ``_pow`` -- decided here once for every printer: the rules' float functions for
    scalar code (`xp` None); with `mapped`, those same functions applied element by
    element (`mapped(f, *arrays)`) for grouped numpy code, which is exact against the
    engine; else the rules' array kernels on the namespace `xp` (batched code)."""
    floats: dict[str, Callable[..., Any]] = {
        "_exp": math.exp,
        "_log": math.log,
        "_sigmoid": sigmoid_float,
        "_select": select_float,
        "_pow": pow_ieee,
    }
    if xp is None:
        return dict(floats)
    if mapped is not None:
        out: dict[str, object] = {k: functools.partial(mapped, f) for k, f in floats.items()}
        out["_select"] = functools.partial(select_array, xp, exact=True)  # exact: a choice
        return out
    kernels = {n: RULES[n].array for n in ("exp", "log", "sigmoid", "pow")}
    out = {f"_{n}": functools.partial(k, xp) for n, k in kernels.items() if k is not None}
    return {
        "_xp": xp,
        **out,
        "_select": functools.partial(select_array, xp),
        "_T": _transpose(xp),
        "_colsum": _column_sums(xp),
    }


def _column_sums(xp: Any) -> Callable[[Any], Any]:
    """The sums down the columns of a matrix (a layer's bias gradient, over the batch): on
    numpy a product with a vector of ones, which BLAS does 2-5x faster than numpy's sum
    down the rows; elsewhere the namespace's sum, which a compiler such as XLA fuses into
    the pass that made the matrix (a product could not be fused)."""
    if is_numpy(xp):
        return lambda g: xp.ones(g.shape[0], dtype=g.dtype) @ g
    return functools.partial(xp.sum, axis=0)


def _transpose(xp: Any) -> Callable[[Any], Any]:
    """A matrix's transpose on `xp`: numpy 2's ``.mT`` view where there is one (a call of
    the namespace's function costs a small step more than the view), else the
    namespace's ``matrix_transpose``."""
    if is_numpy(xp) and hasattr(getattr(xp, "ndarray", type(xp.asarray(0.0))), "mT"):
        return operator.attrgetter("mT")
    return xp.matrix_transpose  # type: ignore[no-any-return]


# -- templates: each rule written once, as code or as a call --------------------------

#: A local derivative's template: a constant, or a formula over the placeholders.
Form = float | Sym

# (name, number of inputs) -> (the rule it was made from, its template); a rule replaced
# with op(..., replace=True) is a new object, so its templates are made again
_FORWARD: dict[tuple[str, int], tuple[Rule, Sym | None]] = {}
_LOCAL: dict[tuple[str, int], tuple[Rule, tuple[Form, ...] | None]] = {}


def _placeholders(n: int) -> list[Sym]:
    return [Sym(f"{{{i}}}") for i in range(n)]


def forward_form(name: str, nargs: int) -> Sym | None:
    """The forward of the rule `name` on `nargs` inputs as a template over ``{0}…``, or
    None when it needs the numbers (it is then called at run time)."""
    rule = RULES[name]
    known = _FORWARD.get((name, nargs))
    if known is not None and known[0] is rule:
        return known[1]
    try:
        out = rule.forward(*_placeholders(nargs))
        form = out if isinstance(out, Sym) else None
    except (NeedsNumbersError, TypeError, AttributeError):  # the one place it is decided
        form = None
    _FORWARD[(name, nargs)] = (rule, form)
    return form


def local_forms(name: str, nargs: int) -> tuple[Form, ...] | None:
    """The local derivatives of `name` on `nargs` inputs as templates over the inputs
    ``{0}…`` and the output ``{nargs}`` (floats where constant), or None when ``local``
    needs the numbers (it is then called at run time)."""
    rule = RULES[name]
    known = _LOCAL.get((name, nargs))
    if known is not None and known[0] is rule:
        return known[1]
    forms: tuple[Form, ...] | None
    try:
        forms = tuple(rule.local(*_placeholders(nargs + 1)))
        symbolic = all(type(d) is float or isinstance(d, Sym) for d in forms)
        if len(forms) != nargs or not symbolic:
            forms = None
    except (NeedsNumbersError, TypeError, AttributeError):
        forms = None
    _LOCAL[(name, nargs)] = (rule, forms)
    return forms


_KINDS: dict[tuple[str, int], tuple[Rule, tuple[tuple[Any, ...], ...]]] = {}


def local_kinds(name: str, nargs: int) -> tuple[tuple[Any, ...], ...]:
    """What each local derivative of `name` on `nargs` inputs is, read off its templates:
    ``("const", x)``, ``("arg", i)`` (input i itself), ``("out",)`` (the output),
    ``("code", template)`` -- a formula over the inputs ``{0}…`` and the output
    ``{nargs}`` -- or ``("call",)`` when the rule needs the numbers."""
    rule = RULES[name]
    known = _KINDS.get((name, nargs))
    if known is not None and known[0] is rule:
        return known[1]
    forms = local_forms(name, nargs)
    kinds: list[tuple[Any, ...]] = []
    for d in forms or [None] * nargs:
        i = placeholder_index(d) if d is not None else None
        if d is None:
            kinds.append(("call",))
        elif isinstance(d, float):
            kinds.append(("const", d))
        elif i == nargs:
            kinds.append(("out",))
        elif i is not None:
            kinds.append(("arg", i))
        else:
            kinds.append(("code", d.code))
    _KINDS[(name, nargs)] = (rule, tuple(kinds))
    return tuple(kinds)


def _unit_kinds(name: str, nargs: int) -> tuple[tuple[float | int | None, ...], tuple[int, ...]]:
    """For each local derivative of `name`: 1.0 or −1.0 if it is that constant, the index of
    the input it is (an int: 1.0 or −1.0 if that input is such a constant), or None; and
    where the ints are."""
    units: list[float | int | None] = []
    for kind in local_kinds(name, nargs):
        if kind[0] == "const":
            units.append(kind[1] if kind[1] in (1.0, -1.0) else None)
        else:
            units.append(kind[1] if kind[0] == "arg" else None)
    return tuple(units), tuple(j for j, u in enumerate(units) if type(u) is int)


def placeholder_index(form: Form) -> int | None:
    """i when `form` is the bare placeholder ``{i}`` (an input, or the output), else None.
    (An atom that starts with a brace is one: every other template is an operation.)"""
    if not isinstance(form, Sym) or form.prec != _ATOM or form.code[0] != "{":
        return None
    return int(form.code[1:-1])


def fill(template: Sym, operands: Sequence[Sym], sym: type[Sym] = Sym) -> Sym:
    """The template with each ``{i}`` replaced by operand i's code.

    An operand that is an atom or a negative constant goes in as it is (no template
    holds ``**``, the one operator that binds tighter than a unary minus); any other
    expression goes in parenthesised.
    """
    if template.prec == _ATOM and template.code[0] == "{":  # a bare placeholder
        return operands[int(template.code[1:-1])]
    codes = [o.code if o.prec >= _UNARY else f"({o.code})" for o in operands]
    return sym(template.code.format(*codes), template.prec)


# -- the program --------------------------------------------------------------------


class Op(NamedTuple):
    """Forward: ``v[slot] = name(v[args]…)``; `form` its template, None: a run-time call."""

    slot: int
    name: str
    args: tuple[int, ...]
    form: Sym | None


class Grad(NamedTuple):
    """Adjoint: ``g[slot] = Σ local(child, k) · g[child]`` over `terms`, in backward's order.

    Each term's `unit` is 1.0 or −1.0 when its local derivative is exactly that (the
    term is then ``g`` or ``−g``, the same float), else None. `alias`: the one term passes
    its child's gradient on unchanged, so the gradient is another name for it.
    """

    slot: int
    terms: list[tuple[int, int, float | None]]
    alias: bool


class Local(NamedTuple):
    """The local derivatives of `slot` (its `name` on its inputs and output): templates,
    or None for a run-time call of the rule's ``local``."""

    slot: int
    name: str
    forms: tuple[Form, ...] | None


class Program:
    """The forward and adjoint statements of a tape (see the module docstring)."""

    def __init__(self, tape: Tape) -> None:
        self.tape = tape
        self._ops: list[Op] | None = None
        self._adjoints: list[Grad | Local] | None = None
        self._grad_of: dict[int, Grad] | None = None  # slot -> its Grad statement
        self._terms: Any = None  # term_arrays, indexed by slot (when no statements are made)

    @property
    def ops(self) -> list[Op]:
        """The forward statements, in slot order (parents first). Made when first asked
        for: grouped code reads the tape's arrays and the templates only."""
        if self._ops is None:
            tape = self.tape
            known: dict[tuple[str, int], Sym | None] = {}
            ops: list[Op] = []
            new = tuple.__new__
            for s, (name, a) in enumerate(zip(tape.op, tape.args)):
                if name:
                    key = (name, len(a))
                    form = known[key] if key in known else known.setdefault(key, forward_form(*key))
                    ops.append(new(Op, (s, name, a, None if name == "dot" else form)))
            self._ops = ops
        return self._ops

    @property
    def constants(self) -> list[int]:
        """The slots of the graph's constants (numbers that are neither inputs nor computed),
        in slot order: the one layout every printer keeps them in -- written as literals
        by straight-line code, stored in that order by grouped code (after the inputs) and
        by the batched mean (after the shared inputs)."""
        tape = self.tape
        return [s for s in range(tape.n_in, len(tape.op)) if not tape.op[s]]

    @property
    def adjoints(self) -> list[Grad | Local]:
        """The adjoint statements (Grad and Local), in Value.backward's order."""
        if self._adjoints is None:
            self._adjoints = self._make_adjoints()
        return self._adjoints

    def _make_adjoints(self) -> list[Grad | Local]:
        # One pass over backward's order. A node's users all come before it there, so its
        # gradient's terms are collected as they go by, in the order backward adds them;
        # the templates and unit kinds of each (rule, arity) are looked up once.
        tape = self.tape
        op, args, needs, root = tape.op, tape.args, tape.needs, tape.root
        value, n_in = tape.value, tape.n_in
        # the constants that are exactly 1.0 or −1.0: a derivative that is one of them is ±g
        unit_of: dict[int, float] = {
            s: value[s] for s in range(n_in, len(op)) if not op[s] and value[s] in (1.0, -1.0)
        }
        known: dict[tuple[str, int], tuple[Any, tuple[Any, ...], tuple[int, ...]]] = {}
        pending: dict[int, list[tuple[int, int, float | None]]] = {}  # slot -> its terms
        adjoints: list[Grad | Local] = []
        append = adjoints.append
        new = tuple.__new__
        get = pending.get
        for c in tape.order:
            if not needs[c]:
                continue
            if c != root:
                terms = pending.pop(c)
                append(new(Grad, (c, terms, len(terms) == 1 and terms[0][2] == 1.0)))
            name = op[c]
            if not name:
                continue
            a = args[c]
            key = (name, len(a))
            entry = known.get(key)
            if entry is None:
                entry = known[key] = (local_forms(*key), *_unit_kinds(*key))
            forms, kinds, inputs = entry
            units: Any = kinds
            if inputs and unit_of:  # a derivative that is an input: ±1.0 if that is a constant
                units = list(kinds)
                for j in inputs:
                    units[j] = unit_of.get(a[kinds[j]])  # type: ignore[index]
            elif inputs:
                units = [None if type(u) is int else u for u in kinds]
            for k, p in enumerate(a):
                if needs[p]:
                    t = (c, k, units[k])
                    lst = get(p)
                    if lst is None:
                        pending[p] = [t]
                    else:
                        lst.append(t)
            append(new(Local, (c, name, forms)))
        return adjoints

    def term_arrays(self, np: Any) -> tuple[Any, Any, Any, Any]:
        """Each gradient's terms as numpy arrays, for the printers that work on whole
        arrays: the slot of each gradient (the Grad statements, in order), how many terms
        each has, and each term's user slot and input k, flat in the statements' order.
        From the adjoint statements where they have been made (or edited); else in one
        vectorized pass over the tape that gives the same order -- gradients in
        ``backward()``'s order, each one's terms in its users' -- which
        tests/test_program.py pins to the statements."""
        if self._adjoints is not None:
            grads = [st for st in self._adjoints if isinstance(st, Grad)]
            return (
                np.fromiter((st.slot for st in grads), np.intp, len(grads)),
                np.fromiter((len(st.terms) for st in grads), np.intp, len(grads)),
                np.fromiter((c for st in grads for c, _, _ in st.terms), np.intp),
                np.fromiter((k for st in grads for _, k, _ in st.terms), np.intp),
            )
        tape = self.tape
        n = len(tape.op)
        nargs = np.fromiter(map(len, tape.args), np.intp, n)
        user = np.repeat(np.arange(n), nargs)
        k = np.arange(len(user)) - np.repeat(np.cumsum(nargs) - nargs, nargs)
        parent = np.fromiter(itertools.chain.from_iterable(tape.args), np.intp, len(user))
        needs = np.asarray(tape.needs, dtype=bool)
        pos = np.zeros(n, dtype=np.intp)  # where backward() reaches each slot
        pos[np.asarray(tape.order, dtype=np.intp)] = np.arange(len(tape.order))
        keep = needs[user] & needs[parent]
        user, k, parent = user[keep], k[keep], parent[keep]
        # by the parent's place in backward's order, then the user's, then k: one integer
        # key where it fits in 63 bits (one sort), else three keys
        width = int(nargs.max()) + 1 if n else 1
        if (n * n * width).bit_length() < 63:
            order = np.argsort((pos[parent] * n + pos[user]) * width + k, kind="stable")
        else:  # pragma: no cover - graphs of ~10⁹ nodes
            order = np.lexsort((k, pos[user], pos[parent]))
        user, k, parent = user[order], k[order], parent[order]
        first = np.flatnonzero(np.diff(parent, prepend=-1))  # (sorted: a parent's terms in a row)
        counts = np.diff(first, append=len(parent))
        return parent[first], counts, user, k

    @property
    def local_order(self) -> list[int]:
        """The slots whose local derivatives the adjoint statements take, in their order
        (backward()'s), without making the statements when they are not made."""
        if self._adjoints is not None:
            return [st.slot for st in self._adjoints if isinstance(st, Local)]
        tape = self.tape
        return [c for c in tape.order if tape.needs[c] and tape.op[c]]

    def terms_of(self, slot: int) -> list[tuple[int, int, float | None]]:
        """The terms of `slot`'s gradient as its Grad statement has them -- (user, input k,
        ±1 shortcut), in order -- read off the statements where they are made (or edited),
        else from :meth:`term_arrays` and the same shortcut rule (pinned by
        tests/test_program.py): a printer that needs a few gradients' terms does not make
        every statement of a large program."""
        if self._adjoints is not None:
            if self._grad_of is None:
                self._grad_of = {st.slot: st for st in self._adjoints if isinstance(st, Grad)}
            st = self._grad_of.get(slot)
            return list(st.terms) if st is not None else []
        if self._terms is None:
            import numpy as np

            parents, counts, users, ks = self.term_arrays(np)
            first = (np.cumsum(counts) - counts).tolist()
            self._terms = (
                dict(zip(parents.tolist(), zip(first, counts.tolist()))),
                users.tolist(),
                ks.tolist(),
            )
        index, users, ks = self._terms
        a, m = index.get(slot, (0, 0))
        return [(users[i], ks[i], self._unit(users[i], ks[i])) for i in range(a, a + m)]

    def unit(self, c: int, k: int) -> float | None:
        """The ±1 shortcut of the term of input k of slot c in its parent's gradient, as the
        adjoint statements have it: read off them where they are made (or edited), else by
        their rule (:meth:`_unit`) -- without making every term of a large program."""
        if self._adjoints is not None:
            parent = self.tape.args[c][k]
            return next((u for d, j, u in self.terms_of(parent) if (d, j) == (c, k)), None)
        return self._unit(c, k)

    def _unit(self, c: int, k: int) -> float | None:
        """1.0 or −1.0 when input k's local derivative in slot c is exactly that (a constant,
        or an input of c that is such a constant), else None: _make_adjoints' rule."""
        tape = self.tape
        u = _unit_kinds(tape.op[c], len(tape.args[c]))[0][k]
        if type(u) is int:
            s = tape.args[c][u]
            x = tape.value[s]
            return x if s >= tape.n_in and not tape.op[s] and x in (1.0, -1.0) else None
        return u

    def run(self, xs: Sequence[float]) -> tuple[float, list[float]]:
        """Execute the program on floats: the value and the gradient, as any printer's
        code computes them (the rules' own functions, the same additions in the same
        order). The reference the printers are tested against."""
        tape = self.tape
        v: list[float] = [float(x) for x in xs] + tape.value[len(xs) :]
        for op in self.ops:
            v[op.slot] = RULES[op.name].forward(*[v[a] for a in op.args])
        # the one chain-rule evaluator, with the program's own terms: each ±1 shortcut
        # as the adjoint statements decided it, the locals from the rules' functions
        sums = [st for st in self.adjoints if isinstance(st, Grad)]
        unit = {(child, k): u for st in sums for child, k, u in st.terms}
        needs, args = tape.needs, tape.args

        def terms(c: int, gc: float) -> list[tuple[int, float]]:
            a = args[c]
            if not tape.op[c]:
                return []
            d = RULES[tape.op[c]].local(*[v[p] for p in a], v[c])
            out = []
            for k, p in enumerate(a):
                if needs[p]:
                    u = unit[(c, k)]
                    out.append((p, gc if u == 1.0 else (-gc if u == -1.0 else d[k] * gc)))
            return out

        order = [c for c in tape.order if needs[c]]
        g = chain_rule(order, {tape.root: 1.0} if needs[tape.root] else {}, terms)
        grads = [g[i] + 0.0 if i in g else 0.0 for i in range(tape.n_in)]
        return v[tape.root], grads


# -- printing helpers the printers share ----------------------------------------------


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


def compile_function(source: str, namespace: dict[str, Any], name: str) -> Callable[..., Any]:
    """Compile `source`, which defines the function `name`, with `namespace` as its globals.

    The function is taken out of the namespace it reads its globals from: left there, it
    would be a reference cycle (function -> globals -> function), keeping the tape alive
    until the garbage collector ran. Compiling makes many objects and no cycles, so the
    collector is paused meanwhile.
    """
    with engine.gc_paused():
        exec(compile(source, f"<autodiff.trace {name}>", "exec"), namespace)
    fn: Callable[..., Any] = namespace.pop(name)
    return fn
