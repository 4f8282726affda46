"""Layer finding in the batched mean: awkward graphs against eager, and one compiled
program run from several threads at once.

The batched mean groups ``dot`` nodes that read the same per-sample inputs with shared
weights into matrix products. Each model here is built to trip a wrong grouping: the
same inputs read in different orders, a layer read in another order than it was made,
an exp whose derivative is its own output, a dot written the other way round (inputs first,
weights second), one input read twice, a layer that also reads the layer below it (a
skip), a weight shared by two layers, weights that are constants. Each is checked against
the eager engine: the mean of the per-sample losses and its gradient, built and
back-propagated one sample at a time. Tolerance: the grouped code sums each dot as a
matrix product (BLAS, in its own order), so 1e-12 relative (~4500 ulp), far below any
wrong grouping's error.
"""

from __future__ import annotations

import importlib
import itertools
import random
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from threads import run_together

from autodiff import Value, dot, logsumexp, nll, pick, trace

N_W = 12  # shared inputs (weights) per model; then 3 per-sample inputs


def _models():
    """name -> f(v): v[:N_W] shared weights, v[N_W:] one sample's three inputs."""

    def orders(v):  # the same inputs in two orders: two layers, not one
        w, x = v[:N_W], v[N_W:]
        a = [dot(w[0:3], x, w[3]).tanh(), dot(w[4:7], [x[2], x[0], x[1]], w[7]).tanh()]
        return dot([w[8], w[9]], a, w[10]) ** 2

    def swapped(v):  # a layer reading the layer below in another order than it was made
        w, x = v[:N_W], v[N_W:]
        h = [dot(w[0:3], x, w[3]).tanh(), dot(w[4:7], x, w[7]).tanh()]
        # (one of the two orders differs from the group's, whichever the tape made)
        return dot([w[8], w[9]], [h[1], h[0]], w[10]).exp() + dot([w[11], w[9]], h, w[10]).tanh()

    def transposed(v):  # dot(inputs, weights): the weights in the second half
        w, x = v[:N_W], v[N_W:]
        a = [dot(x, w[0:3], w[3]).relu(), dot(w[4:7], x, w[7]).relu()]
        return (dot(a, [w[8], w[9]], w[10]) - 0.5) ** 2

    def repeated(v):  # one input read twice by the same dot
        w, x = v[:N_W], v[N_W:]
        a = [dot(w[0:3], [x[0], x[0], x[1]], w[3]).sigmoid(), dot(w[4:7], [x[0], x[0], x[1]], w[7])]
        return dot([w[8], w[9]], a, w[10]).softplus()

    def skip(v):  # the second layer reads the inputs and the first layer
        w, x = v[:N_W], v[N_W:]
        h = [dot(w[0:3], x, w[3]).tanh(), dot(w[4:7], x, w[7]).tanh()]
        return dot([w[8], w[9], w[11]], [h[0], h[1], x[2]], w[10]).exp()

    def tied(v):  # one weight in two layers, and a per-sample input as a bias
        w, x = v[:N_W], v[N_W:]
        h = [dot(w[0:3], x, w[3]).tanh(), dot([w[0], w[5], w[6]], x, x[1]).tanh()]
        return (dot([w[0], w[9]], h, w[10]) * x[2]) ** 2

    # where the weights lie among the shared inputs decides how the code reads them: a
    # view of the parameter array (neuron by neuron, or input by input) or a gather

    def neurons(v):  # each neuron's weights then its bias, as an MLP lists them; w[11] unused
        w, x = v[:N_W], v[N_W:]
        h = [dot(w[0:3], x, w[3]).relu(), dot(w[4:7], x, w[7]).relu()]
        return dot(w[8:10], h, w[10]).softplus()

    def by_input(v):  # the weights input by input (a 3 × 2 matrix), the biases after them
        w, x = v[:N_W], v[N_W:]
        h = [dot(w[0:6:2], x, w[6]).tanh(), dot(w[1:6:2], x, w[7]).tanh()]
        return dot(w[8:10], h, w[10]) ** 2

    def bias_first(v):  # each neuron's bias before its weights: gathered
        w, x = v[:N_W], v[N_W:]
        h = [dot(w[1:4], x, w[0]).sigmoid(), dot(w[5:8], x, w[4]).sigmoid()]
        return dot(w[9:11], h, w[8]).exp()

    def classes(v):  # three class scores, one matrix: the multi-class rules take it whole
        w, x = v[:N_W], v[N_W:]
        z = [dot(w[0:2], x[:2], w[2]), dot(w[3:5], x[:2], w[5]), dot(w[6:8], x[:2], w[8])]
        y = x[2]  # the label: a class index (_data makes one for this model)
        return nll(z, y) + 0.5 * logsumexp(z) - 0.25 * pick(z, y) + w[9] * w[10]

    def constants(v):  # a fixed first layer (constants: no gradient when the data needs
        w, x = v[:N_W], v[N_W:]  # none), then constants among the weights
        h = [dot([0.3, -0.2, 0.5], x, 0.1).relu(), dot([1.5, 0.25, -0.75], x, -0.2).relu()]
        return dot([w[2], 0.5], h, w[3]).tanh() + dot([0.25, w[2]], h, w[0]) ** 2 * w[1]

    models = (orders, swapped, transposed, repeated, skip, tied)
    return {f.__name__: f for f in (*models, neurons, by_input, bias_first, classes, constants)}


