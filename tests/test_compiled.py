"""Parameters in arrays: the compiled batch step at any width, with the numbers of the
per-Value path and Values that are current whenever they are looked at."""

from __future__ import annotations

import importlib
import json
import random
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autodiff import trace
from nn import losses
from nn.module import MLP
from nn.optim import SGD, Adam
from nn.train import compile_batch_step


def bits(xs) -> list[bytes]:
    return [struct.pack("<d", float(x)) for x in xs]


def data(n: int = 64, seed: int = 0):
    rng = random.Random(seed)
    xs = [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(n)]
    ys = [rng.randrange(3) for _ in range(n)]
    return xs, ys


def ce(model):
    return lambda x, y: losses.cross_entropy([model(x)], [y])


@pytest.mark.parametrize("make_opt", [lambda ps: Adam(ps, lr=0.01), lambda ps: SGD(ps, 0.1, 0.9)])
def test_array_steps_give_the_per_value_steps_numbers_bit_for_bit(make_opt):
    xs, ys = data()
    fast, slow = MLP(3, [8, 3], seed=1), MLP(3, [8, 3], seed=1)
    opt_fast = make_opt(fast.parameters())
    # an optimizer over the parameters in another order takes the per-Value path
    opt_slow = make_opt(list(reversed(slow.parameters())))
    step_fast = compile_batch_step(fast, ce(fast), xs, ys, opt_fast)
    step_slow = compile_batch_step(slow, ce(slow), xs, ys, opt_slow)
    for _ in range(6):
        assert bits([step_fast()]) == bits([step_slow()])
    assert bits(p.data for p in fast.parameters()) == bits(p.data for p in slow.parameters())
    assert bits(p.grad for p in fast.parameters()) == bits(p.grad for p in slow.parameters())
    fast_state, slow_state = opt_fast.state_dict(), opt_slow.state_dict()
    for key, value in fast_state.items():
        if isinstance(value, list) and len(value) == len(fast.parameters()):
            assert bits(value) == bits(reversed(slow_state[key])), key
    json.dumps(fast_state)  # plain floats: the optimizer's state saves as JSON


def test_the_model_shows_current_numbers_and_changes_to_it_are_taken_up():
    xs, ys = data()
    model = MLP(3, [8, 3], seed=2)
    opt = SGD(model.parameters(), lr=0.1)
    step = compile_batch_step(model, ce(model), xs, ys, opt)
    before = [p.data for p in model.parameters()]
    step()
    after = [p.data for p in model.parameters()]  # parameters() brings them up to date
    assert after != before
    grads = [p.grad for p in model.parameters()]
    assert any(g != 0.0 for g in grads)
    assert [a - b for a, b in zip(before, after)] == pytest.approx([0.1 * g for g in grads])
    # a weight set by hand, and a whole state loaded, are what the next step starts from
    model.parameters()[0].data = 5.0
    step()
    assert model.parameters()[0].data == pytest.approx(5.0 - 0.1 * model.parameters()[0].grad)
    saved = model.state_dict()
    step()
    model.load_state_dict(saved)
    loss_again = step()
    model.load_state_dict(saved)
    assert step() == loss_again  # the same start, the same step
    # calling the model uses the current numbers
    out = [v.data for v in model(xs[0])]
    twin = MLP(3, [8, 3], seed=0)
    twin.load_state_dict(model.state_dict())
    assert out == [v.data for v in twin(xs[0])]


def test_values_held_from_before_are_current_after_sync_or_any_use():
    xs, ys = data()
    model = MLP(3, [4, 3], seed=3)
    held = model.parameters()
    opt = Adam(held, lr=0.05)
    step = compile_batch_step(model, ce(model), xs, ys, opt)
    start = [p.data for p in held]
    step()
    step.sync()
    assert [p.data for p in held] != start
    moved = [p.data for p in held]
    step()
    opt.zero_grad()  # any use of the optimizer syncs too (and zeroes)
    assert [p.data for p in held] != moved and all(p.grad == 0.0 for p in held)
    opt.step()  # an eager step after array steps: zero gradients, Adam still moves by m
    step()


