"""The lecture's claims L1-L13, L16, L17 computed by the engine (L13-L15: test_functional.py).

Engine gradients against the slides' closed forms agree to 1e-12: both are a
handful of float operations on the same numbers.
"""

from __future__ import annotations

import math
import random

import pytest

from autodiff import Value, grad
from autodiff.rules import sigmoid_float
from nn import lecture
from nn.data import xor
from nn.losses import mse
from nn.module import MLP, Neuron
from nn.optim import SGD

X, Y = xor()


def test_L1_perceptron_is_the_logistic_of_an_affine_function():
    x, w, b = [0.5, -1.0, 2.0], [0.3, 0.8, -0.1], 0.4
    z = sum(wi * xi for wi, xi in zip(w, x)) + b
    assert lecture.perceptron(x, w, b).data == pytest.approx(1 / (1 + math.exp(-z)), rel=1e-15)


def test_L2_a_network_is_a_composition_of_layers_and_depth_is_its_length():
    m = MLP(2, [3, 4, 1], seed=0)
    x = [0.2, -0.7]
    l1, l2, l3 = m.layers
    assert len(m.layers) == 3
    assert m(x).data == l3(l2(l1(x)))[0].data


def test_L3_linear_model_on_xor_closed_form():
    w, b, loss = lecture.fit_linear_xor(X, Y)
    assert w == pytest.approx([0.0, 0.0], abs=1e-12)
    assert b == pytest.approx(0.5, rel=1e-12)
    assert loss == pytest.approx(0.25, rel=1e-12)


def test_L3_linear_model_on_xor_by_gradient_descent():
    model = Neuron(2, "linear", seed=0)
    opt = SGD(model.parameters(), lr=0.5)
    for _ in range(500):
        loss = mse([model(x) for x in X], Y)  # ¼ Σ (f* − f)²
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert [w.data for w in model.w] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert model.b.data == pytest.approx(0.5, abs=1e-9)
    assert loss.data == pytest.approx(0.25, abs=1e-12)
    # the minimum: every gradient vanishes there
    assert all(abs(p.grad) < 1e-9 for p in model.parameters())


def test_L4_a_linear_hidden_layer_collapses_to_a_linear_model():
    rng = random.Random(4)
    W = [[rng.uniform(-2, 2) for _ in range(3)] for _ in range(2)]  # 2 inputs, 3 hidden
    c = [rng.uniform(-1, 1) for _ in range(3)]
    w = [rng.uniform(-2, 2) for _ in range(3)]
    b = rng.uniform(-1, 1)
    w_t, b_t = lecture.collapse_linear(W, c, w, b)
    for _ in range(5):
        x = [Value(rng.uniform(-3, 3)), Value(rng.uniform(-3, 3))]
        hidden = [sum((W[i][j] * x[i] for i in range(2)), Value(c[j])) for j in range(3)]
        y = sum((w[j] * hidden[j] for j in range(3)), Value(b))
        assert y.data == pytest.approx(w_t[0] * x[0].data + w_t[1] * x[1].data + b_t, rel=1e-12)
        # and the gradient with respect to x is w̃, the same at every x
        assert [g.data for g in grad(y, x)] == pytest.approx(w_t, rel=1e-12)


def test_L5_L6_the_hand_set_relu_network_solves_xor_exactly():
    results = [lecture.relu_network(x) for x in X]
    pre = [[r[0][k].data for r in results] for k in range(2)]
    h = [[r[1][k].data for r in results] for k in range(2)]
    y = [r[2].data for r in results]
    assert pre == [[0, 1, 1, 2], [-1, 0, 0, 1]]  # WᵀX + c
    assert h == [[0, 1, 1, 2], [0, 0, 0, 1]]
    assert y == [0, 1, 1, 0]


def test_L7_transformed_features_are_linearly_separable():
    hs = [[v.data for v in lecture.relu_network(x)[1]] for x in X]
    positives = [h for h, t in zip(hs, Y) if t == 1]
    assert positives[0] == positives[1] == [1.0, 0.0]  # both land on the same point
    # the slide's own output layer separates them: wᵀh + b above ½ exactly for y = 1
    w, b = lecture.LECTURE_W_OUT, lecture.LECTURE_B
    for h, t in zip(hs, Y):
        assert (w[0] * h[0] + w[1] * h[1] + b > 0.5) == (t == 1)
    # ... while in the input space the best linear fit is the constant ½ (L3)


@pytest.mark.parametrize("z", [-30.0, -2.0, 0.0, 0.7, 30.0])
def test_L8_L9_logistic_head_and_softplus_loss(z):
    zv = Value(z)
    p1, p0 = zv.sigmoid().data, (-zv).sigmoid().data
    assert p1 + p0 == pytest.approx(1.0, rel=1e-15)
    for y in (0, 1):
        p_y = sigmoid_float((2 * y - 1) * z)
        assert p_y == (p1 if y == 1 else p0)
        loss = Value((1 - 2 * y) * z).softplus()  # ζ((1−2y)z)
        assert loss.data == pytest.approx(-math.log(p_y), rel=1e-12)


