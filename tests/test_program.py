"""The trace's one program: proven against the engine once, and every printer against it.

Every kind of generated code prints the same :class:`autodiff.trace.Program`: forward
statements, then adjoint statements in ``Value.backward``'s order, each rule written
once as a template or a run-time call. These tests hold the program itself to the
engine bit for bit (run on floats by ``Program.run``), and each printer -- straight
lines, grouped numpy, batched per sample -- to the program, bit for bit.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from graphs import Graph, graphs
from hypothesis import assume, given
from hypothesis import strategies as st
from threads import run_together

from autodiff import Rule, Value, op, trace
from autodiff.trace import Program
from autodiff.trace._program import Grad, Local, Sym, fill, forward_form, local_forms
from nn import lecture


def bits(xs):
    """Floats as their bits: −0.0 is not 0.0 here, and NaN equals NaN."""
    return [struct.pack("<d", x) for x in xs]


def eager(f, point):
    xs = [Value(x) for x in point]
    y = f(xs)
    y.backward()
    return y.data, [x.grad for x in xs]


@given(graphs(), st.lists(st.floats(-0.3, 0.3), min_size=3, max_size=3))
def test_the_program_is_the_engine_bit_for_bit_and_every_printer_is_the_program(g: Graph, shift):
    other = tuple(x + d for x, d in zip(g.point, shift))
    try:
        e_value, e_grads = eager(g, other)
    except (OverflowError, ValueError, ZeroDivisionError):
        assume(False)
    lines = trace(g, g.point, mode="lines")
    program = lines.program
    value, grads = program.run(other)
    assert bits([value, *grads]) == bits([e_value, *e_grads])  # the program is the engine
    groups = trace(g, g.point, mode="groups")
    for traced in (lines, groups):  # and each printer is the program
        assert bits([traced(other)]) == bits([value])
        assert bits(list(traced.value_and_grad(other)[1])) == bits(grads)
    # the batched per-sample code prints it too, with numpy's kernels: exp, tanh and pow
    # may differ from Python's by an ulp or so, and an error of an ulp of an intermediate
    # number can be all that is left of a result that cancels (a − b with a ≈ b). So the
    # tolerance is relative to the largest magnitude in the computation, not to the
    # result: 1e-12 of it (~4500 ulp, room for every node of these graphs to be 1 ulp off
    # and the errors to add), whatever the neighbouring tests did to hypothesis' choices
    batched = trace(g, g.point, batched=True)
    b_value, b_grads = batched.value_and_grad([np.array([x]) for x in other])
    assert b_value.tolist() == pytest.approx([value], rel=1e-12, abs=1e-12 * _scale(g, other))
    assert [b[0] for b in b_grads] == pytest.approx(grads, rel=1e-12, abs=1e-12 * _scale(g, other))


def _scale(g: Graph, point) -> float:
    """The largest magnitude among a graph's values and gradients at `point` (at least 1)."""
    from autodiff import topological_order
    from autodiff.functional import adjoints

    xs = [Value(x) for x in point]
    y = g(xs)
    found = [abs(v.data) for v in topological_order(y)]
    found += [abs(a) for a in adjoints(y).values()]
    return max([1.0, *(m for m in found if math.isfinite(m))])


def test_adjoints_follow_backwards_order_and_each_gradient_its_users_order():
    xs = [Value(x) for x in (1.0, -2.0, 0.5)]

    def f(v):
        a = v[0] * v[1]
        b = a.tanh() + a.relu()  # a has two users, a diamond
        return (b - 1.0) * (b + v[2]) + v[2] ** v[0]

    traced = trace(f, [x.data for x in xs])
    program = traced.program
    tape = program.tape
    steps = [st for st in program.adjoints]
    visited = [st.slot for st in steps]
    # statements come in the order backward() visits the nodes, root first
    expected = [s for s in tape.order if tape.needs[s]]
    assert [s for i, s in enumerate(visited) if i == 0 or s != visited[i - 1]] == expected
    # each gradient's terms: its users in the order backward() reaches them, input by input
    users: dict[int, list[tuple[int, int]]] = {}
    for c in tape.order:
        if tape.needs[c]:
            for k, a in enumerate(tape.args[c]):
                if tape.needs[a]:
                    users.setdefault(a, []).append((c, k))
    for st_ in steps:
        if isinstance(st_, Grad):
            assert [(c, k) for c, k, _ in st_.terms] == users[st_.slot]
    # relu's local branches on the sign: printed as the one helper every kind of code has;
    # pow's branches on both numbers at once: a call; tanh's is a formula of the output
    by_name = {tape.op[st_.slot]: st_ for st_ in steps if isinstance(st_, Local)}
    assert [d.code for d in by_name["relu"].forms] == ["_select({0}, 0.0, 0.0, 1.0)"]
    assert by_name["pow"].forms is None
    assert [d.code for d in by_name["tanh"].forms] == ["1.0 - {1} * {1}"]
    # a − 1.0 passes its gradient on unchanged: another name for it, not a statement
    assert any(isinstance(s, Grad) and s.alias for s in steps)


