"""Trace once, run fast: a recorded graph compiled to straight-line Python.

``trace(f, example_inputs)`` runs `f` once on Values, records the graph it
builds, and writes two plain Python functions for it -- the forward pass and
the forward-plus-backward pass -- one line per node and one line per edge,
compiled once. Calling them costs the float arithmetic and little else: no
Value objects, no topological sort.

The code is generated from the same rule table as everything else
(:mod:`autodiff.rules`): each rule's ``forward`` and ``local`` functions are
evaluated on symbols that print themselves as code. Arithmetic formulas come
out inline (``g3 = g7 * (1.0 - v5 * v5)``); where a rule's function needs the
actual numbers -- it branches on them, as relu's derivative and the domain
checks do -- the generated line calls that function instead
(``d = _local_relu(v2, v3)``). So no derivative is written twice, branches inside
an operation stay correct at every point, and bad input raises the rules' own
clear errors.

Limits: control flow in `f` itself is frozen at trace time. ``if x.data > 0``
in `f` takes the branch the example inputs took, for every input after; a
warning (:class:`TraceWarning`) says so when `f` reads the data of a traced
Value. Values `f` uses that are not inputs (its constants, a model's
parameters captured in a closure) are baked in with their values at trace time.
"""

from __future__ import annotations

import builtins
import keyword
import math
import warnings
from collections.abc import Callable, Sequence

from autodiff import engine
from autodiff.engine import Value, enable_grad, topological_order
from autodiff.rules import RULES, Rule, sigmoid_float

__all__ = ["TraceWarning", "Traced", "trace"]


class TraceWarning(UserWarning):
    """The traced function read a Value's data: control flow may be frozen."""


class _NeedsNumbersError(Exception):
    """A rule's function asked for an actual number: call it at run time instead."""


# Precedence, to print as few parentheses as keep Python's evaluation order.
_ATOM, _UNARY, _MUL, _ADD, _COND = 4, 3, 2, 1, 0


class _Sym:
    """A number known only by the code that computes it."""

    __slots__ = ("code", "prec")

    def __init__(self, code: str, prec: int = _ATOM) -> None:
        self.code = code
        self.prec = prec

    def _operand(self, other: object) -> _Sym:
        if isinstance(other, _Sym):
            return other
        if type(other) is float or type(other) is int:
            x = float(other)  # type: ignore[arg-type]
            return _Sym(_literal(x), _ATOM if x >= 0 else _UNARY)
        raise _NeedsNumbersError

    def _bin(self, op: str, prec: int, left: _Sym, right: _Sym) -> _Sym:
        lc = left.code if left.prec >= prec else f"({left.code})"
        rc = right.code if right.prec > prec else f"({right.code})"  # a - (b - c) stays
        return _Sym(f"{lc} {op} {rc}", prec)

    def __add__(self, o: object) -> _Sym:
        return self._bin("+", _ADD, self, self._operand(o))

    def __radd__(self, o: object) -> _Sym:
        return self._bin("+", _ADD, self._operand(o), self)

    def __sub__(self, o: object) -> _Sym:
        return self._bin("-", _ADD, self, self._operand(o))

    def __rsub__(self, o: object) -> _Sym:
        return self._bin("-", _ADD, self._operand(o), self)

    def __mul__(self, o: object) -> _Sym:
        return self._bin("*", _MUL, self, self._operand(o))

    def __rmul__(self, o: object) -> _Sym:
        return self._bin("*", _MUL, self._operand(o), self)

    def __truediv__(self, o: object) -> _Sym:
        return self._bin("/", _MUL, self, self._operand(o))

    def __rtruediv__(self, o: object) -> _Sym:
        return self._bin("/", _MUL, self._operand(o), self)

    def __neg__(self) -> _Sym:
        return _Sym(f"-{self.code}" if self.prec >= _UNARY else f"-({self.code})", _UNARY)

    # the generic helpers of rules.py call these on anything that is not a float
    def exp(self) -> _Sym:
        return _Sym(f"_exp({self.code})")

    def log(self) -> _Sym:
        return _Sym(f"_log({self.code})")

    def sigmoid(self) -> _Sym:
        return _Sym(f"_sigmoid({self.code})")

    def _where_positive(self, a: object, b: object) -> _Sym:
        a_, b_ = self._operand(a), self._operand(b)
        return _Sym(f"{a_.code} if {self.code} > 0.0 else {b_.code}", _COND)

    def _refuse(self, *args: object) -> bool:
        raise _NeedsNumbersError

    __float__ = __bool__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse  # type: ignore[assignment]
    __eq__ = __ne__ = __pow__ = __rpow__ = _refuse  # type: ignore[assignment]
    __hash__ = None  # type: ignore[assignment]


