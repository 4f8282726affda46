"""Many classes: the softmax cross-entropy, exact and traceable; library losses as sample
losses with traced labels."""

from __future__ import annotations

import math
import random
import struct

import numpy as np
import oracle
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autodiff import Value, grad, hessian, trace
from autodiff.rules import RULES
from nn import losses
from nn.module import MLP
from nn.optim import SGD
from nn.train import compile_batch_step


def bits(xs) -> list[bytes]:
    return [struct.pack("<d", x) for x in xs]


def flat_loss(k: int, labels: list[int]):
    """The mean cross-entropy as a function of one flat list of logits (batch × k)."""

    def f(v):
        return losses.cross_entropy([v[i * k : (i + 1) * k] for i in range(len(labels))], labels)

    return f


LOGITS = [
    [0.3, -1.2, 2.0, 0.5],
    [-0.7, 0.1, 0.0, 3.3],
    [1e-3, 2.5, -2.5, 0.25],
]
LABELS = [2, 0, 1]


def test_cross_entropy_value_gradient_and_hessian_equal_pytorchs():
    torch = oracle.torch()
    F = torch.nn.functional
    point = [z for row in LOGITS for z in row]
    f = flat_loss(4, LABELS)
    xs = [Value(v) for v in point]
    L = f(xs)
    g = [d.data for d in grad(L, xs)]
    H = hessian(f, point)
    t = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(LABELS)

    def tf(v):
        return F.cross_entropy(v.reshape(3, 4), y)

    tL = tf(t)
    (tg,) = torch.autograd.grad(tL, t)
    tH = torch.autograd.functional.hessian(tf, t.detach())
    assert L.data == pytest.approx(tL.item(), rel=1e-14)
    assert g == pytest.approx(tg.tolist(), rel=1e-12, abs=1e-15)
    for row, trow in zip(H, tH.tolist()):
        assert row == pytest.approx(trow, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("logits", "label", "expected"),
    [
        ([1e300, 0.0, -1e300], 0, 0.0),
        ([1e300, 1e300], 1, math.log(2.0)),
        ([-1e300, 0.0], 0, 1e300),
        ([1.7e308, -1.7e308, 0.0], 1, OverflowError),  # the loss, 3.4e308, is not a float
        ([709.8, 0.0], 1, 709.8),
        ([-745.2, 745.2], 0, 1490.4),
    ],
)
def test_cross_entropy_is_overflow_free_for_every_finite_logit(logits, label, expected):
    zs = [Value(z) for z in logits]
    if expected is OverflowError:  # only a loss beyond a float's range may raise
        with pytest.raises(OverflowError, match="overflows"):
            losses.cross_entropy([zs], [label])
        return
    L = losses.cross_entropy([zs], [label])
    L.backward()
    assert L.data == pytest.approx(expected, rel=1e-15, abs=1e-300)
    assert all(math.isfinite(z.grad) for z in zs)
    assert sum(z.grad for z in zs) == pytest.approx(0.0, abs=1e-15)  # softmax − one-hot


def test_cross_entropy_gradient_at_equal_huge_logits_is_the_exact_softmax():
    zs = [Value(1e300), Value(1e300), Value(-1e300)]
    losses.cross_entropy([zs], [0]).backward()
    assert [z.grad for z in zs] == [-0.5, 0.5, 0.0]


@pytest.mark.parametrize("mode", ["lines", "groups"])
def test_cross_entropy_traces_to_the_engines_numbers_bit_for_bit(mode):
    point = [z for row in LOGITS for z in row]
    f = flat_loss(4, LABELS)
    traced = trace(f, point, mode=mode)
    xs = [Value(v) for v in point]
    L = f(xs)
    L.backward()
    for p in (point, [v * 10 for v in point]):
        xs = [Value(v) for v in p]
        L = f(xs)
        L.backward()
        value, grads = traced.value_and_grad(p)
        assert bits([value, *grads]) == bits([L.data, *[x.grad for x in xs]])


def test_cross_entropy_with_a_traced_label_in_batched_code():
    # one sample's loss as a function of its logits and its label: the label is an input
    def sample(v):
        return losses.cross_entropy([v[:3]], [v[3]])

    batched = trace(sample, [0.1, 0.2, 0.3, 1.0], batched=True)
    rows = [[0.5, -1.0, 2.0, 2.0], [3.0, 0.0, -3.0, 0.0], [1e300, -1e300, 0.0, 1.0]]
    cols = [np.array([r[i] for r in rows]) for i in range(4)]
    values, grads = batched.value_and_grad(cols)
    for k, r in enumerate(rows):
        xs = [Value(v) for v in r]
        L = sample(xs)
        L.backward()
        assert values[k] == pytest.approx(L.data, rel=1e-14)
        assert [g[k] for g in grads] == pytest.approx([x.grad for x in xs], rel=1e-14, abs=1e-300)
    with pytest.raises(ValueError, match=r"nll: the label 3\.0 is not a class index"):
        batched.value_and_grad([cols[0], cols[1], cols[2], np.array([0.0, 3.0, 1.0])])


