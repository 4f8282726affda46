"""grad / jacobian / hessian / gradcheck, higher derivatives, and the lecture's L13-L15."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
from graphs import Graph, graphs
from hypothesis import given
from ops import RECORDS
from test_properties import ATOL, EPS, RTOL
from test_saving import bits

import autodiff
from autodiff import (
    GradcheckError,
    Rule,
    Value,
    dot,
    engine,
    grad,
    gradcheck,
    hessian,
    jacobian,
    op,
    trace,
)
from autodiff.rules import RULES
from nn import losses
from nn.module import Layer, Module
from nn.optim import SGD
from nn.train import compile_batch_step, compile_step


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def nth_derivative(fn, x: float, n: int) -> float:
    v = Value(x)
    y = fn(v)
    for _ in range(n):
        (y,) = grad(y, [v], create_graph=True)
    return y.data


# (name, function, closed-form second derivative, points)
SECOND = [
    ("neg", lambda v: -v, lambda x: 0.0, [0.5]),
    ("exp", lambda v: v.exp(), math.exp, [-1.0, 0.0, 2.0]),
    ("log", lambda v: v.log(), lambda x: -1 / x**2, [0.5, 3.0]),
    ("tanh", lambda v: v.tanh(), lambda x: -2 * math.tanh(x) * (1 - math.tanh(x) ** 2), [-1, 0.3]),
    (
        "sigmoid",
        lambda v: v.sigmoid(),
        lambda x: sig(x) * (1 - sig(x)) * (1 - 2 * sig(x)),
        [-2.0, 0.0, 1.5],
    ),
    ("softplus", lambda v: v.softplus(), lambda x: sig(x) * (1 - sig(x)), [-2.0, 0.0, 1.5]),
    ("relu", lambda v: v.relu(), lambda x: 0.0, [-1.0, 2.0]),
    ("pow", lambda v: v**3.5, lambda x: 3.5 * 2.5 * x**1.5, [0.5, 2.0]),
    ("rpow", lambda v: 3.0**v, lambda x: 3.0**x * math.log(3.0) ** 2, [-1.0, 2.0]),
    ("vpow", lambda v: v**v, lambda x: x**x * ((math.log(x) + 1) ** 2 + 1 / x), [0.5, 2.0]),
    ("div", lambda v: 1.0 / v, lambda x: 2 / x**3, [-2.0, 0.5]),
    ("mul", lambda v: v * v * v, lambda x: 6 * x, [-2.0, 0.5]),
    ("add/sub", lambda v: (v + 1.0) * (v - 2.0), lambda x: 2.0, [0.0, 3.0]),
    ("dot", lambda v: dot([v, v], [v, v.exp()], 1.0), lambda x: 2 + (x + 2) * math.exp(x), [0.5]),
]


@pytest.mark.parametrize(
    ("fn", "d2", "x"),
    [pytest.param(fn, d2, x, id=f"{name}({x})") for name, fn, d2, pts in SECOND for x in pts],
)
def test_second_derivative_of_every_op_matches_closed_form(fn, d2, x):
    assert nth_derivative(fn, x, 2) == pytest.approx(d2(x), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("x", [-2.0, -0.3, 0.0, 0.8, 3.0])
def test_third_derivative_of_tanh(x):
    t = math.tanh(x)
    s = 1 - t * t
    assert nth_derivative(lambda v: v.tanh(), x, 3) == pytest.approx(
        -2 * s * s + 4 * t * t * s, rel=1e-12, abs=1e-15
    )


def test_grad_leaves_grad_alone_and_returns_values():
    x, y = Value(2.0), Value(3.0)
    z = x * y + x.exp()
    gx, gy, gz = grad(z, [x, y, Value(1.0)])
    assert (gx.data, gy.data, gz.data) == (3.0 + math.exp(2.0), 2.0, 0.0)
    assert (x.grad, y.grad, z.grad) == (0.0, 0.0, 0.0)
    assert gx.parents == ()  # first order: plain leaves
    (gx2,) = grad(z, [x], create_graph=True)
    assert gx2.parents != ()  # a graph of its own, leading back to x
    with pytest.raises(TypeError, match="grad: output must be a Value"):
        grad(3.0, [x])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"grad: inputs\[1\] must be a Value"):
        grad(z, [x, 2.0])  # type: ignore[list-item]


def test_grad_with_respect_to_an_interior_node():
    x = Value(1.5)
    h = x * x
    y = h.tanh() + h
    (gh,) = grad(y, [h])
    assert gh.data == pytest.approx(1 - math.tanh(2.25) ** 2 + 1, rel=1e-15)


def test_create_graph_builds_its_graph_even_inside_no_grad():
    x = Value(0.7)
    y = x * x * x
    with autodiff.no_grad():
        (g,) = grad(y, [x], create_graph=True)
    (g2,) = grad(g, [x])
    assert (g.data, g2.data) == (pytest.approx(3 * 0.49), pytest.approx(6 * 0.7))


def test_jacobian_and_hessian_shapes_and_values():
    j = jacobian(lambda v: [v[0] * v[1], v[0].exp(), 2.0], [2.0, 3.0])
    assert j == [[3.0, 2.0], [math.exp(2.0), 0.0], [0.0, 0.0]]
    assert jacobian(lambda v: v[0] * v[1], [2.0, 5.0]) == [[5.0, 2.0]]
    h = hessian(lambda v: v[0] ** 2 * v[1] + v[1].exp(), [1.0, 2.0])
    assert h == [[4.0, 2.0], [2.0, pytest.approx(math.exp(2.0))]]
    with pytest.raises(TypeError, match="hessian: f must return a Value"):
        hessian(lambda v: 1.0, [1.0])  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match=r"jacobian: point\[0\]"):
        jacobian(lambda v: v, ["x"])  # type: ignore[list-item]


@given(graphs(max_inputs=3, max_steps=8))
def test_random_hessians_are_symmetric_and_match_differences_of_the_gradient(g: Graph):
    # Differences of an exact gradient: error ~ h²·|f''''| + ε·|f'|/h, both < 1e-6 here.
    n = len(g.point)
    h_exact = hessian(g, g.point)
    step = 1e-5

    def gradient_at(p):
        xs = [Value(v) for v in p]
        return [d.data for d in grad(g(xs), xs)]

    for i in range(n):
        for j in range(n):
            assert h_exact[i][j] == pytest.approx(h_exact[j][i], rel=1e-9, abs=1e-9)
        plus = list(g.point)
        minus = list(g.point)
        plus[i] += step
        minus[i] -= step
        column = [(a - b) / (2 * step) for a, b in zip(gradient_at(plus), gradient_at(minus))]
        for j in range(n):
            assert h_exact[j][i] == pytest.approx(column[j], rel=1e-4, abs=1e-4)


# -- gradcheck -------------------------------------------------------------------


def test_gradcheck_passes_on_correct_gradients():
    assert gradcheck(lambda v: (v[0] * v[1]).tanh() + v[1] ** 2.5, [0.3, 1.7])


def _mutate(monkeypatch: pytest.MonkeyPatch, name: str, factor: float) -> None:
    """Make the engine use a wrong derivative for `name`: every local derivative × factor."""
    rule = RULES[name]

    @functools.wraps(rule.local)  # the same signature, so the same arity
    def wrong(*args):
        return tuple(d * factor for d in rule.local(*args))

    bad = dataclasses.replace(rule, local=wrong)
    for attr, fn in engine._methods(bad).items():  # Value's methods made from the rule
        if getattr(vars(engine.Value).get(attr), "rule", None) is rule:
            monkeypatch.setattr(engine.Value, attr, fn)
    for attr, obj in list(vars(engine).items()):
        if obj is rule:
            monkeypatch.setattr(engine, attr, bad)
        elif obj is rule.local:
            monkeypatch.setattr(engine, attr, wrong)


USES = {name: r.use for name, r in RECORDS.items()}  # each rule's record (tests/ops.py)


@pytest.mark.parametrize("name", sorted(RULES))
def test_gradcheck_catches_a_one_percent_error_in_any_rule(monkeypatch, name):
    assert gradcheck(USES[name], [0.8, 1.3], eps=EPS, atol=ATOL, rtol=RTOL)
    _mutate(monkeypatch, name, 1.01)
    with pytest.raises(GradcheckError) as info:
        gradcheck(USES[name], [0.8, 1.3], eps=EPS, atol=ATOL, rtol=RTOL)
    err = info.value
    assert err.index in (0, 1)
    assert err.analytic == pytest.approx(1.01 * err.numeric, rel=1e-4)
    assert f"x[{err.index}]" in str(err) and repr(err.analytic) in str(err)


def test_gradcheck_rejects_non_value_output():
    with pytest.raises(TypeError, match="gradcheck: f must return a Value"):
        gradcheck(lambda v: 1.0, [1.0])  # type: ignore[arg-type, return-value]


# -- the lecture: L13, L14, L15 ------------------------------------------------------


def test_L13_relu_jacobian_is_diagonal_with_the_step_function():
    u2 = [0.7, -1.2, 2.5, -0.1]
    j = jacobian(lambda u: [ui.relu() for ui in u], u2)
    for i, row in enumerate(j):
        for k, entry in enumerate(row):
            assert entry == (float(u2[i] > 0) if i == k else 0.0)


def test_L14_chain_rule_with_jacobians():
    # y = g(x): R^3 -> R^2, z = f(y): R^2 -> R; ∇ₓz = (∂y/∂x)ᵀ ∇_y z
    def g(x):
        return [x[0] * x[1] + x[2].tanh(), (x[0] - x[2]).exp()]

    def f(y):
        return y[0].sigmoid() * y[1] + y[1].log()

    x0 = [0.4, -1.1, 0.9]
    jac = jacobian(g, x0)  # 2 x 3
    y0 = [v.data for v in g([Value(v) for v in x0])]
    ys = [Value(v) for v in y0]
    grad_y = [d.data for d in grad(f(ys), ys)]
    expected = [sum(jac[i][k] * grad_y[i] for i in range(2)) for k in range(3)]
    xs = [Value(v) for v in x0]
    direct = [d.data for d in grad(f(g(xs)), xs)]
    assert direct == pytest.approx(expected, rel=1e-12)


def test_L15_gradient_with_respect_to_a_tensor():
    # X: a 2×3 grid of Values; Y = X Xᵀ (2×2); z = Σ tanh(Y) ⊙ A.
    # ∇_X z = Σⱼ (∇_X Yⱼ) ∂z/∂Yⱼ over the four entries j of Y.
    data = [[0.3, -0.5, 0.8], [1.1, 0.2, -0.4]]
    A = [[1.0, -2.0], [0.5, 3.0]]
    X = [[Value(v) for v in row] for row in data]
    flat_x = [v for row in X for v in row]
    Y = [
        [sum((X[i][k] * X[j][k] for k in range(3)), Value(0.0)) for j in range(2)] for i in range(2)
    ]
    flat_y = [v for row in Y for v in row]

    def f(ys):
        return sum((ys[2 * i + j].tanh() * A[i][j] for i in range(2) for j in range(2)), Value(0))

    y_leaves = [Value(y.data) for y in flat_y]
    dz_dy = [d.data for d in grad(f(y_leaves), y_leaves)]
    expected = [0.0] * 6
    for yj, dzj in zip(flat_y, dz_dy):
        for k, d in enumerate(grad(yj, flat_x)):
            expected[k] += d.data * dzj
    direct = [d.data for d in grad(f(flat_y), flat_x)]
    assert direct == pytest.approx(expected, rel=1e-12)


def test_first_order_paths_never_consult_the_rule_table(monkeypatch):
    # create_graph re-evaluates RULES[op].local on Values; backward() and first-order grad()
    # use only the floats stored when each node was made, so they pay nothing for it.
    x, w = Value(0.7), Value(-1.3)
    y = dot([x, w], [w, x.tanh()], 0.5).softplus() * x.exp() / (w * w + 1.0)
    y.backward()
    expected = [x.grad, w.grad]
    first_order = [d.data for d in grad(y, [x, w])]

    def forbidden(*args):
        raise AssertionError("the rule table was consulted")

    for name, rule in RULES.items():
        monkeypatch.setitem(RULES, name, dataclasses.replace(rule, local=forbidden))
    x.grad = w.grad = 0.0
    y.backward()
    assert [x.grad, w.grad] == expected
    assert [d.data for d in grad(y, [x, w])] == first_order == expected
    with pytest.raises(AssertionError, match="consulted"):
        grad(y, [x], create_graph=True)


# -- inputs and outputs, checked -----------------------------------------------------------


def test_grad_takes_any_iterable_of_values_and_says_so_for_one_value():
    x, y = Value(2.0), Value(3.0)
    z = x * y
    assert [d.data for d in grad(z, (v for v in (x, y)))] == [3.0, 2.0]  # a generator
    assert [d.data for d in grad(z, (x,))] == [3.0]
    with pytest.raises(TypeError, match=r"got a single Value; write grad\(output, \[x\]\)"):
        grad(z, x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be an iterable of Values, got float"):
        grad(z, 2.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("out", "match"),
    [
        (lambda v: [[v[0]]], r"output 0 of f must be a Value or a real number, got list"),
        (lambda v: None, r"must return a Value or a list of Values and numbers, got NoneType"),
        (lambda v: "ab", r"must return a Value or a list of Values and numbers, got str"),
        (lambda v: [v[0], None], r"output 1 of f must be a Value or a real number, got NoneType"),
        (lambda v: [v[0], "x"], r"output 1 .* got str"),
    ],
)
def test_jacobian_rejects_outputs_that_are_not_values_or_numbers(out, match):
    with pytest.raises(TypeError, match=match):
        jacobian(out, [1.0])


def test_changed_data_is_detected_rather_than_giving_two_answers():
    x = Value(2.0)
    y = x * x * x
    x.data = 3.0  # changed after y was recorded
    y.backward()  # the recorded numbers: 3·2² = 12
    assert x.grad == 12.0
    with pytest.raises(RuntimeError, match="the data of the graph changed after it was recorded"):
        grad(y, [x], create_graph=True)
    x.data = 2.0  # back as it was: both paths agree again
    (g,) = grad(y, [x], create_graph=True)
    assert g.data == 12.0


def test_grad_jacobian_hessian_pause_the_collector_and_restore_it():
    import gc

    seen = []

    def f(v):
        seen.append(gc.isenabled())
        return v[0] * v[1]

    assert gc.isenabled()
    hessian(f, [1.0, 2.0])
    jacobian(lambda v: [f(v)], [1.0, 2.0])
    assert seen == [False, False] and gc.isenabled()


# -- 3. one answer per question ------------------------------------------------------------------


def all_paths(f, point):
    """∂f/∂x by backward(), grad(), grad(create_graph=True), and traced code in every mode."""
    xs = [Value(v) for v in point]
    y = f(xs)
    y.backward()
    out = {"backward": [x.grad for x in xs]}
    xs2 = [Value(v) for v in point]
    out["grad"] = [d.data for d in grad(f(xs2), xs2)]
    xs3 = [Value(v) for v in point]
    out["create_graph"] = [d.data for d in grad(f(xs3), xs3, create_graph=True)]
    for mode in ("lines", "groups"):
        out[mode] = trace(f, point, mode=mode).value_and_grad(point)[1]
    batched = trace(f, point, batched=True)
    _, g = batched.value_and_grad([np.array([v]) for v in point])
    out["batched"] = [float(a[0]) for a in g]
    return out


CHAIN_CASES = {
    # relu below its kink under an infinite upstream gradient: 0 · ∞ = NaN, on every path
    "relu(x)·inf": (lambda v: v[0].relu() * v[1], [-1.0, math.inf]),
    "sqrt(relu(x)) below the kink": (lambda v: v[0].relu().sqrt(), [-1.0]),
    "sqrt(relu(x)) at the kink": (lambda v: v[0].relu().sqrt(), [0.0]),
    "abs at 0 under inf": (lambda v: abs(v[0]).sqrt(), [0.0]),
    "0·x under inf": (lambda v: (v[0] * 0.0).sqrt(), [2.0]),
    "x**0 under inf": (lambda v: (v[0] ** 0.0 - 1.0).sqrt(), [3.0]),
    "signed zeros": (lambda v: v[0] * -0.0 + v[1] * v[0] * 0.0, [1.0, -2.0]),
    "two −0.0 terms": (lambda v: v[0] * -0.0 + v[0] * -0.0, [5.0]),
    "dot with −0.0": (lambda v: dot([v[0], v[1]], [-0.0, -0.0], -0.0), [1.0, 2.0]),
}


@pytest.mark.parametrize("case", list(CHAIN_CASES))
def test_every_path_gives_one_answer_bit_for_bit(case):
    f, point = CHAIN_CASES[case]
    answers = all_paths(f, point)
    expected = bits(answers["backward"])
    for path, got in answers.items():
        assert bits(got) == expected, (path, got, answers["backward"])
    if "under inf" in case or case.startswith("relu") or "below" in case:
        assert math.isnan(answers["backward"][0])  # the documented policy: 0 · ∞ is NaN


@pytest.mark.parametrize(
    ("f", "point"),
    [
        (lambda v: v[0] ** v[1], [-2.0, 2.0]),
        (lambda v: v[0] ** v[1], [-2.0, 3.0]),
        (lambda v: v[1] * v[0] ** v[1], [-1.5, 2.0]),
        (lambda v: (v[0] ** v[1]).exp() * v[2], [-1.0, 4.0, 0.5]),
        (lambda v: v[0] ** v[1] + v[1] ** v[0], [-2.0, -3.0]),
        (lambda v: v[0] ** v[1], [0.0, 2.0]),
        (lambda v: v[0] ** v[1], [3.0, 0.0]),
        (lambda v: v[0].relu() * v[1], [0.0, 2.0]),
        (lambda v: abs(v[0]) * v[1] ** 2, [0.0, -0.0]),
    ],
)
def test_hessians_are_symmetric_wherever_they_are_numbers(f, point):
    H = hessian(f, point)
    n = len(point)
    for i in range(n):
        for j in range(n):
            assert bits([H[i][j]]) == bits([H[j][i]]) or (
                math.isnan(H[i][j]) and math.isnan(H[j][i])
            ), (i, j, H)


# -- higher derivatives at special points ---------------------------------------------------


def test_hessian_of_a_square_at_zero_is_two():
    assert hessian(lambda v: v[0] ** 2, [0.0]) == [[2.0]]  # was [[0.0]]


def test_hessian_of_mse_with_a_zero_residual_is_the_identity():
    # mse of two predictions = ((p0 − 1)² + (p1 − 2)²) / 2: Hessian I, whatever the residual
    assert hessian(lambda v: losses.mse(v, [1.0, 2.0]), [1.0, 0.5]) == [[1.0, 0.0], [0.0, 1.0]]


def test_third_derivative_of_a_cube_at_zero_is_six():
    x = Value(0.0)
    (d1,) = grad(x**3, [x], create_graph=True)
    (d2,) = grad(d1, [x], create_graph=True)
    (d3,) = grad(d2, [x])
    assert (d1.data, d2.data, d3.data) == (0.0, 0.0, 6.0)


def test_the_derivative_of_a_square_keeps_its_precision_near_underflow():
    x = Value(1e-200)
    (x**2).backward()  # x² underflows to 0; 2x does not
    assert x.grad == 2e-200  # was 0.0 (computed as 2·x²/x)
    y = Value(1e-200)
    (y * y).backward()
    assert x.grad == y.grad


def test_relu_of_nan_is_nan_with_a_nan_derivative():
    x = Value(math.nan)
    y = x.relu()
    y.backward()
    assert math.isnan(y.data) and math.isnan(x.grad)


# -- float sums on every Python ------------------------------------------------------------------


def test_a_dot_rounds_as_the_chain_it_replaces_every_way():
    ws, xs = [1e16, 1.0, -1e16], [1.0, 1.0, 1.0]
    eager = dot(ws, xs).data
    chain = Value(0.0)
    for w, x in zip(ws, xs):
        chain = chain + Value(w) * x
    lines = trace(lambda v: dot(v, xs), ws, mode="lines")(ws)
    groups = trace(lambda v: dot(v, xs), ws, mode="groups")(ws)
    assert eager == chain.data == lines == groups == 0.0  # 1e16 + 1 rounds to 1e16, on 3.12 too


# -- tied weights ----------------------------------------------------------------------------------


class Tied(Module):
    """Two layers sharing one weight Value."""

    def __init__(self):
        self.l1 = Layer(2, 2, "tanh", seed=1)
        self.l2 = Layer(2, 1, "linear", seed=2)
        self.l2.neurons[0].w[0] = self.l1.neurons[0].w[1]  # tied

    def forward(self, x):
        return self.l2(self.l1(x))[0]


def test_tied_weights_get_the_sum_over_their_uses_every_way():
    xs, ys = [[0.5, -1.0], [1.5, 0.25], [-0.5, 0.75]], [1.0, -1.0, 0.5]
    models = [Tied() for _ in range(3)]
    shared = models[0].l1.neurons[0].w[1]
    params = models[0].parameters()
    assert len(params) == 8 and sum(p is shared for p in params) == 1  # listed once
    # eager
    loss = losses.mse([models[0](x) for x in xs], ys)
    models[0].zero_grad()
    loss.backward()
    eager = [p.grad for p in models[0].parameters()]
    # compiled full batch
    m1 = models[1]
    step = compile_step(m1, lambda: losses.mse([m1(x) for x in xs], ys), SGD(m1.parameters(), 1e-9))
    step()
    assert [p.grad for p in m1.parameters()] == pytest.approx(eager, rel=1e-12)
    # batched, mean over the samples
    m2 = models[2]
    batch = compile_batch_step(
        m2, lambda x, y: (m2(x) - y) ** 2, xs, ys, SGD(m2.parameters(), 1e-9)
    )
    batch()
    assert [p.grad for p in m2.parameters()] == pytest.approx(eager, rel=1e-12)
    assert models[0].l2.neurons[0].w[0] is models[0].l1.neurons[0].w[1]  # still tied


def test_gradcheck_checks_a_function_that_takes_a_gradient_inside(restore_rules):
    """Its finite differences run the function as it runs for real (recording), so the
    derivative of each built-in passes, and a user op whose second derivative is wrong
    fails -- under no_grad the inner gradient was 0 and the verdict wrong both ways."""

    def derivative(g):
        return lambda v: grad(g(v[0]), [v[0]], create_graph=True)[0]

    for name, r in RECORDS.items():
        x = max(r.points, key=abs) if name != "log" else 0.5  # away from kinks, in domain
        assert gradcheck(derivative(r.special), [x]), name
    assert gradcheck(derivative(lambda v: v.tanh()), [0.3])

    good_cos = op(Rule("good_cos", "cos", math.cos, lambda a, out: (-good_sin(a),)))
    good_sin = op(Rule("good_sin", "sin", math.sin, lambda a, out: (good_cos(a),)))
    bad_cos = op(Rule("bad_cos", "cos", math.cos, lambda a, out: (good_sin(a),)))  # sign
    bad_sin = op(Rule("bad_sin", "sin", math.sin, lambda a, out: (bad_cos(a),)))
    assert gradcheck(lambda v: bad_sin(v[0]), [0.3])  # the first derivative is right
    assert gradcheck(derivative(good_sin), [0.3])
    with pytest.raises(GradcheckError):
        gradcheck(derivative(bad_sin), [0.3])  # its second is not
