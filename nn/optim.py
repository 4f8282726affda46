"""Optimizers: SGD (with momentum) and Adam.

``step()`` changes each parameter's ``data`` in place from its ``grad``; it
builds no graph. ``zero_grad()`` resets the gradients before the next pass.

``step(closure)``, as in PyTorch, runs ``closure()`` -- which computes the loss
and calls ``backward()`` -- and then updates, all with Python's cyclic garbage
collector paused: a training step builds tens of thousands of nodes, and the
collector would scan them again and again although autodiff graphs contain no
reference cycles (they are freed by reference counting alone). It returns the
loss as a new leaf Value holding the same number, so that the step's graph is
freed *before* the collector resumes (were it alive then, the next collection
would walk all of it). The caller's collector setting is restored, also on error.

``state_dict()`` / ``load_state_dict()`` save and restore an optimizer's
settings and running state (Adam's moments, SGD's velocity) as plain data, so
that training resumed from a saved model and optimizer takes the very steps it
would have taken without stopping.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from autodiff import Value, gc_paused
from autodiff.engine import shown
from autodiff.extras import require
from autodiff.rules import is_numpy

__all__ = ["SGD", "Adam", "Optimizer"]


def _number(x: object, where: str) -> float:
    """A real number (not a bool); TypeError naming `where` otherwise, ValueError for one
    too large for a float."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{where} must be a real number, got {type(x).__name__} {shown(x)}")
    try:
        return float(x)
    except OverflowError:
        raise ValueError(f"{where} must fit a float, got {shown(x)}") from None


def _in_unit(x: object, where: str) -> float:
    f = _number(x, where)
    if not 0.0 <= f < 1.0:
        raise ValueError(f"{where} must be in [0, 1), got {shown(x)}")
    return f


def _positive(x: object, where: str) -> float:
    """A positive, finite number (a learning rate, Adam's eps)."""
    f = _number(x, where)
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{where} must be a positive, finite number, got {shown(x)}")
    return f


def _floats(buffer: Any) -> list[float]:
    """A running-state buffer (a list, or an array while a compiled step runs) as floats."""
    return buffer.tolist() if hasattr(buffer, "tolist") else list(buffer)


def _namespace(values: Any) -> Any:
    """The array namespace of `values` (numpy's, torch's, …)."""
    compat = require("array_api_compat", "arrays", "Optimizer.update on arrays")
    return compat.array_namespace(values)


def _array(buffer: Any, like: Any) -> Any:
    """A running-state buffer as an array of the kind and device of `like`."""
    if type(buffer) is type(like):
        return buffer
    xp = _namespace(like)
    device = getattr(like, "device", None)
    on_host = is_numpy(xp)
    kw = {} if device is None or on_host else {"device": device}
    return xp.asarray(_floats(buffer), dtype=like.dtype, **kw)