_ONE = _Sym("1.0")


def _literal(x: float) -> str:
    return repr(x) if math.isfinite(x) else f"float({str(x)!r})"


_RUNTIME: dict[str, object] = {"_exp": math.exp, "_log": math.log, "_sigmoid": sigmoid_float}


class Traced:
    """A graph recorded by :func:`trace`, compiled to Python.

    ``traced(xs)`` gives the value at the n floats `xs`;
    ``traced.value_and_grad(xs)`` the value and the gradient with respect to
    every input. ``traced.source`` (and ``str(traced)``) is the generated code.
    """

    def __init__(self, source: str, namespace: dict[str, object], n_inputs: int, n_nodes: int):
        self.source = source
        self.n_inputs = n_inputs
        #: Operations in the recorded graph (nodes that are not inputs or constants).
        self.n_nodes = n_nodes
        code = compile(source, "<autodiff.trace>", "exec")
        exec(code, namespace)
        self._forward: Callable[..., float] = namespace["forward"]  # type: ignore[assignment]
        self._value_and_grad: Callable[..., tuple[float, list[float]]] = namespace["value_and_grad"]  # type: ignore[assignment]

    def _check(self, xs: Sequence[float]) -> Sequence[float]:
        if len(xs) != self.n_inputs:
            raise ValueError(f"Traced: expected {self.n_inputs} inputs, got {len(xs)}")
        for i, x in enumerate(xs):
            if type(x) is not float:
                engine._as_float(x, f"Traced: xs[{i}]")
        return xs

    def __call__(self, xs: Sequence[float]) -> float:
        """f at `xs`."""
        return self._forward(*self._check(xs))

    def value_and_grad(self, xs: Sequence[float]) -> tuple[float, list[float]]:
        """(f(xs), [∂f/∂xᵢ for each input]) at `xs`."""
        return self._value_and_grad(*self._check(xs))

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"<Traced: {self.n_inputs} inputs, {self.n_nodes} operations>"


def trace(
    f: Callable[[list[Value]], Value],
    example_inputs: Sequence[float],
    *,
    names: Sequence[str] | None = None,
) -> Traced:
    """Record `f` once at `example_inputs` and compile its forward and backward passes.

    `f` takes a list of n Values and returns one Value. The result evaluates `f`
    and its gradient at any other n floats, without building Values; control
    flow in `f` that depends on the data is frozen at the trace (see the module
    docstring). `names` gives the inputs readable names in the generated code
    (distinct Python identifiers; default x0, x1, ...).
    """
    n = len(example_inputs)
    names = [f"x{i}" for i in range(n)] if names is None else list(names)
    if len(names) != n:
        raise ValueError(f"trace: {n} example inputs but {len(names)} names")
    for name in names:
        if not (isinstance(name, str) and name.isidentifier()) or keyword.iskeyword(name):
            raise ValueError(f"trace: names must be Python identifiers, got {name!r}")
        reserved = name.startswith("_") or name == "g_root" or hasattr(builtins, name)
        if reserved or (name[0] in "vgd" and name[1:].isdigit()):
            raise ValueError(f"trace: the name {name!r} is used by the generated code")
    if len(set(names)) != n:
        raise ValueError("trace: names must be distinct")
    xs = [
        Value(engine._as_float(x, f"trace: example_inputs[{i}]"), names[i])
        for i, x in enumerate(example_inputs)
    ]
    prev, engine._reads = engine._reads, []
    try:
        with enable_grad():
            out = f(xs)
        reads = engine._reads
    finally:
        engine._reads = prev
    if not isinstance(out, Value):
        raise TypeError(f"trace: f must return a Value, got {type(out).__name__} {out!r}")
    order = topological_order(out)
    in_graph = set(map(id, order))
    read = {id(v) for v in reads if id(v) in in_graph}
    if read:
        warnings.warn(
            f"trace: f read the data of {len(read)} Value(s) of the traced graph while being "
            "traced; any branch taken on it is frozen for every later input",
            TraceWarning,
            stacklevel=2,
        )
    return _compile(order, xs)


