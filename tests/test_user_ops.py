"""Operations users add with `op(Rule(...))` work like built-in ones everywhere."""

from __future__ import annotations

import math
import struct

import numpy as np
import oracle
import pytest
from test_render import needs_renderer

from autodiff import Rule, Value, grad, gradcheck, hessian, op, trace
from autodiff.render import backward_graph, explorer, render_bytes
from autodiff.rules import RULES, power, select, sigmoid


@pytest.fixture(autouse=True)
def _rules(restore_rules):
    """Operations added here (autodiff.op) leave the rule table as it was."""


def bits(xs) -> list[bytes]:
    return [struct.pack("<d", float(x)) for x in xs]


def log1p_op(array: bool = True):
    return op(
        Rule(
            "log1p",
            "log1p",
            math.log1p,
            lambda a, out: (1 / (1 + a),),
            array=(lambda xp, a: xp.log1p(a)) if array else None,
        )
    )


def test_the_issues_log1p_works_at_every_order():
    log1p = log1p_op()
    assert log1p(0.5) == math.log1p(0.5) and type(log1p(0.5)) is float  # numbers in, number out
    x = Value(0.5)
    y = log1p(x)
    assert y.op == "log1p" and y.data == math.log1p(0.5)
    y.backward()
    assert x.grad == 1 / 1.5
    (d1,) = grad(log1p(x), [x], create_graph=True)
    (d2,) = grad(d1, [x], create_graph=True)
    (d3,) = grad(d2, [x])
    assert (d1.data, d2.data, d3.data) == pytest.approx((1 / 1.5, -1 / 1.5**2, 2 / 1.5**3))
    H = hessian(lambda v: log1p(v[0] * v[1]), [0.5, 2.0])
    assert [v for row in H for v in row] == pytest.approx([-1.0, 0.25, 0.25, -0.0625])
    assert gradcheck(lambda v: log1p(v[0] * v[1] + v[1]), [0.3, 0.7])


def _clip():
    # a derivative that branches on the number: traces call it at run time
    return op(
        Rule(
            "clip01",
            "clip",
            lambda a: min(max(a, 0.0), 1.0),
            lambda a, out: (select(a - 1.0, select(a, 0.0, 0.0, 1.0), 0.0, 0.0),),
        )
    )


@pytest.mark.parametrize("with_array", [True, False])
def test_traces_give_the_eager_numbers(with_array):
    log1p, clip = log1p_op(with_array), _clip()

    def f(v):
        return log1p(v[0] * v[1]) + clip(v[0]) * v[1]

    for point in ([0.5, 2.0], [1.5, -0.25], [-0.5, 0.0]):
        xs = [Value(p) for p in point]
        y = f(xs)
        y.backward()
        eager = bits([y.data, *(x.grad for x in xs)])
        for mode in ("lines", "groups"):
            value, grads = trace(f, point, mode=mode).value_and_grad(point)
            assert bits([value, *grads]) == eager, mode
    batched = trace(f, [0.5, 2.0], batched=True)
    values, grads = batched.value_and_grad(
        [np.array([0.5, 1.5, -0.5]), np.array([2.0, -0.25, 0.0])]
    )
    for k, point in enumerate(([0.5, 2.0], [1.5, -0.25], [-0.5, 0.0])):
        xs = [Value(p) for p in point]
        y = f(xs)
        y.backward()
        assert values[k] == pytest.approx(y.data, rel=1e-15)
        assert [g[k] for g in grads] == pytest.approx([x.grad for x in xs], rel=1e-15)


