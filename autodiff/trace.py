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
from typing import Any

from autodiff import engine
from autodiff.engine import Value, enable_grad, topological_order
from autodiff.rules import RULES, Rule, sigmoid_float

__all__ = ["BatchedTraced", "TraceWarning", "Traced", "trace"]


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
            return type(self)(_literal(x), _ATOM if x >= 0 else _UNARY)
        raise _NeedsNumbersError

    def _bin(self, op: str, prec: int, left: _Sym, right: _Sym) -> _Sym:
        lc = left.code if left.prec >= prec else f"({left.code})"
        rc = right.code if right.prec > prec else f"({right.code})"  # a - (b - c) stays
        return type(self)(f"{lc} {op} {rc}", prec)

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
        code = f"-{self.code}" if self.prec >= _UNARY else f"-({self.code})"
        return type(self)(code, _UNARY)

    # the generic helpers of rules.py call these on anything that is not a float
    def exp(self) -> _Sym:
        return type(self)(f"_exp({self.code})")

    def log(self) -> _Sym:
        return type(self)(f"_log({self.code})")

    def sigmoid(self) -> _Sym:
        return type(self)(f"_sigmoid({self.code})")

    def _where_positive(self, a: object, b: object) -> _Sym:
        a_, b_ = self._operand(a), self._operand(b)
        return type(self)(f"{a_.code} if {self.code} > 0.0 else {b_.code}", _COND)

    def _refuse(self, *args: object) -> bool:
        raise _NeedsNumbersError

    __float__ = __bool__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse  # type: ignore[assignment]
    __eq__ = __ne__ = __pow__ = __rpow__ = _refuse  # type: ignore[assignment]
    __hash__ = None  # type: ignore[assignment]


class _ArraySym(_Sym):
    """A symbol for batched code: a branch becomes numpy's elementwise where."""

    __slots__ = ()

    def _where_positive(self, a: object, b: object) -> _Sym:
        a_, b_ = self._operand(a), self._operand(b)
        return _ArraySym(f"_where({self.code} > 0.0, {a_.code}, {b_.code})")


_ONE = _Sym("1.0")


def _literal(x: float) -> str:
    return repr(x) if math.isfinite(x) else f"float({str(x)!r})"


_RUNTIME: dict[str, object] = {"_exp": math.exp, "_log": math.log, "_sigmoid": sigmoid_float}


def _numpy_kernels() -> tuple[Any, dict[str, object], dict[str, Callable[..., Any]]]:
    """numpy, the helpers for batched code, and the forward functions it calls.

    The same formulas as the float kernels of rules.py, elementwise (the stable
    sigmoid and softplus included); numpy is needed only here.
    """
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with matplotlib
        raise ImportError("trace(batched=True) needs numpy: pip install numpy") from None

    def sigmoid(x: Any) -> Any:
        e = np.exp(-np.abs(x))
        return np.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))

    def softplus(x: Any) -> Any:
        return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))

    helpers: dict[str, object] = {
        "_where": np.where,
        "_exp": np.exp,
        "_log": np.log,
        "_sigmoid": sigmoid,
    }
    forward: dict[str, Callable[..., Any]] = {
        "exp": np.exp,
        "log": np.log,
        "tanh": np.tanh,
        "sigmoid": sigmoid,
        "softplus": softplus,
        "div": np.true_divide,
        "pow": np.power,
    }
    return np, helpers, forward


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