def _compile(order: list[Value], xs: list[Value]) -> Traced:
    root = order[0]
    inputs = {x: i for i, x in enumerate(xs)}
    names: dict[Value, _Sym] = {}
    namespace: dict[str, object] = dict(_RUNTIME)
    fwd: list[str] = []
    tmp = n_vars = 0

    def call(kind: str, rule: Rule, args: list[_Sym]) -> str:
        fn = f"_{kind}_{rule.name}"
        namespace[fn] = rule.forward if kind == "forward" else rule.local
        return f"{fn}({', '.join(a.code for a in args)})"

    # forward: inputs are arguments, other leaves constants, every node one line
    for x in xs:
        names[x] = _Sym(x.label)
    forward_order = order[::-1]
    for node in forward_order:
        if node in names:
            continue
        if not node.parents:
            names[node] = _Sym(_literal(node._data), _ATOM if node._data >= 0 else _UNARY)
            continue
        rule = RULES[node.op]
        args = [names[p] for p in node.parents]
        try:
            expr = rule.forward(*args).code  # type: ignore[attr-defined]  # a _Sym
        except (_NeedsNumbersError, TypeError):
            expr = call("forward", rule, args)
        var = f"v{len(fwd)}"
        fwd.append(f"    {var} = {expr}")
        names[node] = _Sym(var)

    # which nodes lead to an input: only their gradients are computed
    needs = set(inputs)
    for node in forward_order:
        if any(p in needs for p in node.parents):
            needs.add(node)

    # backward, in the order Value.backward uses, so the sums round the same way
    bwd: list[str] = []
    grads: dict[Value, str] = {}
    if root in needs:
        grads[root] = "g_root"
        bwd.append("    g_root = 1.0")
    for node in order:
        if node not in grads or not node.parents:
            continue
        parents = node.parents
        if not any(p in needs for p in parents):
            continue
        rule = RULES[node.op]
        args = [names[p] for p in parents] + [names[node]]
        try:
            locals_ = [_Sym._operand(_ONE, d) for d in rule.local(*args)]
        except (_NeedsNumbersError, TypeError):
            tmp += 1
            bwd.append(f"    d{tmp} = {call('local', rule, args)}")
            locals_ = [_Sym(f"d{tmp}[{k}]") for k in range(len(parents))]
        g = _Sym(grads[node])
        for parent, local in zip(parents, locals_):
            if parent not in needs:
                continue
            # local * g, the local derivative computed first: as Value.backward does
            term = {"1.0": g.code, "-1.0": f"-{g.code}"}.get(local.code) or (local * g).code
            # single assignment: every gradient variable is written once, so a
            # gradient passed on unchanged (through +) is just another name for it
            if parent not in grads and term == g.code:
                grads[parent] = g.code
                continue
            var = f"g{n_vars}"
            n_vars += 1
            if parent in grads:
                bwd.append(f"    {var} = {grads[parent]} + {term}")
            else:
                bwd.append(f"    {var} = {term}")
            grads[parent] = var

    args_list = ", ".join(x.label for x in xs)
    result = names[root].code
    gradient = ", ".join(grads.get(x, "0.0") for x in xs)
    body = "\n".join(fwd)
    source = (
        f"def forward({args_list}):\n{body}\n    return {result}\n\n\n"
        f"def value_and_grad({args_list}):\n{body}\n"
        + "\n".join(bwd)
        + f"\n    return {result}, [{gradient}]\n"
    )
    n_ops = sum(1 for v in order if v.parents)
    return Traced(source, namespace, len(xs), n_ops)
