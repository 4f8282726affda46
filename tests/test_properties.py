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

from graphs import Graph, graphs
from hypothesis import given

from autodiff import Value, grad, gradcheck

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
