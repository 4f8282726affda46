"""Pictures of what a classifier learned: the input plane and the hidden feature space.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot),
so no display or backend choice is needed. Each function returns its figure
(Jupyter shows it) and writes it to `path` (at :data:`DPI`) when one is given.

The feature space shows what its caption says. The output layer separates the
hidden features h = φ(x) with the hyperplane wᵀh + b = level; with two hidden
units h is drawn as it is, with that line. With more, a projection must be
chosen, and one that keeps the separation exact is: the horizontal axis is the
output's own score wᵀh + b, so the decision boundary is the vertical line at
`level`, and the vertical axis is the direction orthogonal to w along which the
features vary most. (A plain PCA projection can mix the classes even where the
network separates them.) Samples that land on the same point are drawn as one,
with one label naming them all; labels are placed inside the axes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.figure import Figure

__all__ = ["DPI", "decision_boundary", "feature_space", "training_animation"]

#: Resolution of the figures written to files.
DPI = 120

_COLORS = ["tab:blue", "tab:orange"]
_MARKERS = ["o", "s"]


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
    annotate: bool | None = None,
    ax: Any = None,
) -> Figure:
    """The input plane shaded by `score`, the contour score = `level`, and the samples.

    Small data sets (up to 12 samples) have each sample labelled by its
    coordinates unless ``annotate=False``. With `ax`, draws into that axes.
    """
    lo = [min(x[k] for x in xs) - margin for k in (0, 1)]
    hi = [max(x[k] for x in xs) + margin for k in (0, 1)]
    gx = [lo[0] + (hi[0] - lo[0]) * i / (resolution - 1) for i in range(resolution)]
    gy = [lo[1] + (hi[1] - lo[1]) * j / (resolution - 1) for j in range(resolution)]
    grid = [[score([a, b]) for a in gx] for b in gy]
    fig = Figure(figsize=(5.4, 4.6), layout="constrained") if ax is None else ax.figure
    if ax is None:
        ax = fig.add_subplot()
    shade = ax.contourf(gx, gy, grid, levels=20, cmap="RdBu_r", alpha=0.75)
    fig.colorbar(shade, ax=ax, label=label)
    ax.contour(gx, gy, grid, levels=[level], colors="black", linewidths=2)
    show = len(xs) <= 12 if annotate is None else annotate
    _scatter(ax, xs, ys, [_fmt(x) for x in xs] if show else None)
    ax.set(xlabel="x₁", ylabel="x₂", title=title, xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    ax.set_aspect("equal", adjustable="box")
    if path is not None:
        fig.savefig(path, dpi=DPI)
    return fig


def feature_space(
    xs: Sequence[Sequence[float]],
    hs: Sequence[Sequence[float]],
    ys: Sequence[int],
    path: str | os.PathLike[str] | None = None,
    *,
    line: tuple[Sequence[float], float, float],
    title: str = "features h = φ(x): linearly separable",
    axes: Any = None,
) -> Figure:
    """Input space beside the hidden representation h = φ(x) of the same samples.

    `line` = (w, b, level) is the output layer: class 1 where wᵀh + b > level.
    With 2 hidden units h is drawn as it is, with the line wᵀh + b = level; with
    more, on the axes (wᵀh + b, the most varied direction ⊥ w) described in the
    module docstring, where the boundary is the vertical line at `level`.
    With `axes` -- two matplotlib axes, or one for the features alone -- draws into it.
    """
    w, b, level = list(line[0]), float(line[1]), float(line[2])
    if len(w) != len(hs[0]):
        raise ValueError(f"feature_space: {len(w)} weights for {len(hs[0])} hidden units")
    if axes is None:
        fig = Figure(figsize=(10, 4.6), layout="constrained")
        left, right = fig.subplots(1, 2)
    elif isinstance(axes, (list, tuple)):
        left, right = axes
        fig = right.figure
    else:
        left, right = None, axes
        fig = right.figure
    names = [_fmt(x) for x in xs]
    if left is not None:
        _scatter(left, xs, ys, names)
        left.set(xlabel="x₁", ylabel="x₂", title="input space x: not linearly separable")
        _pad(left, [list(x) for x in xs])
        left.set_aspect("equal", adjustable="box")
    if len(w) == 2:
        points = [list(h) for h in hs]
        xlabel, ylabel = "h₁", "h₂"
    else:
        points = _score_axes(hs, w, b)
        xlabel, ylabel = "output score wᵀh + b", "h along its most varied direction ⊥ w"
    _scatter(right, points, ys, names)
    lo, hi = _pad(right, points)
    if len(w) == 2:
        (w1, w2) = w
        if abs(w2) > 1e-12:
            right.plot(
                lo[0:1] + hi[0:1],
                [(level - b - w1 * a) / w2 for a in (lo[0], hi[0])],
                "k--",
                lw=1.5,
                label=f"wᵀh + b = {level:g}",
            )
        elif abs(w1) > 1e-12:
            right.axvline(
                (level - b) / w1, color="k", ls="--", lw=1.5, label=f"wᵀh + b = {level:g}"
            )
    else:
        right.axvline(level, color="k", ls="--", lw=1.5, label=f"wᵀh + b = {level:g}")
    right.set(xlabel=xlabel, ylabel=ylabel, title=title)
    _legend(right)
    if path is not None:
        fig.savefig(path, dpi=DPI)
    return fig


def training_animation(
    frames: Sequence[tuple[int, float, Callable[[list[float]], float], list[list[float]], Any]],
    xs: Sequence[Sequence[float]],
    ys: Sequence[int],
    path: str | os.PathLike[str],
    *,
    seconds: float = 0.25,
) -> str:
    """A GIF of training: the decision boundary and the feature space, frame by frame.

    Each frame is (step, loss, prob, hs, line): the model's P(y=1|x), its hidden
    features of `xs` and its output layer (w, b, level) at that step. Written
    with Pillow (matplotlib's own dependency); returns the path.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    images = []
    for step, loss, prob, hs, line in frames:
        fig = Figure(figsize=(10, 4.4), layout="constrained", dpi=96)
        a, b_ax = fig.subplots(1, 2)
        decision_boundary(prob, xs, ys, title="input space: P(y=1|x)", ax=a, resolution=40)
        feature_space(xs, hs, ys, line=line, axes=b_ax, title="features h = φ(x)")
        fig.suptitle(f"step {step}: loss {loss:.4g}")
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        images.append(Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("P"))
    path = os.fspath(path)
    ms = max(20, int(seconds * 1000))
    images[0].save(path, save_all=True, append_images=images[1:], duration=ms, loop=0)
    return path


def _fmt(x: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in x) + ")"


def _score_axes(hs: Sequence[Sequence[float]], w: list[float], b: float) -> list[list[float]]:
    """Each h as (wᵀh + b, its coordinate along the most varied direction orthogonal to w)."""
    import numpy as np  # matplotlib's own dependency

    a = np.asarray(hs, dtype=float)
    wv = np.asarray(w, dtype=float)
    score = a @ wv + b
    norm = float(wv @ wv)
    rest = a - np.outer(a @ wv, wv) / norm if norm > 0 else a  # h with its w-part removed
    centred = rest - rest.mean(axis=0)
    if np.allclose(centred, 0.0):
        other = np.zeros(len(a))
    else:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        other = centred @ vt[0]
    return [[float(s), float(o)] for s, o in zip(score, other)]


def _pad(ax: Any, points: list[list[float]]) -> tuple[list[float], list[float]]:
    """Limits with room for the labels inside the axes; returns (low, high) corners."""
    lo = [min(p[k] for p in points) for k in (0, 1)]
    hi = [max(p[k] for p in points) for k in (0, 1)]
    span = [max(hi[k] - lo[k], 1.0) for k in (0, 1)]
    lo = [lo[k] - 0.3 * span[k] for k in (0, 1)]
    hi = [hi[k] + 0.3 * span[k] for k in (0, 1)]
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    return lo, hi


def _scatter(
    ax: Any,
    points: Sequence[Sequence[float]],
    ys: Sequence[int],
    labels: Sequence[str] | None = None,
) -> None:
    """The samples by class; coinciding points drawn once, with one label naming them all."""
    for cls in (0, 1):
        pts = [p for p, y in zip(points, ys) if y == cls]
        if pts:
            ax.scatter(
                [p[0] for p in pts],
                [p[1] for p in pts],
                s=130 if len(points) <= 12 else 30,
                c=_COLORS[cls],
                marker=_MARKERS[cls],
                edgecolors="black",
                label=f"y = {cls}",
                zorder=3,
            )
    if labels:
        groups: list[tuple[list[float], list[str]]] = []
        for p, text in zip(points, labels):
            for q, names in groups:
                if math.isclose(p[0], q[0], abs_tol=1e-9) and math.isclose(
                    p[1], q[1], abs_tol=1e-9
                ):
                    names.append(text)
                    break
            else:
                groups.append((list(p), [text]))
        cx = sum(q[0] for q, _ in groups) / len(groups)
        cy = sum(q[1] for q, _ in groups) / len(groups)
        for q, names in groups:
            # the label on the side away from the middle of the data, so it stays inside
            dx = 1 if q[0] <= cx else -1
            dy = 1 if q[1] <= cy else -1
            text = " = ".join(names) if len(names) > 1 else names[0]
            ax.annotate(
                text,
                q,
                textcoords="offset points",
                xytext=(-10 * dx, -14 * dy),
                ha="right" if dx > 0 else "left",
                va="top" if dy > 0 else "bottom",
                fontsize=10,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
                zorder=4,
            )
    _legend(ax)


def _legend(ax: Any) -> None:
    """The legend below the axes, in one row: it never covers a point or a label."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=9, frameon=False)
