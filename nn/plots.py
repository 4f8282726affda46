"""Pictures of what a classifier learned: the input plane and the hidden feature space.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot),
so no display or backend choice is needed. Each function returns its figure
(Jupyter shows it) and writes it to `path` when one is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from matplotlib.figure import Figure

__all__ = ["decision_boundary", "feature_space"]

_COLORS = ["tab:blue", "tab:orange"]


def decision_boundary(
    score: Callable[[list[float]], float],
    xs: Sequence[Sequence[float]],
    ys: Sequence[int],
    path: str | os.PathLike[str] | None = None,
    *,
    title: str = "decision boundary",
    level: float = 0.5,
    label: str = "P(y=1|x)",
    resolution: int = 100,
    margin: float = 0.5,
) -> Figure:
    """The input plane shaded by `score`, the contour score = `level`, and the samples."""
    lo = [min(x[k] for x in xs) - margin for k in (0, 1)]
    hi = [max(x[k] for x in xs) + margin for k in (0, 1)]
    gx = [lo[0] + (hi[0] - lo[0]) * i / (resolution - 1) for i in range(resolution)]
    gy = [lo[1] + (hi[1] - lo[1]) * j / (resolution - 1) for j in range(resolution)]
    grid = [[score([a, b]) for a in gx] for b in gy]
    fig = Figure(figsize=(5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    shade = ax.contourf(gx, gy, grid, levels=20, cmap="RdBu_r", alpha=0.75)
    fig.colorbar(shade, ax=ax, label=label)
    ax.contour(gx, gy, grid, levels=[level], colors="black", linewidths=2)
    _scatter(ax, xs, ys)
    ax.set(xlabel="x₁", ylabel="x₂", title=title, aspect="equal")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def feature_space(
    xs: Sequence[Sequence[float]],
    hs: Sequence[Sequence[float]],
    ys: Sequence[int],
    path: str | os.PathLike[str] | None = None,
    *,
    line: tuple[Sequence[float], float, float] | None = None,
    title: str = "transformed feature space h = φ(x)",
) -> Figure:
    """Input space beside the hidden representation h = φ(x) of the same samples.

    With 2 hidden units h is drawn as it is, and `line` = (w, b, level) draws the
    output layer's boundary wᵀh + b = level. With more, h is projected on its
    two principal components (the axes say so).
    """
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    _scatter(left, xs, ys, annotate=True)
    left.set(xlabel="x₁", ylabel="x₂", title="input space x", aspect="equal")
    if len(hs[0]) == 2:
        points = [list(h) for h in hs]
        axes = ("h₁", "h₂")
    else:
        points = _pca2(hs)
        axes = ("principal component 1 of h", "principal component 2 of h")
    _scatter(right, points, ys, labels=[_fmt(x) for x in xs])
    if line is not None and len(hs[0]) == 2:
        (w1, w2), b, level = line
        xs_line = [min(p[0] for p in points) - 0.5, max(p[0] for p in points) + 0.5]
        if abs(w2) > 1e-12:
            right.plot(xs_line, [(level - b - w1 * a) / w2 for a in xs_line], "k--", lw=1.5)
        elif abs(w1) > 1e-12:
            right.axvline((level - b) / w1, color="k", ls="--", lw=1.5)
    right.set(xlabel=axes[0], ylabel=axes[1], title=title)
    right.margins(0.25)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _fmt(x: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in x) + ")"


def _scatter(ax, points, ys, *, annotate: bool = False, labels: Sequence[str] | None = None):
    for cls in (0, 1):
        pts = [p for p, y in zip(points, ys) if y == cls]
        if pts:
            ax.scatter(
                [p[0] for p in pts],
                [p[1] for p in pts],
                s=120 if len(points) <= 12 else 36,
                c=_COLORS[cls],
                edgecolors="black",
                label=f"y = {cls}",
                zorder=3,
            )
    if annotate or labels:
        for i, p in enumerate(points):
            text = labels[i] if labels else _fmt(p)
            ax.annotate(text, p, textcoords="offset points", xytext=(8, 8), fontsize=8)
    ax.legend(loc="best", fontsize=8)


def _pca2(hs: Sequence[Sequence[float]]) -> list[list[float]]:
    import numpy as np  # matplotlib's own dependency

    a = np.asarray(hs, dtype=float)
    a = a - a.mean(axis=0)
    _, _, vt = np.linalg.svd(a, full_matrices=False)
    basis = vt[:2] if vt.shape[0] >= 2 else np.vstack([vt, np.zeros_like(vt)])
    return (a @ basis.T).tolist()
