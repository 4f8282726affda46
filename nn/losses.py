"""Losses over a batch: each is the mean of a per-sample loss, as one Value.

* :func:`mse`: squared error, the lecture's L3 (¼ Σ over XOR's four samples).
* :func:`logistic`: −log P(y|x) = ζ((1−2y)z) with labels 0/1, the lecture's L9;
  softplus is evaluated stably, so any score z is fine.
* :func:`hinge`: max(0, 1 − y·s) with labels ±1 (the SVM loss of micrograd's demo).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

from autodiff import Value, dot

__all__ = ["hinge", "logistic", "mse"]

Scores = Sequence["Value | float"] | Value
Labels = Iterable[float] | float


def _items(x: Any, what: str, name: str, allow_values: bool) -> list[Any]:
    """The numbers (and Values) of one sample or of an iterable of them (a numpy array too)."""
    if isinstance(x, Value) or isinstance(x, numbers.Real):
        items = [x]
    elif isinstance(x, (str, bytes)) or not isinstance(x, Iterable):
        raise TypeError(f"{name}: {what} must be a number or a sequence of them, got {x!r}")
    else:
        items = list(x)
    for i, v in enumerate(items):
        ok = isinstance(v, numbers.Real) or (allow_values and isinstance(v, Value))
        if not ok or isinstance(v, bool):
            kind = "Values or numbers" if allow_values else "numbers"
            raise TypeError(
                f"{name}: {what}[{i}] must be one of the {kind}, got {type(v).__name__} {v!r}"
                + (" (a batch of 1-D samples: one number each)" if hasattr(v, "__len__") else "")
            )
    return items


def _batch(name: str, preds: Scores, targets: Labels) -> tuple[list, list]:
    p = _items(preds, "predictions", name, allow_values=True)
    t = _items(targets, "targets", name, allow_values=False)
    if len(p) != len(t):
        raise ValueError(f"{name}: {len(p)} predictions but {len(t)} targets")
    if not p:
        raise ValueError(f"{name}: the batch is empty")
    return p, [float(v) for v in t]


def _mean(terms: list[Value]) -> Value:
    return dot([1.0 / len(terms)] * len(terms), terms)  # one node


def mse(preds: Scores, targets: Labels) -> Value:
    """Mean squared error: (1/n) Σ (targetᵢ − predᵢ)²."""
    p, t = _batch("mse", preds, targets)
    return _mean([(pi - ti) ** 2 for pi, ti in zip(p, t)])  # type: ignore[operator]


def logistic(z: Scores, y: Labels) -> Value:
    """Mean of ζ((1−2y)z) = −log σ((2y−1)z): the negative log-likelihood, labels 0/1."""
    zs, ys = _batch("logistic", z, y)
    for i, yi in enumerate(ys):
        if yi not in (0, 1):
            raise ValueError(f"logistic: labels must be 0 or 1, got y[{i}] = {yi!r}")
    return _mean([((1 - 2 * yi) * zi).softplus() for zi, yi in zip(zs, ys)])


def hinge(scores: Scores, ys: Labels) -> Value:
    """Mean of max(0, 1 − yᵢ·scoreᵢ), labels −1/+1."""
    ss, ls = _batch("hinge", scores, ys)
    for i, yi in enumerate(ls):
        if yi not in (-1, 1):
            raise ValueError(f"hinge: labels must be -1 or +1, got ys[{i}] = {yi!r}")
    return _mean([(1 - yi * si).relu() for si, yi in zip(ss, ls)])