def test_no_dead_lines_and_inputs_checked_per_array():
    model = MLP(2, [64, 64, 1], seed=0)
    xs = [[0.1 * i, -0.2 * i] for i in range(10)]
    ys = [i % 2 for i in range(10)]
    step = compile_batch_step(
        model, lambda x, y: losses.logistic([model(x)], [y]), xs, ys, SGD(model.parameters(), 0.1)
    )
    n = len(model.parameters())
    columns = [np.array([x[k] for x in xs]) for k in range(2)] + [np.array(ys, dtype=float)]
    shared = np.array([p.data for p in model.parameters()])
    source = step.traced.mean_source([*shared.tolist(), *columns])
    assert len(source.splitlines()) < 120  # was one 'sK = S[K]' line per weight: 4,353
    assert len([ln for ln in source.splitlines() if "= S[" in ln]) <= 2
    traced = step.traced
    mean, grads = traced.mean_value_and_grad_arrays(shared, columns)
    slow_mean, slow = traced.mean_value_and_grad([*shared.tolist(), *columns])
    assert mean == slow_mean and bits(grads) == bits(slow[:n])
    with pytest.raises(ValueError, match="shared inputs as one 1-D array"):
        traced.mean_value_and_grad_arrays(shared[:-1], columns)
    with pytest.raises(ValueError, match="column 1 must be a 1-D array"):
        traced.mean_value_and_grad_arrays(shared, [columns[0], columns[1][:3], columns[2]])
    with pytest.raises(ValueError, match="the batch is empty"):
        traced.mean_value_and_grad_arrays(shared, [c[:0] for c in columns])
    with pytest.raises(TypeError, match="arrays must be float64"):
        traced.mean_value_and_grad_arrays(shared.astype(np.float32), columns)
    # the batch checked once (mean_step): each call the same numbers, its array checked
    run = traced.mean_step(shared, columns)
    for scale in (1.0, 0.5):
        got_mean, got = run(shared * scale)
        want_mean, want = traced.mean_value_and_grad_arrays(shared * scale, columns)
        assert got_mean == want_mean and bits(got) == bits(want)
    for wrong in (shared[:-1], shared.astype(np.float32), shared.reshape(1, -1)):
        with pytest.raises(ValueError, match="shared inputs as one 1-D float64 array"):
            run(wrong)


@given(
    values=st.lists(
        st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
        min_size=1,
        max_size=300,
    ),
    scale=st.sampled_from([1.0, 1e300, 1e-300, -0.0]),
)
def test_a_steps_mean_and_finiteness_on_numpy_are_the_namespaces(values, scale):
    """A batched step reads its mean and whether its gradient is finite through numpy's own
    reductions (autodiff.trace._arrays.reductions: no wrappers around them): the mean is
    the namespace's mean bit for bit (the same sum, then ÷ n; NaN where it is NaN), the
    test the namespace's ``all(isfinite)`` -- at any length, with NaN, ±inf, −0.0,
    subnormals and sums that overflow."""
    import array_api_compat

    from autodiff.trace._arrays import reductions

    xp = array_api_compat.array_namespace(np.zeros(1))
    mean, all_finite = reductions(xp)
    with np.errstate(all="ignore"):
        v = np.array(values) * scale
        want = float(xp.mean(v))
        got = mean(v)
    assert bits(np.array([got])) == bits(np.array([want])) or (got != got and want != want)
    assert all_finite(v) is bool(xp.all(xp.isfinite(v)))
    assert mean(2.5) == 2.5 and mean(np.float64(-0.0)) == 0.0  # a loss the batch does not move


