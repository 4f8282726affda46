"""Every copy of a rule agrees with the engine: the grouped code and the batched array
kernels, for every operation and every partial derivative, at the special points --
kinks, zeros of both signs, negative bases, infinities, NaN. (A mutation test once
found the batched relu's derivative at 0 and the batched pow's exponent-side derivative
compared with nothing.)"""

from __future__ import annotations

import itertools
import math
import struct

import numpy as np
import pytest
from ops import RECORDS

from autodiff import Value, enable_grad, is_grad_enabled, no_grad, trace
from autodiff.rules import RULES

POINTS = [-2.0, -0.5, -0.0, 0.0, 0.5, 1.0, 3.0, math.inf, -math.inf, math.nan]

# op name -> the function of Values that applies it (its record's `use`, tests/ops.py)
UNARY = {name: r.use for name, r in RECORDS.items() if r.n == 1}
BINARY = {name: r.use for name, r in RECORDS.items() if r.n == 2}


def test_the_tables_here_cover_every_rule():
    assert set(UNARY) | set(BINARY) == set(RULES)


def same(a: float, b: float) -> bool:
    """Equal to the bit (−0.0 is not 0.0), or both NaN."""
    return (a != a and b != b) or struct.pack("<d", a) == struct.pack("<d", b)


def eager(f, point):
    """(value, gradient) by the engine, or None where the engine raises (a domain error)."""
    try:
        xs = [Value(p) for p in point]
        y = f(xs)
        y.backward()
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return y.data, [x.grad for x in xs]


CASES = [(name, 1) for name in UNARY] + [(name, 2) for name in BINARY]


@pytest.mark.parametrize(("name", "n"), CASES, ids=[c[0] for c in CASES])
def test_grouped_and_batched_code_give_the_engines_numbers_at_special_points(name, n):
    f = (UNARY if n == 1 else BINARY)[name]
    points = [p for p in itertools.product(POINTS, repeat=n) if eager(f, p) is not None]
    assert len(points) >= len(POINTS) // 2
    start = next(p for p in points if all(map(math.isfinite, p)))
    grouped = trace(f, list(start), mode="groups")
    for p in points:
        value, grads = eager(f, p)
        g_value, g_grads = grouped.value_and_grad(list(p))
        assert all(map(same, [value, *grads], [g_value, *g_grads])), ("groups", p)
    batched = trace(f, list(start), batched=True)
    columns = [np.array([p[i] for p in points]) for i in range(n)]
    with np.errstate(all="ignore"):
        values, grads = batched.value_and_grad(columns)
    for k, p in enumerate(points):
        value, e_grads = eager(f, p)
        got = [float(values[k]), *(float(g[k]) for g in grads)]
        want = [value, *e_grads]
        for a, b in zip(got, want):  # the array kernels round as the float ones do
            assert same(a, b), ("batched", p, got, want)


def test_the_relu_kink_and_a_negative_base_in_batched_code():
    # the two partials a mutation test found compared with nothing
    relu = trace(lambda v: v[0].relu() * v[1], [1.0, 2.0], batched=True)
    _, grads = relu.value_and_grad([np.array([0.0, -0.0, 1e-300, -1e-300]), 3.0])
    assert grads[0].tolist() == [0.0, 0.0, 3.0, 0.0]  # relu'(0) = 0, as the engine's
    power = trace(lambda v: v[0] ** v[1], [2.0, 2.0], batched=True)
    with np.errstate(all="ignore"):
        _, grads = power.value_and_grad([np.array([-2.0, 0.0, 2.0]), 2.0])
    assert math.isnan(grads[1][0]) and grads[1][1] == 0.0  # ∂/∂b at a < 0: NaN; at 0: 0
    assert grads[1][2] == pytest.approx(4.0 * math.log(2.0), rel=1e-15)


def test_enable_grad_as_a_decorator_in_both_forms():
    @enable_grad
    def bare() -> bool:
        return is_grad_enabled() and bool((Value(2.0) * 3.0).parents)

    @enable_grad()
    def called() -> bool:
        return is_grad_enabled() and bool((Value(2.0) * 3.0).parents)

    with no_grad():
        assert not is_grad_enabled()
        assert bare() and called()
        assert not is_grad_enabled()  # and the block's mode is back
    assert bare.__name__ == "bare" and called.__name__ == "called"
