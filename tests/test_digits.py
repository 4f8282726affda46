"""Ten classes of real handwriting: the shipped data, and the main job `python -m nn.digits`."""

from __future__ import annotations

import collections
import re
import subprocess
import sys

import pytest

from autodiff import no_grad
from nn import losses
from nn.compiled import compile_batch_step
from nn.data import DIGITS_SPLIT, digits
from nn.digits import class_responses, main, parse_args
from nn.module import MLP
from nn.optim import Adam


def test_the_digits_are_shipped_split_and_scaled():
    xs, ys = digits("train")
    xt, yt = digits("test")
    assert (len(xs), len(xt)) == (DIGITS_SPLIT, 1797 - DIGITS_SPLIT) == (1347, 450)
    assert all(len(x) == 64 for x in xs + xt)
    assert min(min(x) for x in xs) == 0.0 and max(max(x) for x in xs) == 1.0
    assert set(ys) == set(yt) == set(range(10))
    counts = collections.Counter(ys + yt)
    assert sum(counts.values()) == 1797 and min(counts.values()) >= 170  # ~180 per digit
    assert digits("train") == (xs, ys)  # fixed: the same split every time
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        digits("validation")


def test_the_data_file_carries_its_source_and_license():
    from importlib import resources

    readme = (resources.files("nn") / "datasets" / "README.md").read_text(encoding="utf-8")
    for fact in ("Optical Recognition of Handwritten Digits", "Alpaydin", "CC BY 4.0", "1,797"):
        assert fact in readme


@pytest.mark.slow
def test_the_main_job_reaches_96_percent_and_writes_its_pictures(digits_job):
    folder, out, _, status = digits_job
    assert status == 0
    last = out.splitlines()[-1]
    assert last.startswith("test accuracy: ")
    assert float(last.split(": ")[1]) >= 0.96
    for name in ("confusion.png", "misclassified.png", "class_gradients.png"):
        assert (folder / "digits-out" / name).stat().st_size > 10_000, name
    # the losses printed: before the first update and of the model after the last one
    first, last = re.search(r"loss (\S+) -> (\S+);", out).groups()
    assert float(first) > 2.0 > 0.05 > float(last)


def test_the_loss_after_training_is_the_model_as_it_is_now():
    """step() returns the loss before its update; step.loss() that of the model as it is
    now: the eager engine's loss of the updated model (to the batched mean's rounding:
    it sums in matrix products, 1e-13 relative)."""
    xs, ys = digits("train")
    xs, ys = xs[:60], ys[:60]
    model = MLP(64, [8, 10], seed=1)
    step = compile_batch_step(
        model,
        lambda x, y: losses.cross_entropy([model(x)], [y]),
        xs,
        ys,
        Adam(model.parameters(), lr=0.01),
    )
    for _ in range(3):
        before = step()
    now = step.loss()
    with no_grad():
        eager = losses.cross_entropy([model(x) for x in xs], ys).data
    assert now == pytest.approx(eager, rel=1e-13)
    assert now < before  # the last update helped, and it is counted
    assert step() == now  # the next step starts from the same model


def test_class_responses_are_ink_times_the_weight_for_a_linear_model():
    """Closed form: with no hidden layer, ∂(score c)/∂xᵢ = W[c][i], so the average of
    xᵢ·∂score/∂xᵢ over the class's samples is mean(xᵢ)·W[c][i]."""
    model = MLP(3, [2], output_activation="linear", seed=4)
    xs = [[1.0, 0.0, 0.5], [0.0, 2.0, 1.0], [3.0, 1.0, 0.0]]
    ys = [0, 1, 0]
    means, grads, counts = class_responses(model, xs, ys, classes=2)
    assert counts == [2, 1]
    assert means[0] == [2.0, 0.5, 0.25] and means[1] == [0.0, 2.0, 1.0]
    for c in range(2):
        w = [v.data for v in model.layers[0].neurons[c].w]
        assert grads[c] == pytest.approx([m * wi for m, wi in zip(means[c], w)], rel=1e-15)
    assert all(p.grad == 0.0 for p in model.parameters())  # no .grad touched


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hidden", "0"], "argument --hidden: must be a positive integer, got '0'"),
        (["--steps", "x"], "argument --steps: must be a positive integer, got 'x'"),
        (["--lr", "-1"], "argument --lr: must be a positive, finite number, got '-1'"),
        (["--seed", "1.5"], "argument --seed: must be an integer, got '1.5'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_get_one_line_and_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"python -m nn.digits: error: {message}\n"


def test_an_unwritable_output_gets_one_line_and_status_2(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SystemExit) as info:
        main(["--out", str(target)])
    assert info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_runs_as_a_command(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "nn.digits", "--steps", "20", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].startswith("test accuracy: 0.")
    assert "training" in run.stderr  # the progress bar
