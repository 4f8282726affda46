"""trace: compiled forward/backward equal the eager engine, at the traced point and elsewhere."""

from __future__ import annotations

import gc
import math
import random
import re
import struct
import sys
import warnings

import oracle
import pytest
from graphs import POW_OPS, Graph, graphs
from hypothesis import assume, given
from hypothesis import strategies as st

from autodiff import (
    TraceError,
    TraceWarning,
    Value,
    dot,
    grad,
    no_grad,
    trace,
)
from nn import lecture, losses
from nn.data import moons, xor
from nn.module import MLP
from nn.optim import SGD, Adam
from nn.train import compile_batch_step, compile_step, train_xor

# The generated code performs the engine's own float operations in the engine's
# order, so results agree to the last bit in practice; 1e-12 is the stated bound.
CLOSE = {"rel": 1e-12, "abs": 1e-12}


def eager(f, point):
    xs = [Value(x) for x in point]
    y = f(xs)
    y.backward()
    return y.data, [x.grad for x in xs]


def assert_matches(traced, f, point):
    value, grads = traced.value_and_grad(point)
    e_value, e_grads = eager(f, point)
    assert value == pytest.approx(e_value, **CLOSE)
    assert traced(point) == pytest.approx(e_value, **CLOSE)
    assert grads == pytest.approx(e_grads, **CLOSE)


def lecture_loss(y):
    def f(v):
        W = [[v[0], v[1]], [v[2], v[3]]]
        return lecture.forward([v[9], v[10]], y, W, v[4:6], v[6:8], v[8]).L

    return f


@pytest.mark.parametrize("y", [0, 1])
def test_lecture_network_at_the_traced_point_and_others(y):
    rng = random.Random(y)
    start = [1.0, 1.0, 1.0, 1.0, 0.0, -1.0, 1.0, -2.0, 0.0, 1.0, 0.0]  # the slide's net, x=(1,0)
    traced = trace(lecture_loss(y), start)
    assert_matches(traced, lecture_loss(y), start)
    for _ in range(20):  # relu's branches change with the point: decided at run time
        point = [rng.uniform(-2, 2) for _ in range(11)]
        assert_matches(traced, lecture_loss(y), point)


@given(graphs(), st.lists(st.floats(-0.3, 0.3), min_size=3, max_size=3))
def test_random_graphs_at_the_traced_point_and_a_shifted_one(g: Graph, shift):
    other = tuple(x + d for x, d in zip(g.point, shift))
    try:
        eager(g, other)
    except (OverflowError, ValueError, ZeroDivisionError):
        assume(False)
    for mode in ("lines", "groups"):
        traced = trace(g, g.point, mode=mode)
        assert_same(traced, g, g.point)
        assert_same(traced, g, other)


def bits(xs):
    """Floats as their bits: −0.0 is not 0.0 here, and NaN equals NaN."""
    return [struct.pack("<d", x) for x in xs]


def assert_same(traced, f, point):
    """The engine's numbers to the bit (the same float operations in the same order),
    signed zeros included."""
    value, grads = traced.value_and_grad(point)
    e_value, e_grads = eager(f, point)
    assert bits([value, *grads]) == bits([e_value, *e_grads])
    assert bits([traced(point)]) == bits([e_value])


def test_moons_loss_as_a_function_of_the_parameters():
    xs, ys = moons(40, noise=0.1, seed=2)
    model = MLP(2, [8, 8, 1], seed=0)
    params = model.parameters()

    def loss_of(ps):
        with model.bound(ps):
            return losses.hinge([model(x) for x in xs], [2 * y - 1 for y in ys])

    start = [p.data for p in params]
    traced = trace(loss_of, start)
    assert_matches(traced, loss_of, start)
    moved = [p + random.Random(1).uniform(-0.1, 0.1) for p in start]
    assert_matches(traced, loss_of, moved)
    assert [p.data for p in params] == start  # bound() put the model's own Values back


def test_compiled_training_gives_the_same_numbers_as_eager_training():
    xs, ys = xor()
    a = train_xor(xs, ys, seed=5, steps=60)
    b = train_xor(xs, ys, seed=5, steps=60, compile=True)
    assert b.losses == pytest.approx(a.losses, **CLOSE)
    pa = [p.data for p in a.model.parameters()]
    pb = [p.data for p in b.model.parameters()]
    assert pb == pytest.approx(pa, **CLOSE)


