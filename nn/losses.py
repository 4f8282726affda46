"""Losses over a batch: each is the mean of a per-sample loss, as one Value.

* :func:`mse`: squared error, the lecture's L3 (¼ Σ over XOR's four samples).
* :func:`logistic`: −log P(y|x) = ζ((1−2y)z) with labels 0/1, the lecture's L9;
  softplus is evaluated stably, so any score z is fine.
* :func:`hinge`: max(0, 1 − y·s) with labels ±1 (the SVM loss of micrograd's demo).
* :func:`cross_entropy`: −log softmax(z)[y] over K classes, labels 0 … K−1 (PyTorch's
  ``cross_entropy``): log Σ e^z − z_y, with a stable log-sum-exp, so every finite
  score is fine (1e300 included).

A label may be a number or a Value: a loss is then a function of its label too, and
works as the sample loss of ``nn.train.compile_batch_step``, where the label is traced
(``lambda x, y: losses.logistic([model(x)], [y])``). Labels given as numbers are
checked (0/1, ±1, a class index); a traced label is used by arithmetic alone, never by
a decision on its number (``pick`` chooses z_y inside the graph).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

from autodiff import Value, dot, nll

__all__ = ["cross_entropy", "hinge", "logistic", "mse"]

Scores = Sequence["Value | float"] | Value
Labels = Iterable["float | Value"] | float | Value


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
    t = _items(targets, "targets", name, allow_values=True)
    if len(p) != len(t):
        raise ValueError(f"{name}: {len(p)} predictions but {len(t)} targets")
    if not p:
        raise ValueError(f"{name}: the batch is empty")
    return p, [v if isinstance(v, Value) else float(v) for v in t]


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
        if not isinstance(yi, Value) and yi not in (0, 1):
            raise ValueError(f"logistic: labels must be 0 or 1, got y[{i}] = {yi!r}")
    return _mean([((1 - 2 * yi) * zi).softplus() for zi, yi in zip(zs, ys)])


def hinge(scores: Scores, ys: Labels) -> Value:
    """Mean of max(0, 1 − yᵢ·scoreᵢ), labels −1/+1."""
    ss, ls = _batch("hinge", scores, ys)
    for i, yi in enumerate(ls):
        if not isinstance(yi, Value) and yi not in (-1, 1):
            raise ValueError(f"hinge: labels must be -1 or +1, got ys[{i}] = {yi!r}")
    return _mean([(1 - yi * si).relu() for si, yi in zip(ss, ls)])


def cross_entropy(logits: Iterable[Sequence[Value | float]], labels: Labels) -> Value:
    """Mean over a batch of −log softmax(zᵢ)[yᵢ] = log Σₖ e^zᵢₖ − zᵢ,yᵢ.

    `logits` is a batch of score lists (K scores each, Values or numbers); `labels` the
    class indices 0 … K−1 (ints, or Values: a traced label). Each sample's loss is one
    node, :func:`autodiff.nll` = log Σₖ e^(zₖ − z_y): exact and overflow-free for every
    finite score, the label taken inside the graph so that a trace replays it for any
    label. Gradients and Hessians are PyTorch's ``cross_entropy``'s, and so are the
    non-finite cases (−inf at the label's class: +inf; a NaN or +inf score: NaN).
    """
    if isinstance(logits, (Value, str, bytes)) or not isinstance(logits, Iterable):
        raise TypeError(
            f"cross_entropy: logits must be a batch of score lists, got {type(logits).__name__}"
        )
    batch = [list(z) if isinstance(z, Iterable) else z for z in logits]
    ys = _items(labels, "labels", "cross_entropy", allow_values=True)
    if len(batch) != len(ys):
        raise ValueError(f"cross_entropy: {len(batch)} samples but {len(ys)} labels")
    if not batch:
        raise ValueError("cross_entropy: the batch is empty")
    k = None
    for i, z in enumerate(batch):
        if not isinstance(z, list):
            raise TypeError(
                f"cross_entropy: logits[{i}] must be a list of K scores, got "
                f"{type(z).__name__} {z!r} (one sample's scores: cross_entropy([scores], [y]))"
            )
        if not z or (k is not None and len(z) != k):
            raise ValueError(
                f"cross_entropy: logits[{i}] has {len(z)} scores, expected {k or 'at least 1'}"
            )
        k = len(z)
        _items(z, f"logits[{i}]", "cross_entropy", allow_values=True)
    assert k is not None
    for i, y in enumerate(ys):
        if not isinstance(y, Value) and not (float(y).is_integer() and 0 <= y < k):
            raise ValueError(
                f"cross_entropy: labels must be class indices 0 to {k - 1}, got labels[{i}] = {y!r}"
            )
    return _mean([nll(z, y) for z, y in zip(batch, ys)])