def test_a_nan_in_the_batch_takes_the_exact_path():
    f = trace(lambda v: (v[0] * v[1]).sqrt() + v[2], [1.0, 2.0, 3.0], batched=True)
    shared = np.array([1.0, 2.0])
    mean, grads = f.mean_value_and_grad_arrays(shared, [np.array([1.0, np.nan])])
    slow_mean, slow = f.mean_value_and_grad([1.0, 2.0, np.array([1.0, np.nan])])
    assert np.isnan(mean) and np.isnan(slow_mean)
    assert bits(grads) == bits(slow[:2])


def test_copies_and_pickles_take_the_current_numbers():
    import copy
    import pickle

    xs, ys = data()
    model = MLP(3, [4, 3], seed=5)
    step = compile_batch_step(model, ce(model), xs, ys, SGD(model.parameters(), 0.5))
    step()
    step()
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert [p.data for p in twin.parameters()] == [p.data for p in model.parameters()]


# -- one home for every number (issue: the parameters' numbers are never stale) ----------
# The reference is the per-Value path of the same trace: an optimizer over the same
# parameters in another order sets each .grad and calls opt.step() (bit for bit the array
# path's arithmetic: test_array_steps_give_the_per_value_steps_numbers_bit_for_bit).


def _pair(make_opt=lambda ps: Adam(ps, lr=0.05), seed=7):
    fast, slow = MLP(3, [6, 3], seed=seed), MLP(3, [6, 3], seed=seed)
    opt_fast = make_opt(fast.parameters())
    opt_slow = make_opt(list(reversed(slow.parameters())))
    return fast, opt_fast, slow, opt_slow


def _numbers(model) -> list[bytes]:
    return bits([p.data for p in model.parameters()]) + bits([p.grad for p in model.parameters()])


def test_data_and_grad_read_directly_are_the_per_value_paths():
    xs, ys = data()
    fast, opt_fast, slow, opt_slow = _pair()
    held = fast.parameters()  # Values held from before training
    f = compile_batch_step(fast, ce(fast), xs, ys, opt_fast)
    s = compile_batch_step(slow, ce(slow), xs, ys, opt_slow)
    for _ in range(3):
        assert f() == s()
    assert bits([p.data for p in held]) == bits([p.data for p in slow.parameters()])
    assert bits([p.grad for p in held]) == bits([p.grad for p in slow.parameters()])
    f(), s()
    assert bits([held[-1].grad]) == bits([slow.parameters()[-1].grad])  # .grad first this time
    # arithmetic with a held Value uses its current number, as backward() does
    assert (held[0] * 1.0).data == slow.parameters()[0].data


def test_a_weight_set_by_hand_between_steps_is_what_the_next_step_starts_from():
    xs, ys = data()
    fast, opt_fast, slow, opt_slow = _pair(lambda ps: SGD(ps, 0.1, 0.9))
    held = fast.parameters()
    f = compile_batch_step(fast, ce(fast), xs, ys, opt_fast)
    s = compile_batch_step(slow, ce(slow), xs, ys, opt_slow)
    f(), s()
    held[2].data = 0.75  # a Value held from before
    slow.parameters()[2].data = 0.75
    fast.layers[1].neurons[0].b.data = -0.5  # through the attributes
    slow.layers[1].neurons[0].b.data = -0.5
    assert f() == s()
    f(), s()
    assert _numbers(fast) == _numbers(slow)


@pytest.mark.parametrize("order", ["optimizer first", "model first"])
def test_pickles_and_deep_copies_of_model_and_optimizer_together_are_current(order):
    import copy
    import pickle

    xs, ys = data()
    fast, opt_fast, slow, opt_slow = _pair()
    f = compile_batch_step(fast, ce(fast), xs, ys, opt_fast)
    s = compile_batch_step(slow, ce(slow), xs, ys, opt_slow)
    for _ in range(2):
        f(), s()
    pair = (opt_fast, fast) if order == "optimizer first" else (fast, opt_fast)
    next_losses = []
    for copied in (pickle.loads(pickle.dumps(pair)), copy.deepcopy(pair)):
        opt, model = copied if order == "optimizer first" else copied[::-1]
        assert _numbers(model) == _numbers(slow)
        assert opt.params == model.parameters()  # still one set of Values
        assert opt.state_dict()["t"] == 2
        # and training the copies goes on as the original does
        next_losses.append(compile_batch_step(model, ce(model), xs, ys, opt)())
    assert next_losses == [f()] * 2


