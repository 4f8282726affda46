"""A hypothesis strategy for random expression graphs over every operation.

A graph is a small program: some inputs, then steps that each apply one
operation to earlier nodes chosen at random, so nodes are shared (diamonds) as
often as not. The output is the sum of every node nothing else used, so every
step matters. Each operation is applied to its argument in a form that keeps
it inside the domain (log of x² + ¼, division by y² + ½, ...), and examples
whose values grow past `LIMIT` or whose relu input sits within `KINK` of the
kink are rejected, so that finite differences are meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hypothesis import assume
from hypothesis import strategies as st
from ops import RECORDS

from autodiff import Value

LIMIT = 1e3
KINK = 1e-3


# name -> (arity, function of Values). Each built-in operation's own form comes from its
# record (tests/ops.py); the others are further ways of calling + − × ÷ **. Guards keep
# each op inside its domain.
OPS: dict[str, tuple[int, Callable[..., Value]]] = {
    **{name: r.graph for name, r in RECORDS.items() if r.graph is not None},
    "radd": (1, lambda a: 1.5 + a),
    "rsub": (1, lambda a: 0.5 - a),
    "rmul": (1, lambda a: -2.0 * a),
    "rdiv": (1, lambda a: 1.0 / (a * a + 0.5)),
    "pow_int": (1, lambda a: a**3),
    "pow_float": (1, lambda a: (a * a + 0.25) ** -1.5),
    "rpow": (1, lambda a: 2.0 ** a.tanh()),
}


@dataclass(frozen=True)
class Graph:
    """n inputs, then steps (op name, argument indices into the nodes so far)."""

    point: tuple[float, ...]
    steps: tuple[tuple[str, tuple[int, ...]], ...]

    def __call__(self, xs: Sequence[Value]) -> Value:
        """Build the graph on the given input Values and return its output."""
        nodes = list(xs)
        used = [False] * (len(xs) + len(self.steps))
        for name, args in self.steps:
            fn = OPS[name][1]
            for i in args:
                used[i] = True
            nodes.append(fn(*(nodes[i] for i in args)))
        sinks = [v for v, u in zip(nodes, used) if not u]
        out = sinks[0]
        for v in sinks[1:]:
            out = out + v
        return out

    def check_domain(self) -> None:
        """Reject (hypothesis.assume) graphs too large or too close to relu's kink."""
        xs = [Value(x) for x in self.point]
        try:
            out = self(xs)
        except (OverflowError, ValueError, ZeroDivisionError):
            assume(False)
            raise
        stack, seen = [out], set()
        while stack:
            v = stack.pop()
            if id(v) in seen:
                continue
            seen.add(id(v))
            assume(abs(v.data) < LIMIT)
            if v.op in ("relu", "abs"):
                assume(abs(v.parents[0].data) > KINK)
            stack.extend(v.parents)


POW_OPS = ("pow_int", "pow_float", "pow", "rpow")

#: Points drawn on purpose, not only by luck: where derivatives are smooth (for differences).
SMOOTH_SPECIAL = (0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, -1e-300, 5e-324)
#: And where they are not: for oracles that know IEEE arithmetic (PyTorch).
ANY_SPECIAL = (*SMOOTH_SPECIAL, 1e300, -1e300, math.inf, -math.inf, math.nan)


def points(special: tuple[float, ...] = SMOOTH_SPECIAL) -> st.SearchStrategy[float]:
    """A coordinate: one of `special` a third of the time, else a number in [−2, 2]."""
    plain = st.floats(-2.0, 2.0, allow_nan=False).map(lambda v: round(v, 3))
    return st.one_of(plain, plain, st.sampled_from(special))


@st.composite
def graphs(
    draw: st.DrawFn,
    max_inputs: int = 3,
    max_steps: int = 10,
    exclude: tuple[str, ...] = (),
    special: tuple[float, ...] | None = SMOOTH_SPECIAL,
    check: bool = True,
) -> Graph:
    """A random Graph with its evaluation point, inside every op's domain (but `exclude`).

    Coordinates are drawn from `special` values a third of the time. With
    ``check=False`` the domain is not checked (for oracles that handle inf and nan).
    """
    n = draw(st.integers(1, max_inputs))
    coordinate = points(special) if special else points(())
    point = tuple(draw(coordinate) for _ in range(n))
    steps = []
    for k in range(draw(st.integers(1, max_steps))):
        name = draw(st.sampled_from(sorted(set(OPS) - set(exclude))))
        arity = OPS[name][0]
        args = tuple(draw(st.integers(0, n + k - 1)) for _ in range(arity))
        steps.append((name, args))
    g = Graph(point, tuple(steps))
    if check:
        g.check_domain()
    return g
