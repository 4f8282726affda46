"""Derivatives as functions: `grad`, `jacobian`, `hessian`, and `gradcheck`.

None of these touch ``.grad``: they return their results.

First-order derivatives reuse the local derivatives each node stored as floats
when it was made.

The chain rule's policy, the same on every path (``backward``, ``grad``, ``grad``
with ``create_graph=True``, traced code): an edge contributes ``local × upstream``
in IEEE arithmetic, so a local derivative of 0 under an infinite gradient gives
NaN (0 · ∞), as in ``relu`` below its kink feeding ``sqrt`` at 0; and gradients
are sums that start at +0.0, so a zero gradient is +0.0.

With ``create_graph=True`` the local derivatives are instead recomputed as Values
from the same rules (:mod:`autodiff.rules`), so the result is a graph of its own
that can be differentiated again. The first-order path, and ``Value.backward``,
pay nothing for this.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from autodiff import engine
from autodiff.engine import Value, enable_grad, gc_paused, topological_order
from autodiff.rules import RULES

__all__ = [
    "GradcheckError",
    "adjoints",
    "chain_rule",
    "grad",
    "gradcheck",
    "hessian",
    "jacobian",
]

Scalar = Value | float
N = TypeVar("N")  # a node: a Value, or a slot of a traced program
G = TypeVar("G")  # a gradient: a float, or a Value (create_graph)


def chain_rule(
    order: Iterable[N],
    adjoint: dict[N, G],
    terms: Callable[[N, G], Iterable[tuple[N, G]]],
    *,
    settle: Callable[[G], G] | None = None,
) -> dict[N, G]:
    """Reverse accumulation: the one evaluator of the chain rule, for every path that
    is not ``backward()``'s own fused loop (which a test pins to it bit for bit).

    `order` is backward's order (the root first, every node before its parents);
    `adjoint` holds the root's seed. Each node with a gradient g passes
    ``terms(node, g)`` -- pairs (parent, local × g) -- to its parents, whose gradients
    are the sums of what they receive, in the order received, the first term as it is.
    `settle`, if given, is applied to each gradient but the seed before it is passed on
    (``backward()`` sums onto +0.0: ``s + 0.0`` gives its numbers, −0.0 included).
    Returns `adjoint`, completed.
    """
    first = True
    for node in order:
        g = adjoint.get(node)
        if g is None:  # no gradient reached it (a zero skipped by `terms`, or none asked)
            first = False
            continue
        if settle is not None and not first:
            g = adjoint[node] = settle(g)
        first = False
        for parent, term in terms(node, g):
            prev: Any = adjoint.get(parent)
            adjoint[parent] = term if prev is None else prev + term
    return adjoint


def grad(output: Value, inputs: Iterable[Value], *, create_graph: bool = False) -> list[Value]:
    """∂output/∂x for each Value x in `inputs`, without touching any ``.grad``.

    `inputs` is any iterable of Values (a list, a tuple, a generator). An input
    that `output` does not depend on gets 0. With ``create_graph=True`` the
    results are Values whose own graphs lead back to the inputs, so they can be
    differentiated again (Hessians, third derivatives); otherwise they are
    leaves.

    With ``create_graph=True`` every local derivative is recomputed, as a Value,
    from the current data of the graph's nodes; if a node's ``.data`` was changed
    after the graph was recorded, the recomputed derivative would disagree with
    the one ``backward()`` uses, so RuntimeError is raised instead (PyTorch
    raises likewise for a tensor modified in place).
    """
    if not isinstance(output, Value):
        raise TypeError(f"grad: output must be a Value, got {type(output).__name__} {output!r}")
    xs = _inputs(inputs, "grad")
    if create_graph:
        adjoint: dict[Value, Scalar] = {output: 1.0}
        with gc_paused(), enable_grad():
            _accumulate_graph(topological_order(output), adjoint)
            results = []
            for x in xs:
                d = adjoint.get(x, 0.0)
                if isinstance(d, Value) and d._data == 0.0:
                    d = d + 0.0  # backward() sums onto +0.0: a zero gradient is never −0.0
                results.append(d if isinstance(d, Value) else Value(d))
        return results
    adjoint = adjoints(output)  # type: ignore[assignment]
    return [Value(adjoint.get(x, 0.0)) for x in xs]  # type: ignore[arg-type]


def _inputs(inputs: object, where: str) -> list[Value]:
    """The Values of the iterable `inputs`; TypeError naming `where` otherwise."""
    if isinstance(inputs, Value):
        raise TypeError(
            f"{where}: inputs must be an iterable of Values, got a single Value; "
            f"write {where}(output, [x])"
        )
    if not isinstance(inputs, Iterable) or isinstance(inputs, (str, bytes)):
        raise TypeError(
            f"{where}: inputs must be an iterable of Values, got {type(inputs).__name__} {inputs!r}"
        )
    xs = list(inputs)
    for i, x in enumerate(xs):
        if not isinstance(x, Value):
            raise TypeError(f"{where}: inputs[{i}] must be a Value, got {type(x).__name__} {x!r}")
    return xs


def adjoints(output: Value, seed: float = 1.0) -> dict[Value, float]:
    """∂output/∂v for every Value v that `output` depends on, `output` seeded with `seed`.

    The numbers ``output.backward(seed)`` would leave in the interior ``.grad``s,
    bit for bit (the same order of operations), without touching any of them.
    """

    def terms(node: Value, g: float) -> Iterable[tuple[Value, float]]:
        return [(p, local * g) for p, local in zip(node.parents, node.local_grads)]

    return chain_rule(topological_order(output), {output: seed}, terms, settle=_plus_zero)


def _plus_zero(g: float) -> float:
    return g + 0.0


def _accumulate_graph(order: list[Value], adjoint: dict[Value, Scalar]) -> None:
    """Reverse accumulation in which every local derivative is itself a Value."""

    def terms(node: Value, g: Scalar) -> Iterable[tuple[Value, Scalar]]:
        if node._p0 is None:  # a leaf
            return ()
        parents = node.parents
        locals_ = engine.local_on_values(RULES[node.op], parents, node)
        _check_unchanged(node, locals_)
        finite = _finite(g)
        out = []
        for parent, local in zip(parents, locals_):
            if type(local) is float:  # a constant derivative: skip the trivial nodes
                if local == 0.0 and finite:
                    continue  # 0 · g for a finite g adds nothing; 0 · ±inf is NaN (IEEE)
                out.append((parent, g if local == 1.0 else local * g))
            else:
                out.append((parent, local * g))
        return out

    chain_rule(order, adjoint, terms)


def _finite(g: Scalar) -> bool:
    x = g._data if isinstance(g, Value) else g
    return x - x == 0.0


def _check_unchanged(node: Value, locals_: Sequence[Scalar]) -> None:
    """RuntimeError unless `locals_` (from the current data) equal what `node` stored."""
    stored = node._d0 if type(node._p0) is tuple else (node._d0, node._d1)
    for k, (local, before) in enumerate(zip(locals_, stored)):
        now = local._data if isinstance(local, Value) else local
        if now != before and not (now != now and before != before):  # nan equals nan here
            raise RuntimeError(
                f"grad(create_graph=True): the data of the graph changed after it was "
                f"recorded: the {node.op} node {node!r} stored ∂/∂parents[{k}] = {before!r}, "
                f"its parents' data now give {now!r}. backward() would use the old numbers; "
                "rebuild the graph from the current data"
            )


def _values(point: Sequence[float], where: str) -> list[Value]:
    return [Value(engine.as_float(x, f"{where}: point[{i}]")) for i, x in enumerate(point)]


def jacobian(
    f: Callable[[list[Value]], Sequence[Value | float] | Value], point: Sequence[float]
) -> list[list[float]]:
    """The m×n Jacobian J[i][j] = ∂fᵢ/∂xⱼ of `f` at `point`.

    `f` takes a list of n Values and returns a list (or tuple) of m Values or
    numbers -- a number is a constant output, a row of zeros -- or one Value,
    giving a 1×n matrix. Anything else (None, a string, a nested list) is a
    TypeError. Rows are the outputs, columns the inputs: the lecture's ∂y/∂x.
    """
    xs = _values(point, "jacobian")
    ys: Any
    with gc_paused():
        ys = f(xs)
        if isinstance(ys, Value):
            ys = [ys]
        elif not isinstance(ys, (list, tuple)):
            raise TypeError(
                "jacobian: f must return a Value or a list of Values and numbers, got "
                f"{type(ys).__name__} {ys!r}"
            )
        rows = []
        for i in range(len(ys)):
            y = ys[i]
            if isinstance(y, Value):
                rows.append([d._data for d in grad(y, xs)])
            elif isinstance(y, numbers.Real):  # a constant output
                rows.append([0.0] * len(xs))
            else:
                raise TypeError(
                    f"jacobian: output {i} of f must be a Value or a real number, got "
                    f"{type(y).__name__} {y!r}"
                )
        ys = y = None  # free the graph before the collector runs again (see gc_paused)
    return rows


def hessian(f: Callable[[list[Value]], Value], point: Sequence[float]) -> list[list[float]]:
    """The n×n Hessian H[i][j] = ∂²f/∂xᵢ∂xⱼ of the scalar `f` at `point`."""
    xs = _values(point, "hessian")
    with gc_paused():
        y = f(xs)
        if not isinstance(y, Value):
            raise TypeError(f"hessian: f must return a Value, got {type(y).__name__} {y!r}")
        first = grad(y, xs, create_graph=True)
        rows = [[d._data for d in grad(g, xs)] for g in first]
        del y, first  # free the graphs before the collector runs again
    return rows


class GradcheckError(AssertionError):
    """The engine's gradient and the finite-difference gradient disagree."""

    def __init__(self, index: int, analytic: float, numeric: float, point: Sequence[float]) -> None:
        self.index = index
        self.analytic = analytic
        self.numeric = numeric
        super().__init__(
            f"gradcheck: ∂f/∂x[{index}] at {list(point)}: engine {analytic!r}, "
            f"central finite difference {numeric!r}"
        )