def test_a_local_that_needs_its_numbers_runs_in_batched_code_on_each_sample():
    """A local written with math.* (numbers only: it is not printed as a formula) is called
    on each sample's floats in batched numpy code, for one input and for several: the
    per-sample values and gradients are the engine's, bit for bit."""
    mcos = op(Rule("mcos2", "mc", math.cos, lambda a, out: (-math.sin(a),)))
    hyp = op(
        Rule("hyp", "h", math.hypot, lambda a, b, out: (math.copysign(abs(a), a) / out, b / out))
    )

    def f(v):
        return mcos(v[0] * v[1]) * hyp(v[0], v[1] - 0.5)

    points = ([0.5, 2.0], [1.5, -0.25], [-0.5, 0.0], [3.0, 0.75])
    values, grads = trace(f, points[0], batched=True).value_and_grad(
        [np.array([p[0] for p in points]), np.array([p[1] for p in points])]
    )
    for k, point in enumerate(points):
        xs = [Value(p) for p in point]
        y = f(xs)
        y.backward()
        assert bits([values[k], grads[0][k], grads[1][k]]) == bits([y.data, *(x.grad for x in xs)])


def test_batched_code_for_another_array_library_needs_the_array_forward():
    torch = oracle.torch()
    log1p, clip = log1p_op(), _clip()
    f = trace(lambda v: log1p(v[0]) * v[1], [0.5, 2.0], batched=True)
    values, _ = f.value_and_grad([torch.tensor([0.5, 1.0], dtype=torch.float64), 2.0])
    assert values.tolist() == pytest.approx([2 * math.log1p(0.5), 2 * math.log1p(1.0)])
    g = trace(lambda v: clip(v[0]) * v[1], [0.5, 2.0], batched=True)
    with pytest.raises(NotImplementedError, match="no array kernel for the forward of 'clip01'"):
        g.value_and_grad([torch.tensor([0.5, 1.0], dtype=torch.float64), 2.0])


def test_the_renders_draw_its_symbol_and_formula():
    needs_renderer()
    log1p = log1p_op()
    x = Value(0.5, "x")
    y = log1p(x * 2.0)
    y.label = "y"
    svg = render_bytes(backward_graph(y)).decode()
    assert ">log1p<" in svg
    page = explorer(y).html
    assert "∂log1p(v₂)/∂v₂ = 1 / (1 + v₂) = 0.5000" in page  # its local derivative, printed


@pytest.mark.parametrize(
    ("rule", "error", "match"),
    [
        (Rule("bad", "b", lambda a, b: a, lambda a, out: (1.0,)), ValueError, "forward takes 2"),
        (Rule("bad", "b", lambda a: a, lambda a, b, c, out: (1.0,)), ValueError, "local takes 3"),
        (Rule("bad", "b", 3.0, lambda a, out: (1.0,)), TypeError, "forward must be callable"),  # type: ignore[arg-type]
        (Rule("bad", "b", abs, "x"), TypeError, "local must be callable"),  # type: ignore[arg-type]
        (Rule("2bad", "b", abs, lambda a, out: (1.0,)), ValueError, "must be a Python identifier"),
        (Rule("bad", "", abs, lambda a, out: (1.0,)), TypeError, "symbol must be a non-empty"),
        (Rule("bad", "b", abs, lambda a, out: (1.0,), array=1), TypeError, "array must be"),  # type: ignore[arg-type]
        (Rule("exp", "e", math.exp, lambda a, out: (out,)), ValueError, "'exp' is taken"),
        (Rule("bad", "b", abs, lambda a, out: (1.0,), array_local=2), TypeError, "array_local"),  # type: ignore[arg-type]
        (
            Rule("bad", "b", abs, lambda a, out: (1.0,), array_with_local=abs),
            ValueError,
            "give rows",
        ),
        (Rule("bad", "b", abs, lambda a, out: (1.0,), array_with_local=3), TypeError, "array_with"),  # type: ignore[arg-type]
        (Rule("bad", "b", abs, lambda a, out: (1.0,), method="a-b"), ValueError, "method must"),
        (Rule("bad", "b", abs, lambda a, out: (1.0,), doc=3), TypeError, "doc must be"),  # type: ignore[arg-type]
        (Rule("bad", "b", abs, lambda a, out: (1.0,), method="data"), ValueError, "'data'"),
        (Rule("bad", "b", abs, lambda a, out: (1.0,), method="__add__"), ValueError, "__add__"),
        (
            Rule("bad", "b", lambda *a: 0.0, lambda *a: (), method="f"),
            ValueError,
            "no Value method",
        ),
    ],
)
def test_a_malformed_rule_is_refused_at_definition_naming_it(rule, error, match):
    with pytest.raises(error, match=match):
        op(rule)
    assert RULES.get(rule.name) is not rule


