"""nn: modules, losses, optimizers, data, the XOR training defaults and the main job."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys

import pytest

from autodiff import Value
from nn import losses
from nn.data import moons, xor
from nn.module import MLP, RELU_BIAS, Layer, Neuron
from nn.optim import SGD, Adam
from nn.train import XOR_DEFAULTS, accuracy, train_xor
from nn.xor import main

# -- modules ----------------------------------------------------------------------------


def test_mlp_shapes_parameters_and_outputs():
    m = MLP(2, [8, 1], seed=0)
    assert len(m.parameters()) == (2 * 8 + 8) + (8 + 1)
    assert len({id(p) for p in m.parameters()}) == len(m.parameters())
    assert isinstance(m([0.5, -1.0]), Value)
    multi = MLP(3, [4, 2], seed=0)
    out = multi([Value(1.0), 2.0, Value(3.0)])  # floats and Values mixed
    assert isinstance(out, list) and len(out) == 2
    assert len(Layer(3, 5, seed=1)([1.0, 2.0, 3.0])) == 5
    assert repr(m) == ("MLP([Layer(2, 8, activation='relu'), Layer(8, 1, activation='linear')])")


def test_initialisation_is_seeded_and_scaled_to_fan_in():
    a, b, c = MLP(4, [16, 1], seed=3), MLP(4, [16, 1], seed=3), MLP(4, [16, 1], seed=4)
    data = [[p.data for p in m.parameters()] for m in (a, b, c)]
    assert data[0] == data[1] and data[0] != data[2]
    rng = random.Random(7)
    assert [p.data for p in MLP(4, [16, 1], rng=rng).parameters()] != data[0]
    relu_layer, out_layer = a.layers
    for n in relu_layer.neurons:  # He: U(±√(6/4))
        assert all(abs(w.data) <= math.sqrt(6 / 4) for w in n.w) and n.b.data == RELU_BIAS
    for n in out_layer.neurons:  # LeCun: U(±√(3/16)), bias 0
        assert all(abs(w.data) <= math.sqrt(3 / 16) for w in n.w) and n.b.data == 0.0
    # a wide layer's weights fill the interval: variance ≈ bound²/3 = 2/nin
    wide = Layer(50, 200, "relu", seed=0)
    ws = [w.data for n in wide.neurons for w in n.w]
    assert sum(w * w for w in ws) / len(ws) == pytest.approx(2 / 50, rel=0.05)


def test_zero_grad_resets_every_parameter():
    m = MLP(2, [4, 1], seed=0)
    m([1.0, 2.0]).backward()
    assert any(p.grad != 0.0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad == 0.0 for p in m.parameters())


def test_wrong_input_length_and_bad_arguments_raise():
    with pytest.raises(ValueError, match="MLP: expected 2 inputs, got 3"):
        MLP(2, [3, 1], seed=0)([1.0, 2.0, 3.0])  # micrograd silently truncates this
    with pytest.raises(ValueError, match="Layer: expected 2 inputs, got 1"):
        Layer(2, 3, seed=0)([1.0])
    with pytest.raises(ValueError, match="Neuron: expected 2 inputs, got 3"):
        Neuron(2, seed=0)([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        MLP(2, [3, 1], activation="gelu")
    with pytest.raises(ValueError, match="seed= or rng="):
        MLP(2, [1], seed=1, rng=random.Random(1))
    with pytest.raises(ValueError, match="nin must be a positive int"):
        Neuron(0)
    with pytest.raises(ValueError, match="at least one layer"):
        MLP(2, [])
    with pytest.raises(ValueError, match="no hidden layer"):
        MLP(2, [1], seed=0).hidden([1.0, 2.0])


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "linear"])
def test_activations(act):
    n = Neuron(1, act, seed=0)
    n.w[0].data, n.b.data = 2.0, -0.5
    z = 2.0 * 0.75 - 0.5
    expected = {"relu": max(0.0, z), "tanh": math.tanh(z), "sigmoid": 1 / (1 + math.exp(-z))}
    assert n([0.75]).data == pytest.approx(expected.get(act, z), rel=1e-15)


# -- losses ------------------------------------------------------------------------------


def test_mse_logistic_and_hinge_values():
    z = [Value(2.0), Value(-1.0), Value(0.5)]
    assert losses.mse(z, [1.0, 0.0, 0.5]).data == pytest.approx((1 + 1 + 0) / 3)
    soft = [math.log1p(math.exp((1 - 2 * y) * v.data)) for v, y in zip(z, [1, 0, 1])]
    assert losses.logistic(z, [1, 0, 1]).data == pytest.approx(sum(soft) / 3, rel=1e-15)
    assert losses.hinge(z, [1, -1, -1]).data == pytest.approx((0 + 0 + 1.5) / 3)
    assert losses.logistic(Value(0.0), 1).data == pytest.approx(math.log(2))


def test_logistic_is_stable_for_any_score():
    big = [Value(1000.0), Value(-1000.0), Value(1e300), Value(-1e300)]
    loss = losses.logistic(big, [0, 1, 1, 0])  # all badly wrong except none right
    loss.backward()
    assert loss.data == pytest.approx((1000 + 1000 + 0 + 0) / 4)
    assert [v.grad for v in big] == [0.25, -0.25, -0.0, 0.0]


def test_loss_errors():
    with pytest.raises(ValueError, match="mse: 2 predictions but 3 targets"):
        losses.mse([Value(1.0), Value(2.0)], [1, 2, 3])
    with pytest.raises(ValueError, match="logistic: the batch is empty"):
        losses.logistic([], [])
    with pytest.raises(ValueError, match=r"logistic: labels must be 0 or 1, got y\[1\] = -1"):
        losses.logistic([Value(1.0), Value(2.0)], [1, -1])
    with pytest.raises(ValueError, match=r"hinge: labels must be -1 or \+1, got ys\[0\] = 0"):
        losses.hinge([Value(1.0)], [0])


# -- optimizers ------------------------------------------------------------------------------


def test_sgd_with_momentum_follows_its_formula_and_records_no_graph():
    p = Value(1.0)
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = 2.0
    opt.step()  # v = 2, p = 1 - 0.2
    assert p.data == pytest.approx(0.8)
    opt.step()  # v = 0.9·2 + 2 = 3.8, p = 0.8 - 0.38
    assert p.data == pytest.approx(0.42)
    assert p.parents == () and p.op == ""
    opt.zero_grad()
    assert p.grad == 0.0


def test_adam_first_step_moves_each_parameter_by_lr():
    ps = [Value(1.0), Value(-2.0)]
    opt = Adam(ps, lr=0.01)
    ps[0].grad, ps[1].grad = 5.0, -1e-3
    opt.step()  # bias-corrected m/√v = g/|g|
    assert ps[0].data == pytest.approx(0.99, abs=1e-9)
    assert ps[1].data == pytest.approx(-1.99, abs=1e-6)
    assert all(p.parents == () for p in ps)


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="lr must be a positive number"):
        SGD([Value(1.0)], lr=0)
    with pytest.raises(TypeError, match=r"params\[0\] must be a Value"):
        Adam([1.0])  # type: ignore[list-item]
    p = Value(1.0)
    with pytest.raises(ValueError, match="listed twice"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="momentum"):
        SGD([p], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam([p], betas=(0.9, 1.0))


def test_training_reduces_the_loss_on_moons():
    xs, ys = moons(60, noise=0.1, seed=1)
    model = MLP(2, [8, 8, 1], seed=0)
    opt = Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(40):
        loss = losses.logistic([model(x) for x in xs], ys)
        first = first if first is not None else loss.data
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.data < 0.5 * first
    assert accuracy(model, xs, ys) >= 50


# -- data ------------------------------------------------------------------------------------


def test_xor_is_the_lectures_four_samples():
    assert xor() == ([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0, 1, 1, 0])


def test_moons():
    xs, ys = moons(101, noise=0.0, seed=0)
    assert len(xs) == len(ys) == 101 and ys.count(0) == 51 and ys.count(1) == 50
    for (a, b), y in zip(xs, ys):  # on the unit circles centred (0, 0) and (1, ½)
        cx, cy = (0.0, 0.0) if y == 0 else (1.0, 0.5)
        assert math.hypot(a - cx, b - cy) == pytest.approx(1.0)
        assert (b >= -1e-12) if y == 0 else (b <= 0.5 + 1e-12)
    assert moons(50, seed=3) == moons(50, seed=3) != moons(50, seed=4)
    with pytest.raises(ValueError, match="moons: n"):
        moons(1)


# -- XOR: reliable defaults and the main job -----------------------------------------------------


@pytest.mark.slow
def test_default_settings_solve_xor_for_at_least_99_of_seeds_0_to_99():
    xs, ys = xor()
    solved = [s for s in range(100) if accuracy(train_xor(xs, ys, seed=s).model, xs, ys) == 4]
    print(f"XOR solved for {len(solved)}/100 seeds with {XOR_DEFAULTS}")
    assert len(solved) >= 99


def test_main_job_prints_the_table_writes_the_pictures_and_ends_with_accuracy(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--steps", "150", "--seed", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "accuracy: 4/4"
    assert any("P(y=1|x)" in line for line in out)
    for name in ("forward.svg", "backward.svg", "decision_boundary.png", "feature_space.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert "L, x=(1, 0), y=1" in (tmp_path / "forward.svg").read_text()


def test_main_job_with_two_hidden_units_draws_h_directly(tmp_path, capsys):
    main(["--out", str(tmp_path), "--hidden", "2", "--steps", "20"])
    assert capsys.readouterr().out.splitlines()[-1] in {f"accuracy: {k}/4" for k in range(5)}
    assert (tmp_path / "feature_space.png").exists()


def test_main_job_lecture_mode_as_a_command(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "nn.xor", "--lecture", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env=dict(os.environ, MPLBACKEND="Agg"),
    )
    lines = run.stdout.splitlines()
    assert lines[-1] == "accuracy: 4/4"
    assert "y = wᵀh + b = [0 1 1 0]" in lines
    text = run.stdout
    assert "[  0   1   1   2 ]\n   [ -1   0   0   1 ]" in text  # WᵀX + c
    assert "[  0   1   1   2 ]\n   [  0   0   0   1 ]" in text  # h
    assert (tmp_path / "backward.svg").exists()


def test_main_job_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["--hidden", "0"])
    assert "must be a positive integer" in capsys.readouterr().err


def test_step_with_a_closure_pauses_the_gc_and_restores_the_callers_setting():
    import gc

    p = Value(1.0)
    opt = SGD([p], lr=0.1)
    seen = []

    def closure():
        seen.append(gc.isenabled())
        loss = p * p
        opt.zero_grad()
        loss.backward()
        return loss

    assert gc.isenabled()
    loss = opt.step(closure)
    assert seen == [False] and gc.isenabled()
    assert loss.data == 1.0 and p.data == pytest.approx(0.8)
    gc.disable()
    try:
        opt.step(closure)
        assert not gc.isenabled()  # the caller's setting, kept
    finally:
        gc.enable()

    def failing():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        opt.step(failing)
    assert gc.isenabled()