def gradcheck(
    f: Callable[[list[Value]], Value],
    point: Sequence[float],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Check the engine's gradient of the scalar `f` against central finite differences.

    For each input i, numeric = (f(x + eps·eᵢ) − f(x − eps·eᵢ)) / (2·eps); the
    check passes when |analytic − numeric| ≤ atol + rtol·|numeric|. `f` is evaluated as
    it runs for real (recording), so it may itself take gradients: ``gradcheck(lambda v:
    grad(g(v[0]), [v[0]], create_graph=True)[0], point)`` checks g's second derivative.

    Returns True, or raises :class:`GradcheckError` naming the first input that
    disagrees, with both values.
    """
    xs = _values(point, "gradcheck")
    y = f(xs)
    if not isinstance(y, Value):
        raise TypeError(f"gradcheck: f must return a Value, got {type(y).__name__} {y!r}")
    analytic = [d._data for d in grad(y, xs)]
    base = [x._data for x in xs]

    def at(i: int, step: float) -> float:
        # f runs as it runs for real, recording its graph: a function that takes a
        # gradient inside (grad(..., create_graph=True)) needs one (under no_grad its
        # inner gradient would be 0, and the verdict wrong)
        shifted = list(base)
        shifted[i] += step
        with gc_paused():
            out = f([Value(v) for v in shifted])
            if not isinstance(out, Value):
                raise TypeError(f"gradcheck: f must return a Value, got {type(out).__name__}")
            return out.data

    for i, a in enumerate(analytic):
        numeric = (at(i, eps) - at(i, -eps)) / (2.0 * eps)
        if not (abs(a - numeric) <= atol + rtol * abs(numeric)) or math.isnan(a) != math.isnan(
            numeric
        ):
            raise GradcheckError(i, a, numeric, base)
    return True
