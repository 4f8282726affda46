"""The wide workloads written by hand in numpy: the ceiling for generated numpy code.

The peer that says how fast a numpy step *can* be on this machine, written as a numpy
user who knows the model would write it: the parameters one flat float64 array, each
layer's weights a contiguous (in × out) view of it and its biases the next view; forward,
backward and Adam by hand, the update in place, no work for the data's gradient. The same
MLP (ReLU hidden layers), losses (the logistic ζ((1−2y)z), or the softmax cross-entropy)
and Adam formula as this project's step and the other peers; returns the loss before the
update. Its BLAS is numpy's, so "hand-written numpy vs jax.jit" is how far numpy's
matrix products are from XLA's here, whatever code calls them.
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
    import numpy as np

    sizes = [(len(Wk), len(Wk[0])) for Wk in W]
    flat = np.concatenate([np.concatenate([np.ravel(Wk), bk]) for Wk, bk in zip(W, b)])
    views, grad_views = [], []
    grad = np.zeros_like(flat)
    at = 0
    for n_in, n_out in sizes:  # each layer: (in × out) weights, then out biases
        k = n_in * n_out
        views.append((flat[at : at + k].reshape(n_in, n_out), flat[at + k : at + k + n_out]))
        grad_views.append((grad[at : at + k].reshape(n_in, n_out), grad[at + k : at + k + n_out]))
        at += k + n_out
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if classes is None:
        sign = 1.0 - 2.0 * np.asarray(Y, dtype=np.float64)
    else:
        labels = np.asarray(Y, dtype=np.intp)
        rows = np.arange(n)
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    tmp, tmp2 = np.empty_like(flat), np.empty_like(flat)
    b1, b2, eps = 0.9, 0.999, 1e-8
    state = {"t": 0}
    arrays = (flat, m, v, tmp, tmp2)

    def step() -> float:
        flat, m, v, tmp, tmp2 = arrays  # (updated in place: names of this scope)
        # forward: keep each layer's input for the weights' gradient
        inputs, h = [], X
        for k, (Wk, bk) in enumerate(views):
            inputs.append(h)
            h = h @ Wk
            h += bk
            if k < len(views) - 1:
                np.maximum(h, 0.0, out=h)
        # the loss and its gradient with respect to the scores, / n for the mean
        if classes is None:
            z = sign * h[:, 0]
            loss = float(np.mean(np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))))
            e = np.exp(-np.abs(z))
            sig = np.where(z >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))
            gh = (sig * sign / n)[:, None]
        else:
            top = h.max(axis=1, keepdims=True)
            ex = np.exp(h - top)
            total = ex.sum(axis=1, keepdims=True)
            loss = float(np.mean(top[:, 0] + np.log(total[:, 0]) - h[rows, labels]))
            ex /= total
            ex[rows, labels] -= 1.0
            ex /= n
            gh = ex
        # backward: each layer's weights and biases, then its input (not the data's)
        for k in range(len(views) - 1, -1, -1):
            gW, gb = grad_views[k]
            np.matmul(inputs[k].T, gh, out=gW)
            np.sum(gh, axis=0, out=gb)
            if k:
                gh = gh @ views[k][0].T
                gh *= inputs[k] > 0.0
        # Adam, in place
        t = state["t"] = state["t"] + 1
        c1, c2 = 1.0 - b1**t, 1.0 - b2**t
        m *= b1
        m += (1.0 - b1) * grad
        v *= b2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        np.divide(v, c2, out=tmp)
        np.sqrt(tmp, out=tmp)
        tmp += eps
        np.divide(m, c1, out=tmp2)
        tmp2 *= lr
        tmp2 /= tmp
        flat -= tmp2
        return loss

    return step
