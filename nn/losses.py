"""Losses over a batch: each is the mean of a per-sample loss, as one Value.

* :func:`mse`: squared error, the lecture's L3 (¼ Σ over XOR's four samples).
* :func:`logistic`: −log P(y|x) = ζ((1−2y)z) with labels 0/1, the lecture's L9;
  softplus is evaluated stably, so any score z is fine.
* :func:`hinge`: max(0, 1 − y·s) with labels ±1 (the SVM loss of micrograd's demo).
"""

from __future__ import annotations

from collections.abc import Sequence

from autodiff import Value, dot

__all__ = ["hinge", "logistic", "mse"]

Scores = Sequence["Value | float"] | Value
Labels = Sequence[float] | float


def _batch(name: str, preds: Scores, targets: Labels) -> tuple[list, list]:
    p = [preds] if isinstance(preds, Value) else list(preds)
    t = list(targets) if isinstance(targets, Sequence) else [targets]
    if len(p) != len(t):
        raise ValueError(f"{name}: {len(p)} predictions but {len(t)} targets")
    if not p:
        raise ValueError(f"{name}: the batch is empty")
    return p, t


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