class Optimizer:
    """Holds the parameters; subclasses implement :meth:`_update`."""

    def __init__(self, params: Iterable[Value], lr: float) -> None:
        name = type(self).__name__
        if isinstance(params, Value) or not isinstance(params, Iterable):
            raise TypeError(
                f"{name}: params must be an iterable of Values, such as model.parameters(), "
                f"got {type(params).__name__}"
            )
        self.params = list(params)
        for i, p in enumerate(self.params):
            if not isinstance(p, Value):
                raise TypeError(f"{name}: params[{i}] must be a Value, got {type(p).__name__}")
        if not self.params:
            raise ValueError(
                f"{name}: no parameters to optimize (a Module finds its parameters among its "
                "attributes: Values, sub-modules and lists of them)"
            )
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{name}: a parameter is listed twice (it would be updated twice)")
        self.lr = _positive(lr, f"{name}: lr")

    def zero_grad(self) -> None:
        """Set every parameter's gradient to 0."""
        for p in self.params:
            p.grad = 0.0

    def step(self, closure: Callable[[], Value] | None = None) -> Value | None:
        """Update every parameter from its gradient.

        With a `closure` (which computes the loss, calls ``backward()`` and
        returns the loss), run it first, with the garbage collector paused for
        the whole step (see the module docstring); returns the loss as a leaf.
        """
        if closure is None:
            self._update()
            return None
        with gc_paused():
            loss = closure()
            self._update()
            if isinstance(loss, Value):
                loss = Value(loss._data, loss.label)  # drop the graph while the GC is off
        return loss

    def _update(self) -> None:
        raise NotImplementedError

    #: The running-state buffers (one number per parameter each), by attribute name.
    _buffers: tuple[str, ...] = ()

    def update(self, values: Any, grads: Any) -> Any:
        """One step on arrays: the parameters' numbers `values` (in ``params`` order) moved
        by `grads`, with the arithmetic of :meth:`step` -- the same numbers -- and the
        running state kept as arrays of the same kind. Returns the new values: `values`
        itself, updated in place, where the array library allows it (numpy, PyTorch,
        CuPy), a new array where its arrays are immutable (JAX). This is what
        :func:`nn.compiled.compile_batch_step` calls; it touches no Value. It is
        :meth:`apply` on this optimizer's state, then :meth:`commit`."""
        state = self.state_arrays(values)
        values, state = self.apply(_namespace(values), values, grads, state, self.scalars())
        self.commit(state)
        return values

    def state_arrays(self, like: Any) -> tuple[Any, ...]:
        """The running state as arrays of the kind and device of `like`."""
        return tuple(_array(getattr(self, name), like) for name in self._buffers)

    def scalars(self) -> tuple[float, ...]:
        """The numbers the next step uses (the settings, and any that depend on the step
        count), so that :meth:`apply` reads nothing else: under ``jax.jit`` a setting
        changed later (a learning-rate schedule) still takes effect."""
        return (self.lr,)

    def apply(
        self, xp: Any, values: Any, grads: Any, state: tuple[Any, ...], scalars: tuple[Any, ...]
    ) -> tuple[Any, tuple[Any, ...]]:
        """One step on arrays (the whole of :meth:`update` but the bookkeeping): the new
        values and the new running state. Where the library's arrays can change (numpy,
        PyTorch, CuPy) `values` and `state` are updated in place and returned -- no
        temporaries the size of the model but one or two; on JAX's the same statements
        make new arrays, and the function is pure (``jax.jit`` compiles it)."""
        raise NotImplementedError

    def commit(self, state: tuple[Any, ...]) -> None:
        """Keep the running state of a step that :meth:`apply` made (and count it)."""
        for name, buffer in zip(self._buffers, state):
            setattr(self, name, buffer)

    # -- state ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The settings and running state, as plain data (JSON-serialisable)."""
        return {"type": type(self).__name__, "lr": self.lr, **self._state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave; everything is checked before anything changes.

        The settings are held to the constructor's rules (a positive, finite ``lr``,
        Adam's ``eps`` alike, betas and momentum in [0, 1)) and the running state to
        what the update's arithmetic needs (one finite number per parameter; Adam's
        second moments ≥ 0). ValueError or TypeError names the entry that does not fit.
        """
        name = type(self).__name__
        if not isinstance(state, Mapping):
            raise TypeError(f"{name}.load_state_dict: expected a dict, got {type(state).__name__}")
        if state.get("type") != name:
            raise ValueError(
                f"{name}.load_state_dict: the state is of a {state.get('type')!r} optimizer"
            )
        expected = {"type", "lr", *self._state()}
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"{name}.load_state_dict: missing entries {missing}, "
                f"unexpected entries {unexpected}"
            )
        lr = _positive(state["lr"], f"{name}.load_state_dict: 'lr'")
        checked = self._check_state(state)
        self.lr = lr
        for key, value in checked.items():
            setattr(self, key, value)

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _check_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _floats(
        self, state: Mapping[str, Any], key: str, *, nonnegative: bool = False
    ) -> list[float]:
        """One finite number per parameter (≥ 0 with `nonnegative`)."""
        where = f"{type(self).__name__}.load_state_dict: {key!r}"
        value = state[key]
        if not isinstance(value, (list, tuple)) or len(value) != len(self.params):
            got = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
            raise ValueError(f"{where} must list {len(self.params)} numbers, got {got}")
        out = []
        for i, x in enumerate(value):
            f = _number(x, f"{where}[{i}]")
            if not math.isfinite(f) or (nonnegative and not f >= 0.0):
                need = "a finite number ≥ 0" if nonnegative else "a finite number"
                raise ValueError(f"{where}[{i}] must be {need}, got {shown(x)}")
            out.append(f)
        return out


class SGD(Optimizer):
    """Stochastic gradient descent: v ← μ·v + g; p ← p − lr·v (μ = momentum, PyTorch's form)."""

    def __init__(self, params: Iterable[Value], lr: float, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = _in_unit(momentum, "SGD: momentum")
        self._velocity = [0.0] * len(self.params)

    def _update(self) -> None:
        lr, mu, vel = self.lr, self.momentum, self._velocity
        for i, p in enumerate(self.params):
            v = mu * vel[i] + p.grad
            vel[i] = v
            p.data -= lr * v

    _buffers = ("_velocity",)

    def scalars(self) -> tuple[float, ...]:
        return (self.lr, self.momentum)

    def apply(
        self, xp: Any, values: Any, grads: Any, state: tuple[Any, ...], scalars: tuple[Any, ...]
    ) -> tuple[Any, tuple[Any, ...]]:
        lr, mu = scalars
        vel = state[0]
        vel *= mu  # μ·v + g, rounded as _update's
        vel += grads
        values -= lr * vel
        return values, (vel,)

    def _state(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "velocity": _floats(self._velocity)}

    def _check_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "momentum": _in_unit(state["momentum"], "SGD.load_state_dict: 'momentum'"),
            "_velocity": self._floats(state, "velocity"),
        }


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): per-parameter steps from bias-corrected gradient moments."""

    def __init__(
        self,
        params: Iterable[Value],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr)
        self.betas = self._betas(betas, "Adam: betas")
        self.eps = _positive(eps, "Adam: eps")
        self.t = 0
        self._m = [0.0] * len(self.params)
        self._v = [0.0] * len(self.params)

    @staticmethod
    def _betas(betas: object, where: str) -> tuple[float, float]:
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise ValueError(f"{where} must be two numbers (β₁, β₂), got {shown(betas)}")
        b1, b2 = (_in_unit(b, f"{where}[{i}]") for i, b in enumerate(betas))
        return b1, b2

    def _update(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1 = 1.0 - b1**self.t
        c2 = 1.0 - b2**self.t
        lr, eps, m, v = self.lr, self.eps, self._m, self._v
        for i, p in enumerate(self.params):
            g = p.grad
            m[i] = b1 * m[i] + (1.0 - b1) * g
            v[i] = b2 * v[i] + (1.0 - b2) * g * g
            p.data -= lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)

    _buffers = ("_m", "_v")

    def scalars(self) -> tuple[float, ...]:
        b1, b2 = self.betas
        t = self.t + 1  # the step about to be taken
        return (self.lr, b1, b2, self.eps, 1.0 - b1**t, 1.0 - b2**t)

    def apply(
        self, xp: Any, values: Any, grads: Any, state: tuple[Any, ...], scalars: tuple[Any, ...]
    ) -> tuple[Any, tuple[Any, ...]]:
        # _update's arithmetic, elementwise, each operation rounded as there (x·y = y·x and
        # x + y = y + x exactly), in place where the arrays allow it
        lr, b1, b2, eps, c1, c2 = scalars
        m, v = state
        m *= b1  # m = β₁·m + (1 − β₁)·g
        m += grads * (1.0 - b1)
        g2 = grads * (1.0 - b2)  # v = β₂·v + (1 − β₂)·g·g
        g2 *= grads
        v *= b2
        v += g2
        step = v / c2  # lr·(m / c₁) / (√(v / c₂) + ε)
        step = xp.sqrt(step)
        step += eps
        rise = m / c1
        rise *= lr
        rise /= step
        values -= rise
        return values, (m, v)

    def commit(self, state: tuple[Any, ...]) -> None:
        super().commit(state)
        self.t += 1

    def _state(self) -> dict[str, Any]:
        return {
            "betas": list(self.betas),
            "eps": self.eps,
            "t": self.t,
            "m": _floats(self._m),
            "v": _floats(self._v),
        }

    def _check_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        where = "Adam.load_state_dict"
        t = state["t"]
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"{where}: 't' must be a step count >= 0, got {shown(t)}")
        eps = _positive(state["eps"], f"{where}: 'eps'")
        return {
            "betas": self._betas(state["betas"], f"{where}: 'betas'"),
            "eps": eps,
            "t": t,
            "_m": self._floats(state, "m"),
            "_v": self._floats(state, "v", nonnegative=True),  # √v in the update
        }