SAMPLE_LOSSES = {
    "cross_entropy": (3, lambda m: lambda x, y: losses.cross_entropy([m(x)], [y]), "class"),
    "logistic": (1, lambda m: lambda x, y: losses.logistic([m(x)], [y]), "01"),
    "mse": (1, lambda m: lambda x, y: losses.mse([m(x)], [y]), "real"),
    "hinge": (1, lambda m: lambda x, y: losses.hinge([m(x)], [y]), "pm1"),
}


@pytest.mark.parametrize("name", list(SAMPLE_LOSSES))
def test_library_losses_work_as_sample_losses_of_compile_batch_step(name):
    nout, make, kind = SAMPLE_LOSSES[name]
    rng = random.Random(7)
    xs = [[rng.uniform(-1, 1) for _ in range(4)] for _ in range(24)]
    ys = {
        "class": lambda: rng.randrange(3),
        "01": lambda: rng.randrange(2),
        "real": lambda: rng.uniform(-1, 1),
        "pm1": lambda: rng.choice([-1, 1]),
    }[kind]
    labels = [ys() for _ in xs]
    batch_model, eager_model = MLP(4, [8, nout], seed=3), MLP(4, [8, nout], seed=3)
    # SGD: the batched code sums in another order (matrix products), and Adam would
    # magnify those last-bit differences in its normalised steps
    step = compile_batch_step(
        batch_model, make(batch_model), xs, labels, SGD(batch_model.parameters(), lr=0.1)
    )
    opt = SGD(eager_model.parameters(), lr=0.1)
    full = getattr(losses, name)
    for _ in range(3):
        batch_loss = step()
        L = full([eager_model(x) for x in xs], labels)
        opt.zero_grad()
        L.backward()
        opt.step()
        assert batch_loss == pytest.approx(L.data, rel=1e-13)
    for a, b in zip(batch_model.parameters(), eager_model.parameters()):
        assert a.data == pytest.approx(b.data, rel=1e-12, abs=1e-15)


def test_cross_entropy_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="the batch is empty"):
        losses.cross_entropy([], [])
    with pytest.raises(ValueError, match=r"2 samples but 1 labels"):
        losses.cross_entropy([[1.0, 2.0], [0.0, 1.0]], [0])
    with pytest.raises(ValueError, match=r"logits\[1\] has 3 scores, expected 2"):
        losses.cross_entropy([[1.0, 2.0], [0.0, 1.0, 2.0]], [0, 1])
    with pytest.raises(ValueError, match=r"class indices 0 to 1, got labels\[0\] = 2"):
        losses.cross_entropy([[1.0, 2.0]], [2])
    with pytest.raises(ValueError, match=r"got labels\[0\] = 0.5"):
        losses.cross_entropy([[1.0, 2.0]], [0.5])
    with pytest.raises(TypeError, match=r"logits\[0\] must be a list of K scores, got Value"):
        losses.cross_entropy([Value(1.0)], [0])
    with pytest.raises(TypeError, match=r"labels\[0\] must be one of the Values or numbers"):
        losses.cross_entropy([[1.0, 2.0]], ["a"])


def test_a_multiclass_model_learns_with_sgd():
    rng = random.Random(0)
    centers = [(-2.0, 0.0), (2.0, 0.0), (0.0, 2.5)]
    xs, ys = [], []
    for _ in range(60):
        k = rng.randrange(3)
        xs.append([centers[k][0] + rng.gauss(0, 0.4), centers[k][1] + rng.gauss(0, 0.4)])
        ys.append(k)
    model = MLP(2, [8, 3], seed=0)
    step = compile_batch_step(
        model,
        lambda x, y: losses.cross_entropy([model(x)], [y]),
        xs,
        ys,
        SGD(model.parameters(), lr=0.5),
    )
    first = step()
    for _ in range(60):
        last = step()
    assert last < 0.2 < first


def test_cross_entropy_hessians_equal_pytorchs_on_a_thousand_random_logit_vectors():
    """hessian() of one sample's cross-entropy never trips the graph-changed guard (its
    local sums the same way on floats and Values) and equals PyTorch's (float64).
    Tolerance: both compute softmax(z)(δ − softmax(z)) by different formulas, each term a
    few ulp off; 1e-12 relative or 1e-15 absolute (entries near 0) holds them."""
    torch = oracle.torch()
    F = torch.nn.functional
    rng = random.Random(2026)
    for n in range(1000):
        k = 2 + n % 9  # K = 2 … 10
        z = [rng.gauss(0.0, 1.0) * rng.choice([0.1, 1.0, 5.0]) for _ in range(k)]
        y = rng.randrange(k)
        H = hessian(lambda v, y=y: losses.cross_entropy([v], [y]), z)
        tH = torch.autograd.functional.hessian(
            lambda t, y=y: F.cross_entropy(t.unsqueeze(0), torch.tensor([y])),
            torch.tensor(z, dtype=torch.float64),
        ).tolist()
        for row, trow in zip(H, tH):
            assert row == pytest.approx(trow, rel=1e-12, abs=1e-15), (z, y)