# how each of those reads its first layer's weights (and the others: as they come)
_LAYOUT = {
    "neurons": "B0 = _xp.reshape(P[0:8], (2, 4))",
    "by_input": "W0 = _xp.reshape(P[0:6], (3, 2))",
    "bias_first": "W0 = _xp.reshape(_xp.take(P, ",
    "classes": "_b_nll(",
    # constant weights gathered from the constants, a mix of both from the two end to end
    "constants": ("W0 = _xp.reshape(_xp.take(_K, ", "W2 = _xp.reshape(_xp.take(S, "),
}


def _eager(f, weights, batch):
    """The mean of f over the batch and its gradient in the weights, one sample at a time."""
    total, grads = 0.0, [0.0] * len(weights)
    for sample in batch:
        ws = [Value(w) for w in weights]
        y = f([*ws, *(Value(x) for x in sample)])
        y.backward()
        total += y.data
        grads = [g + w.grad for g, w in zip(grads, ws)]
    n = len(batch)
    return total / n, [g / n for g in grads]


def _data(seed, labels=False):
    """Weights and a batch of 40 samples; with `labels` each sample's last input a class
    index (0, 1 or 2)."""
    rng = random.Random(seed)
    weights = [rng.uniform(-1, 1) for _ in range(N_W)]
    batch = [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(40)]
    for sample in batch if labels else []:
        sample[2] = float(rng.randrange(3))
    return weights, batch


@pytest.mark.parametrize("name", sorted(_models()))
def test_awkward_layers_give_eagers_mean_and_gradient(name, monkeypatch):
    # (every layer of two neurons or more gathered in × out by mean_function's code, not
    # only the large ones: MeanCode._by_input)
    monkeypatch.setattr(importlib.import_module("autodiff.trace._layers"), "BY_INPUT_MIN", 1)
    f = _models()[name]
    weights, batch = _data(1, labels=name == "classes")
    traced = trace(f, [*weights, *batch[0]], batched=True)
    columns = [np.array([s[k] for s in batch]) for k in range(3)]
    mean, grads = traced.mean_value_and_grad([*weights, *columns])
    e_mean, e_grads = _eager(f, weights, batch)
    assert mean == pytest.approx(e_mean, rel=1e-12)
    assert grads[:N_W] == pytest.approx(e_grads, rel=1e-12, abs=1e-15)
    # the training step's code (no data gradient, the batch as one matrix) agrees too
    X = np.array(batch, dtype=np.float64)
    a_mean, a_grads = traced.mean_value_and_grad_arrays(np.array(weights), [X])
    assert a_mean == pytest.approx(e_mean, rel=1e-12)
    assert a_grads.tolist() == pytest.approx(e_grads, rel=1e-12, abs=1e-15)
    # and the code a compiler is given whole (mean_function): a layer whose weights lie
    # neuron by neuron is read as an (in × out) matrix gathered from P inside it, its
    # gradient handed back in P's order
    P = np.array(weights)
    f_mean, f_grads = traced.mean_function(P, [X])(P, [X])
    assert float(f_mean) == pytest.approx(e_mean, rel=1e-12)
    assert f_grads.tolist() == pytest.approx(e_grads, rel=1e-12, abs=1e-15)
    if name == "neurons":
        (whole,) = [p.source for k, p in traced._programs.items() if k[0] == "mean" and k[-1]]
        assert "P = _xp.take(P, _perm, axis=0)" in whole
        assert "W0 = _xp.reshape(P[0:6], (3, 2))" in whole  # in × out, then the biases
        assert "_shared = _xp.take(_shared, _unperm, axis=0)" in whole
    if name in _LAYOUT:  # the path the model is here for is the one taken
        wanted = _LAYOUT[name]
        for text in (wanted,) if isinstance(wanted, str) else wanted:
            assert text in traced.mean_source([*weights, *columns])


