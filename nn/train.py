"""Training loops for binary classification with the lecture's logistic loss."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from autodiff import BatchedTraced, Value, no_grad, trace
from nn.losses import logistic
from nn.module import MLP, Module
from nn.optim import Adam, Optimizer

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


def compile_step(
    model: Module, loss_fn: Callable[[], Value], opt: Optimizer
) -> Callable[[], float]:
    """A training step from a trace: loss and gradient as straight-line code, then opt.step().

    `loss_fn()` builds the loss from `model` as usual; it is traced once, as a
    function of the model's parameters (see ``autodiff.trace``: control flow that
    depends on the data is frozen, and the data the loss sees -- the batch -- is
    baked in). Each call of the returned function computes the loss and the
    gradients at the current parameters, stores the gradients in ``.grad`` and
    lets `opt` update. It returns the loss as a float; ``.traced`` on it is the
    :class:`autodiff.Traced`.
    """
    params = model.parameters()

    def loss_of(ps: list[Value]) -> Value:
        with model.bound(ps):
            return loss_fn()

    traced = trace(loss_of, [p.data for p in params])

    def step() -> float:
        loss, grads = traced.value_and_grad([p._data for p in params])
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        return loss

    step.traced = traced  # type: ignore[attr-defined]
    return step


def compile_batch_step(
    model: Module,
    sample_loss: Callable[[list[Value], Value], Value],
    xs: Sequence[Sequence[float]],
    ys: Sequence[float],
    opt: Optimizer,
) -> Callable[[], float]:
    """A training step that replays one sample's traced loss over the whole batch (numpy).

    `sample_loss(x, y)` builds one sample's loss from `model`, with the sample x
    (a list of Values) and its label y (a Value), using arithmetic on y rather
    than checks of its value (``(1 - y * model(x)).relu()``, not ``losses.hinge``).
    It is traced once (``autodiff.trace(..., batched=True)``) as a function of
    the parameters, x and y; each call evaluates it on every sample at once, and
    sets each parameter's ``.grad`` to the mean over the batch -- the gradient of
    the mean loss -- before ``opt.step()``. Returns the mean loss as a float.
    """
    params = model.parameters()
    n, d = len(params), len(xs[0])
    if len(xs) != len(ys):
        raise ValueError(f"compile_batch_step: {len(xs)} samples but {len(ys)} labels")

    def loss_of(v: list[Value]) -> Value:
        with model.bound(v[:n]):
            return sample_loss(v[n : n + d], v[n + d])

    example = [p.data for p in params] + [*xs[0], ys[0]]
    traced = cast(BatchedTraced, trace(loss_of, example, batched=True))
    columns = [[x[k] for x in xs] for k in range(d)] + [list(ys)]

    def step() -> float:
        values, grads = traced.value_and_grad([*(p._data for p in params), *columns])
        for p, g in zip(params, grads[:n]):
            p.grad = float(g.mean())
        opt.step()
        return float(values.mean())

    step.traced = traced  # type: ignore[attr-defined]
    return step


def train_xor(
    xs: Sequence[Sequence[float]],
    ys: Sequence[int],
    *,
    hidden: int = XOR_DEFAULTS["hidden"],
    steps: int = XOR_DEFAULTS["steps"],
    lr: float = XOR_DEFAULTS["lr"],
    seed: int = XOR_DEFAULTS["seed"],
    on_step: Callable[[int, float], None] | None = None,
    compile: bool = False,
) -> TrainResult:
    """Train MLP(2, [hidden, 1]) (ReLU hidden layer, linear score z) with Adam.

    The loss is the lecture's mean of ζ((1−2y)z) over the whole batch, from a
    random start drawn from `seed`. `on_step(step, loss)` is called after every
    update (for a progress bar). With ``compile=True`` the loss and its gradient
    are traced once and run as compiled code (:func:`compile_step`): the same
    numbers, faster.
    """
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
            on_step(step, value)
    return result