NON_FINITE = [
    ([-math.inf, 0.0, 1.0], 0),  # −inf at the label's class: +inf, softmax − one-hot
    ([-math.inf, 0.0, 1.0], 1),  # −inf elsewhere: a class of probability 0
    ([math.nan, 0.0], 1),  # NaN propagates
    ([0.5, math.nan, 2.0], 0),
    ([math.inf, 0.0], 0),  # +inf: NaN, as PyTorch's log-softmax (∞ − ∞)
    ([math.inf, 0.0], 1),
    ([-math.inf, -math.inf], 0),  # every class impossible: NaN
    ([1e300, 1e300], 1),  # finite and huge: exact (log 2)
]


@pytest.mark.parametrize(("logits", "label"), NON_FINITE)
def test_non_finite_scores_follow_pytorch(logits, label):
    torch = oracle.torch()
    zs = [Value(z) for z in logits]
    L = losses.cross_entropy([zs], [label])
    L.backward()
    t = torch.tensor([logits], dtype=torch.float64, requires_grad=True)
    tL = torch.nn.functional.cross_entropy(t, torch.tensor([label]))
    tL.backward()
    want = [tL.item(), *t.grad[0].tolist()]
    got = [L.data, *(z.grad for z in zs)]
    for a, b in zip(got, want):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-15), (got, want)
    # and a trace of it computes the same
    f = trace(lambda v: losses.cross_entropy([v], [label]), [0.0] * len(logits))
    t_value, t_grads = f.value_and_grad(logits)
    assert bits([t_value, *t_grads]) == bits(got)


def test_every_rules_local_derivatives_are_the_same_bits_on_floats_and_on_values():
    """What backward() stores (the local on floats) and what grad(create_graph=True)
    recomputes (the same local on Values) agree to the bit at random points, for every
    rule -- or the graph-changed guard would trip in hessian()."""
    from ops import RECORDS

    from autodiff import dot, engine, logsumexp, nll
    from autodiff.rules import RULES

    many = {  # the rules that take lists, with K = 2 … 10 inputs (sums of more than two)
        "logsumexp": lambda xs: logsumexp(xs),
        "nll": lambda xs: nll(xs, len(xs) // 2),
        "dot": lambda xs: dot(xs[1:], xs[:-1], xs[0]),
    }
    rng = random.Random(7)
    for name, record in RECORDS.items():
        rule = RULES[name]
        for n in range(200):
            k = 2 + n % 9 if name in many else record.n
            point = [rng.uniform(-3.0, 3.0) for _ in range(k)]
            xs = [Value(x) for x in point]
            try:
                out = many[name](xs) if name in many else record.use(xs)
            except (ValueError, ZeroDivisionError, OverflowError):
                continue
            stack = [out]
            while stack:  # every node of the rule in the graph
                v = stack.pop()
                stack.extend(v.parents)
                if v.op != name:
                    continue
                on_values = engine.local_on_values(rule, v.parents, v)
                on_floats = v.local_grads
                assert bits([float(d) if type(d) is float else d.data for d in on_values]) == (
                    bits(on_floats)
                ), (name, point)


WITH_LOCAL = sorted(name for name, rule in RULES.items() if rule.array_with_local is not None)


def test_the_rules_that_give_value_and_derivatives_at_once_are_nlls():
    assert WITH_LOCAL == ["nll"]  # (a new one is covered by the test below by itself)


def the_same(a, b) -> bool:
    """Equal arrays to the bit, NaN where NaN (its payload aside)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    nan = np.isnan(a)
    return bool((nan == np.isnan(b)).all()) and bits(a[~nan].ravel()) == bits(b[~nan].ravel())


@pytest.mark.parametrize("name", WITH_LOCAL)
@given(
    rows=st.integers(1, 40),
    k=st.integers(2, 12),
    scale=st.sampled_from([1.0, 30.0, 1e300, 1e-300]),
    special=st.lists(st.sampled_from([math.inf, -math.inf, math.nan, -0.0, 0.0]), max_size=3),
    seed=st.integers(0, 2**32 - 1),
    shared_label=st.booleans(),
)
def test_value_and_derivatives_at_once_are_the_two_kernels_bit_for_bit(
    name, rows, k, scale, special, seed, shared_label
):
    """A rule's array_with_local is array and array_local one after the other, to the bit:
    at random scores of any scale, with infinities, NaN and zeros of both signs among them,
    one label for each row or one for all, the scores as one matrix or one column per class.
    """
    rule = RULES[name]
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, k)) * scale
    for i, v in enumerate(special):
        z.flat[(i * 7919 + seed) % z.size] = v
    y = float(rng.integers(k)) if shared_label else rng.integers(0, k, rows).astype(float)
    for scores in ((z,), tuple(z.T)):  # one matrix, or one column per class
        with np.errstate(all="ignore"):
            out = rule.array(np, y, *scores)
            locals_ = rule.array_local(np, y, *scores, out)
            both_out, both_locals = rule.array_with_local(np, y, *scores)
        assert the_same(both_out, out)
        assert len(both_locals) == len(locals_)
        assert all(the_same(a, b) for a, b in zip(both_locals, locals_))