def test_state_dict_and_save_after_array_steps_hold_the_current_numbers(tmp_path):
    import nn

    xs, ys = data()
    fast, opt_fast, slow, opt_slow = _pair()
    f = compile_batch_step(fast, ce(fast), xs, ys, opt_fast)
    s = compile_batch_step(slow, ce(slow), xs, ys, opt_slow)
    f(), s()
    assert fast.state_dict() == slow.state_dict()  # not the numbers before the step
    f(), s()
    nn.save(tmp_path / "m.json", fast, opt_fast)  # nothing read in between
    twin = MLP(3, [6, 3], seed=0)
    nn.load(tmp_path / "m.json", twin)
    assert twin.state_dict() == slow.state_dict()


@pytest.mark.parametrize("make_opt", [lambda ps: SGD(ps, 0.1), lambda ps: Adam(ps, lr=0.05)])
def test_minibatch_steps_sharing_one_optimizer_lose_no_update(make_opt):
    xs, ys = data(64)
    fast, opt_fast, slow, opt_slow = _pair(make_opt)
    halves = [(xs[:32], ys[:32]), (xs[32:], ys[32:])]
    fs = [compile_batch_step(fast, ce(fast), x, y, opt_fast) for x, y in halves]
    ss = [compile_batch_step(slow, ce(slow), x, y, opt_slow) for x, y in halves]
    for _ in range(3):
        for f, s in zip(fs, ss):
            assert f() == s()
    assert _numbers(fast) == _numbers(slow)


def test_frozen_parameters_stay_and_the_rest_train_as_per_value():
    xs, ys = data()
    model = MLP(3, [6, 3], seed=4)
    frozen = model.layers[0].parameters()
    before = [p.data for p in frozen]
    opt = Adam(model.layers[1].parameters(), lr=0.05)  # the first layer is frozen
    step = compile_batch_step(model, ce(model), xs, ys, opt)
    twin = MLP(3, [6, 3], seed=4)
    twin_step = compile_batch_step(
        twin, ce(twin), xs, ys, Adam(twin.layers[1].parameters(), lr=0.05)
    )
    for _ in range(3):
        assert step() == twin_step()
    assert [p.data for p in frozen] == before
    assert _numbers(model) == _numbers(twin)


def test_two_optimizers_over_one_model_take_the_numbers_in_turn():
    xs, ys = data()
    fast, _, slow, _ = _pair()
    a, b = SGD(fast.parameters(), 0.1), Adam(fast.parameters(), lr=0.05)
    sa, sb = SGD(slow.parameters()[::-1], 0.1), Adam(slow.parameters()[::-1], lr=0.05)
    fa, fb = (compile_batch_step(fast, ce(fast), xs, ys, o) for o in (a, b))
    ga, gb = (compile_batch_step(slow, ce(slow), xs, ys, o) for o in (sa, sb))
    for _ in range(2):
        assert fa() == ga()
        assert fb() == gb()  # starts from what the SGD step left, not from its own copy
    assert _numbers(fast) == _numbers(slow)


def test_readers_in_other_threads_never_see_numbers_half_handed_back():
    """Handing back clears its flag only after every number is written: a thread that
    reads meanwhile waits, and sees the step's numbers (the last one written included)."""
    from threads import run_together

    xs, ys = data()
    model = MLP(3, [400, 3], seed=6)
    params = model.parameters()
    step = compile_batch_step(model, ce(model), xs, ys, SGD(params, 0.1))
    for _ in range(40):
        step()
        seen: list[list[float]] = []

        def look(seen: list[list[float]] = seen) -> None:
            ps = model.parameters()
            seen.append([ps[-1].data, ps[0].data])

        raised = run_together([look] * 4, switch_interval=1e-6)
        assert raised == []
        expected = [params[-1].data, params[0].data]
        assert all(s == expected for s in seen), (seen, expected)