def test_templates_are_decided_once_per_rule_and_arity_for_every_printer(restore_rules):
    on_symbols = {"forward": 0, "local": 0}

    def forward(a):
        on_symbols["forward"] += isinstance(a, Sym)
        return math.log1p(a)

    def local(a, out):
        on_symbols["local"] += isinstance(a, Sym)
        return (1 / (1 + a),)

    log1p = op(Rule("log1p_once", "log1p", forward, local, array=lambda xp, a: xp.log1p(a)))
    point = [0.5, 1.5]

    def f(v):
        return log1p(v[0]) * log1p(v[1]) + log1p(v[0] * v[1])

    traced = trace(f, point)
    traced.value_and_grad(point)
    trace(f, point, mode="groups").value_and_grad(point)
    batched = trace(f, point, batched=True)
    batched.value_and_grad([np.array([0.5, 0.25]), 1.5])
    batched.mean_value_and_grad([np.array([0.5, 0.25]), 1.5])
    # three nodes, four kinds of code: each function asked once, on symbols, in all
    assert on_symbols == {"forward": 1, "local": 1}
    assert bits(traced.program.run(point)[1]) == bits(eager(f, point)[1])


def test_fill_parenthesises_what_would_change_the_order_of_operations():
    form = forward_form("sub", 2)
    assert form is not None and form.code == "{0} - {1}"
    assert fill(form, [Sym("x"), Sym("y - z", 1)]).code == "x - (y - z)"
    assert fill(form, [Sym("x"), Sym.const(-2.0)]).code == "x - -2.0"
    assert eval(fill(form, [Sym("5.0"), Sym("1.0 - 3.0", 1)]).code) == 7.0
    forms = local_forms("tanh", 1)
    assert forms is not None
    assert eval(fill(forms[0], [Sym("0.0"), Sym("0.5 + 0.25", 1)]).code) == 1.0 - 0.75 * 0.75


def test_the_lecture_networks_program_runs_as_the_engine():
    def f(v):
        W = [[v[0], v[1]], [v[2], v[3]]]
        return lecture.forward([v[9], v[10]], 1, W, v[4:6], v[6:8], v[8]).L

    start = [1.0, 1.0, 1.0, 1.0, 0.0, -1.0, 1.0, -2.0, 0.0, 1.0, 0.0]
    program: Program = trace(f, start).program
    value, grads = program.run(start)
    e_value, e_grads = eager(f, start)
    assert bits([value, *grads]) == bits([e_value, *e_grads])


def test_the_one_sort_is_safe_across_threads():
    """topological_order counts in the nodes, under the lock backward takes: threads that
    trace, sort, take grad() and back-propagate through shared Values at once get the same
    numbers, and every counter is back at 0."""

    from autodiff import grad, topological_order
    from nn import MLP

    model = MLP(3, [8, 1], seed=0)
    params = model.parameters()
    x = [Value(0.3), Value(-0.2), Value(0.9)]

    def f(v):  # the same graph shape, on the trace's own inputs
        return (v[0] * v[1] - v[2]).tanh() * v[0] + v[1].relu()

    start = [0.5, -0.25, 1.5]
    expected = trace(f, start).value_and_grad(start)
    reference = [g.data for g in grad(model(x).tanh() * 2.0, params)]
    errors: list[str] = []

    def work() -> None:
        try:
            for _ in range(20):
                L = model(x).tanh() * 2.0
                order = topological_order(L)
                assert order[0] is L and len({id(v) for v in order}) == len(order)
                assert trace(f, start).value_and_grad(start) == expected
                assert [g.data for g in grad(L, params)] == reference
                L.backward()
        except Exception as e:  # reported below: an assert in a thread does not fail a test
            errors.append(repr(e))

    assert run_together([work] * 6) == []
    assert errors == []
    assert all(v._uses == 0 for v in [*params, *x])


@given(graphs())
def test_backwards_fused_loop_is_the_one_chain_rule_evaluator_bit_for_bit(g: Graph):
    """backward() keeps its fused loop for speed; every other path runs
    functional.chain_rule. Pinned: the .grad backward() leaves on every node, interior
    ones included, is what adjoints() (the shared evaluator) computes, to the bit."""
    from autodiff import topological_order
    from autodiff.functional import adjoints

    xs = [Value(x) for x in g.point]
    try:
        y = g(xs)
    except (OverflowError, ValueError, ZeroDivisionError):
        assume(False)
    shared = adjoints(y)
    y.backward()
    nodes = topological_order(y)
    assert bits([v.grad for v in nodes]) == bits([shared[v] for v in nodes])