def test_replace_redefines_an_unused_operation_never_a_used_one_nor_a_built_in():
    log1p_op()
    again = op(Rule("log1p", "l1p", math.log1p, lambda a, out: (1 / (1 + a),)), replace=True)
    assert RULES["log1p"].symbol == "l1p" and again(1.0) == math.log1p(1.0)
    # once it has computed, Values recorded with it may be alive: their derivatives must
    # stay its rule's, so redefining it is refused (and the table is unchanged)
    with pytest.raises(ValueError, match="'log1p' has already computed something"):
        op(Rule("log1p", "l2", math.log1p, lambda a, out: (2.0,)), replace=True)
    assert RULES["log1p"] is again.rule
    with pytest.raises(ValueError, match="'tanh' is taken"):
        op(Rule("tanh", "t", math.tanh, lambda a, out: (1 - out * out,)), replace=True)


def test_its_results_follow_the_numeric_policy():
    big = op(Rule("times_huge", "×H", lambda a: a * 1e300, lambda a, out: (1e300,)))
    with pytest.raises(OverflowError, match="times_huge"):
        big(Value(1e10))
    assert big(Value(math.inf)).data == math.inf  # an infinite input is not an overflow
    with pytest.raises(TypeError, match=r"times_huge: takes 1 input\(s\), got 2"):
        big(1.0, 2.0)
    with pytest.raises(TypeError, match=r"times_huge \(×H\): expected a Value or a real number"):
        big("x")


def test_every_built_in_operation_is_a_value_method_made_from_its_rule():
    """Value's operators and functions come from the table: each carries its rule and its
    rule's docstring (+ and × are written out in the class, for speed, with the rule's
    own derivatives)."""
    for rule in RULES.values():
        if not rule.method:
            continue
        method = vars(Value)[rule.method]
        if rule.name in ("add", "mul"):
            continue
        assert method.rule is rule
        assert method.__doc__ == rule.doc
        if rule.method.startswith("__") and rule.arity == 2:
            assert vars(Value)["__r" + rule.method[2:]].rule is rule
    x = Value(0.5)
    assert (2.0 - x).op == "sub" and (x - 2.0).parents[1].data == 2.0
    assert (2.0**x).data == 2.0**0.5 and (1.0 / x).data == 2.0


def test_a_user_rule_with_a_method_gives_values_that_method():
    log1p = op(
        Rule(
            "log1p",
            "log1p",
            math.log1p,
            lambda a, out: (1 / (1 + a),),
            method="log1p",
            doc="log(1 + x), exact for tiny x.",
        )
    )
    x = Value(1e-20)
    y = x.log1p()
    y.backward()
    assert y.data == 1e-20 and x.grad == 1.0 and y.op == "log1p"
    assert Value.log1p.__doc__ == "log(1 + x), exact for tiny x."
    assert log1p(1e-20) == 1e-20
    with pytest.raises(ValueError, match="already computed"):  # x.log1p() used it
        op(
            Rule("log1p", "l", math.log1p, lambda a, out: (1 / (1 + a),), method="log1p"),
            replace=True,
        )
    assert Value.log1p.rule is log1p.rule


def test_an_overflow_in_an_operation_written_as_arithmetic_is_raised_by_every_trace():
    """A rule whose forward prints as arithmetic (a * 1e300) is plain code in a trace, which
    never raises by itself: the trace checks its result as the engine does."""
    big = op(Rule("big", "big", lambda a: a * 1e300, lambda a, out: (1e300,)))
    with pytest.raises(OverflowError, match=r"big\(10000000000.0\) overflows"):
        big(Value(1e10))
    for kwargs in ({"mode": "lines"}, {"mode": "groups"}):
        traced = trace(lambda v: big(v[0]) * 2.0, [1.0], **kwargs)
        assert traced.value_and_grad([2.0]) == (4e300, [2e300])
        for run in (traced, traced.value_and_grad):
            with pytest.raises(OverflowError, match=r"big\(10000000000.0\) overflows"):
                run([1e10])
    batched = trace(lambda v: big(v[0]) * 2.0, [1.0], batched=True)
    for run in (batched, batched.value_and_grad, batched.mean_value_and_grad):
        with pytest.raises(OverflowError, match=r"big\(10000000000.0\) overflows"):
            run([np.array([1.0, 1e10])])


