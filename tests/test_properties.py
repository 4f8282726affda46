"""Random expression graphs (every op, shared sub-expressions) against finite differences.

Tolerance. Central differences with step h carry a truncation error ~h²·|f'''|/6
and a rounding error ~ε·|f|/h (ε = 2.2e-16, times the few roundings per node).
Values are kept below LIMIT = 1e3 (see graphs.py), so with h = 1e-5 the rounding
term is ≲ 1e-7 and the truncation term ≲ 1e-7 for third derivatives up to 1e3;
atol = 1e-5 and rtol = 1e-4 sit two orders above both, while a wrong rule (a
factor, a sign, a missing path) is off by far more: see the mutation test in
test_functional.py, which these same tolerances catch.
"""

from __future__ import annotations

import pytest
from graphs import Graph, graphs
from hypothesis import given

from autodiff import Value, grad, gradcheck, hessian, jacobian

EPS, ATOL, RTOL = 1e-5, 1e-5, 1e-4


@given(graphs())
def test_random_graph_gradients_match_central_differences(g: Graph):
    assert gradcheck(g, g.point, eps=EPS, atol=ATOL, rtol=RTOL)


@given(graphs())
def test_backward_and_grad_agree_and_a_second_backward_doubles(g: Graph):
    xs = [Value(x) for x in g.point]
    y = g(xs)
    expected = [d.data for d in grad(y, xs)]
    assert all(x.grad == 0.0 for x in xs)  # grad() leaves .grad alone
    y.backward()
    first = [x.grad for x in xs]
    assert first == expected
    y.backward()
    assert [x.grad for x in xs] == [2 * v for v in first]


@given(graphs(max_inputs=3, max_steps=8))
def test_random_jacobians_match_differences_of_the_outputs(g: Graph):
    """Every node as an output: a Jacobian whose rows are the nodes (shared ones included)."""

    def outputs(xs):
        nodes = list(xs)
        for name, args in g.steps:
            from graphs import OPS

            nodes.append(OPS[name][1](*(nodes[i] for i in args)))
        return nodes[len(xs) :]

    J = jacobian(outputs, g.point)
    for j in range(len(g.point)):
        plus, minus = list(g.point), list(g.point)
        plus[j] += EPS
        minus[j] -= EPS
        up = [v.data for v in outputs([Value(x) for x in plus])]
        down = [v.data for v in outputs([Value(x) for x in minus])]
        for i, row in enumerate(J):
            numeric = (up[i] - down[i]) / (2 * EPS)
            assert row[j] == pytest.approx(numeric, rel=RTOL, abs=ATOL)


@given(graphs(max_inputs=2, max_steps=6))
def test_random_third_derivatives_match_differences_of_the_hessian(g: Graph):
    """∂³f/∂xᵢ∂xⱼ∂xₖ by differentiating three times, against differences of the Hessian.

    Differences of an exact Hessian: error ~ h²·|f⁽⁵⁾| + ε·|f''|/h with h = 1e-4:
    below 1e-5 for the bounded graphs drawn here; 1e-3 absolute and relative.
    """
    n, h = len(g.point), 1e-4
    xs = [Value(x) for x in g.point]
    y = g(xs)
    first = grad(y, xs, create_graph=True)
    second = [grad(d, xs, create_graph=True) for d in first]
    third = [[[t.data for t in grad(d2, xs)] for d2 in row] for row in second]
    for k in range(n):
        plus, minus = list(g.point), list(g.point)
        plus[k] += h
        minus[k] -= h
        hp, hm = hessian(g, plus), hessian(g, minus)
        for i in range(n):
            for j in range(n):
                numeric = (hp[i][j] - hm[i][j]) / (2 * h)
                assert third[i][j][k] == pytest.approx(numeric, rel=1e-3, abs=1e-3)
                assert third[i][j][k] == pytest.approx(third[k][j][i], rel=1e-9, abs=1e-9)