def test_compile_step_with_sgd_on_moons():
    xs, ys = moons(30, seed=1)
    model = MLP(2, [4, 1], seed=0)
    opt = SGD(model.parameters(), lr=0.1)
    step = compile_step(model, lambda: losses.logistic([model(x) for x in xs], ys), opt)
    first = step()
    for _ in range(20):
        last = step()
    assert last < first
    assert "def value_and_grad" in step.traced.source


def test_the_generated_code_is_readable_and_shows_the_backward_pass():
    traced = trace(lambda v: (v[0] * v[1]).tanh(), [0.5, -1.0])
    src = str(traced)
    assert src == traced.source
    assert "def forward(x0, x1):" in src and "def value_and_grad(x0, x1):" in src
    assert "v0 = x0 * x1" in src
    assert "1.0 - v1 * v1" in src  # tanh's local derivative, from the rule table, inline
    assert repr(traced) == "<Traced: 2 inputs, 2 operations, lines>"


def test_unused_inputs_get_zero_and_numbers_are_constants():
    traced = trace(lambda v: v[0] * 3.0 + Value(1.0), [2.0, 5.0])
    assert traced.value_and_grad([2.0, 5.0]) == (7.0, [3.0, 0.0])


def test_values_captured_from_outside_are_refused_by_name_or_baked_in_on_request():
    w = Value(3.0, "w")  # not an input: its number would be frozen at 3.0
    ps = [Value(0.5), w]
    with pytest.raises(TraceError, match=r"2 Value\(s\) that existed before .*'w' \(data 3\.0\)"):
        trace(lambda v: v[0] * w + dot(ps, ps), [2.0])
    with pytest.warns(TraceWarning, match="existed before the trace"):
        traced = trace(lambda v: v[0] * w + 1.0, [2.0, 5.0], strict=False)
    w.data = 100.0
    assert traced([2.0, 0.0]) == 7.0  # baked in, as asked
    # reading such a number for a decision is fine: it does not depend on the inputs
    trace(lambda v: v[0] * (2.0 if w.data > 0 else 3.0), [1.0])


@pytest.mark.parametrize("mode", ["lines", "groups"])
def test_domain_errors_at_new_points_are_the_rules_own(mode):
    traced = trace(
        lambda v: v[0].log() + 1.0 / v[1] + v[0].exp() + v[0] * v[1], [1.0, 2.0], mode=mode
    )
    assert traced([math.e, 1.0]) == pytest.approx(2.0 + math.exp(math.e) + math.e)
    with pytest.raises(ValueError, match=r"log\(-1\.0\)"):
        traced([-1.0, 2.0])
    with pytest.raises(ZeroDivisionError, match=r"division by zero: 1\.0 / 0\.0"):
        traced.value_and_grad([1.0, 0.0])
    with pytest.raises(OverflowError, match=r"exp\(1000\.0\)"):
        traced([1000.0, 1.0])
    value, grads = traced.value_and_grad([math.nan, 2.0])  # nan goes through, as in eager
    assert math.isnan(value) and math.isnan(grads[0])