def test_every_printer_prints_the_programs_adjoints_as_edited():
    """Issue 27.1: the printers read the program's adjoint statements, they do not work
    the backward pass out again. Edit the program by hand -- one gradient's terms in
    another order, a −1 shortcut removed -- and straight lines, grouped numpy and the
    batched mean all follow the edit: the same new numbers, bit for bit."""
    import itertools

    from autodiff.trace._grouped import GroupedCode
    from autodiff.trace._layers import MeanCode
    from autodiff.trace._lines import LineCode
    from autodiff.trace._traced import Traced

    def f(v):  # u has three users whose terms cancel differently in different orders
        u = v[0] * v[1]
        return u * 1e16 + u * -1e16 + u * 1.0 - v[2]

    point, names = [1.0, 1.0, 3.0], ["x", "y", "z"]
    program = trace(f, point, mode="lines").program
    tape = program.tape

    def printed(prog):
        n = tape.n_ops
        lines = Traced(LineCode(prog, names), 3, n, "lines").value_and_grad(point)[1]
        groups = Traced(GroupedCode(prog, np), 3, n, "groups").value_and_grad(point)[1]
        mean = MeanCode(prog, names, (True, False, False), np)
        _, shared, per_sample = mean.run([np.array([1.0]), 1.0, 3.0], 1, None)
        batched = [float(per_sample[0][0]), *shared.tolist()]
        return bits(lines), bits(groups), bits(batched), mean.source

    def edited(change):
        prog = Program(tape)
        prog._adjoints = [change(st) if isinstance(st, Grad) else st for st in program.adjoints]
        return prog

    before = printed(program)
    assert before[0] == before[1] == before[2]
    u = next(st for st in program.adjoints if isinstance(st, Grad) and len(st.terms) == 3)
    for terms in itertools.permutations(u.terms):
        after = printed(edited(lambda st, t=list(terms): st._replace(terms=t) if st is u else st))
        if after[0] != before[0]:
            break
    assert after[0] != before[0]  # an order that rounds differently: found
    assert after[0] == after[1] == after[2]  # and every printer follows it
    # the −1 shortcut of z's term (∂(a − z)/∂z = −1, printed as −g) removed: "-1.0 * g"
    z = next(st for st in program.adjoints if isinstance(st, Grad) and st.slot == 2)
    assert z.terms[0][2] == -1.0 and "-1.0 *" not in before[3]
    unshortcut = edited(lambda st: st._replace(terms=[(*st.terms[0][:2], None)]) if st is z else st)
    lines_source = LineCode(unshortcut, names).value_and_grad_source()
    assert "-1.0 * g" in lines_source and "-1.0 * " in printed(unshortcut)[3]


@given(graphs())
def test_the_vectorized_terms_are_the_adjoint_statements_terms(g: Graph):
    """Program.term_arrays computes the gradients' terms with numpy for grouped code, where
    the adjoint statements are not made (a 10⁵-node graph: a Python pass would cost more
    than the rest of the compile); pinned to the statements, term by term, in order."""
    try:
        tape = trace(g, g.point, mode="lines").program.tape
    except (OverflowError, ValueError, ZeroDivisionError):
        assume(False)
    fast = Program(tape).term_arrays(np)  # no statements made: the vectorized pass
    made = Program(tape)
    statements = made.adjoints  # made: the arrays are then read off them
    slow = made.term_arrays(np)
    assert [a.tolist() for a in fast] == [a.tolist() for a in slow]
    assert len(fast[0]) == sum(isinstance(st, Grad) for st in statements)


@given(graphs())
def test_a_gradients_terms_read_without_the_statements_are_the_statements(g: Graph):
    """Program.terms_of, unit and local_order let the batched mean read a few gradients'
    terms (with their ±1 shortcuts) without making every statement of a large program:
    pinned to the statements, term by term, shortcut by shortcut."""
    try:
        program = trace(g, g.point, mode="lines").program
    except (OverflowError, ValueError, ZeroDivisionError):
        assume(False)
    fresh = Program(program.tape)  # no statements made
    statements = program.adjoints
    assert fresh.local_order == [s.slot for s in statements if isinstance(s, Local)]
    for stmt in statements:
        if isinstance(stmt, Grad):
            assert fresh.terms_of(stmt.slot) == list(stmt.terms), stmt.slot
            for c, k, u in stmt.terms:  # one term's shortcut, by itself, as the statement's
                assert fresh.unit(c, k) == u and program.unit(c, k) == u, (c, k)
    assert fresh._adjoints is None  # and none were made for it
