"""Training loops for binary classification with the lecture's logistic loss."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autodiff import Value, gc_paused, no_grad, trace
from autodiff.extras import require
from nn.arrays import ArrayParameters, attach, keep_freed_memory
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
    """A training step from a trace: loss and gradient as generated code, then opt.step().

    `loss_fn()` builds the loss from `model` as usual; it is traced once, as a
    function of the model's distinct parameters (a tied weight is one input, so
    its gradient sums over its uses, as in eager). The data the loss sees -- the
    batch -- is baked in, and the trace refuses anything it could not replay
    (see ``autodiff.trace``): a Value captured from outside the model, a branch on
    the numbers. Each call of the returned function computes the loss and the
    gradients at the current parameters, stores the gradients in ``.grad`` and
    lets `opt` update. It returns the loss as a float; ``.traced`` on it is the
    :class:`autodiff.Traced`.
    """
    params = model.parameters()

    def loss_of(ps: list[Value]) -> Value:
        with model.bound(ps):
            return loss_fn()

    with gc_paused():
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
    *,
    xp: Any = None,
    device: Any = None,
    keep_memory: bool = True,
) -> Callable[[], float]:
    """A training step that runs one sample's traced loss over the whole batch at once.

    `sample_loss(x, y)` builds one sample's loss from `model`, with the sample x
    (a list of Values) and its label y (a Value), using arithmetic on y rather
    than checks of its value (``(1 - y * model(x)).relu()``, not ``losses.hinge``).
    It is traced once (``autodiff.trace(..., batched=True)``) as a function of the
    parameters, x and y; each call computes the mean loss over the batch and its
    gradient with the layers found (matrix products; see
    ``BatchedTraced.mean_value_and_grad``), sets each parameter's ``.grad`` and
    calls ``opt.step()``. Returns the mean loss as a float. The batch is held as
    arrays of the namespace `xp` (numpy by default; a torch or cupy namespace runs
    it there), on `device` (a GPU, for one) when given.

    The parameters live in one array between steps (:mod:`nn.arrays`): the optimizer
    updates it in place (:meth:`Optimizer.update`, the same arithmetic as ``step()``),
    and the Values are brought up to date when the model or the optimizer is next used
    -- ``model.parameters()`` always shows the current numbers; a Value held from
    before training is current again after any such use, or after ``step.sync()``.
    With ``keep_memory`` (the default) the C allocator is asked to reuse the memory of
    each step's arrays (:func:`nn.arrays.keep_freed_memory`), which makes wide layers
    about 1.6× faster.
    """
    params = model.parameters()
    n = len(params)
    if len(xs) != len(ys):
        raise ValueError(f"compile_batch_step: {len(xs)} samples but {len(ys)} labels")
    if not xs:
        raise ValueError("compile_batch_step: the batch is empty")
    d = len(xs[0])

    def loss_of(v: list[Value]) -> Value:
        with model.bound(v[:n]):
            return sample_loss(v[n : n + d], v[n + d])

    example = [p.data for p in params] + [*xs[0], ys[0]]
    with gc_paused():
        traced = trace(loss_of, example, batched=True, xp=xp)
    if xp is None:
        xp = require("numpy", "arrays", "compile_batch_step")
    kw = {} if device is None else {"device": device}
    columns = [xp.asarray([float(x[k]) for x in xs], dtype=xp.float64, **kw) for k in range(d)]
    columns.append(xp.asarray([float(y) for y in ys], dtype=xp.float64, **kw))

    # the parameters live in one array while training steps (nn.arrays): the trace takes
    # them as one array, the optimizer updates them in place, and the Values are brought
    # up to date only when someone looks at the model or the optimizer
    if [id(p) for p in opt.params] != [id(p) for p in params]:
        # an optimizer over other parameters, or in another order: set each .grad, step
        def step_values() -> float:
            loss, grads = traced.mean_value_and_grad([*(p._data for p in params), *columns])
            for p, g in zip(params, grads[:n]):
                p.grad = g
            opt.step()
            return loss

        step_values.traced = traced  # type: ignore[attr-defined]
        step_values.sync = lambda: None  # type: ignore[attr-defined]  # the Values are current
        return step_values
    state = ArrayParameters(params, xp, device)
    attach([*model.modules(), opt], state)
    if keep_memory:
        keep_freed_memory()  # each step's arrays reuse the last one's memory (see nn.arrays)

    def step() -> float:
        values = state.before_step()
        loss, grads = traced.mean_value_and_grad_arrays(values, columns)
        opt.update(values, grads)
        state.after_step(grads)
        return loss

    step.traced = traced  # type: ignore[attr-defined]
    step.sync = state.sync  # type: ignore[attr-defined]
    return step


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
) -> TrainResult:
    """Train MLP(2, [hidden, 1]) (ReLU hidden layer, linear score z) with Adam.

    The loss is the lecture's mean of ζ((1−2y)z) over the whole batch, from a
    random start drawn from `seed`. `on_step(step, loss, model)` is called after every
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
            on_step(step, value, model)
    return result