def test_the_multi_class_rules_get_the_score_matrix_whole_in_one_call():
    """A row of scores that a layer holds whole goes to the rule's array kernels as that
    matrix -- one call for nll's loss and derivatives at once, its derivatives one matrix --
    and the numbers are those of the same kernels given one column per class."""
    weights, batch = _data(2, labels=True)
    traced = trace(_models()["classes"], [*weights, *batch[0]], batched=True)
    columns = [np.array([s[k] for s in batch]) for k in range(3)]
    source = traced.mean_source([*weights, *columns])
    # (the loss and its derivatives at once: the derivatives are needed)
    assert source.count("_b_nll(") == 1 and re.search(r"v\d+, d\d+ = _b_nll\(\w+, u\d+\)", source)
    assert "_f_nll" not in source and "_l_nll" not in source
    assert re.search(r"_f_logsumexp\(u\d+\)", source) and re.search(
        r"_l_logsumexp\(u\d+, v\d+\)", source
    )
    assert "u0[:, " not in source  # no class column read one by one
    import array_api_compat.numpy as xp

    from autodiff.rules import RULES

    rng = np.random.default_rng(3)
    z = rng.normal(size=(50, 4)) * 30
    z[0, 1], z[1, 2], z[2, 0] = -np.inf, -0.0, 1e300
    y = rng.integers(0, 4, size=50).astype(float)
    for name in ("nll", "pick", "logsumexp"):  # (−inf − −inf: NaN, quietly)
        rule, lead = RULES[name], ([y] if name != "logsumexp" else [])
        with np.errstate(invalid="ignore"):
            by_col = rule.array(xp, *lead, *z.T)
            whole = rule.array(xp, *lead, z)
        assert np.array_equal(by_col, whole, equal_nan=True)
        d_col = rule.array_local(xp, *lead, *z.T, whole)
        d_whole = rule.array_local(xp, *lead, z, whole)
        assert np.array_equal(np.stack(d_col[len(lead) :], axis=1), d_whole[-1], equal_nan=True)


@pytest.mark.parametrize("name", ["skip", "neurons", "classes"])
def test_one_compiled_program_runs_from_several_threads_at_once(name):
    """No run rewrites what another reads: each thread gets its own batch's numbers (a
    layer gathered, layers read as views, a score matrix given whole)."""
    f = _models()[name]
    weights, batch = _data(2, labels=name == "classes")
    traced = trace(f, [*weights, *batch[0]], batched=True)
    batches = [_data(10 + k, labels=name == "classes")[1] for k in range(6)]
    alone = [
        traced.mean_value_and_grad_arrays(np.array(weights), [np.array(b, dtype=np.float64)])
        for b in batches
    ]
    got: dict[int, list] = {}

    def run(k):
        X = np.array(batches[k], dtype=np.float64)
        got[k] = [traced.mean_value_and_grad_arrays(np.array(weights), [X]) for _ in range(20)]

    programs = [p for key, p in traced._programs.items() if key[0] == "mean"]
    before = [
        {k: id(v) for k, v in fn.__globals__.items()} for p in programs for fn in p._fns.values()
    ]
    assert run_together([lambda k=k: run(k) for k in range(6)], switch_interval=1e-6) == []
    after = [
        {k: id(v) for k, v in fn.__globals__.items()} for p in programs for fn in p._fns.values()
    ]
    assert before == after  # no run rewrote the globals another run reads
    for k, results in got.items():
        for mean, grads in results:
            assert mean == alone[k][0] and grads.tolist() == alone[k][1].tolist()


