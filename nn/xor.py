"""The main job: train a network to solve XOR, and draw what it learned.

    python -m nn.xor [--hidden H] [--steps N] [--lr LR] [--seed S] [--out DIR]
                     [--compile] [--animate]
    python -m nn.xor --lecture [--out DIR]

Trains MLP(2, [H, 1]) -- a ReLU hidden layer and the lecture's logistic head --
with the softplus loss from a random start; prints the four inputs, P(y=1|x)
and the predicted class; writes into DIR:

* ``network_forward.svg`` / ``network_backward.svg``: the trained network, one
  node per neuron, on the sample x = (1, 0): outputs and weights, then
  gradients (:mod:`nn.draw`);
* ``forward.svg`` / ``backward.svg``: that sample's loss as a Value graph, cut
  to what fits a screen (:mod:`autodiff.render`);
* ``backprop.html``: back-propagation through the lecture's network, to step
  through in a browser (:func:`autodiff.render.explorer`);
* ``layers.html``: the same back-propagation layer by layer, the lecture's
  L12–L17 with their vectors and matrices (:func:`nn.draw.layer_explorer`);
* ``training.html``: training to watch, step by step -- the network with each unit
  drawn as its output over the input plane, the boundary, the loss curve
  (:class:`nn.draw.TrainingRecorder`);
* ``decision_boundary.png`` and ``feature_space.png``; with ``--animate``,
  ``training.gif``: both, over the course of training.

The last line printed is ``accuracy: K/4``. ``--lecture`` runs the slide's
hand-set network (L6) instead of training. A bad argument or an output that
cannot be written gets one line on stderr and exit status 2; a run whose loss
ends no better than guessing (or not finite) says so and exits with status 1.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from autodiff import Value, no_grad
from autodiff.extras import MissingExtraError, check, require
from autodiff.render import (
    RendererNotFoundError,
    backward_graph,
    explorer,
    forward_graph,
    save,
)
from nn import lecture
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
from nn.data import xor
from nn.draw import TrainingRecorder, layer_explorer, network_graph, recorded_steps
from nn.losses import logistic
from nn.module import MLP
from nn.plots import decision_boundary, feature_space, training_animation
from nn.train import XOR_DEFAULTS, accuracy, predict_proba, train_xor

__all__ = ["main", "parse_args"]

#: The sample whose graphs are drawn: x = (1, 0), y = 1.
GRAPH_SAMPLE = 1
#: A loss at or above this (ln 2) is no better than saying ½ for every sample.
CHANCE = math.log(2.0)
_TRAINING = ("hidden", "steps", "lr", "seed", "compile", "animate")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = Parser(
        prog="python -m nn.xor", description="Train a small network to solve XOR and draw it."
    )
    d = XOR_DEFAULTS
    p.add_argument("--hidden", type=positive_int, help=f"hidden units (default {d['hidden']})")
    p.add_argument(
        "--steps", type=positive_int, help=f"training steps, full batch (default {d['steps']})"
    )
    p.add_argument("--lr", type=positive_float, help=f"Adam learning rate (default {d['lr']})")
    p.add_argument(
        "--seed", type=integer, help=f"seed of the initial weights (default {d['seed']})"
    )
    p.add_argument("--out", type=folder, default="xor-out", help="output folder (default xor-out)")
    p.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="trace the loss once and train with the compiled code (same numbers, faster)",
    )
    p.add_argument(
        "--animate",
        action="store_true",
        default=None,
        help="also write training.gif: the boundary and the features as training goes",
    )
    p.add_argument(
        "--lecture",
        action="store_true",
        help="run the slide's hand-set ReLU network instead of training",
    )
    args = p.parse_args(argv)
    given = [f"--{name}" for name in _TRAINING if getattr(args, name) is not None]
    if args.lecture and given:
        p.error(
            f"--lecture runs the slide's hand-set network, which is not trained: "
            f"{', '.join(given)} do{'es' if len(given) == 1 else ''} not apply"
        )
    for name in _TRAINING:
        if getattr(args, name) is None:
            setattr(args, name, d.get(name, False))
    return args


def _label_parameters(model: MLP) -> None:
    """Name the parameters as the lecture does: W (inputs × hidden), c, w, b."""
    hidden, out = model.layers[0], model.layers[-1]
    for j, neuron in enumerate(hidden.neurons):
        for i, w in enumerate(neuron.w):
            w.label = f"W{i + 1},{j + 1}"
        neuron.b.label = f"c{j + 1}"
    for j, w in enumerate(out.neurons[0].w):
        w.label = f"w{j + 1}"
    out.neurons[0].b.label = "b"


def _sample_loss(z: Value, x: Sequence[float], y: int) -> Value:
    z.label = "z"
    u4 = (1 - 2 * y) * z
    u4.label = "u⁴"
    loss = u4.softplus()
    loss.label = f"L, x=({x[0]:g}, {x[1]:g}), y={y}"
    return loss


#: Every file the job may write in its folder (checked before any work: none a folder).
OUTPUTS = (
    "forward.svg",
    "backward.svg",
    "network_forward.svg",
    "network_backward.svg",
    "backprop.html",
    "layers.html",
    "training.html",
    "decision_boundary.png",
    "feature_space.png",
    "training.gif",
)


def _write_graphs(loss: Value, out: str) -> list[str]:
    try:
        return [
            save(forward_graph(loss), os.path.join(out, "forward.svg")),
            save(backward_graph(loss), os.path.join(out, "backward.svg")),
        ]
    except RendererNotFoundError as e:
        print(f"warning: graphs not drawn: {e}", file=sys.stderr)
        return []


def _write_pictures(model: MLP | None, out: str) -> list[str]:
    """The network views of `model` (if any) and the explorer of the lecture's network."""
    x, y = xor()[0][GRAPH_SAMPLE], xor()[1][GRAPH_SAMPLE]
    written = []
    try:
        if model is not None:
            for kind in ("forward", "backward"):
                g = network_graph(model, x, y, kind=kind)
                written.append(save(g, os.path.join(out, f"network_{kind}.svg")))
        W, c, w, b = lecture.parameters()
        L = lecture.forward(x, y, W, c, w, b).L
        title = "Back-propagation through the lecture's network, x = (1, 0), y = 1"
        path = os.path.join(out, "backprop.html")
        explorer(L, path, title=title)
        written.append(path)
        title = "The lecture's network, layer by layer (L12–L17), x = (1, 0), y = 1"
        path = os.path.join(out, "layers.html")
        layer_explorer(lecture.mlp(), x, y, path, title=title)
        written.append(path)
        if model is not None:  # say so: these two show the slide's network, not the trained one
            written[-2:] = [f"{written[-2]} and {written[-1]} (the lecture's network)"]
    except RendererNotFoundError as e:
        print(f"warning: network pictures not drawn: {e}", file=sys.stderr)
    return written


