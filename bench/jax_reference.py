"""The wide workloads written by hand in JAX: ``jax.jit`` of value_and_grad and Adam.

The peer of this project's jitted step (``compile_batch_step(..., xp=jax.numpy)``) in
bench/run.py: the same MLP (ReLU hidden layers, weights as in × out), the same loss (the
logistic ζ((1−2y)z), or the softmax cross-entropy), full-batch Adam, float64 -- the step
a JAX user would write, compiled once. Returns the loss before the update, as ours does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def adam_step(
    W: list[list[list[float]]],
    b: list[list[float]],
    X: Any,
    Y: Any,
    classes: int | None,
    lr: float,
) -> Callable[[], float]:
    import jax
    import jax.numpy as jnp

    params = [(jnp.asarray(Wk), jnp.asarray(bk)) for Wk, bk in zip(W, b)]
    X, Y = jnp.asarray(X), jnp.asarray(Y)

    def loss_fn(params: Any, X: Any, Y: Any) -> Any:
        h = X
        for k, (Wk, bk) in enumerate(params):
            h = h @ Wk + bk
            if k < len(params) - 1:
                h = jax.nn.relu(h)
        if classes is None:
            return jnp.mean(jax.nn.softplus((1.0 - 2.0 * Y) * h[:, 0]))
        picked = jnp.take_along_axis(h, Y[:, None].astype(jnp.int32), axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(h, axis=1) - picked)

    b1, b2, eps = 0.9, 0.999, 1e-8

    @jax.jit
    def step(params: Any, m: Any, v: Any, c1: Any, c2: Any) -> Any:
        loss, g = jax.value_and_grad(loss_fn)(params, X, Y)
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1.0 - b1) * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1.0 - b2) * g * g, v, g)
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, m, v
        )
        return loss, params, m, v

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = {"params": params, "m": zeros, "v": zeros, "t": 0}

    def run() -> float:
        t = state["t"] + 1
        loss, state["params"], state["m"], state["v"] = step(
            state["params"], state["m"], state["v"], 1.0 - b1**t, 1.0 - b2**t
        )
        state["t"] = t
        return float(loss)

    return run
