"""Threads and asyncio tasks: grad mode, traces, backward and bound models, each its own."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest
from test_functional import CHAIN_CASES, all_paths
from test_saving import bits
from threads import run_together

from autodiff import Value, dot, hessian, is_grad_enabled, no_grad, trace
from nn import losses
from nn.module import MLP

# -- threads: the same answers in a second thread --------------------------------------------------


def test_the_policy_holds_in_other_threads():
    results = {}

    def run(name):
        results[name] = {k: bits(v) for k, v in all_paths(*CHAIN_CASES[name]).items()}

    assert run_together([lambda n=n: run(n) for n in CHAIN_CASES]) == []
    assert set(results) == set(CHAIN_CASES)
    for name, answers in results.items():
        assert len({tuple(v) for v in answers.values()}) == 1, name


# -- grad mode and threads --------------------------------------------------------------------


def test_another_threads_no_grad_does_not_stop_this_one_recording():
    inside, done = threading.Event(), threading.Event()

    def other():
        with no_grad():
            inside.set()
            done.wait(5)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(5)
    try:
        x = Value(3.0)
        y = x * x
        y.backward()
        assert y.parents == (x, x) and x.grad == 6.0  # was: nothing recorded, grad 0.0
    finally:
        done.set()
        t.join()


def test_overlapping_no_grad_blocks_in_two_threads_exiting_out_of_order():
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a():
        with no_grad():
            a_in.set()
            b_in.wait(5)
        a_out.set()  # A leaves first, although it entered first

    def b():
        a_in.wait(5)
        with no_grad():
            b_in.set()
            a_out.wait(5)

    assert run_together([a, b]) == []
    assert is_grad_enabled()  # was: off for the whole process
    x = Value(2.0)
    (x * x).backward()
    assert x.grad == 4.0


def test_asyncio_tasks_each_have_their_own_grad_mode():
    async def quiet(entered, release):
        with no_grad():
            entered.set()
            await release.wait()
            return is_grad_enabled()

    async def loud(entered, release):
        await entered.wait()
        x = Value(2.0)
        y = x * x  # another task is inside no_grad, on this same thread
        release.set()
        return y.parents == (x, x)

    async def main():
        entered, release = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(quiet(entered, release), loud(entered, release))

    assert asyncio.run(main()) == [False, True]


def test_two_threads_tracing_at_once_both_get_their_own_function():
    barrier = threading.Barrier(2, timeout=5)
    results: dict[str, object] = {}

    def make(name, k):
        def f(v):
            y = v[0] * k
            barrier.wait()  # both traces are running now
            return (y + v[1]).tanh()

        def run():
            try:
                traced = trace(f, [0.3, 0.2])
                results[name] = traced.value_and_grad([0.5, -0.25])
            except BaseException as e:  # pragma: no cover - reported below
                results[name] = e

        return run

    assert run_together([make("a", 2.0), make("b", -3.0)]) == []
    for name, k in (("a", 2.0), ("b", -3.0)):
        x, y = Value(0.5), Value(-0.25)
        out = (x * k + y).tanh()
        out.backward()
        assert results[name] == (out.data, [x.grad, y.grad])


def _workload(seed: int) -> tuple:
    """Build, back-propagate, differentiate twice and trace one random network."""
    rng = random.Random(seed)
    model = MLP(3, [5, 4, 1], activation="tanh", seed=seed)
    xs = [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(6)]
    ys = [rng.uniform(-1, 1) for _ in range(6)]
    loss = losses.mse([model(x) for x in xs], ys)
    model.zero_grad()
    loss.backward()
    first = [p.grad for p in model.parameters()]
    params = model.parameters()[:4]
    with no_grad():
        _ = model(xs[0])  # a no_grad block in every thread
    h = hessian(lambda v: dot(v, v).tanh() * v[0], [p.data for p in params])
    traced = trace(lambda v: (v[0] * v[1] - v[2]).sigmoid() + v[3].exp(), [0.1, 0.2, 0.3, 0.4])
    return loss.data, first, h, traced.value_and_grad([0.5, -0.5, 0.25, 0.125])


def test_many_threads_get_bit_for_bit_what_one_thread_gets():
    seeds = list(range(12))
    expected = {s: _workload(s) for s in seeds}
    got: dict[int, object] = {}
    barrier = threading.Barrier(len(seeds), timeout=30)

    def run(s):
        barrier.wait()
        for _ in range(3):
            try:
                got[s] = _workload(s)
            except BaseException as e:  # pragma: no cover - reported below
                got[s] = e
                return
            if got[s] != expected[s]:
                return

    # switch threads as often as possible
    assert run_together([lambda s=s: run(s) for s in seeds], switch_interval=1e-5) == []
    assert got == expected
    assert is_grad_enabled()


def test_threads_back_propagating_through_shared_parameters_add_up():
    model = MLP(2, [4, 1], seed=0)
    xs = [[0.1 * i, -0.2 * i] for i in range(8)]

    def one(x):
        model(x).backward()

    model.zero_grad()
    for x in xs:
        one(x)
    serial = [p.grad for p in model.parameters()]
    model.zero_grad()
    assert run_together([lambda x=x: one(x) for x in xs]) == []
    # backward passes are serialized: the sums are right, in some order of the samples
    assert [p.grad for p in model.parameters()] == pytest.approx(serial, rel=1e-12, abs=1e-15)


def test_threads_tracing_one_model_at_once_leave_it_intact():
    """Module.bound swaps a model's parameters in place: two threads binding at once used to
    interleave the swaps and could leave the model holding a trace's inputs for good. One
    thread binds at a time now; every trace is right and the parameters come back."""
    model = MLP(2, [6, 1], seed=3)
    own = model.parameters()
    start = [p.data for p in own]
    xs, ys = [[0.5, -1.0], [1.5, 0.25], [-0.5, 0.75]], [1, 0, 1]

    def f(ps):
        with model.bound(ps):
            return losses.logistic([model(x) for x in xs], ys)

    expected = trace(f, start).value_and_grad(start)
    errors: list[str] = []

    def work() -> None:
        try:
            for _ in range(15):
                assert trace(f, start).value_and_grad(start) == expected
        except Exception as e:  # reported below
            errors.append(repr(e))

    # switch threads often: inside bound's swaps too
    assert run_together([work] * 6, switch_interval=1e-5) == []
    assert errors == []
    assert [id(p) for p in model.parameters()] == [id(p) for p in own]


def test_using_a_model_another_thread_has_bound_raises_and_bound_waits():
    model = MLP(2, [3, 1], seed=0)
    own = model.parameters()
    inside, release = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def binder() -> None:
        with model.bound([Value(0.0) for _ in own]):
            inside.set()
            release.wait(10)

    def other_binder() -> None:
        with model.bound([Value(1.0) for _ in own]):
            seen["second bound ran with"] = [p.data for p in model.parameters()]

    a = threading.Thread(target=binder)
    a.start()
    assert inside.wait(10)
    inner = model.layers[0]  # every module inside is marked, not only the top one
    for use in (
        lambda: model([1.0, 2.0]),
        model.parameters,
        model.named_parameters,
        lambda: inner([1.0, 2.0]),
        inner.parameters,
        lambda: inner.neurons[2]([1.0, 2.0]),
    ):
        with pytest.raises(RuntimeError, match="another thread has replaced its parameters"):
            use()
    b = threading.Thread(target=other_binder)
    b.start()
    b.join(0.2)
    assert b.is_alive()  # waiting for the first binding to end, not interleaving with it
    release.set()
    a.join(10)
    b.join(10)
    assert seen["second bound ran with"] == [1.0] * len(own)
    assert [id(p) for p in model.parameters()] == [id(p) for p in own]
    model([1.0, 2.0])  # and usable from here again