def _table(xs: Sequence[Sequence[float]], ys: Sequence[int], col: str, vals: list[float]) -> None:
    print(f"  x₁  x₂ | target | {col:>8} | class")
    for x, y, v in zip(xs, ys, vals):
        print(f"  {x[0]:g}   {x[1]:g}  |   {y}    | {v:8.4f} |   {int(v > 0.5)}")


def _snapshot(model: MLP, xs: list[list[float]]) -> tuple[Any, list[list[float]], Any]:
    """What one animation frame needs: P(y=1|x), the features and the output layer, frozen."""
    state = model.state_dict()
    twin = MLP(2, [len(model.layers[0].neurons), 1], activation="relu", seed=0)
    twin.load_state_dict(state)

    def prob(p: list[float]) -> float:
        with no_grad():
            return twin(p).sigmoid().data  # type: ignore[union-attr]

    with no_grad():
        hs = [[v.data for v in twin.hidden(x)] for x in xs]
    out_neuron = twin.layers[-1].neurons[0]
    return prob, hs, ([w.data for w in out_neuron.w], out_neuron.b.data, 0.0)


def _loss_of(model: MLP, xs: list[list[float]], ys: list[int]) -> float:
    """The training loss of `model` as it is now (after its last update), no graph kept."""
    with no_grad():
        return logistic([model(x) for x in xs], ys).data  # type: ignore[misc]


