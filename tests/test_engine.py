"""The engine: values, closed-form derivatives, stability, errors, backward semantics, depth."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest
from ops import RECORDS, sig

from autodiff import (
    Value,
    dot,
    enable_grad,
    is_grad_enabled,
    logsumexp,
    no_grad,
    pick,
)
from autodiff.rules import RULES

# Closed-form derivatives are computed from the same floats by a different formula,
# so they agree to a few ulps; 1e-12 relative leaves room for that and nothing else.
REL = 1e-12


def d(fn, x: float) -> tuple[float, float]:
    """(value, derivative) of the unary function `fn` at x, by the engine."""
    v = Value(x)
    y = fn(v)
    y.backward()
    return y.data, v.grad


def _closed(record, k):
    """The k-th closed form (0: the value, 1: the derivative) of a record, on floats."""
    return lambda x: float(record.closed(np.float64(x))[k])


# (name, engine function, closed-form value, closed-form derivative, points): each rule's
# record (tests/ops.py), then further ways of calling the operators
UNARY = [(n, r.special, _closed(r, 0), _closed(r, 1), list(r.points)) for n, r in RECORDS.items()]
UNARY += [
    ("square", lambda v: v**2, lambda x: x * x, lambda x: 2 * x, [-3.0, 0.0, 1.5]),
    ("recip", lambda v: v**-1, lambda x: 1 / x, lambda x: -1 / x**2, [-2.0, 0.5, 4.0]),
    ("rpow", lambda v: 2**v, lambda x: 2**x, lambda x: 2**x * math.log(2), [-1.0, 0.0, 3.0]),
    ("rsub", lambda v: 3 - v, lambda x: 3 - x, lambda x: -1.0, [-2.0, 0.5]),
    ("radd", lambda v: 3 + v, lambda x: 3 + x, lambda x: 1.0, [-2.0, 0.5]),
    ("rmul", lambda v: 3 * v, lambda x: 3 * x, lambda x: 3.0, [-2.0, 0.5]),
    ("pow_half", lambda v: v**0.5, math.sqrt, lambda x: 0.5 / math.sqrt(x), [0.25, 2.0, 9.0]),
    ("sqrt_tiny", lambda v: v.sqrt(), math.sqrt, lambda x: 0.5 / math.sqrt(x), [1e-300]),
    ("sigmoid_big", lambda v: v.sigmoid(), sig, lambda x: sig(x) * (1 - sig(x)), [-700.0, 40.0]),
]


@pytest.mark.parametrize(
    ("fn", "f", "df", "x"),
    [pytest.param(fn, f, df, x, id=f"{name}({x})") for name, fn, f, df, pts in UNARY for x in pts],
)
def test_unary_value_and_derivative_match_closed_form(fn, f, df, x):
    value, deriv = d(fn, x)
    assert value == pytest.approx(f(x), rel=REL, abs=1e-300)
    assert deriv == pytest.approx(df(x), rel=REL, abs=1e-300)


@pytest.mark.parametrize(
    ("op", "f", "da", "db"),
    [
        ("+", lambda a, b: a + b, lambda a, b: 1.0, lambda a, b: 1.0),
        ("-", lambda a, b: a - b, lambda a, b: 1.0, lambda a, b: -1.0),
        ("*", lambda a, b: a * b, lambda a, b: b, lambda a, b: a),
        ("/", lambda a, b: a / b, lambda a, b: 1 / b, lambda a, b: -a / b**2),
        ("**", lambda a, b: a**b, lambda a, b: b * a ** (b - 1), lambda a, b: a**b * math.log(a)),
    ],
)
@pytest.mark.parametrize(("a", "b"), [(1.5, 2.0), (0.3, -1.25), (4.0, 0.5)])
def test_binary_value_and_derivatives_match_closed_form(op, f, da, db, a, b):
    x, y = Value(a), Value(b)
    z = f(x, y)
    z.backward()
    assert z.data == pytest.approx(f(a, b), rel=REL)
    assert x.grad == pytest.approx(da(a, b), rel=REL)
    assert y.grad == pytest.approx(db(a, b), rel=REL)
    assert z.parents == (x, y)


def test_every_rule_has_one_record():
    """A new built-in is one Rule, one typing line and one record (tests/ops.py): this
    fails until the record is written, and the record drives the closed-form, special-value,
    every-copy, gradcheck and random-graph tests."""
    assert set(RECORDS) == set(RULES)

    def ops_in(v: Value) -> set[str]:
        return {v.op, *(p.op for p in v.parents)}

    for name, r in RECORDS.items():  # each record's forms make a node of its rule
        assert name in ops_in(r.special(Value(0.5)))
        assert name in ops_in(r.use([Value(0.5), Value(1.5)][: r.n]))


def test_logsumexp_is_stable_and_its_gradient_is_the_softmax():
    zs = [Value(1.0), Value(2.0), Value(-3.0)]
    y = logsumexp(zs)
    y.backward()
    total = sum(math.exp(z.data) for z in zs)
    assert y.data == pytest.approx(math.log(total), rel=1e-15)
    assert [z.grad for z in zs] == pytest.approx([math.exp(z.data) / total for z in zs], rel=1e-15)
    # shifted by the largest: every finite score, 1e300 included, is fine
    big = [Value(1e300), Value(-1e300), Value(1e300)]
    y = logsumexp(big)
    y.backward()
    assert y.data == 1e300 and [v.grad for v in big] == [0.5, 0.0, 0.5]
    assert logsumexp([-math.inf, -math.inf]).data == -math.inf
    assert math.isnan(logsumexp([1.0, math.nan]).data)
    with pytest.raises(ValueError, match="logsumexp: no scores"):
        logsumexp([])


def test_pick_chooses_a_score_inside_the_graph_and_checks_the_label():
    zs = [Value(1.0), Value(2.0), Value(3.0)]
    label = Value(2.0)
    y = pick(zs, label)
    y.backward()
    assert y.data == 3.0 and [z.grad for z in zs] == [0.0, 0.0, 1.0] and label.grad == 0.0
    for bad in (3, -1, 1.5, math.nan):
        with pytest.raises(ValueError, match=r"pick: the label .* is not a class index"):
            pick(zs, bad)
    with pytest.raises(TypeError, match=r"pick \(pick\): expected a Value or a real number"):
        pick(zs, "1")


def test_dot_value_and_derivatives_match_closed_form():
    ws = [Value(0.5), Value(-2.0), Value(3.0)]
    xs = [Value(1.5), 4.0, Value(-0.25)]  # numbers are constants
    b = Value(0.125)
    y = dot(ws, xs, b)
    y.backward()
    assert y.data == 0.125 + 0.75 - 8.0 - 0.75
    assert [w.grad for w in ws] == [1.5, 4.0, -0.25]
    assert (xs[0].grad, xs[2].grad, b.grad) == (0.5, 3.0, 1.0)
    assert y.parents[:2] == (b, ws[0]) and len(y.parents) == 7
    assert y.local_grads == (1.0, 1.5, 4.0, -0.25, 0.5, -2.0, 3.0)
    # shared inputs: dot(v, v) = Σ vᵢ², gradient 2v
    v = [Value(3.0), Value(-1.0)]
    dot(v, v).backward()
    assert [x.grad for x in v] == [6.0, -2.0]
    assert dot([], []).data == 0.0


def test_relu_derivative_at_zero_is_zero_like_pytorch():
    assert d(lambda v: v.relu(), 0.0) == (0.0, 0.0)
    assert d(lambda v: v.relu(), -0.0) == (0.0, 0.0)


def test_pow_special_points():
    # x**0 is the constant 1; sqrt has an infinite slope at 0; 0**b is constant in b for b > 0
    assert d(lambda v: v**0, 0.0) == (1.0, 0.0)
    assert d(lambda v: v**0.5, 0.0) == (0.0, math.inf)
    assert d(lambda v: v**1, 0.0) == (0.0, 1.0)
    assert d(lambda v: v**2, 0.0) == (0.0, 0.0)
    assert d(lambda v: 0.0**v, 2.0) == (0.0, 0.0)
    # a negative base to an integer power is fine, its slope too
    assert d(lambda v: v**3, -2.0) == (-8.0, 12.0)
    # ... but d/db of a**b for a < 0 has no real value: nan, as in PyTorch
    b = Value(2.0)
    (Value(-3.0) ** b).backward()
    assert math.isnan(b.grad)
    # derivatives that overflow saturate to inf rather than raise
    assert d(lambda v: v**-1, 1e-200) == (1e200, -math.inf)


# -- attributes --------------------------------------------------------------


def test_value_attributes_and_repr():
    v = Value(3, label="x")
    assert type(v.data) is float and v.data == 3.0
    assert (v.grad, v.label, v.op, v.parents) == (0.0, "x", "", ())
    assert repr(v) == "Value(data=3.0, grad=0.0, label='x')"
    w = v * 2
    assert w.op == "mul" and w.parents[0] is v and w.parents[1].data == 2.0
    assert repr(w) == "Value(data=6.0, grad=0.0, op='mul')"
    w.label = "w"
    assert w.label == "w"
    assert float(w) == w.item() == 6.0
    assert Value(True).data == 1.0  # bool is an int
    assert bool(Value(2.0)) and not Value(0.0) and not Value(-0.0)
    with pytest.raises(TypeError, match="label must be a str, got int 3"):
        Value(1.0, label=3)  # type: ignore[arg-type]
    v.data = 5  # settable, to a real number only
    assert v.data == 5.0 and type(v.data) is float
    with pytest.raises(TypeError, match=r"Value\.data: expected a real number"):
        v.data = "abc"  # type: ignore[assignment]
    assert v.data == 5.0


def test_every_operation_records_its_rule_name():
    x, y = Value(0.5), Value(2.0)
    made = {
        "add": x + y,
        "sub": x - y,
        "mul": x * y,
        "div": x / y,
        "pow": x**y,
        "neg": -x,
        "exp": x.exp(),
        "log": x.log(),
        "tanh": x.tanh(),
        "sigmoid": x.sigmoid(),
        "softplus": x.softplus(),
        "relu": x.relu(),
        "sqrt": x.sqrt(),
        "abs": abs(x),
        "dot": dot([x, y], [y, 1.0], 2.0),
        "logsumexp": logsumexp([x, y, 1.0, 2.0, 3.0]),
        "pick": pick([x, y, 1.0, 2.0], 1),
    }
    for name, v in made.items():
        assert v.op == name
        assert len(v.parents) == len(v.local_grads) == (RULES[name].arity or 5)


def test_numbers_on_either_side():
    x = Value(2.0)
    assert [(x + 1).data, (1 + x).data, (x - 1).data, (1 - x).data] == [3.0, 3.0, 1.0, -1.0]
    assert [(x * 3).data, (3 * x).data, (x / 4).data, (4 / x).data] == [6.0, 6.0, 0.5, 2.0]
    assert [(x**3).data, (3**x).data, (x ** Value(3)).data, (+x).data] == [8.0, 9.0, 8.0, 2.0]


# -- stability -----------------------------------------------------------------

EXTREMES = [-1e308, -1e4, -1000.0, -800.0, -40.0, -1e-300, 0.0, 1e-300, 40.0, 800.0, 1000.0, 1e308]


@pytest.mark.parametrize("x", EXTREMES)
@pytest.mark.parametrize("fn", ["sigmoid", "softplus", "tanh"])
def test_stable_functions_are_finite_everywhere(fn, x):
    value, deriv = d(lambda v: getattr(v, fn)(), x)
    assert math.isfinite(value) and math.isfinite(deriv)
    assert 0.0 <= deriv <= 1.0


def test_stability_limits_have_exact_values():
    assert d(lambda v: v.softplus(), 800.0) == (800.0, 1.0)
    assert d(lambda v: v.softplus(), -800.0) == (0.0, 0.0)
    assert d(lambda v: v.softplus(), 1e308) == (1e308, 1.0)
    assert d(lambda v: v.sigmoid(), -1000.0) == (0.0, 0.0)
    assert d(lambda v: v.sigmoid(), 1000.0) == (1.0, 0.0)
    assert d(lambda v: v.tanh(), 1e308) == (1.0, 0.0)
    assert d(lambda v: v.tanh(), -1e308) == (-1.0, 0.0)
    # the small side keeps full relative precision (no 1 + e^x rounding to 1)
    value, deriv = d(lambda v: v.softplus(), -30.0)
    assert value == pytest.approx(math.exp(-30.0), rel=1e-14)
    assert deriv == pytest.approx(math.exp(-30.0), rel=1e-12)
    assert d(lambda v: v.sigmoid(), -700.0)[0] == pytest.approx(math.exp(-700.0), rel=1e-14)


# -- bad input -----------------------------------------------------------------


@pytest.mark.parametrize("bad", ["abc", None, 1j, [1.0], object()])
def test_value_rejects_non_real_data(bad):
    with pytest.raises(TypeError, match=r"Value: expected a real number .* got"):
        Value(bad)


@pytest.mark.parametrize(
    ("expr", "error", "message"),
    [
        (lambda x: x + "a", TypeError, r"add \(\+\).*str 'a'"),
        (lambda x: "a" + x, TypeError, r"add \(\+\).*str 'a'"),
        (lambda x: x * None, TypeError, r"mul.*NoneType None"),
        (lambda x: x - 1j, TypeError, r"sub.*complex 1j"),
        (lambda x: x / [2], TypeError, r"div.*list \[2\]"),
        (lambda x: x ** "2", TypeError, r"pow.*str '2'"),
        (lambda x: (x - 2).log(), ValueError, r"log\(0\.0\)"),
        (lambda x: (x - 5).log(), ValueError, r"log\(-3\.0\)"),
        (lambda x: (x - 5) ** 0.5, ValueError, r"pow: a negative base .*-3\.0.*0\.5"),
        (lambda x: x / 0, ZeroDivisionError, r"division by zero: 2\.0 / 0\.0"),
        (lambda x: 1 / (x - 2), ZeroDivisionError, r"division by zero: 1\.0 / 0\.0"),
        (lambda x: (x - 2) ** -1, ZeroDivisionError, r"pow: 0\.0 raised to a negative power"),
        (lambda x: (x * 400).exp(), OverflowError, r"exp\(800\.0\)"),
        (lambda x: x**5000, OverflowError, r"pow: 2\.0 \*\* 5000\.0 overflows"),
        (lambda x: (x - 3).sqrt(), ValueError, r"sqrt\(-1\.0\)"),
        (lambda x: x * 5e307 + 1e308, OverflowError, r"add: 1e\+308 \+ 1e\+308 overflows"),
        (lambda x: x * 1e308, OverflowError, r"mul: 2\.0 \* 1e\+308 overflows"),
        (lambda x: -1e308 - x * 5e307, OverflowError, r"sub: -1e\+308 - 1e\+308 overflows"),
        (lambda x: 1e308 / (x * 1e-10), OverflowError, r"div: 1e\+308 / 2e-10 overflows"),
        (lambda x: dot([x * 1e307], [10.0]), OverflowError, r"dot \(Σ\).*overflows"),
        (lambda x: dot([x, x], [x]), ValueError, r"dot: 2 weights but 1 inputs"),
        (lambda x: dot([x], ["w"]), TypeError, r"dot \(Σ\).*str 'w'"),
        (lambda x: dot([x], [x], None), TypeError, r"dot \(Σ\).*NoneType None"),
    ],
)
def test_bad_input_raises_a_clear_error_and_changes_nothing(expr, error, message):
    x = Value(2.0, label="x")
    y = x * 3.0
    y.backward()
    before = (x.data, x.grad, x.parents, y.data, y.grad, y.parents)
    with pytest.raises(error, match=message):
        expr(x)
    assert (x.data, x.grad, x.parents, y.data, y.grad, y.parents) == before
    y.backward()  # the graph still works, and nothing was added to it
    assert x.grad == 6.0


# -- backward semantics ----------------------------------------------------------


def test_backward_through_a_diamond_sums_both_paths():
    x = Value(3.0)
    a = x * x  # shared
    y = a + a * x  # x² + x³
    y.backward()
    assert x.grad == 2 * 3.0 + 3 * 9.0


def test_second_backward_exactly_doubles_leaf_gradients():
    # micrograd gives wrong gradients here: its interior grads keep accumulating
    x, w = Value(0.5), Value(-1.5)
    h = (x * w).tanh()
    y = h * h + h
    y.backward()
    first = (x.grad, w.grad)
    interior = (h.grad, y.grad)
    y.backward()
    assert (x.grad, w.grad) == (2 * first[0], 2 * first[1])
    assert (h.grad, y.grad) == interior  # recomputed from scratch, not accumulated


def test_backward_of_a_leaf_and_with_a_seed():
    x = Value(2.0)
    x.backward()
    assert x.grad == 1.0
    y = Value(2.0)
    (y * y).backward(gradient=0.5)
    assert y.grad == 2.0


def test_gradients_accumulate_across_different_roots_like_pytorch():
    x = Value(2.0)
    (x * x).backward()
    (x * 3).backward()
    assert x.grad == 4.0 + 3.0


def test_no_grad_records_nothing_and_nests():
    x = Value(1.0)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2 + x.exp() + dot([x], [x])
        with no_grad():
            pass
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert y.parents == () and y.op == "" and y.data == pytest.approx(3 + math.e)
    assert dot([x], [x]).parents != ()
    with pytest.raises(RuntimeError), no_grad():
        raise RuntimeError
    assert is_grad_enabled()
    with no_grad():
        with enable_grad():
            assert is_grad_enabled()
            assert (x * x).parents == (x, x)
        assert not is_grad_enabled()


# -- depth, width, memory ----------------------------------------------------------


@pytest.mark.slow
def test_a_chain_of_a_million_operations():
    n = 10**6
    x = Value(1.0)
    y = x
    for _ in range(n // 2):
        y = (y * 1.0) + 1.0
    y.backward()
    assert y.data == 1.0 + n // 2
    assert x.grad == 1.0
    ref = weakref.ref(x)
    probe = weakref.ref(y.parents[0])
    del x, y
    assert ref() is None and probe() is None  # freed by reference counting, no crash


def test_a_wide_sum_of_a_hundred_thousand_products():
    xs = [Value(float(i % 7)) for i in range(10**5)]
    total = sum((x * x for x in xs), Value(0.0))
    total.backward()
    assert all(x.grad == 2 * x.data for x in xs)


def test_graphs_hold_no_reference_cycles():
    gc.collect()
    gc.disable()
    try:
        x, w, b = Value(0.3), Value(-0.7), Value(0.1)
        probe = weakref.ref(x * w)
        for _ in range(100):
            h = (x * w + b).tanh()
            y = (h * h + h.sigmoid() + h.softplus() + h.relu() + (h + 2).log()) / 3 - h.exp()
            y = dot([y, h], [h, x], b)
            y = y**2
            y.backward()
        refs = [weakref.ref(v) for v in (h, y)]
        del h, y
        assert all(r() is None for r in refs)
        assert probe() is None
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_gc_paused_restores_the_callers_setting():
    from autodiff import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), gc_paused():
        raise KeyError
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


class _Boom(float):
    """A local derivative whose product raises mid-pass (as a KeyboardInterrupt would)."""

    def __mul__(self, other):
        raise KeyboardInterrupt

    __rmul__ = __mul__


def test_an_interrupted_backward_changes_no_gradient_and_leaves_the_graph_usable():
    x, w = Value(2.0), Value(-0.5)
    h = (x * w).tanh()
    y = h * x + x
    x.grad, w.grad, h.grad = 0.25, -1.0, 7.0  # whatever was there before
    before = [v.grad for v in (x, w, h, y)]
    good = h._d0
    h._d0 = _Boom(good)  # the pass breaks when it reaches h, after y has been processed
    with pytest.raises(KeyboardInterrupt):
        y.backward()
    assert [v.grad for v in (x, w, h, y)] == before  # nothing half-updated, leaves or interior
    h._d0 = good
    y.backward()
    expected = x.grad - 0.25
    t = math.tanh(-1.0)
    assert expected == pytest.approx(t + 2.0 * (1 - t * t) * -0.5 + 1.0, rel=1e-15)
    # and the interruption at the very end (the leaves' add-back) is undone too
    x.grad = w.grad = 0.0
    y.backward()
    once = (x.grad, w.grad)

    class Late(float):
        def __radd__(self, other):
            raise KeyboardInterrupt

    x._grad = Late(0.0)  # the slot behind .grad (its setter stores plain floats)
    with pytest.raises(KeyboardInterrupt):
        y.backward()
    assert type(x.grad) is Late and w.grad == once[1]


@pytest.mark.parametrize("bad", ["1", None, [1.0], 1j, Value(1.0)])
def test_backward_checks_its_seed(bad):
    x = Value(3.0)
    y = x * x
    with pytest.raises(TypeError, match=r"backward: gradient: expected a real number"):
        y.backward(bad)
    assert (x.grad, y.grad) == (0.0, 0.0)
    y.backward(2)  # ints are real numbers
    assert x.grad == 12.0


def test_label_is_checked_on_assignment_and_any_str_is_fine():
    v = Value(1.0, "x")
    with pytest.raises(TypeError, match=r"Value\.label: label must be a str, got int 3"):
        v.label = 3  # type: ignore[assignment]
    assert v.label == "x"
    for label in ["", "x₁", "a\tb\x07", "<b>&</b>", "v0"]:
        v.label = label
        assert v.label == label


def test_format_abs_sqrt_and_equality_is_identity():
    loss = Value(0.123456, "loss")
    assert f"{loss:.4f}" == "0.1235" and f"{loss:>8.2e}" == "1.23e-01"
    assert f"{loss}" == str(loss) == repr(loss)
    y = abs(Value(-3.0))
    assert (y.data, y.op) == (3.0, "abs")
    assert Value(9.0).sqrt().data == 3.0
    a, b = Value(1.0), Value(1.0)
    assert a != b and a == a and len({a, b}) == 2  # nodes, not numbers: Values are dict keys
    assert a.data == b.data


def test_no_grad_as_a_decorator_and_misuse():
    x = Value(2.0)

    @no_grad
    def bare(v):
        return v * v

    @no_grad()
    def called(v):
        return v * v

    assert bare(x).parents == () and called(x).parents == ()
    assert bare.__name__ == "bare" and is_grad_enabled()
    ng = no_grad()
    with ng, pytest.raises(RuntimeError, match="already in use"), ng:
        pass
    assert is_grad_enabled()
    with pytest.raises(TypeError, match="expected a function"):
        no_grad()(3)  # type: ignore[arg-type]


SPECIAL = [0.0, -0.0, 1.0, -1.0, 1e-300, 5e-324, 1e300, -1e300, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("x", SPECIAL)
def test_nan_propagates_and_infinities_follow_ieee(x):
    nan = math.nan
    v = Value(nan)
    for op in (
        lambda a: a + x,
        lambda a: a * x,
        lambda a: a - x,
        lambda a: x - a,
        abs,
        lambda a: a.exp(),
        lambda a: a.log(),
        lambda a: a.sqrt(),
        lambda a: a.tanh(),
        lambda a: a.sigmoid(),
        lambda a: a.softplus(),
        lambda a: a.relu(),
        lambda a: -a,
        lambda a: dot([a], [x]),
        lambda a: a**2.0,
        lambda a: 2.0**a,
    ):
        y = op(v)
        y.backward()
        assert math.isnan(y.data), y
    assert math.isnan(v.grad)
    if x != 0.0 and not math.isnan(x):
        assert math.isnan((v / x).data)
    with pytest.raises(ZeroDivisionError):
        v / 0.0  # a zero divisor is an error, whatever the numerator


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Value(10**400), OverflowError, r"^Value: 1000.*too large for a float"),
        (lambda: Value(1.0) * 10**400, OverflowError, r"^mul \(×\): 1000.*too large"),
        (lambda: 10**400 + Value(1.0), OverflowError, r"^add \(\+\): 1000"),
        (lambda: Value(1.0) - 10**400, OverflowError, r"^sub \(−\): 1000"),
        (lambda: Value(2.0) / 10**400, OverflowError, r"^div \(÷\): 1000"),
        (lambda: Value(2.0) ** 10**5000, OverflowError, r"^pow \(\^\): an int of 16610 bits"),
        (lambda: dot([Value(1.0)], [10**400]), OverflowError, r"^dot \(Σ\): 1000"),
        (lambda: setattr(Value(1.0), "data", 10**400), OverflowError, r"^Value\.data: 1000"),
        (lambda: Value(1.0).backward(10**400), OverflowError, r"^backward: gradient: 1000"),
        (lambda: Value(1.0) * "2", TypeError, r"^mul \(×\): expected a Value or a real number"),
        (lambda: Value(object()), TypeError, r"^Value: expected a real number"),
    ],
)
def test_every_conversion_error_names_the_operation_and_the_value(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_an_interrupted_sort_leaves_no_count_behind():
    """The topological sort counts in the nodes' own slots; if it is interrupted (a
    KeyboardInterrupt, a MemoryError) every count goes back to 0, so that the next
    backward pass over those nodes is right, not missing the users counted before."""
    from autodiff import topological_order

    class Interrupting:  # a parent whose count cannot be read
        @property
        def _uses(self) -> int:
            raise KeyboardInterrupt

    a, b = Value(2.0), Value(3.0)
    y = a * b + a
    z = y * 1.0
    z._p0 = (y, a, Interrupting())  # (z's other inputs are read first)
    with pytest.raises(KeyboardInterrupt):
        topological_order(z)
    assert (y._uses, a._uses, b._uses) == (0, 0, 0)
    y.backward()
    assert (a.grad, b.grad) == (4.0, 2.0)
