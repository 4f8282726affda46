"""Plain training loops: XOR with the lecture's logistic loss, and what they report.

The compiled steps (:func:`compile_step`, :func:`compile_batch_step`, used by
``python -m nn.digits`` for ten classes) live in :mod:`nn.compiled`; they are
re-exported here, where earlier versions had them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autodiff import Value, no_grad
from nn.compiled import compile_batch_step, compile_step
from nn.losses import logistic
from nn.module import MLP
from nn.optim import Adam

__all__ = [
    "XOR_DEFAULTS",
    "TrainResult",
    "accuracy",
    "compile_batch_step",
    "compile_step",
    "predict_proba",
    "train_xor",
]

#: The main job's defaults; solve XOR for at least 99 of the seeds 0-99 (tests/test_nn.py).
XOR_DEFAULTS: dict[str, Any] = {"hidden": 16, "steps": 200, "lr": 0.05, "seed": 0}


@dataclass
class TrainResult:
    """A trained model and its loss after every step."""

    model: MLP
    losses: list[float] = field(default_factory=list)


def predict_proba(model: MLP, xs: Sequence[Sequence[float]]) -> list[float]:
    """P(y=1|x) = σ(z) for each sample (no graph is recorded)."""
    with no_grad():
        return [model(x).sigmoid().data for x in xs]  # type: ignore[union-attr]


def accuracy(model: MLP, xs: Sequence[Sequence[float]], ys: Sequence[int]) -> int:
    """How many samples the model classifies right (class 1 when P(y=1|x) > ½)."""
    return sum(int(p > 0.5) == y for p, y in zip(predict_proba(model, xs), ys))


def train_xor(
    xs: Sequence[Sequence[float]],
    ys: Sequence[int],
    *,
    hidden: int = XOR_DEFAULTS["hidden"],
    steps: int = XOR_DEFAULTS["steps"],
    lr: float = XOR_DEFAULTS["lr"],
    seed: int = XOR_DEFAULTS["seed"],
    on_step: Callable[[int, float, MLP], None] | None = None,
    compile: bool = False,
    model: MLP | None = None,
) -> TrainResult:
    """Train MLP(2, [hidden, 1]) (ReLU hidden layer, linear score z) with Adam.

    The loss is the lecture's mean of ζ((1−2y)z) over the whole batch, from a
    random start drawn from `seed`. `on_step(step, loss, model)` is called after every
    update (for a progress bar). With ``compile=True`` the loss and its gradient
    are traced once and run as compiled code (:func:`compile_step`): the same
    numbers, faster. `model` is the network to train, if the caller made it (to watch it
    from the start); by default a new one from `seed`.
    """
    if model is None:
        model = MLP(len(xs[0]), [hidden, 1], activation="relu", seed=seed)
    opt = Adam(model.parameters(), lr=lr)
    result = TrainResult(model)

    def closure() -> Value:
        loss = logistic([model(x) for x in xs], ys)  # type: ignore[misc]
        opt.zero_grad()
        loss.backward()
        return loss

    if compile:
        compiled = compile_step(model, lambda: logistic([model(x) for x in xs], ys), opt)  # type: ignore[misc]
    for step in range(steps):
        value = compiled() if compile else opt.step(closure).data  # type: ignore[union-attr]
        result.losses.append(value)
        if on_step is not None:
            on_step(step, value, model)
    return result