def run_trained(args: argparse.Namespace, xs: list[list[float]], ys: list[int]) -> int:
    """Train from a random start; print and draw. Returns K, the samples right."""
    tqdm = require("tqdm", "nn", "python -m nn.xor").tqdm

    frames: list[Any] = []
    every = max(1, args.steps // 20)  # about 20 frames
    model = MLP(2, [args.hidden, 1], activation="relu", seed=args.seed)
    watch = TrainingRecorder(model, xs, ys)
    marks = set(recorded_steps(args.steps))
    watch.record(0)
    with tqdm(total=args.steps, desc="training", unit="step", file=sys.stderr) as bar:

        def progress(step: int, loss: float, model: MLP) -> None:
            bar.update(1)
            if step % 10 == 0 or step == args.steps - 1:
                bar.set_postfix(loss=f"{loss:.4g}")  # 4 significant digits: it visibly moves
            watch.track(step, loss)  # the loss of the model after `step` updates
            if step + 1 in marks:
                watch.record(step + 1)
            if args.animate and (step % every == 0 or step == args.steps - 1):
                # titled with the loss of the model the frame draws: after this update
                frames.append((step + 1, _loss_of(model, xs, ys), *_snapshot(model, xs)))

        result = train_xor(
            xs,
            ys,
            hidden=args.hidden,
            steps=args.steps,
            lr=args.lr,
            seed=args.seed,
            on_step=progress,
            compile=args.compile,
            model=model,
        )
    model = result.model
    # the loss before the first update, and that of the model printed and drawn below
    first, last = result.losses[0], _loss_of(model, xs, ys)
    steps = f"{args.steps} step" + ("s" if args.steps != 1 else "")
    print(f"trained MLP(2, [{args.hidden}, 1]) for {steps}: loss {first:.4g} -> {last:.4g}")
    _table(xs, ys, "P(y=1|x)", predict_proba(model, xs))

    _label_parameters(model)
    x, y = xs[GRAPH_SAMPLE], ys[GRAPH_SAMPLE]
    z = model([Value(x[0], "x₁"), Value(x[1], "x₂")])
    written = _write_graphs(_sample_loss(z, x, y), args.out)  # type: ignore[arg-type]
    written += _write_pictures(model, args.out)

    prob, hs, line = _snapshot(model, xs)
    boundary = os.path.join(args.out, "decision_boundary.png")
    features = os.path.join(args.out, "feature_space.png")
    decision_boundary(prob, xs, ys, boundary, title=f"the learned boundary, seed {args.seed}")
    feature_space(xs, hs, ys, features, line=line)
    written += [boundary, features]
    title = f"MLP(2, [{args.hidden}, 1]) learning XOR, seed {args.seed}, Adam lr {args.lr:g}"
    written.append(watch.save(os.path.join(args.out, "training.html"), title=title))
    if frames:
        written.append(training_animation(frames, xs, ys, os.path.join(args.out, "training.gif")))
    print("wrote " + ", ".join(written))
    if not math.isfinite(last) or last >= min(first, CHANCE):
        print(
            f"training did not converge: the loss went from {first:.4g} to {last:.4g}, no better "
            f"than guessing ½ for every sample (ln 2 = {CHANCE:.4f}); try a smaller --lr or "
            "another --seed",
            file=sys.stderr,
        )
        return -1
    return accuracy(model, xs, ys)


def run_lecture(args: argparse.Namespace, xs: list[list[float]], ys: list[int]) -> int:
    """The slide's hand-set network: print WᵀX + c, h and y; draw; return K."""
    pre, hs, outs = [], [], []
    for x in xs:
        p, h, out = lecture.relu_network(x)
        pre.append([v.data for v in p])
        hs.append([v.data for v in h])
        outs.append(out.data)
    print("the lecture's hand-set network: W = [[1, 1], [1, 1]], c = [0, -1], w = [1, -2], b = 0")
    for name, cols in (("WᵀX + c", pre), ("h = max(0, WᵀX + c)", hs)):
        print(f"{name}:")
        for k in range(2):
            print("   [" + " ".join(f"{col[k]:3g}" for col in cols) + " ]")
    print("y = wᵀh + b = [" + " ".join(f"{v:g}" for v in outs) + "]")
    _table(xs, ys, "y", outs)

    W, c, w, b = lecture.parameters()
    x, y = xs[GRAPH_SAMPLE], ys[GRAPH_SAMPLE]
    written = _write_graphs(lecture.forward(x, y, W, c, w, b).L, args.out)
    written += _write_pictures(None, args.out)

    def score(p: list[float]) -> float:
        with no_grad():
            return lecture.relu_network(p)[2].data

    boundary = os.path.join(args.out, "decision_boundary.png")
    features = os.path.join(args.out, "feature_space.png")
    title = "the lecture's network: its boundary"
    decision_boundary(score, xs, ys, boundary, title=title, label="y = wᵀh + b")
    feature_space(xs, hs, ys, features, line=(lecture.LECTURE_W_OUT, lecture.LECTURE_B, 0.5))
    written += [boundary, features]
    print("wrote " + ", ".join(written))
    return sum(int(v > 0.5) == t for v, t in zip(outs, ys))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the main job; returns the exit status (0; 1 if training did not converge; 2 for
    bad arguments, an unwritable output, an overflow, too little memory or a missing
    extra; 130 when interrupted: see nn.cli.run_job)."""
    args = parse_args(argv)
    try:
        check("nn", "python -m nn.xor")  # its pictures and progress bar, before any work
    except MissingExtraError as e:
        return missing_extra("python -m nn.xor", e)

    def job() -> int:
        # the parameters as Values (~200 bytes each) and a step's graph (~50 nodes a unit)
        check_memory((4 * args.hidden + 1) * 200 + args.hidden * 50 * 200, "python -m nn.xor")
        probe_writable(args.out, OUTPUTS)
        xs, ys = xor()
        k = run_lecture(args, xs, ys) if args.lecture else run_trained(args, xs, ys)
        if k < 0:
            return 1
        print(f"accuracy: {k}/4")
        return 0

    return run_job("python -m nn.xor", args.out, job)


if __name__ == "__main__":
    sys.exit(main())