def test_the_layers_are_a_plan_of_frozen_records_found_by_a_pure_function():
    """find_layers reads the program and returns frozen records; called twice it gives the
    same plan; the printer sets no attribute outside __init__ (so nothing depends on the
    order its methods are called in)."""
    import ast
    import dataclasses
    import inspect

    from autodiff.trace import _layers

    f = _models()["transposed"]
    weights, batch = _data(1)
    traced = trace(f, [*weights, *batch[0]], batched=True)
    mask = (False,) * N_W + (True,) * 3
    code = _layers.MeanCode(traced.program, [f"x{i}" for i in range(N_W + 3)], mask, np)
    plan = _layers.find_layers(traced.program, code.spos, code.varies)
    assert plan == code.plan  # the same program, the same plan
    layer = next(g for g in plan.groups if isinstance(g, _layers.Layer))
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.cols = ()  # type: ignore[misc]
    # the transposed dot's weights are its second half: both dots are one layer of two
    assert len(layer.cols) == 2 and len(set(layer.inputs)) == 3

    tree = ast.parse(inspect.getsource(_layers.MeanCode))
    init: set[str] = set()
    elsewhere: dict[str, set[str]] = {}
    for fn in [n for n in tree.body[0].body if isinstance(n, ast.FunctionDef)]:
        names = {
            t.attr
            for node in ast.walk(fn)
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign))
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            for t in ast.walk(target)
            if isinstance(t, ast.Attribute) and getattr(t.value, "id", None) == "self"
        }
        (init if fn.name == "__init__" else elsewhere.setdefault(fn.name, set())).update(names)
    assert {m: a - init for m, a in elsewhere.items() if a - init} == {}


def _mlp_places(sizes, layout, rng):
    """For an MLP of `sizes` (inputs first), where each weight and bias lies among the
    shared inputs: neuron by neuron, input by input, or anywhere (a random order)."""
    places, at = [], 0
    for n, m in itertools.pairwise(sizes):
        if layout == "neurons":
            w = [[at + j * (n + 1) + i for i in range(n)] for j in range(m)]
            b = [at + j * (n + 1) + n for j in range(m)]
        else:  # input by input (and shuffled below)
            w = [[at + i * m + j for i in range(n)] for j in range(m)]
            b = [at + n * m + j for j in range(m)]
        places.append((w, b))
        at += m * (n + 1)
    if layout == "shuffled":
        order = list(range(at))
        rng.shuffle(order)
        places = [([[order[p] for p in ws] for ws in w], [order[p] for p in b]) for w, b in places]
    return places, at


@given(
    sizes=st.lists(st.integers(1, 4), min_size=2, max_size=4),
    layout=st.sampled_from(["neurons", "inputs", "shuffled"]),
    seed=st.integers(0, 2**16),
)
def test_any_mlp_in_any_parameter_layout_gives_eagers_mean_and_gradient(sizes, layout, seed):
    """However the weights lie among the shared inputs -- a view of one block per layer, a
    matrix input by input, or gathered from anywhere -- the training step's code gives
    eager's mean and gradient (1e-12, as above), at any width, one input or one unit too."""
    rng = random.Random(seed)
    places, n_w = _mlp_places(sizes, layout, rng)
    d = sizes[0]

    def f(v):
        h = v[n_w:]
        for k, (w, b) in enumerate(places):
            h = [dot([v[p] for p in ws], h, v[bp]) for ws, bp in zip(w, b)]
            h = [u.relu() for u in h] if k < len(places) - 1 else h
        return sum(h, v[n_w] * 0.0).softplus()

    weights = [rng.uniform(-1, 1) for _ in range(n_w)]
    batch = [[rng.uniform(-1, 1) for _ in range(d)] for _ in range(7)]
    traced = trace(f, [*weights, *batch[0]], batched=True)
    mean, grads = traced.mean_value_and_grad_arrays(np.array(weights), [np.array(batch)])
    e_mean, e_grads = _eager(f, weights, batch)
    assert mean == pytest.approx(e_mean, rel=1e-12)
    assert grads.tolist() == pytest.approx(e_grads, rel=1e-12, abs=1e-15)


