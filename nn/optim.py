"""Optimizers: SGD (with momentum) and Adam.

``step()`` changes each parameter's ``data`` in place from its ``grad``; it
builds no graph. ``zero_grad()`` resets the gradients before the next pass.

``step(closure)``, as in PyTorch, runs ``closure()`` -- which computes the loss
and calls ``backward()`` -- and then updates, all with Python's cyclic garbage
collector paused: a training step builds tens of thousands of nodes, and the
collector would scan them again and again although autodiff graphs contain no
reference cycles (they are freed by reference counting alone). The caller's
collector setting is restored afterwards, also on error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from autodiff import Value, gc_paused

__all__ = ["SGD", "Adam", "Optimizer"]


class Optimizer:
    """Holds the parameters; subclasses implement :meth:`step`."""

    def __init__(self, params: Iterable[Value], lr: float) -> None:
        self.params = list(params)
        name = type(self).__name__
        for i, p in enumerate(self.params):
            if not isinstance(p, Value):
                raise TypeError(f"{name}: params[{i}] must be a Value, got {type(p).__name__}")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{name}: a parameter is listed twice (it would be updated twice)")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"{name}: lr must be a positive number, got {lr!r}")
        self.lr = float(lr)

    def zero_grad(self) -> None:
        """Set every parameter's gradient to 0."""
        for p in self.params:
            p.grad = 0.0

    def step(self, closure: Callable[[], Value] | None = None) -> Value | None:
        """Update every parameter from its gradient.

        With a `closure` (which computes the loss, calls ``backward()`` and
        returns the loss), run it first, with the garbage collector paused for
        the whole step (see the module docstring); returns what it returned.
        """
        if closure is None:
            self._update()
            return None
        with gc_paused():
            loss = closure()
            self._update()
        return loss

    def _update(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent: v ← μ·v + g; p ← p − lr·v (μ = momentum, PyTorch's form)."""

    def __init__(self, params: Iterable[Value], lr: float, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        self.momentum = momentum
        self._velocity = [0.0] * len(self.params)

    def _update(self) -> None:
        lr, mu, vel = self.lr, self.momentum, self._velocity
        for i, p in enumerate(self.params):
            v = mu * vel[i] + p.grad
            vel[i] = v
            p.data -= lr * v


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
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas!r}")
        if not eps > 0.0:
            raise ValueError(f"Adam: eps must be positive, got {eps!r}")
        self.betas, self.eps = (b1, b2), eps
        self.t = 0
        self._m = [0.0] * len(self.params)
        self._v = [0.0] * len(self.params)

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