@pytest.mark.parametrize("constant", [3.0, -0.0, 0.5, -2.0])
def test_any_constant_local_derivative_in_grouped_code(constant):
    """Built-in rules have constant derivatives 0, 1 and −1 only; a user's may be any."""
    scaled = op(Rule("scaled", "s", lambda a: a * constant, lambda a, out: (constant,)))

    def f(v):
        return scaled(v[0]) * v[1] + scaled(v[1] * v[0])

    point = [1.5, -0.0]
    xs = [Value(x) for x in point]
    f(xs).backward()
    for mode in ("lines", "groups"):
        value, grads = trace(f, [0.5, 2.0], mode=mode).value_and_grad(point)
        assert bits([value, *grads]) == bits(
            [f([Value(x) for x in point]).data] + [x.grad for x in xs]
        )


def test_every_built_in_rule_is_complete_on_its_own():
    """What a new built-in operation needs is on its Rule: a test of the table itself, so
    that nothing elsewhere (a kernel table, a name list) can be forgotten."""
    import ast
    import inspect

    from autodiff import engine
    from autodiff.trace._program import local_forms

    for name, rule in RULES.items():
        if name == "dot":  # batched code makes layers of dots: matrix products, no kernel
            continue
        assert rule.array is not None, f"{name}: no array forward"
        arity = rule.arity or 3
        if local_forms(name, arity) is None:  # its local branches: arrays need their own
            assert rule.array_local is not None, f"{name}: local branches, no array_local"
        if rule.method:
            assert rule.doc, f"{name}: a method without a docstring"
    # the declarations type checkers read name every method the table installs, and only those
    tree = ast.parse(inspect.getsource(engine.Value))
    declared = {
        node.name
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in block.body
        if isinstance(node, ast.FunctionDef)
    }
    installed = {
        m
        for rule in RULES.values()
        for m in engine._methods(rule)
        if getattr(vars(Value).get(m), "rule", None) is rule
    }
    assert declared == installed


def test_a_user_rule_may_not_take_a_built_in_method_nor_one_value_inherits():
    for name in ("exp", "tanh", "__add__", "__hash__", "__eq__", "__reduce_ex__", "__init__"):
        before = vars(Value).get(name)
        with pytest.raises(ValueError, match=f"Value already answers to {name!r}"):
            op(Rule(f"mine_{name.strip('_')}", "m", math.exp, lambda a, out: (out,), method=name))
        assert vars(Value).get(name) is before  # the built-in is untouched
        assert f"mine_{name.strip('_')}" not in RULES  # and nothing was registered
    assert Value(1.0).exp().data == math.e


def test_a_forward_with_a_defaulted_parameter_takes_its_required_inputs():
    def scaled(a, scale=2.0):
        return a * scale

    twice = op(Rule("twice", "2×", scaled, lambda a, out: (2.0,)))
    x = Value(1.5)
    twice(x).backward()
    assert (twice(x).data, x.grad) == (3.0, 2.0)


def test_registering_from_two_threads_grants_a_name_once():
    from threads import run_together

    granted, refused = [], []

    def register(i: int) -> None:
        try:
            granted.append(op(Rule("contested", f"c{i}", math.exp, lambda a, out: (out,))))
        except ValueError:
            refused.append(i)

    assert run_together([lambda i=i: register(i) for i in range(8)], switch_interval=1e-6) == []
    assert len(granted) == 1 and len(refused) == 7
    assert RULES["contested"] is granted[0].rule