def test_a_layer_over_the_data_takes_its_biases_in_the_product():
    """On numpy a layer of neurons over the whole batch reads [X 1] -- the data with a
    column of ones, appended once per batch -- so its biases come with the product (no pass
    adding them) and ``gUᵀ @ [X 1]`` is its weights' and biases' gradient as they lie (no
    sum, no concatenation). The data read elsewhere (a skip) is a view of [X 1]; the batch
    as a matrix or as columns gives the same bits; the numbers and the data's per-sample
    gradient are eager's (1e-12, as above)."""

    def f(v):  # an MLP's first layer (neuron by neuron), and a skip from the data
        w, x = v[:N_W], v[N_W:]
        h = [dot(w[0:3], x, w[3]).tanh(), dot(w[4:7], x, w[7]).tanh()]
        return (dot(w[8:10], h, w[10]) + x[1] * w[11]).softplus()

    weights, batch = _data(4)
    traced = trace(f, [*weights, *batch[0]], batched=True)
    X = np.array(batch, dtype=np.float64)
    columns = [X[:, k].copy() for k in range(3)]
    mean, grads = traced.mean_value_and_grad_arrays(np.array(weights), [X])
    e_mean, e_grads = _eager(f, weights, batch)
    assert mean == pytest.approx(e_mean, rel=1e-12)
    assert grads.tolist() == pytest.approx(e_grads, rel=1e-12, abs=1e-15)
    by_cols = traced.mean_value_and_grad_arrays(np.array(weights), columns)
    assert by_cols[0] == mean and by_cols[1].tobytes() == grads.tobytes()
    (step,) = [p for k, p in traced._programs.items() if k[0] == "mean" and max(k[4]) == 3]
    source = step.source
    assert "def mean_value_and_grad(P, _n, X0e)" in source
    assert "u0 = a0 @ _T(B0)" in source and "u0 +=" not in source
    assert "X0 = X0e[:, :3]" in source and "_colsum(gu0)" not in source
    # the code that also gives the data's gradient: the columns stacked with ones
    every = traced.mean_source([*weights, *columns])
    assert "a0 = _xp.stack([x12, x13, x14, _xp.ones_like(x12)], axis=1)" in every
    mean2, all_grads = traced.mean_value_and_grad([*weights, *columns])
    assert mean2 == mean
    for s, sample in enumerate(batch):  # ∂(mean)/∂x of each sample: ∂f/∂x / n
        xs = [Value(x) for x in sample]
        f([*(Value(w) for w in weights), *xs]).backward()
        got = [float(all_grads[N_W + k][s]) for k in range(3)]
        assert got == pytest.approx([x.grad / len(batch) for x in xs], rel=1e-12, abs=1e-15)


def test_a_large_layer_is_read_in_by_out_by_the_code_a_compiler_is_given():
    """mean_function's code (what jax.jit compiles) gathers a layer of BY_INPUT_MIN weights
    or more into one contiguous (in × out) matrix and hands its gradient back in P's
    order; the numbers are those of the step's own code (1e-12, as above)."""
    n = 256  # a 256 × 256 layer: 65,536 weights, neuron by neuron, then one output neuron
    row = n + 1

    def f(v):
        w, x = v[: n * row + row], v[n * row + row :]
        h = [dot(w[j * row : j * row + n], x, w[j * row + n]).relu() for j in range(n)]
        return dot(w[n * row : n * row + n], h, w[n * row + n]).tanh()

    rng = np.random.default_rng(0)
    P = rng.uniform(-0.1, 0.1, n * row + row)
    X = rng.uniform(-1.0, 1.0, (20, n))
    traced = trace(f, [*P.tolist(), *X[0].tolist()], batched=True)
    mean, grads = traced.mean_value_and_grad_arrays(P, [X])
    f_mean, f_grads = traced.mean_function(P, [X])(P, [X])
    assert float(f_mean) == pytest.approx(mean, rel=1e-12)
    assert f_grads.tolist() == pytest.approx(grads.tolist(), rel=1e-12, abs=1e-15)
    (whole,) = [p.source for k, p in traced._programs.items() if k[0] == "mean" and k[-1]]
    assert "P = _xp.take(P, _perm, axis=0)" in whole
    assert f"W0 = _xp.reshape(P[0:{n * n}], ({n}, {n}))" in whole
    # one compiled function from four threads at once, each with its own weights: each
    # gets the bits it gets alone
    fn = traced.mean_function(P, [X])
    weights = [P * (1.0 + 0.1 * k) for k in range(4)]
    alone = [fn(w, [X]) for w in weights]
    got: dict[int, object] = {}

    def work(k):
        for _ in range(5):
            got[k] = fn(weights[k], [X])

    assert run_together([lambda k=k: work(k) for k in range(4)], switch_interval=1e-6) == []
    for k in range(4):
        assert float(got[k][0]) == float(alone[k][0])
        assert got[k][1].tobytes() == alone[k][1].tobytes()
