"""The main job: train a network to solve XOR, and draw what it learned.

    python -m nn.xor [--hidden H] [--steps N] [--lr LR] [--seed S] [--out DIR] [--lecture]
                     [--compile]

Trains MLP(2, [H, 1]) -- a ReLU hidden layer and the lecture's logistic head --
with the softplus loss from a random start; prints the four inputs, P(y=1|x)
and the predicted class; writes into DIR the forward and backward graphs of
one sample's loss, the decision boundary, and the hidden feature space. The
last line printed is ``accuracy: K/4``.

``--lecture`` skips training and runs the slide's hand-set network (L6) instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from autodiff import Value, no_grad
from autodiff.render import RendererNotFoundError, backward_graph, forward_graph, save
from nn import lecture
from nn.data import xor
from nn.module import MLP
from nn.plots import decision_boundary, feature_space
from nn.train import XOR_DEFAULTS, accuracy, predict_proba, train_xor

__all__ = ["main", "parse_args"]

#: The sample whose loss graph is drawn: x = (1, 0), y = 1.
GRAPH_SAMPLE = 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="python -m nn.xor", description="Train a small network to solve XOR and draw it."
    )
    p.add_argument(
        "--hidden",
        type=_positive_int,
        default=XOR_DEFAULTS["hidden"],
        help="hidden units (default %(default)s)",
    )
    p.add_argument(
        "--steps",
        type=_positive_int,
        default=XOR_DEFAULTS["steps"],
        help="training steps, full batch (default %(default)s)",
    )
    p.add_argument(
        "--lr",
        type=_positive_float,
        default=XOR_DEFAULTS["lr"],
        help="Adam learning rate (default %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=XOR_DEFAULTS["seed"],
        help="seed of the initial weights (default %(default)s)",
    )
    p.add_argument("--out", default="xor-out", help="output folder (default %(default)s)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="trace the loss once and train with the compiled code (same numbers, faster)",
    )
    p.add_argument(
        "--lecture",
        action="store_true",
        help="run the slide's hand-set ReLU network instead of training",
    )
    return p.parse_args(argv)


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def _positive_float(s: str) -> float:
    v = float(s)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {s}")
    return v


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


def _write_graphs(loss: Value, out: str) -> list[str]:
    loss.backward()
    try:
        return [
            save(forward_graph(loss), os.path.join(out, "forward.svg")),
            save(backward_graph(loss), os.path.join(out, "backward.svg")),
        ]
    except RendererNotFoundError as e:
        print(f"warning: graphs not drawn: {e}", file=sys.stderr)
        return []


def _table(xs: Sequence[Sequence[float]], ys: Sequence[int], col: str, vals: list[float]) -> None:
    print(f"  x₁  x₂ | target | {col:>8} | class")
    for x, y, v in zip(xs, ys, vals):
        print(f"  {x[0]:g}   {x[1]:g}  |   {y}    | {v:8.4f} |   {int(v > 0.5)}")


def run_trained(args: argparse.Namespace, xs: list[list[float]], ys: list[int]) -> int:
    """Train from a random start; print and draw. Returns K, the samples right."""
    from tqdm import tqdm

    with tqdm(total=args.steps, desc="training", unit="step", file=sys.stderr) as bar:

        def progress(step: int, loss: float) -> None:
            bar.update(1)
            if step % 10 == 0 or step == args.steps - 1:
                bar.set_postfix(loss=f"{loss:.4f}")

        result = train_xor(
            xs,
            ys,
            hidden=args.hidden,
            steps=args.steps,
            lr=args.lr,
            seed=args.seed,
            on_step=progress,
            compile=args.compile,
        )
    model = result.model
    print(
        f"trained MLP(2, [{args.hidden}, 1]) for {args.steps} steps: "
        f"loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}"
    )
    _table(xs, ys, "P(y=1|x)", predict_proba(model, xs))

    _label_parameters(model)
    x, y = xs[GRAPH_SAMPLE], ys[GRAPH_SAMPLE]
    z = model([Value(x[0], "x₁"), Value(x[1], "x₂")])
    written = _write_graphs(_sample_loss(z, x, y), args.out)  # type: ignore[arg-type]

    def prob(p: list[float]) -> float:
        with no_grad():
            return model(p).sigmoid().data  # type: ignore[union-attr]

    with no_grad():
        hs = [[v.data for v in model.hidden(x)] for x in xs]
    out_neuron = model.layers[-1].neurons[0]
    line = ([w.data for w in out_neuron.w], out_neuron.b.data, 0.0)
    boundary = os.path.join(args.out, "decision_boundary.png")
    features = os.path.join(args.out, "feature_space.png")
    decision_boundary(prob, xs, ys, boundary, title=f"learned: P(y=1|x) = ½, seed {args.seed}")
    feature_space(xs, hs, ys, features, line=line)
    written += [boundary, features]
    print("wrote " + ", ".join(written))
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

    def score(p: list[float]) -> float:
        with no_grad():
            return lecture.relu_network(p)[2].data

    boundary = os.path.join(args.out, "decision_boundary.png")
    features = os.path.join(args.out, "feature_space.png")
    title = "the lecture's network: y = ½"
    decision_boundary(score, xs, ys, boundary, title=title, label="y = wᵀh + b")
    feature_space(xs, hs, ys, features, line=(lecture.LECTURE_W_OUT, lecture.LECTURE_B, 0.5))
    written += [boundary, features]
    print("wrote " + ", ".join(written))
    return sum(int(v > 0.5) == t for v, t in zip(outs, ys))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the main job; returns the process exit status (0)."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    xs, ys = xor()
    k = run_lecture(args, xs, ys) if args.lecture else run_trained(args, xs, ys)
    print(f"accuracy: {k}/4")
    return 0


if __name__ == "__main__":
    sys.exit(main())