def test_an_operation_added_while_another_thread_builds_batched_code_is_all_or_nothing():
    import numpy as np
    from threads import run_together

    f = trace(lambda v: (v[0] * v[1]).tanh(), [0.5, 2.0], batched=True)
    results = []

    def build() -> None:
        for _ in range(30):
            results.append(f.value_and_grad([np.linspace(0, 1, 5), 2.0])[0].tolist())

    def add() -> None:
        for i in range(30):
            op(Rule(f"added_{i}", "a", math.exp, lambda a, out: (out,), method=f"added_{i}"))

    assert run_together([build, add], switch_interval=1e-6) == []
    assert all(r == results[0] for r in results)


def test_a_local_that_takes_the_number_out_is_refused_at_the_first_higher_order_use():
    mycos = op(Rule("mycos", "cos", math.cos, lambda a, out: (-math.sin(a),)))
    x = Value(0.3)
    mycos(x).backward()  # first order: the number is right
    assert x.grad == -math.sin(0.3)
    assert gradcheck(lambda v: mycos(v[0]), [0.3])
    for escape in ("float", "int", "round", "math.floor"):
        fn = {"float": float, "int": int, "round": round, "math.floor": math.floor}[escape]
        bad = op(
            Rule(
                f"bad_{escape.replace('.', '_')}",
                "b",
                math.cos,
                lambda a, out, fn=fn: (-math.sin(fn(a) + 0.0),),
            )
        )
        with pytest.raises(TypeError, match=f"Rule 'bad_{escape.replace('.', '_')}'.*took"):
            hessian(lambda v, bad=bad: bad(v[0]), [0.3])
    with pytest.raises(TypeError, match="Rule 'mycos': its local derivative took the number"):
        hessian(lambda v: mycos(v[0]), [0.3])  # never [[0.0]]


def test_a_derivative_tower_of_user_operations_is_differentiated_at_every_order():
    ucos = op(Rule("ucos", "cos", math.cos, lambda a, out: (-usin(a),)))
    usin = op(Rule("usin", "sin", math.sin, lambda a, out: (ucos(a),)))
    x = Value(0.3)
    y = usin(x)
    derivatives = []
    for _ in range(4):
        (y,) = grad(y, [x], create_graph=True)
        derivatives.append(y.data)
    expected = [math.cos(0.3), -math.sin(0.3), -math.cos(0.3), math.sin(0.3)]
    assert derivatives == pytest.approx(expected, rel=1e-15)
    H = hessian(lambda v: usin(v[0]) * ucos(v[1]), [0.3, 0.7])
    sx, cx, sy, cy = math.sin(0.3), math.cos(0.3), math.sin(0.7), math.cos(0.7)
    assert [*H[0], *H[1]] == pytest.approx([-sx * cy, -cx * sy, -cx * sy, -sx * cy], rel=1e-14)
    # traces print it too (the local is called at run time)
    t = trace(lambda v: usin(v[0]), [0.3])
    assert t.value_and_grad([0.4]) == (math.sin(0.4), [math.cos(0.4)])


@pytest.mark.parametrize("call", ["function", "method", "operator"])
def test_every_way_of_calling_a_rule_gives_the_same_bits_and_errors(call):
    """A user operation called as a function, a method and an operator, and every
    built-in as a method and as a function of the table, share one path: same floats,
    same errors (overflow, NaN from finite inputs, a result that is not a number)."""
    big = op(Rule("big", "B", lambda a: a * 1e300, lambda a, out: (1e300,), method="big"))
    nan = op(Rule("nan_of", "N", lambda a: math.nan, lambda a, out: (0.0,), method="nan_of"))
    three = op(Rule("three", "3", lambda a: 3, lambda a, out: (0,), method="three"))
    odd = op(Rule("odd", "?", lambda a: "x", lambda a, out: (0.0,), method="odd"))
    sub2 = op(
        Rule("sub2", "−", lambda a, b: a - b, lambda a, b, out: (1.0, -1.0), method="__matmul__")
    )

    def apply(fn, *args):
        if call == "function":
            return fn(*args)
        if call == "method":
            return getattr(args[0], fn.rule.method)(*args[1:])
        if fn.rule.arity == 2:
            return args[0] @ args[1]
        return getattr(args[0], fn.rule.method)()

    with pytest.raises(OverflowError, match=r"big\(10000000000.0\) overflows"):
        apply(big, Value(1e10))
    assert apply(big, Value(math.inf)).data == math.inf  # an infinite input stands
    with pytest.raises(ValueError, match=r"nan_of\(1.0\) is NaN .* inputs are finite"):
        apply(nan, Value(1.0))
    assert math.isnan(apply(nan, Value(math.nan)).data)
    out = apply(three, Value(1.0))
    assert type(out.data) is float and type(out.local_grads[0]) is float
    with pytest.raises(TypeError, match="odd: the result of its forward"):
        apply(odd, Value(1.0))
    z = apply(sub2, Value(0.1), Value(0.3))
    assert struct.pack("<d", z.data) == struct.pack("<d", 0.1 - 0.3) and z.op == "sub2"
    with pytest.raises(OverflowError, match="sub2"):
        apply(sub2, Value(-1e308), Value(1e308))