def test_a_step_dropped_before_anyone_read_still_hands_its_numbers_back():
    xs, ys = data()
    fast, opt_fast, slow, opt_slow = _pair()
    f = compile_batch_step(fast, ce(fast), xs, ys, opt_fast)
    s = compile_batch_step(slow, ce(slow), xs, ys, opt_slow)
    f(), s()
    del f, opt_fast  # the holder goes with the optimizer; its numbers do not
    import gc

    gc.collect()
    assert _numbers(fast) == _numbers(slow)


def test_a_training_step_computes_no_gradient_for_the_data():
    """mean_value_and_grad_arrays (a training step) asks for the weights' gradients only:
    its code has no gA = gU @ Wᵀ for the first layer and returns no per-sample gradient,
    and its numbers are those of the code that computes everything."""
    xs, ys = data()
    model = MLP(3, [8, 3], seed=2)
    step = compile_batch_step(model, ce(model), xs, ys, SGD(model.parameters(), 0.1))
    n = len(model.parameters())
    columns = [np.array([x[k] for x in xs]) for k in range(3)] + [np.array(ys, dtype=float)]
    shared = np.array([p.data for p in model.parameters()])
    every = step.traced.mean_source([*shared.tolist(), *columns])
    lean = step.traced.mean_source([*shared.tolist(), *columns], per_sample_grads=False)
    assert "ga0 = gu0 @" in every and "ga0" not in lean  # the first layer's input gradient
    assert lean.rstrip().endswith("{}")  # no per-sample gradient returned
    mean, grads = step.traced.mean_value_and_grad_arrays(shared, columns)
    slow_mean, slow = step.traced.mean_value_and_grad([*shared.tolist(), *columns])
    assert mean == slow_mean and bits(grads) == bits(slow[:n])


def test_the_loss_and_its_derivatives_come_from_one_call_with_two_calls_numbers(monkeypatch):
    """A cross-entropy step takes nll's loss and derivatives from one call of its
    array_with_local in the forward pass; the same code printed with the two kernels
    called apart gives the same numbers to the bit."""
    xs, ys = data()
    columns = [np.array([x[k] for x in xs]) for k in range(3)] + [np.array(ys, dtype=float)]

    def step_code():
        model = MLP(3, [8, 3], seed=2)
        step = compile_batch_step(model, ce(model), xs, ys, SGD(model.parameters(), 0.1))
        shared = np.array([p.data for p in model.parameters()])
        source = step.traced.mean_source([*shared.tolist(), *columns], per_sample_grads=False)
        for bad in (3.0, 0.5, -1.0, float("nan")):  # and the same error for a label that is not one
            labels = columns[3].copy()
            labels[1] = bad
            with pytest.raises(ValueError, match=rf"nll: the label {bad!r} is not a class index"):
                step.traced.mean_value_and_grad_arrays(shared, [*columns[:3], labels])
        return source, step.traced.mean_value_and_grad_arrays(shared, columns)

    source, (mean, grads) = step_code()
    assert "= _b_nll(" in source and "_l_nll" not in source
    layers = importlib.import_module("autodiff.trace._layers")
    kernels = layers.kernels
    monkeypatch.setattr(layers, "kernels", lambda xp: (*kernels(xp)[:3], {}))
    source, (mean_apart, grads_apart) = step_code()
    assert "= _l_nll(" in source and "_b_nll" not in source
    assert mean == mean_apart and bits(grads) == bits(grads_apart)