class BatchedTraced(Traced):
    """A trace whose code runs on a batch: each input a float (shared by every
    sample, such as a weight) or a 1-D array (one number per sample).

    ``value_and_grad(xs)`` returns the value for every sample and, for every
    input, its gradient for every sample (arrays of the batch's length): reduce
    them as the loss does (a mean loss: the mean of each). A number outside an
    operation's domain raises FloatingPointError (numpy's, not the rules' own).
    """

    def __init__(
        self, source: str, namespace: dict[str, object], n_inputs: int, n_nodes: int, np: Any
    ) -> None:
        super().__init__(source, namespace, n_inputs, n_nodes)
        self._np = np

    def _batch(self, xs: Sequence[Any]) -> tuple[list[Any], int]:
        if len(xs) != self.n_inputs:
            raise ValueError(f"BatchedTraced: expected {self.n_inputs} inputs, got {len(xs)}")
        np = self._np
        args, size = [], None
        for i, x in enumerate(xs):
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                args.append(float(x))
                continue
            a = np.asarray(x, dtype=float)
            if a.ndim != 1 or (size is not None and len(a) != size):
                raise ValueError(
                    f"BatchedTraced: xs[{i}] must be a number or a 1-D array of the batch's "
                    f"length{'' if size is None else f' ({size})'}, got shape {a.shape}"
                )
            size = len(a)
            args.append(a)
        if size is None:
            raise ValueError("BatchedTraced: no input is an array: there is no batch")
        return args, size

    def __call__(self, xs: Sequence[Any]) -> Any:
        """f for every sample: an array."""
        args, size = self._batch(xs)
        with self._np.errstate(over="raise", divide="raise", invalid="raise"):
            return self._np.broadcast_to(self._forward(*args), (size,)).copy()

    def value_and_grad(self, xs: Sequence[Any]) -> tuple[Any, list[Any]]:  # type: ignore[override]
        """(f for every sample, [∂f/∂xᵢ for every sample, for each input])."""
        args, size = self._batch(xs)
        np = self._np
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            value, grads = self._value_and_grad(*args)
        shape = (size,)
        return np.broadcast_to(value, shape).copy(), [np.broadcast_to(g, shape) for g in grads]

    def __repr__(self) -> str:
        return f"<BatchedTraced: {self.n_inputs} inputs, {self.n_nodes} operations>"


def trace(
    f: Callable[[list[Value]], Value],
    example_inputs: Sequence[float],
    *,
    names: Sequence[str] | None = None,
    batched: bool = False,
) -> Traced:
    """Record `f` once at `example_inputs` and compile its forward and backward passes.

    `f` takes a list of n Values and returns one Value. The result evaluates `f`
    and its gradient at any other n floats, without building Values; control
    flow in `f` that depends on the data is frozen at the trace (see the module
    docstring). `names` gives the inputs readable names in the generated code
    (distinct Python identifiers; default x0, x1, ...).

    With ``batched=True`` the code runs on numpy arrays: trace `f` for one
    sample, then evaluate it for a whole batch at once (:class:`BatchedTraced`).
    Needs numpy; every operation but ``**`` is supported.
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
    return _compile(order, xs, batched)


def _compile(order: list[Value], xs: list[Value], batched: bool = False) -> Traced:
    sym: type[_Sym] = _ArraySym if batched else _Sym
    root = order[0]
    inputs = {x: i for i, x in enumerate(xs)}
    names: dict[Value, _Sym] = {}
    namespace: dict[str, object] = dict(_RUNTIME)
    kernels: dict[str, Callable[..., Any]] = {}
    if batched:
        np, helpers, kernels = _numpy_kernels()
        namespace.update(helpers)
    fwd: list[str] = []
    tmp = n_vars = 0

    def call(kind: str, rule: Rule, args: list[_Sym]) -> str:
        fn = f"_{kind}_{rule.name}"
        if not batched:
            namespace[fn] = rule.forward if kind == "forward" else rule.local
        elif kind == "forward" and rule.name in kernels:
            namespace[fn] = kernels[rule.name]
        else:
            raise NotImplementedError(
                f"trace(batched=True): the {kind} of {rule.name!r} needs numbers one at a "
                "time (it branches on them); trace without batched=True"
            )
        return f"{fn}({', '.join(a.code for a in args)})"

    # forward: inputs are arguments, other leaves constants, every node one line
    for x in xs:
        names[x] = sym(x.label)
    forward_order = order[::-1]
    for node in forward_order:
        if node in names:
            continue
        if not node.parents:
            names[node] = sym(_literal(node._data), _ATOM if node._data >= 0 else _UNARY)
            continue
        rule = RULES[node.op]
        args = [names[p] for p in node.parents]
        try:
            expr = rule.forward(*args).code  # type: ignore[attr-defined]  # a _Sym
        except (_NeedsNumbersError, TypeError):
            expr = call("forward", rule, args)
        var = f"v{len(fwd)}"
        fwd.append(f"    {var} = {expr}")
        names[node] = sym(var)

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
            locals_ = [sym("1.0")._operand(d) for d in rule.local(*args)]
        except (_NeedsNumbersError, TypeError):
            tmp += 1
            bwd.append(f"    d{tmp} = {call('local', rule, args)}")
            locals_ = [sym(f"d{tmp}[{k}]") for k in range(len(parents))]
        g = sym(grads[node])
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
    if batched:
        return BatchedTraced(source, namespace, len(xs), n_ops, np)
    return Traced(source, namespace, len(xs), n_ops)