def test_bad_calls():
    traced = trace(lambda v: v[0] * v[1], [1.0, 2.0])
    with pytest.raises(ValueError, match="expected 2 inputs, got 3"):
        traced([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"Traced: xs\[1\].*str 'a'"):
        traced([1.0, "a"])
    assert traced([2, 3]) == 6.0  # ints are real numbers
    with pytest.raises(TypeError, match="f must return a Value"):
        trace(lambda v: 1.0, [1.0])
    with pytest.raises(TypeError, match=r"example_inputs\[0\]"):
        trace(lambda v: v[0], [None])


DECISIONS = {
    ".data": lambda v: v[0] * 2 if v[0].data > 0 else v[0] * -3,
    "float()": lambda v: v[0] * float(v[0] * v[1]),
    "bool()": lambda v: v[0] if v[0] - v[1] else v[1],
    "format()": lambda v: v[0] * len(f"{v[0]:.3f}"),
    "local_grads": lambda v: v[0] * (v[0] * v[1]).local_grads[0],
    "backward()": lambda v: (v[0] * v[1]).backward() or v[0],
    "a branch": lambda v: grad((v[0] * v[1]).relu(), [v[0]], create_graph=True)[0],
    "first-order grad": lambda v: v[1] * grad(v[0] * v[0], [v[0]])[0],
}


@pytest.mark.parametrize("what", DECISIONS)
def test_a_decision_on_the_inputs_numbers_is_refused_or_warned(what):
    f = DECISIONS[what]
    with pytest.raises(TraceError, match="computed from the inputs"):
        trace(f, [1.0, 2.0])
    with pytest.warns(TraceWarning, match="computed from the inputs"):
        trace(f, [1.0, 2.0], strict=False)


def test_a_refusal_caught_inside_f_is_still_a_refusal():
    def f(v):
        try:
            return v[0] * float(v[0])
        except Exception:
            return v[0]

    with pytest.raises(TraceError):
        trace(f, [1.0])


def test_what_a_trace_replays_is_fine():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trace(lambda v: (v[0] * v[1]).relu(), [1.0, 2.0])  # relu branches inside the rule
        outside = Value(5.0)
        trace(lambda v: v[0] * outside.data, [1.0])  # a number that is not the inputs'
        cube = lambda v: grad(v[0] * v[0] * v[0] * v[1], [v[0]], create_graph=True)[0]  # noqa: E731
        traced = trace(cube, [2.0, 3.0])
    assert traced.value_and_grad([1.0, 2.0]) == (6.0, [12.0, 3.0])
    # pow's derivative branches on the base (0, negative, positive): refused under a trace
    with pytest.raises(TraceError, match=r"a branch on its value \(pow's derivative"):
        trace(lambda v: grad(v[0] ** 3, [v[0]], create_graph=True)[0], [2.0])


def test_trace_inside_no_grad_and_with_dot():
    with no_grad():
        traced = trace(lambda v: dot(v[:2], v[2:], 0.5).sigmoid(), [1.0, 2.0, 3.0, -1.0])
    assert_matches(traced, lambda v: dot(v[:2], v[2:], 0.5).sigmoid(), [0.3, -0.2, 1.0, 2.0])


def test_adam_training_through_a_trace_matches_eager_adam():
    xs, ys = moons(20, seed=3)
    models = [MLP(2, [4, 1], activation="tanh", seed=9) for _ in range(2)]
    opts = [Adam(m.parameters(), lr=0.02) for m in models]
    step = compile_step(models[1], lambda: losses.mse([models[1](x) for x in xs], ys), opts[1])
    for _ in range(10):
        loss = losses.mse([models[0](x) for x in xs], ys)
        opts[0].zero_grad()
        loss.backward()
        opts[0].step()
        assert step() == pytest.approx(loss.data, **CLOSE)


def test_names_make_the_code_readable_and_are_checked():
    traced = trace(lambda v: v[0] * v[1], [2.0, 3.0], names=["w", "x"])
    assert "def value_and_grad(w, x):" in traced.source
    assert traced.value_and_grad([2.0, 3.0]) == (6.0, [3.0, 2.0])
    for bad, why in [
        (["w"], "2 example inputs but 1 names"),
        (["w", "w"], "distinct"),
        (["w", "1x"], "identifiers"),
        (["w", "lambda"], "identifiers"),
        (["w", "v0"], "used by the generated code"),
        (["w", "float"], "used by the generated code"),
        (["w", "_exp"], "used by the generated code"),
        (["w", "ｖ0"], "used by the generated code"),  # NFKC: Python reads it as v0
        (["x", "ｘ"], "distinct"),
        (["w", "g_root"], "used by the generated code"),
    ]:
        with pytest.raises(ValueError, match=why):
            trace(lambda v: v[0] * v[1], [2.0, 3.0], names=bad)


# -- batched: one sample's trace replayed over a batch with numpy ---------------------------

np = pytest.importorskip("numpy")


def test_batched_lecture_loss_equals_eager_per_sample():
    rng = random.Random(7)
    traced = trace(lecture_loss(1), [1.0] * 11, batched=True)
    params = [rng.uniform(-2, 2) for _ in range(9)]
    batch = [[rng.uniform(-2, 2) for _ in range(12)] for _ in range(2)]  # x₁, x₂ per sample
    values, grads = traced.value_and_grad(params + batch)
    assert values.shape == (12,) and all(g.shape == (12,) for g in grads)
    for k in range(12):
        value, eager_grads = eager(lecture_loss(1), [*params, batch[0][k], batch[1][k]])
        assert values[k] == pytest.approx(value, **CLOSE)
        assert [g[k] for g in grads] == pytest.approx(eager_grads, **CLOSE)
    assert traced(params + batch) == pytest.approx(values, **CLOSE)


@given(graphs(exclude=POW_OPS), st.lists(st.floats(-0.3, 0.3), min_size=4, max_size=4))
def test_batched_random_graphs_equal_eager_per_sample(g: Graph, shifts):
    traced = trace(g, g.point, batched=True)
    points = [tuple(x + d for x in g.point) for d in shifts]
    try:
        expected = [eager(g, p) for p in points]
    except (OverflowError, ValueError, ZeroDivisionError):
        assume(False)
    columns = [[p[i] for p in points] for i in range(len(g.point))]
    values, grads = traced.value_and_grad(columns)
    for k, (value, e_grads) in enumerate(expected):
        assert values[k] == pytest.approx(value, **CLOSE)
        assert [gr[k] for gr in grads] == pytest.approx(e_grads, **CLOSE)


def test_batched_training_step_equals_the_full_batch_step():
    xs, ys = moons(40, seed=4)
    labels = [2 * y - 1 for y in ys]
    m1, m2 = MLP(2, [8, 1], seed=2), MLP(2, [8, 1], seed=2)
    o1, o2 = SGD(m1.parameters(), lr=0.1), SGD(m2.parameters(), lr=0.1)
    full = compile_step(m1, lambda: losses.hinge([m1(x) for x in xs], labels), o1)
    batch = compile_batch_step(m2, lambda x, y: (1 - y * m2(x)).relu(), xs, labels, o2)
    for _ in range(5):
        assert batch() == pytest.approx(full(), **CLOSE)
    p1, p2 = [p.data for p in m1.parameters()], [p.data for p in m2.parameters()]
    assert p2 == pytest.approx(p1, **CLOSE)
    assert "_f_relu(" in batch.traced.source


def test_compiled_code_holds_no_reference_cycles():
    """Every kind of generated code, and the nn steps built on it, is freed by reference
    counting alone: a compiled function kept in the dict that is its own globals would be a
    cycle holding the whole tape until the collector ran."""
    xs, ys = moons(8, seed=4)
    labels = [2 * y - 1 for y in ys]

    def work() -> None:
        f = lambda v: (v[0] * v[1]).tanh() + dot(v, v)  # noqa: E731
        for traced in (trace(f, [0.3, 0.7], mode="lines"), trace(f, [0.3, 0.7], mode="groups")):
            traced([0.3, 0.7])
            traced.value_and_grad([0.3, 0.7])
        batched = trace(f, [0.3, 0.7], batched=True)
        batched.value_and_grad([np.array([0.3, 0.1]), np.array([0.7, 0.2])])
        batched.mean_value_and_grad([np.array([0.3, 0.1]), np.array([0.7, 0.2])])
        assert batched.source
        model = MLP(2, [4, 1], seed=2)
        opt = SGD(model.parameters(), lr=0.1)
        compile_step(model, lambda: losses.hinge([model(x) for x in xs], labels), opt)()
        compile_batch_step(model, lambda x, y: (1 - y * model(x)).relu(), xs, labels, opt)()

    work()  # the first time imports modules, which may leave garbage of their own
    gc.collect()
    gc.disable()
    try:
        work()
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_batched_errors():
    traced = trace(lambda v: v[0].log() * v[1], [1.0, 2.0], batched=True)
    assert repr(traced) == "<BatchedTraced: 2 inputs, 2 operations>"
    with pytest.raises(ValueError, match="no input is an array"):
        traced([1.0, 2.0])
    with pytest.raises(ValueError, match=r"xs\[1\] must be a number or a 1-D array .*\(2\)"):
        traced([[1.0, 2.0], [1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"log\(-1\.0\)"):  # the engine's own error
        traced([[1.0, -1.0], 2.0])  # log of a negative sample
    powered = trace(lambda v: v[0] ** v[1], [2.0, 3.0], batched=True)
    values, grads = powered.value_and_grad([[2.0, 0.0], 3.0])
    assert values.tolist() == [8.0, 0.0] and grads[0].tolist() == [12.0, 0.0]


def test_numbers_of_any_real_type_give_double_precision_floats():
    traced = trace(lambda v: v[0] / v[1] + v[0] * v[1], [1.0, 3.0])
    value, grads = traced.value_and_grad([np.float32(1.0), np.int64(3)])
    assert type(value) is float and value == 1.0 / 3.0 + 3.0
    assert all(type(g) is float for g in grads)
    assert traced([np.float32(0.1), 3]) == float(np.float32(0.1)) / 3 + float(np.float32(0.1)) * 3


@pytest.mark.parametrize(("mode", "samples"), [("lines", 10**4), ("groups", 10**5)])
def test_wide_graphs_compile_and_run(mode, samples):
    n = 10**5
    xs = [float(i % 13) for i in range(n)]
    traced = trace(lambda v: dot(v, xs, 1.0), [0.5] * n, mode=mode)
    value, grads = traced.value_and_grad([1.0] * n)
    assert value == 1.0 + sum(xs) and grads == xs
    # a mean loss over many samples, as nn.losses builds it (3 operations a sample; in
    # straight-line code 10⁴ samples make the point, 10⁵ only take Python's compiler longer)
    xs = xs[:samples]
    traced = trace(lambda v: losses.mse([v[0] * x for x in xs], xs), [0.5], mode=mode)
    eager_value, eager_grads = eager(lambda v: losses.mse([v[0] * x for x in xs], xs), [0.75])
    assert traced.value_and_grad([0.75]) == (eager_value, eager_grads)


def test_a_raised_recursion_limit_is_harmless():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(10**6)  # as micrograd users often do
    try:
        n = 20000
        traced = trace(lambda v: dot(v, [1.0] * n), [1.0] * n, mode="lines")
        assert traced([2.0] * n) == 2.0 * n
    finally:
        sys.setrecursionlimit(old)


def test_large_graphs_get_grouped_code_with_the_engines_numbers():
    xs, ys = moons(100, seed=5)
    model = MLP(2, [8, 8, 1], seed=3)
    params = model.parameters()

    def loss_of(ps):
        with model.bound(ps):
            return losses.logistic([model(x) for x in xs], ys)

    start = [p.data for p in params]
    traced = trace(loss_of, start)
    assert traced.mode == "groups" and traced.n_nodes > 2000
    assert "_fold(" in traced.source and traced.source.count("\n") < 200
    assert_same(traced, loss_of, start)
    assert_same(traced, loss_of, [p + 0.01 for p in start])


def test_grouped_code_raises_the_engines_overflow_of_a_product():
    product = trace(lambda v: v[0] * v[1] + 1.0, [1.0, 2.0], mode="groups")
    with pytest.raises(OverflowError, match=r"mul: 1e\+200 \* 1e\+200 overflows"):
        product([1e200, 1e200])


def test_the_batched_mean_finds_the_layers_and_equals_eager():
    xs, ys = moons(50, seed=6)
    labels = [2 * y - 1 for y in ys]
    model = MLP(2, [8, 8, 1], seed=4)
    params = model.parameters()
    n = len(params)

    def sample(v):
        with model.bound(v[:n]):
            ps = v[:n]
            return (1 - v[n + 2] * model(v[n : n + 2])).relu() + 1e-4 * dot(ps, ps)

    traced = trace(sample, [p.data for p in params] + [0.1, 0.2, 1.0], batched=True)
    columns = [[x[0] for x in xs], [x[1] for x in xs], labels]
    args = [p.data for p in params] + columns
    source = traced.mean_source(args)
    # one product per layer: u = a @ W, or for the first, over the data, u = [X 1] @ Bᵀ
    assert re.findall(r"= a\d+ @ (W\d+|_T\(B\d+\)) ", source) == ["_T(B0)", "W2", "W4"]
    mean, grads = traced.mean_value_and_grad(args)
    # eager: the mean loss over the batch
    ps = [Value(p.data) for p in params]
    with model.bound(ps):
        terms = [(1 - y * model(x)).relu() for x, y in zip(xs, labels)]
    total = dot([1.0 / len(xs)] * len(xs), terms) + 1e-4 * dot(ps, ps)
    total.backward()
    assert mean == pytest.approx(total.data, rel=1e-12)
    assert grads[:n] == pytest.approx([p.grad for p in ps], rel=1e-12, abs=1e-15)


def test_batched_nan_samples_are_exact():
    traced = trace(lambda v: (v[0] * v[1]).relu() + v[0], [1.0, 2.0], batched=True)
    values, grads = traced.value_and_grad([[1.0, math.nan, -1.0], 2.0])
    assert values[0] == 3.0 and math.isnan(values[1]) and values[2] == -1.0
    assert math.isnan(grads[0][1]) and grads[0][0] == 3.0  # relu'(nan) is nan, as in eager


def test_batched_on_pytorch_tensors_when_installed():
    torch = oracle.torch()
    traced = trace(lambda v: (v[0] * v[1]).tanh() + v[0].sigmoid(), [0.5, 2.0], batched=True)
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    values, grads = traced.value_and_grad([x, 2.0])
    assert isinstance(values, torch.Tensor)
    for k in range(3):
        value, eg = eager(lambda v: (v[0] * v[1]).tanh() + v[0].sigmoid(), [x[k].item(), 2.0])
        assert values[k].item() == pytest.approx(value, **CLOSE)
        assert [grads[0][k].item(), grads[1][k].item()] == pytest.approx(eg, **CLOSE)
    mean, mgrads = traced.mean_value_and_grad([x, 2.0])
    assert mean == pytest.approx(float(values.mean()), **CLOSE)
    assert mgrads[1] == pytest.approx(float(grads[1].mean()), **CLOSE)


def test_auto_mode_groups_wide_graphs_and_keeps_deep_chains_straight():
    def chain(v):
        y = v[0]
        for i in range(3000):
            y = (y * 1.0001).tanh() if i % 2 else y + v[1]
        return y

    deep = trace(chain, [0.5, 0.1])
    assert deep.mode == "lines" and deep.n_nodes > 2000  # one node a depth: no groups
    assert_same(deep, chain, [0.25, 0.2])


def test_traced_code_names_its_inputs_when_they_do_not_fit():
    traced = trace(lambda v: v[0] * v[1], [1.0, 2.0])
    with pytest.raises(OverflowError, match=r"1000.*too large for a float"):
        traced.value_and_grad([10**400, 1.0])
    batched = trace(lambda v: v[0] * v[1], [1.0, 2.0], batched=True)
    with pytest.raises(OverflowError, match=r"xs\[1\]: 1000.*too large"):
        batched.mean_value_and_grad([np.ones(3), 10**400])


# -- 4. empty input ---------------------------------------------------------------------------


def test_every_batched_entry_point_says_the_batch_is_empty():
    batched = trace(lambda v: v[0] * v[1] + v[2], [1.0, 2.0, 3.0], batched=True)
    empty = [np.array([]), 2.0, np.zeros(0)]
    for call in (batched, batched.value_and_grad, batched.mean_value_and_grad):
        with pytest.raises(ValueError, match="the batch is empty"):
            call(empty)
    from nn.train import compile_batch_step

    model = MLP(2, [2, 1], seed=0)
    with pytest.raises(ValueError, match="the batch is empty"):
        compile_batch_step(
            model, lambda x, y: (model(x) - y) ** 2, [], [], SGD(model.parameters(), 0.1)
        )


# -- trace -------------------------------------------------------------------------------------


def test_trace_refuses_a_branch_on_the_inputs():
    def f(v):
        return v[0] if (v[0] - v[1]).data > 0 else v[1]  # was frozen: 1.0 at (1, 2)

    with pytest.raises(TraceError, match=r"used \.data of a Value computed from the inputs"):
        trace(f, [2.0, 1.0])


def test_trace_refuses_no_grad_around_a_value_of_the_inputs():
    def f(v):
        with no_grad():
            scale = v[0] * 2.0  # frozen at the traced point
        return v[1] * scale

    with pytest.raises(TraceError, match=r"inside no_grad\(\)"):
        trace(f, [1.0, 3.0])


def test_trace_ignores_labels_even_when_f_relabels_its_inputs():
    def f(v):
        v[0].label = "v0"  # once a name of the generated code
        v[1].label = "x₁"
        return v[0] * v[1] + v[1]

    for mode in ("lines", "groups"):
        traced = trace(f, [2.0, 3.0], mode=mode)
        assert traced.value_and_grad([5.0, 7.0]) == (42.0, [7.0, 6.0])