def test_L9_softplus_approximates_relu_and_does_not_saturate_when_wrong():
    for r in (-50.0, -10.0, 10.0, 50.0):
        assert Value(r).softplus().data == pytest.approx(max(0.0, r), abs=1e-4)
    z = Value(-20.0)  # a positive sample (y = 1) scored badly wrong
    loss = ((1 - 2 * 1) * z).softplus()
    loss.backward()
    assert z.grad == pytest.approx(-1.0, abs=1e-8)  # a full-strength gradient
    z2 = Value(-20.0)
    sq = (z2.sigmoid() - 1) ** 2  # squared error on σ(z) saturates there
    sq.backward()
    assert abs(z2.grad) < 1e-8


def test_L10_max_likelihood_is_min_of_the_summed_negative_log_likelihood():
    zs = [Value(v) for v in (0.3, -1.2, 2.0, -0.4)]
    nll = sum(((1 - 2 * y) * z).softplus() for z, y in zip(zs, Y))
    likelihood = math.prod(sigmoid_float((2 * y - 1) * z.data) for z, y in zip(zs, Y))
    assert nll.data == pytest.approx(-math.log(likelihood), rel=1e-12)


def random_params(seed: int):
    rng = random.Random(seed)
    W = [[rng.uniform(-2, 2) for _ in range(2)] for _ in range(2)]
    c = [rng.uniform(-1, 1) for _ in range(2)]
    w = [rng.uniform(-2, 2) for _ in range(2)]
    return W, c, w, rng.uniform(-1, 1), [rng.uniform(-2, 2), rng.uniform(-2, 2)]


CASES = [(seed, y) for seed in range(25) for y in (0, 1)] + [("lecture", 0), ("lecture", 1)]


@pytest.mark.parametrize(("seed", "y"), CASES)
def test_L11_L12_L13_L16_engine_gradients_equal_the_slides_closed_forms(seed, y):
    if seed == "lecture":
        W, c, w, b = lecture.LECTURE_W, lecture.LECTURE_C, lecture.LECTURE_W_OUT, 0.0
        x = [1.0, 0.0]
    else:
        W, c, w, b, x = random_params(seed)
    Wv = [[Value(v) for v in row] for row in W]
    cv, wv, bv = [Value(v) for v in c], [Value(v) for v in w], Value(b)
    f = lecture.forward(x, y, Wv, cv, wv, bv)
    f.L.backward()
    slide = lecture.slide_gradients(x, y, W, c, w, b)
    close = {"rel": 1e-12, "abs": 1e-15}
    # L11: the forward pass
    u4 = (1 - 2 * y) * f.z.data
    assert f.L.data == pytest.approx(math.log1p(math.exp(u4)), **close)
    # L12
    assert f.u4.grad == pytest.approx(slide["dL/du4"], **close)
    for name in ("z", "u3"):
        assert getattr(f, name).grad == pytest.approx(slide["dL/dz"], **close)
    assert bv.grad == pytest.approx(slide["dL/db"], **close)
    assert [v.grad for v in wv] == pytest.approx(slide["grad_w"], **close)
    assert [v.grad for v in f.h] == pytest.approx(slide["grad_h"], **close)
    # L13: through the diagonal ReLU Jacobian, then the identity Jacobians of + c
    assert [v.grad for v in f.u2] == pytest.approx(slide["grad_u2"], **close)
    assert [v.grad for v in cv] == pytest.approx(slide["grad_c"], **close)
    assert [v.grad for v in f.u1] == pytest.approx(slide["grad_u1"], **close)
    # L16
    flat = [v.grad for row in Wv for v in row]
    assert flat == pytest.approx([g for row in slide["grad_W"] for g in row], **close)


@pytest.mark.parametrize(("seed", "y"), CASES[:20])
def test_L17_the_layer_rules_hold_between_the_engines_own_gradients(seed, y):
    W, c, w, b, x = random_params(seed)
    Wv = [[Value(v) for v in row] for row in W]
    cv, wv, bv = [Value(v) for v in c], [Value(v) for v in w], Value(b)
    f = lecture.forward(x, y, Wv, cv, wv, bv)
    f.L.backward()
    dz = f.z.grad
    fmask = [1.0 if u.data > 0 else 0.0 for u in f.u2]
    grad_h = [v.grad for v in f.h]
    close = {"rel": 1e-12, "abs": 1e-15}
    assert grad_h == pytest.approx([dz * wj.data for wj in wv], **close)  # ∇_h L = (∂L/∂z) w
    assert bv.grad == dz  # ∂L/∂b = ∂L/∂z
    assert [v.grad for v in wv] == pytest.approx([dz * h.data for h in f.h], **close)
    g_c = [fj * gj for fj, gj in zip(fmask, grad_h)]  # ∇_c L = f ⊙ ∇_h L
    assert [v.grad for v in cv] == pytest.approx(g_c, **close)
    outer = [[xi * g for g in g_c] for xi in x]  # ∇_W L = x (f ⊙ ∇_h L)ᵀ
    flat = [v.grad for row in Wv for v in row]
    assert flat == pytest.approx([g for row in outer for g in row], **close)
