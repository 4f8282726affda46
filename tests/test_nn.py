"""nn: modules, losses, optimizers, data, the XOR training defaults and the main job."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys

import pytest

import nn
from autodiff import Value
from nn import losses
from nn.data import moons, xor
from nn.module import MLP, RELU_BIAS, Layer, Module, Neuron
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


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p: SGD([p], lr=0), ValueError, r"SGD: lr must be a positive, finite number, got 0"),
        (lambda p: SGD([p], lr=True), TypeError, r"SGD: lr must be a real number, got bool"),
        (lambda p: Adam([p], lr=math.inf), ValueError, r"Adam: lr must be a positive, finite"),
        (lambda p: Adam([1.0]), TypeError, r"Adam: params\[0\] must be a Value"),  # type: ignore[list-item]
        (lambda p: SGD([p, p], lr=0.1), ValueError, "listed twice"),
        (
            lambda p: SGD([p], lr=0.1, momentum=1.0),
            ValueError,
            r"SGD: momentum must be in \[0, 1\)",
        ),
        (lambda p: Adam([p], betas=(0.9, 1.0)), ValueError, r"Adam: betas\[1\] must be in"),
        (lambda p: Adam([p], betas=(0.9,)), ValueError, r"Adam: betas must be two numbers"),
        (lambda p: Adam([p], eps="x"), TypeError, r"Adam: eps must be a real number, got str"),
        (lambda p: Adam([p], eps=0.0), ValueError, r"Adam: eps must be a positive"),
        (lambda p: SGD([], lr=0.1), ValueError, r"SGD: no parameters to optimize"),
        (lambda p: SGD(p, lr=0.1), TypeError, r"SGD: params must be an iterable of Values"),
    ],
)
def test_optimizer_argument_errors_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make(Value(1.0))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: MLP(2, 3), TypeError, r"MLP: nouts must be a list of layer widths.*got int 3"),
        (lambda: MLP(2, [3, 0]), ValueError, r"MLP: nouts\[1\] must be a positive int"),
        (lambda: MLP(2, [2.5]), TypeError, r"MLP: nouts\[0\] must be a positive int, got float"),
        (lambda: MLP(True, [1]), TypeError, r"MLP: nin must be a positive int, got bool"),
        (lambda: Layer(2, 3, seed="a"), TypeError, r"Layer: seed must be an int, got str"),
        (lambda: Neuron(2, rng=3), TypeError, r"Neuron: rng must be a random.Random"),
    ],
)
def test_constructor_argument_errors_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


# -- composing, saving, loading ------------------------------------------------------------


class TwoLayers(Module):
    """A PyTorch-style custom model: sub-modules as attributes, forward, no super().__init__()."""

    def __init__(self, seed=0):
        self.l1 = Layer(2, 3, "tanh", seed=seed)
        self.scale = Value(0.5)
        self.extra = [Value(1.0), Value(-1.0)]
        self.steps = 10  # not a parameter
        self.l2 = Layer(3, 1, "linear", seed=seed + 1)

    def forward(self, x):
        return self.l2(self.l1(x))[0] * self.scale + self.extra[0] - self.extra[1]


def test_custom_modules_register_attributes_in_assignment_order():
    m = TwoLayers()
    names = [n for n, _ in m.named_parameters()]
    assert len(m.parameters()) == 3 * 3 + 1 + 2 + 4 == len(names)
    assert names[:4] == [
        "l1.neurons.0.w.0",
        "l1.neurons.0.w.1",
        "l1.neurons.0.b",
        "l1.neurons.1.w.0",
    ]
    assert names[9:12] == ["scale", "extra.0", "extra.1"] and names[-1] == "l2.neurons.0.b"
    m([0.5, -1.0]).backward()
    assert all(p.grad != 0.0 for p in [m.scale, *m.extra])
    m.zero_grad()
    assert all(p.grad == 0.0 for p in m.parameters())
    del m.extra
    assert len(m.parameters()) == 3 * 3 + 1 + 4
    m.l2 = Layer(3, 2, seed=0)  # reassigned: keeps its place, new parameters
    assert len(m.parameters()) == 3 * 3 + 1 + 8
    assert m.train() is m and m.training and not m.eval().training and not m.l1.training


def test_a_module_without_parameters_is_refused_by_optimizers():
    class Empty(Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="no parameters to optimize"):
        SGD(Empty().parameters(), lr=0.1)
    with pytest.raises(NotImplementedError, match="does not define forward"):
        Module()(1.0)


def test_state_dict_round_trips_through_json_bit_for_bit(tmp_path):
    import json

    a, b = MLP(2, [4, 3, 1], seed=1), MLP(2, [4, 3, 1], seed=2)
    state = a.state_dict()
    assert state["layers.0.neurons.0.w"] == [w.data for w in a.layers[0].neurons[0].w]
    assert json.loads(json.dumps(state)) == state  # plain data
    b.load_state_dict(json.loads(json.dumps(state)))
    xs = [[0.1 * i, -0.3 * i + 0.5] for i in range(10)]
    assert [b(x).data for x in xs] == [a(x).data for x in xs]  # bit for bit
    path = nn.save(tmp_path / "model.json", a)
    c = MLP(2, [4, 3, 1], seed=3)
    nn.load(path, c)
    assert [c(x).data for x in xs] == [a(x).data for x in xs]


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (
            lambda s: s.pop("layers.1.neurons.0.b"),
            ValueError,
            r"missing entries \['layers.1.neurons.0.b'\]",
        ),
        (lambda s: s.update(extra=1.0), ValueError, r"unexpected entries \['extra'\]"),
        (
            lambda s: s.update({"layers.0.neurons.0.w": [1.0]}),
            ValueError,
            r"holds 2 numbers, got 1",
        ),
        (
            lambda s: s.update({"layers.0.neurons.0.w": 1.0}),
            ValueError,
            r"holds 2 numbers, got float",
        ),
        (
            lambda s: s.update({"layers.0.neurons.0.b": "x"}),
            TypeError,
            r"expected a real number, got str",
        ),
        (lambda s: s.update({"layers.0.neurons.0.b": [1.0]}), TypeError, r"expected a real number"),
    ],
)
def test_load_state_dict_is_strict_and_changes_nothing_on_error(change, error, match):
    m = MLP(2, [2, 1], seed=0)
    before = m.state_dict()
    state = MLP(2, [2, 1], seed=5).state_dict()
    change(state)
    with pytest.raises(error, match=match):
        m.load_state_dict(state)
    assert m.state_dict() == before


def test_load_state_dict_not_strict_reports_what_did_not_match():
    m = MLP(2, [2, 1], seed=0)
    state = {"layers.0.neurons.0.b": 0.25, "other": 1.0}
    missing, unexpected = m.load_state_dict(state, strict=False)
    assert m.layers[0].neurons[0].b.data == 0.25
    assert unexpected == ["other"] and "layers.1.neurons.0.b" in missing


def test_models_pickle_and_deep_copy_with_tied_weights_kept():
    import copy
    import pickle

    m = TwoLayers()
    m.l2.neurons[0].w[0] = m.l1.neurons[1].w[0]  # tie two weights
    for twin in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert twin.l2.neurons[0].w[0] is twin.l1.neurons[1].w[0]
        assert [p.data for p in twin.parameters()] == [p.data for p in m.parameters()]
        assert twin([0.3, 0.4]).data == m([0.3, 0.4]).data
    assert pickle.loads(pickle.dumps(MLP(2, [4, 1], seed=0)))([1.0, 2.0]).data == (
        MLP(2, [4, 1], seed=0)([1.0, 2.0]).data
    )


def test_resuming_from_a_saved_model_and_optimizer_takes_the_same_steps(tmp_path):
    import nn

    xs, ys = moons(20, seed=1)

    def make():
        model = MLP(2, [4, 1], seed=7)
        return model, Adam(model.parameters(), lr=0.05)

    def step(model, opt):
        loss = losses.logistic([model(x) for x in xs], ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.data

    model, opt = make()
    straight = [step(model, opt) for _ in range(8)]
    model, opt = make()
    first = [step(model, opt) for _ in range(4)]
    nn.save(tmp_path / "run.json", model, opt)
    model, opt = make()  # a fresh start, then the saved state
    nn.load(tmp_path / "run.json", model, opt)
    assert opt.t == 4
    resumed = first + [step(model, opt) for _ in range(4)]
    assert resumed == straight  # bit for bit
    sgd = SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="the state is of a 'Adam' optimizer"):
        sgd.load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="holds a 'MLP', not a 'TwoLayers'"):
        nn.load(tmp_path / "run.json", TwoLayers())


def test_losses_take_numpy_arrays_or_say_what_is_wrong():
    np = pytest.importorskip("numpy")
    zs = [Value(0.5), Value(-1.0)]
    assert losses.logistic(zs, np.array([1, 0])).data == losses.logistic(zs, [1, 0]).data
    assert losses.mse(zs, np.array([0.5, 1.0])).data == losses.mse(zs, [0.5, 1.0]).data
    with pytest.raises(
        TypeError, match=r"mse: targets\[0\] must be one of the Values or numbers, got ndarray"
    ):
        losses.mse(zs, np.array([[0.5], [1.0]]))
    with pytest.raises(TypeError, match=r"logistic: targets must be a number or a sequence"):
        losses.logistic(zs, "10")


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


def test_main_job_prints_the_table_writes_the_pictures_and_ends_with_accuracy(xor_job):
    folder, stdout, stderr, status = xor_job
    assert status == 0
    tmp_path = folder / "xor-out"
    out = stdout.splitlines()
    assert out[-1] == "accuracy: 4/4"
    assert any("P(y=1|x)" in line for line in out)
    names = ["forward.svg", "backward.svg", "network_forward.svg", "network_backward.svg"]
    names += ["backprop.html", "decision_boundary.png", "feature_space.png"]
    for name in names:
        assert (tmp_path / name).stat().st_size > 1000, name
    assert "L, x=(1, 0), y=1" in (tmp_path / "forward.svg").read_text()
    assert "Warning" not in stderr and "Traceback" not in stderr
    assert "loss=" in stderr and "loss=0.0000" not in stderr  # digits that move


def test_figures_are_at_least_100_dpi(tmp_path):
    from PIL import Image

    main(["--out", str(tmp_path), "--steps", "20"])
    for name in ("decision_boundary.png", "feature_space.png"):
        with Image.open(tmp_path / name) as im:
            assert min(im.info["dpi"]) >= 100 and im.size[0] >= 600, name


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
    assert (tmp_path / "backward.svg").exists() and (tmp_path / "backprop.html").exists()
    assert run.stderr == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hidden", "0"], "argument --hidden: must be a positive integer, got '0'"),
        (["--hidden", "2.5"], "argument --hidden: must be a positive integer, got '2.5'"),
        (["--lr", "inf"], "argument --lr: must be a positive, finite number, got 'inf'"),
        (["--lr", "x"], "argument --lr: must be a positive number, got 'x'"),
        (["--seed", "1.5"], "argument --seed: must be an integer, got '1.5'"),
        (["--out", ""], "argument --out: must name a folder, got an empty string"),
        (["--lecture", "--hidden", "4"], "--lecture runs the slide's hand-set network"),
        (["--lecture", "--seed", "1", "--compile"], "--seed, --compile do not apply"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_main_job_rejects_bad_arguments_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_main_job_refuses_outputs_it_cannot_write(tmp_path, capsys):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(SystemExit) as info:
        main(["--out", str(afile)])
    assert info.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: nothing to test then
            pytest.skip("running as a user who may write to a read-only folder (root)")
        assert main(["--out", str(locked / "out"), "--steps", "2"]) == 2
        err = capsys.readouterr().err
        assert "cannot write to" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    finally:
        locked.chmod(0o700)


def test_main_job_refuses_an_unwritable_folder_even_as_root(tmp_path, capsys, monkeypatch):
    import builtins

    real = builtins.open

    def failing(path, *a, **k):
        if str(path).startswith(str(tmp_path)):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(builtins, "open", failing)
    assert main(["--out", str(tmp_path / "out"), "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"python -m nn.xor: error: cannot write to '{tmp_path / 'out' / '.write-test'}': "
        "Permission denied"
    )


def test_a_diverged_run_says_so_and_exits_non_zero(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--lr", "10"]) == 1
    captured = capsys.readouterr()
    assert "training did not converge" in captured.err and "try a smaller --lr" in captured.err
    assert "accuracy:" not in captured.out


def test_the_animation_is_a_gif_of_training(tmp_path):
    from PIL import Image

    assert main(["--out", str(tmp_path), "--steps", "8", "--animate"]) == 0
    with Image.open(tmp_path / "training.gif") as im:
        assert im.n_frames == 8 and im.size[0] >= 600  # a frame a step (up to 20 frames)


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
    assert loss.parents == ()  # a leaf: the step's graph was freed before the GC resumed
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


def test_bound_replaces_parameters_held_in_tuples_nested_and_tied_and_puts_them_back():
    """Tuples cannot be changed in place: bound() rebuilds each one holding a parameter (a
    tuple inside a tuple too, a tied weight at each of its places) and, on exit, puts
    the module's own tuples of its own Values back."""

    class Tuples(Module):
        def __init__(self) -> None:
            a, b, c, d = (Value(x) for x in (1.0, 2.0, 3.0, 4.0))
            self.vec = (a, b)  # Values only
            self.mixed = (c, [d], (a, 5))  # a list, a nested tuple with a tied weight
            self.deep = (Value(6.0), (Value(7.0), Value(8.0)))

        def __call__(self) -> Value:
            (a, b), (c, [d], (a2, _)), (e, (f, g)) = self.vec, self.mixed, self.deep
            return a * b + c * d + a2 + e + f * g

    m = Tuples()
    assert [n for n, _ in m.named_parameters()] == [
        "vec.0", "vec.1", "mixed.0", "mixed.1.0", "deep.0", "deep.1.0", "deep.1.1"
    ]  # fmt: skip
    own = m.parameters()
    new = [Value(10.0 * (i + 1)) for i in range(len(own))]
    with m.bound(new):
        assert all(p is v for p, v in zip(m.parameters(), new))
        assert m.mixed[2][0] is new[0]  # the tied weight, in the nested tuple too
        assert m().data == 10 * 20 + 30 * 40 + 10 + 50 + 60 * 70
    assert all(p is v for p, v in zip(m.parameters(), own))
    assert m.mixed[2] == (own[0], 5) and m().data == 1 * 2 + 3 * 4 + 1 + 6 + 7 * 8