def _outcome(make):
    """(bits of the value, bits of the local derivatives) or the type of the error raised."""
    try:
        v = make()
    except (OverflowError, ValueError, ZeroDivisionError, TypeError) as e:
        return type(e)
    return struct.pack("<d", v.data), [struct.pack("<d", d) for d in v.local_grads]


SPECIAL = [0.5, -0.0, 0.0, 2.0, -3.0, 1e300, -1e300, 1e-300, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_built_in_way_of_calling_is_the_one_path_same_bits_same_errors(name):
    """The operators and methods made from the table call the one application path; + and
    ×, written out in the class for speed, and dot, logsumexp, pick and nll, which take
    lists, give what that path gives for the same rule: the same bits, the same errors."""
    from autodiff import dot, engine, logsumexp, nll, pick

    rule = RULES[name]
    calls = {
        "add": lambda a, b: a + b,
        "mul": lambda a, b: a * b,
        "dot": lambda a, b: dot([a], [b], a),
        "logsumexp": lambda a, b: logsumexp([a, b]),
        "pick": lambda a, b: pick([a, b], 1.0),
        "nll": lambda a, b: nll([a, b], 1.0),
    }
    if name not in calls:
        method = vars(Value)[rule.method]
        assert method.rule is rule and method.__code__.co_names.count("_apply") == 1
        if rule.arity == 2:
            calls[name] = lambda a, b: method(a, b)
        else:
            calls[name] = lambda a, b: method(a)
    args_of = {
        "dot": lambda a, b: (a, a, b),
        "pick": lambda a, b: (Value(1.0), a, b),
        "nll": lambda a, b: (Value(1.0), a, b),
    }
    for x in SPECIAL:
        for y in SPECIAL:
            a, b = Value(x), Value(y)
            args = args_of.get(name, lambda a, b: (a, b)[: rule.arity or 2])(a, b)
            assert _outcome(lambda a=a, b=b: calls[name](a, b)) == _outcome(
                lambda args=args: engine._apply(rule, tuple(args))
            ), (name, x, y)


def test_the_explorer_prints_any_local_the_engine_accepts_or_the_number_with_a_note():
    from autodiff.render import explorer
    from autodiff.render.formula import NO_FORMULA, local_formulas

    ucos = op(Rule("ucos2", "cos", math.cos, lambda a, out: (-usin(a),)))
    usin = op(Rule("usin2", "sin", math.sin, lambda a, out: (ucos(a),)))
    rules = {
        "power": Rule("cube3", "c3", lambda a: a**3, lambda a, out: (3 * a**2,)),
        "abs": Rule("absq", "aq", lambda a: abs(a) * a, lambda a, out: (2 * abs(a),)),
        "rpow": Rule("two_to", "2^", lambda a: 2.0**a, lambda a, out: (out * math.log(2.0),)),
        "sigmoid": Rule("sp2", "sp", math.tanh, lambda a, out: (1 - out * sigmoid(a),)),
        "helper": Rule("lg", "lg", math.log, lambda a, out: (select(a, 0.0, 0.0, 1.0) / a,)),
        "user": usin.rule,
        "math": Rule("mcos", "mc", math.cos, lambda a, out: (-math.sin(a),)),
    }
    expected = {
        "power": "3·x^2",
        "abs": "2·|x|",
        "rpow": "y·0.693147",
        "sigmoid": "1 − y·σ(x)",
        "helper": "1[x > 0] / x",
        "user": "cos(x)",
        "math": f"−0.389418 {NO_FORMULA}",
    }
    for key, rule in rules.items():
        assert local_formulas(rule, ["x"], "y", [0.4, 0.0]) == (expected[key],), key
    fns = [usin] + [op(r) for k, r in rules.items() if k != "user"]
    x = Value(0.4, "x")
    y = sum((f(x) for f in fns), Value(0.0))
    page = explorer(y)  # never fails on a user op
    assert NO_FORMULA in page.html and "cos(x)" in page.html


def test_a_user_local_that_branches_on_a_sign_runs_in_batched_code_with_no_second_form(
    restore_rules,
):
    """Issue 27.2: `local` written once, with select and power, is printed for arrays: no
    array_local, on numpy and on PyTorch alike, the eager numbers per sample."""
    leaky = op(
        Rule(
            "leaky",
            "leaky",
            lambda a: a if a > 0.0 else 0.1 * a,
            lambda a, out: (select(a, 0.1, 0.1, 1.0) * power(a * a + 1.0, 0.5),),
            array=lambda xp, a: xp.where(a > 0.0, a, 0.1 * a),
        )
    )
    f = trace(lambda v: leaky(v[0]) * v[1], [0.5, 2.0], batched=True)
    assert "_l_leaky" not in f.source and "_select(" in f.source  # printed, not called
    points = [0.5, -1.5, 0.0, 3.0]
    torch = oracle.torch()
    for column in (np.array(points), torch.tensor(points, dtype=torch.float64)):
        _, grads = f.value_and_grad([column, 2.0])
        for k, p in enumerate(points):
            x = Value(p)
            (leaky(x) * 2.0).backward()
            assert float(grads[0][k]) == pytest.approx(x.grad, rel=1e-15), (type(column), p)


@pytest.mark.parametrize("arity", [1, 2, 3])
def test_a_local_of_the_wrong_length_or_not_numbers_is_refused_naming_the_rule(arity):
    """What a user's ``local`` returns is checked at every call, at each arity (one and two
    inputs have their own fast paths): the wrong number of derivatives is a ValueError, a
    non-number a TypeError, an int too large for a float an OverflowError -- each naming
    the operation -- and other real numbers (ints, numpy's) become floats."""

    def rule(name, local):
        return op(Rule(name, "u", lambda *a: sum(a) + 0.0, lambda *a: local(len(a) - 1)))

    xs = [Value(0.5), Value(-1.0), Value(2.0)][:arity]
    short = rule(f"short{arity}", lambda n: (1.0,) * (n - 1))
    long = rule(f"long{arity}", lambda n: (1.0,) * (n + 1))
    for bad, n in ((short, arity - 1), (long, arity + 1)):
        s = "s" * (arity != 1)
        with pytest.raises(
            ValueError,
            match=rf"{bad.rule.name}: local gave {n} derivatives "
            rf"for {arity} input{s}",
        ):
            bad(*xs)
    text = rule(f"text{arity}", lambda n: (1.0,) * (n - 1) + ("x",))
    with pytest.raises(TypeError, match=rf"text{arity}: its local derivative: expected a real"):
        text(*xs)
    huge = rule(f"huge{arity}", lambda n: (1.0,) * (n - 1) + (2**2000,))
    with pytest.raises(OverflowError, match=rf"huge{arity}: its local derivative: .* too large"):
        huge(*xs)
    mixed = rule(f"mixed{arity}", lambda n: (3, np.float32(0.5), np.int64(-2))[:n])
    out = mixed(*xs)
    assert [type(d) for d in out.local_grads] == [float] * arity
    assert list(out.local_grads) == [3.0, 0.5, -2.0][:arity]
    out.backward()
    assert [x.grad for x in xs] == [3.0, 0.5, -2.0][:arity]


def test_the_list_operations_and_op_refuse_what_is_not_theirs():
    from autodiff import nll, pick

    for fn in (pick, nll):
        with pytest.raises(ValueError, match=f"{fn.__name__}: no scores"):
            fn([], 0.0)
    with pytest.raises(TypeError, match="op: expected a Rule, got builtin_function_or_method"):
        op(math.exp)


def test_a_value_rounds_and_truncates_as_its_number_outside_a_local():
    """int(), round(), math.trunc/floor/ceil of a Value are those of its number (inside a
    rule's local they are refused: test_a_local_that_takes_the_number_out_...)."""
    for x in (2.5, -2.5, 0.0, -0.0, 1e300, 3.0):
        v = Value(x)
        assert (int(v), math.trunc(v), math.floor(v), math.ceil(v), round(v)) == (
            int(x),
            math.trunc(x),
            math.floor(x),
            math.ceil(x),
            round(x),
        )
        assert round(Value(x / 7), 3) == round(x / 7, 3)
    for x in (math.inf, math.nan):  # as the float's: OverflowError, ValueError
        for fn in (int, math.trunc, math.floor, math.ceil, round):
            with pytest.raises(type(_raised(fn, x))):
                fn(Value(x))


def _raised(fn, x):
    try:
        fn(x)
    except (OverflowError, ValueError) as e:
        return e
    raise AssertionError(f"{fn} of {x} did not raise")


def test_a_local_prints_as_a_formula_with_the_parentheses_its_order_needs():
    """Each operation a local may use prints as itself, parenthesised where (and only
    where) the order of operations needs it -- a formula that reads differently from
    the local's code would be a wrong derivative on the page -- and numbers with the
    formula's own minus sign."""
    from autodiff.render.formula import local_formulas
    from autodiff.rules import exp, log

    cases = {
        "1 + x": lambda a, out: (1.0 + a,),
        "1 − (x − 2)": lambda a, out: (1.0 - (a - 2.0),),
        "x − 2 − 1": lambda a, out: ((a - 2.0) - 1.0,),
        "2·x": lambda a, out: (2.0 * a,),
        "x": lambda a, out: (1.0 * (a * 1.0),),
        "(x + 1)·y": lambda a, out: ((a + 1.0) * out,),
        "y / (x·x)": lambda a, out: (out / (a * a),),
        "1 / (x + 1)": lambda a, out: (1.0 / (a + 1.0),),
        "−(x + 1)": lambda a, out: (-(a + 1.0),),
        "(x + 1)^2": lambda a, out: ((a + 1.0) ** 2.0,),
        "x^(−1)": lambda a, out: (a**-1.0,),
        "2^x": lambda a, out: (2.0**a,),
        "−x^2": lambda a, out: (-(a**2.0),),
        "(−x)^2": lambda a, out: ((-a) ** 2.0,),
        "exp(x)·log(y)": lambda a, out: (exp(a) * log(out),),
        "sign(x)": lambda a, out: (select(a, -1.0, 0.0, 1.0),),
        "(3 if x > 0, 0 if x = 0, else 2)": lambda a, out: (select(a, 2.0, 0.0, 3.0),),
        "−inf": lambda a, out: (-math.inf,),
        "nan": lambda a, out: (math.nan,),
        "−0.5": lambda a, out: (-0.5,),
        "3": lambda a, out: (3,),
    }
    for k, (text, local) in enumerate(cases.items()):
        rule = Rule(f"printed{k}", "p", math.exp, local)
        assert local_formulas(rule, ["x"], "y", [0.4, 1.5]) == (text,), text
    # an input named by an expression is one operand
    two = Rule("two", "t", lambda a, b: a - b, lambda a, b, out: (1.0 - b, a - (b - out)))
    assert local_formulas(two, ["u", "1−2y"], "L") == ("1 − (1−2y)", "u − ((1−2y) − L)")
