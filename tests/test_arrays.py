"""Parameters in arrays: the compiled batch step at any width, with the numbers of the
per-Value path and Values that are current whenever they are looked at."""

from __future__ import annotations

import json
import random
import struct

import numpy as np
import pytest

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
