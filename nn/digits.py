"""The multi-class main job: ten classes of real handwriting, through the batched trace.

    python -m nn.digits [--hidden H] [--steps N] [--lr LR] [--seed S] [--out DIR]

Trains MLP(64, [H, 10]) -- a ReLU hidden layer and ten scores -- with Adam on the
softmax cross-entropy (:func:`nn.losses.cross_entropy`) over the 1,347 training
digits of :func:`nn.data.digits`, full batch. The loss is written for one sample
and traced once (:func:`nn.train.compile_batch_step`): each step runs it over the
whole batch as matrix products, with the engine's own arithmetic. Then it
classifies the 450 test digits and writes into DIR:

* ``confusion.png``: which digit was taken for which;
* ``misclassified.png``: the test digits it got wrong, with the predicted and the
  true label;
* ``class_gradients.png``: what each class responds to -- for each class, its
  average test digit and, averaged over the same digits, ink × ∂(the class's
  score)/∂(pixel), computed by the engine (:func:`class_responses`).

The last line printed is ``test accuracy: A`` (A ≥ 0.96 with the defaults). A bad
argument or an output that cannot be written gets one line on stderr and exit
status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

from autodiff import Value, no_grad
from autodiff.extras import MissingExtraError, check, require
from autodiff.functional import grad
from nn import losses
from nn.cli import (
    Parser,
    check_memory,
    folder,
    integer,
    missing_extra,
    positive_float,
    positive_int,
    probe_writable,
    run_job,
)
from nn.data import digits
from nn.module import MLP
from nn.optim import Adam
from nn.plots import class_gradients, confusion_matrix, digit_grid
from nn.train import compile_batch_step

__all__ = ["DEFAULTS", "class_responses", "main", "parse_args", "predict"]

#: The defaults: MLP 64-32-10, 200 full-batch Adam steps at lr 0.01, seed 0.
DEFAULTS = {"hidden": 32, "steps": 200, "lr": 0.01, "seed": 0}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    d = DEFAULTS
    p = Parser(prog="python -m nn.digits", description="Classify handwritten digits 0-9.")
    options = (
        ("hidden", positive_int, "hidden units"),
        ("steps", positive_int, "training steps"),
        ("lr", positive_float, "Adam learning rate"),
        ("seed", integer, "seed of the initial weights"),
    )
    for name, kind, text in options:
        p.add_argument(
            f"--{name}", type=kind, default=d[name], help=f"{text} (default %(default)s)"
        )
    p.add_argument(
        "--out", type=folder, default="digits-out", help="output folder (default %(default)s)"
    )
    return p.parse_args(argv)


def predict(model: MLP, xs: Sequence[Sequence[float]]) -> list[int]:
    """The class with the highest score, for each sample."""
    out = []
    with no_grad():
        for x in xs:
            scores = [v.data for v in model(x)]  # type: ignore[union-attr]
            out.append(max(range(len(scores)), key=scores.__getitem__))
    return out


def class_responses(
    model: MLP, xs: Sequence[Sequence[float]], ys: Sequence[int], classes: int = 10
) -> tuple[list[list[float]], list[list[float]], list[int]]:
    """For each class c: the average of its samples, the average over them of
    xᵢ · ∂(score of c)/∂xᵢ for each input i (where the sample's ink raises the class's
    score, or lowers it), and how many samples it averages. The derivatives are the
    engine's (:func:`autodiff.functional.grad`: no parameter's ``.grad`` is touched)."""
    d = len(xs[0])
    means = [[0.0] * d for _ in range(classes)]
    grads = [[0.0] * d for _ in range(classes)]
    counts = [0] * classes
    for x, y in zip(xs, ys):
        inputs = [Value(v) for v in x]
        scores: list[Value] = model(inputs)  # type: ignore[assignment]
        for i, g in enumerate(grad(scores[y], inputs)):
            means[y][i] += x[i]
            grads[y][i] += x[i] * g.data
        counts[y] += 1
    for c in range(classes):
        n = counts[c] or 1
        means[c] = [v / n for v in means[c]]
        grads[c] = [v / n for v in grads[c]]
    return means, grads, counts


def main(argv: Sequence[str] | None = None) -> int:
    """Run the main job; returns the exit status (2 for bad arguments, an unwritable
    output, an overflow, too little memory or a missing extra; 130 when interrupted: see
    nn.cli.run_job)."""
    args = parse_args(argv)
    try:  # its pictures and progress bar, and the array training step, before any work
        check("nn", "python -m nn.digits")
        check("arrays", "python -m nn.digits")
    except MissingExtraError as e:
        return missing_extra("python -m nn.digits", e)
    return run_job("python -m nn.digits", args.out, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    """The job itself: train, report, write the pictures (its failures: see main)."""
    tqdm = require("tqdm", "nn", "python -m nn.digits").tqdm
    # the parameters as Values (~200 bytes each) and a step's float64 arrays (~12 per unit)
    check_memory((75 * args.hidden + 10) * 200 + 1347 * args.hidden * 8 * 12, "python -m nn.digits")
    probe_writable(args.out, ["confusion.png", "misclassified.png", "class_gradients.png"])
    xs, ys = digits("train")
    xt, yt = digits("test")
    model = MLP(64, [args.hidden, 10], activation="relu", seed=args.seed)
    opt = Adam(model.parameters(), lr=args.lr)

    def sample_loss(x: list[Value], y: Value) -> Value:
        scores: list[Value] = model(x)  # type: ignore[assignment]  # ten of them
        return losses.cross_entropy([scores], [y])

    step = compile_batch_step(model, sample_loss, xs, ys, opt)
    first = math.nan
    with tqdm(total=args.steps, desc="training", unit="step", file=sys.stderr) as bar:
        for k in range(args.steps):
            loss = step()  # the loss of the model before this step's update
            first = loss if k == 0 else first
            bar.update(1)
            if k % 10 == 0 or k == args.steps - 1:
                bar.set_postfix(loss=f"{loss:.4g}")
    last = step.loss()  # type: ignore[attr-defined]  # of the model printed and drawn below
    pred = predict(model, xt)
    right = sum(p == t for p, t in zip(pred, yt))
    steps = f"{args.steps} step" + ("s" if args.steps != 1 else "")
    print(
        f"trained MLP(64, [{args.hidden}, 10]) for {steps} on {len(xs)} digits: "
        f"loss {first:.4g} -> {last:.4g}; {right} of {len(xt)} test digits right"
    )
    wrong = [k for k, (p, t) in enumerate(zip(pred, yt)) if p != t]
    written = []
    path = os.path.join(args.out, "confusion.png")
    confusion_matrix(yt, pred, path)
    written.append(path)
    path = os.path.join(args.out, "misclassified.png")
    digit_grid(
        [xt[k] for k in wrong],
        [f"{pred[k]}, is {yt[k]}" for k in wrong],
        path,
        title=f"the {len(wrong)} test digits taken for another (predicted, is true)",
    )
    written.append(path)
    path = os.path.join(args.out, "class_gradients.png")
    used = [any(x[i] > 0.0 for x in xs) for i in range(64)]
    means, grads, counts = class_responses(model, xt, yt)
    class_gradients(
        means,
        grads,
        path,
        counts=counts,
        used=used,
        label="ink × ∂score/∂pixel",
        title=(
            "What each class responds to: for each class (how many test digits), its average "
            "digit and, averaged over the same digits,\nink × ∂(the class's score)/∂(pixel) "
            "by the engine: blue where the digit's ink raises the class's score, red where it "
            "lowers it (pale yellow: never lit)"
        ),
    )
    written.append(path)
    print("wrote " + ", ".join(written))
    print(f"test accuracy: {right / len(xt):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