def test_the_batch_as_one_matrix_gives_the_columns_numbers_and_is_not_restacked():
    xs, ys = data()
    model = MLP(3, [8, 3], seed=2)
    step = compile_batch_step(model, ce(model), xs, ys, SGD(model.parameters(), 0.1))
    traced = step.traced
    X = np.array(xs, dtype=np.float64)
    y = np.array(ys, dtype=np.float64)
    columns = [X[:, k].copy() for k in range(3)] + [y]
    shared = np.array([p.data for p in model.parameters()])
    by_matrix = traced.mean_value_and_grad_arrays(shared, [X, y])
    by_columns = traced.mean_value_and_grad_arrays(shared, columns)
    assert by_matrix[0] == by_columns[0] and bits(by_matrix[1]) == bits(by_columns[1])
    sources = [
        p.source for k, p in traced._programs.items() if k[0] == "mean" and max(k[4] or (1,)) > 1
    ]
    # the first layer reads the matrix as given: no column of it is taken out, none stacked
    assert sources and all("a0 = X0" in s and "X0[:, " not in s for s in sources)
    X[5, 1] = np.nan  # a NaN sample: the exact path, the matrix cut back into columns
    columns[1][5] = np.nan
    nan_m = traced.mean_value_and_grad_arrays(shared, [X, y])
    nan_c = traced.mean_value_and_grad_arrays(shared, columns)
    assert bits([nan_m[0], *nan_m[1]]) == bits([nan_c[0], *nan_c[1]])
    with pytest.raises(ValueError, match="column 1 must be a 1-D array"):  # 10 rows, 64 labels
        traced.mean_value_and_grad_arrays(shared, [X[:10], y])


def test_a_model_of_one_input_trains_as_the_per_value_path():
    """One input: the batch is an (n × 1) matrix, the one input's column (it once failed
    with "cannot reshape array of size 10 into shape (1,1)")."""
    xs = [[0.1 * i - 0.4] for i in range(10)]
    ys = [0.3 * i for i in range(10)]
    fast, slow = MLP(1, [4, 1], seed=3), MLP(1, [4, 1], seed=3)
    opt_fast = Adam(fast.parameters(), lr=0.05)
    opt_slow = Adam(list(reversed(slow.parameters())), lr=0.05)  # the per-Value path
    step_fast = compile_batch_step(fast, lambda x, y: losses.mse([fast(x)], [y]), xs, ys, opt_fast)
    step_slow = compile_batch_step(slow, lambda x, y: losses.mse([slow(x)], [y]), xs, ys, opt_slow)
    for _ in range(5):
        assert bits([step_fast()]) == bits([step_slow()])
    assert bits(p.data for p in fast.parameters()) == bits(p.data for p in slow.parameters())


_REUSE = """
import ctypes, resource
from nn.compiled import keep_freed_memory

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def faults_of_a_fresh_block():  # 96 MiB from malloc, written whole (24,576 pages of 4 KiB),
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt  # freed: as XLA's are
    block = libc.malloc(96 << 20)
    ctypes.memset(block, 1, 96 << 20)
    libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of_a_fresh_block()
alone = faults_of_a_fresh_block()
kept = keep_freed_memory()
faults_of_a_fresh_block()
after = faults_of_a_fresh_block()
print(kept, alone, after)
"""


@pytest.mark.skipif(
    __import__("platform").libc_ver()[0] != "glibc", reason="keep_freed_memory acts on glibc only"
)
def test_keep_freed_memory_reuses_blocks_larger_than_glibcs_mmap_threshold_cap() -> None:
    # glibc caps M_MMAP_THRESHOLD at 32 MiB, so a block larger than that (XLA's temporaries
    # of a step, a batch of 10⁶) was mapped afresh and faulted in page by page at every
    # step; with mmap turned off it comes from the heap and the next one reuses it
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _REUSE], capture_output=True, text=True, check=True
    ).stdout.split()
    kept, alone, after = out[0] == "True", int(out[1]), int(out[2])
    assert kept
    assert alone > 10_000, alone  # the block mapped anew each time: the test can fail
    assert after < 1_000, after  # the same memory again: no page faulted in
