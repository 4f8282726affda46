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
with one label naming them all -- a split marker, half in each class's colour,
where both classes land there; labels are placed inside the axes. Titles are
computed from what is drawn: they claim separation only where it holds.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from autodiff.extras import require
from autodiff.files import replacing

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FEATURE = "nn.plots (the main jobs' pictures)"


def _figure(**kwargs: Any) -> Figure:
    """A new matplotlib Figure (matplotlib comes with the 'nn' extra)."""
    figure: Any = require("matplotlib.figure", "nn", FEATURE).Figure
    return figure(**kwargs)  # type: ignore[no-any-return]


__all__ = [
    "DPI",
    "SIGNED_COLOURS",
    "class_gradients",
    "confusion_counts",
    "confusion_matrix",
    "decision_boundary",
    "digit_grid",
    "feature_points",
    "feature_space",
    "training_animation",
    "weight_images",
]

#: Resolution of the figures written to files.
DPI = 120


def _savefig(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Save `fig` to `path` whole or not at all (autodiff.files), at :data:`DPI`."""
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=DPI)


#: Red for negative, a neutral grey at 0, blue for positive: every signed picture's colours.
SIGNED_COLOURS = ["#b2182b", "#f4a582", "#d9d9d9", "#92c5de", "#2166ac"]
# the classes in the colours of the sign convention: y = 1 (z > 0) blue, y = 0 red, as on
# the training page (● y = 1, ■ y = 0)
_COLORS = ["#d62728", "#1f77b4"]
_MARKERS = ["s", "o"]


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
    vrange: tuple[float, float] | None = None,
) -> Figure:
    """The input plane shaded by `score`, the contour score = `level`, and the samples.

    Small data sets (up to 12 samples) have each sample labelled by its
    coordinates unless ``annotate=False``. With `ax`, draws into that axes. With
    `vrange` = (low, high) the colour scale is fixed to it (an animation's frames
    then share one scale); otherwise it spans the scores drawn.
    """
    lo = [min(x[k] for x in xs) - margin for k in (0, 1)]
    hi = [max(x[k] for x in xs) + margin for k in (0, 1)]
    gx = [lo[0] + (hi[0] - lo[0]) * i / (resolution - 1) for i in range(resolution)]
    gy = [lo[1] + (hi[1] - lo[1]) * j / (resolution - 1) for j in range(resolution)]
    grid = [[score([a, b]) for a in gx] for b in gy]
    fig = _figure(figsize=(5.4, 4.6), layout="constrained") if ax is None else ax.figure
    if ax is None:
        ax = fig.add_subplot()
    levels: Any = 20
    if vrange is not None:
        import numpy as np  # matplotlib's own dependency

        levels = np.linspace(vrange[0], vrange[1], 21)
        grid = [[min(max(v, vrange[0]), vrange[1]) for v in row] for row in grid]
    matplotlib = require("matplotlib", "nn", FEATURE)
    colors = matplotlib.colors
    # blue above the boundary (class 1), red below it, grey at it: the sign convention
    finite = [v for row in grid for v in row if math.isfinite(v)]
    low, high = vrange or (min(finite, default=level), max(finite, default=level))
    low, high = min(low, level - 1e-9), max(high, level + 1e-9)
    norm = colors.TwoSlopeNorm(vcenter=level, vmin=low, vmax=high)
    cmap = colors.LinearSegmentedColormap.from_list("signed", SIGNED_COLOURS)
    shade = ax.contourf(gx, gy, grid, levels=levels, cmap=cmap, norm=norm, alpha=0.85)
    fig.colorbar(shade, ax=ax, label=f"{label} (grey: {level:g}, the boundary)")
    ax.contour(gx, gy, grid, levels=[level], colors="black", linewidths=2)
    ax.plot([], [], color="black", linewidth=2, label=f"{label} = {_half(level)}")
    show = len(xs) <= 12 if annotate is None else annotate
    _scatter(ax, xs, ys, [_fmt(x) for x in xs] if show else None)
    ax.set(xlabel="x₁", ylabel="x₂", title=title, xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    ax.set_aspect("equal", adjustable="box")
    ax.locator_params(nbins=6)  # tick labels that never run into each other
    if path is not None:
        _savefig(fig, path)
    return fig


def _half(v: float) -> str:
    return "½" if v == 0.5 else f"{v:g}"


def feature_space(
    xs: Sequence[Sequence[float]],
    hs: Sequence[Sequence[float]],
    ys: Sequence[int],
    path: str | os.PathLike[str] | None = None,
    *,
    line: tuple[Sequence[float], float, float],
    title: str | None = None,
    axes: Any = None,
    limits: tuple[Sequence[float], Sequence[float]] | None = None,
) -> Figure:
    """Input space beside the hidden representation h = φ(x) of the same samples.

    `line` = (w, b, level) is the output layer: class 1 where wᵀh + b > level.
    With 2 hidden units h is drawn as it is, with the line wᵀh + b = level; with
    more, on the axes (wᵀh + b, the most varied direction ⊥ w) described in the
    module docstring, where the boundary is the vertical line at `level`.
    With `axes` -- two matplotlib axes, or one for the features alone -- draws into it;
    `limits` = ((x₀, y₀), (x₁, y₁)) fixes the feature axes (an animation's frames).

    The titles say what the figure shows, computed from it: whether the input
    space is linearly separable, and whether the output's line separates the
    features -- or how many samples lie on its wrong side (`title` replaces the
    latter).
    """
    w, b, level = list(line[0]), float(line[1]), float(line[2])
    if len(w) != len(hs[0]):
        raise ValueError(f"feature_space: {len(w)} weights for {len(hs[0])} hidden units")
    if axes is None:
        fig = _figure(figsize=(10, 4.6), layout="constrained")
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
        left.set(xlabel="x₁", ylabel="x₂", title="input space x" + _separability(xs, ys))
        _pad(left, [list(x) for x in xs])
        left.set_aspect("equal", adjustable="box")
    points, xlabel, ylabel = feature_points(hs, w, b)
    _scatter(right, points, ys, names)
    lo, hi = _pad(right, points) if limits is None else _limit(right, limits)
    boundary = f"wᵀh + b = {level:g}"
    if len(w) == 2:
        (w1, w2) = w
        if abs(w2) > 1e-12:
            right.plot(
                lo[0:1] + hi[0:1],
                [(level - b - w1 * a) / w2 for a in (lo[0], hi[0])],
                "k--",
                lw=1.5,
                label=boundary,
            )
        elif abs(w1) > 1e-12:
            right.axvline((level - b) / w1, color="k", ls="--", lw=1.5, label=boundary)
    else:
        right.axvline(level, color="k", ls="--", lw=1.5, label=boundary)
    scores = [sum(wi * hi_ for wi, hi_ in zip(w, h)) + b for h in hs]
    # a sample on the line is on neither side: it counts as wrong
    wrong = sum(1 for s, y in zip(scores, ys) if not ((s > level) if y == 1 else (s < level)))
    if title is None:
        title = "features h = φ(x): " + (
            "separated by the output layer"
            if wrong == 0
            else f"{wrong} of {len(ys)} on the wrong side of {boundary}"
        )
    right.set(xlabel=xlabel, ylabel=ylabel, title=title)
    _legend(right)
    if path is not None:
        _savefig(fig, path)
    return fig


def feature_points(
    hs: Sequence[Sequence[float]], w: Sequence[float], b: float
) -> tuple[list[list[float]], str, str]:
    """Where :func:`feature_space` draws the features `hs`, and its axis labels."""
    if len(w) == 2:
        return [list(h) for h in hs], "h₁", "h₂"
    xlabel, ylabel = "output score wᵀh + b", "h along its most varied direction ⊥ w"
    return _score_axes(hs, list(w), b), xlabel, ylabel


def _separability(xs: Sequence[Sequence[float]], ys: Sequence[int]) -> str:
    """ ": linearly separable" or ": not linearly separable" for 2-D points, when it can
    be decided (up to 200 points), else ""."""
    if len(xs) > 200 or any(len(x) != 2 for x in xs) or len(set(ys)) < 2:
        return ""
    import numpy as np  # matplotlib's own dependency

    p = np.asarray(xs, dtype=float)
    cls = np.asarray(ys) == 1
    # The directions u that separate (max over class 0 of u·x < min over class 1) form
    # an open arc whose ends are normal to some p_i − p_j: try just inside every end.
    d = (p[:, None, :] - p[None, :, :]).reshape(-1, 2)
    d = d[np.any(d != 0.0, axis=1)]
    angles = np.arctan2(d[:, 1], d[:, 0]) + np.pi / 2
    angles = np.concatenate([angles + e for e in (1e-7, -1e-7, np.pi + 1e-7, np.pi - 1e-7)])
    u = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    proj = u @ p.T
    ok = proj[:, ~cls].max(axis=1) < proj[:, cls].min(axis=1)
    return ": linearly separable" if bool(ok.any()) else ": not linearly separable"


def training_animation(
    frames: Sequence[tuple[int, float, Callable[[list[float]], float], list[list[float]], Any]],
    xs: Sequence[Sequence[float]],
    ys: Sequence[int],
    path: str | os.PathLike[str],
    *,
    seconds: float = 0.25,
    progress: bool = True,
) -> str:
    """A GIF of training: the decision boundary and the feature space, frame by frame.

    Each frame is (step, loss, prob, hs, line): the model's P(y=1|x), its hidden
    features of `xs` and its output layer (w, b, level) at that step. Every frame
    has the same colour scale (P from 0 to 1) and the same axes (those that hold
    every frame's features), so that what moves is the model. A progress bar on
    stderr counts the frames (``progress=False``: none). Written with Pillow
    (matplotlib's own dependency); returns the path.
    """
    import numpy as np

    agg: Any = require("matplotlib.backends.backend_agg", "nn", FEATURE)
    from PIL import Image  # matplotlib's own dependency

    tqdm = require("tqdm", "nn", "the training animation's progress bar").tqdm

    everywhere = [p for *_, hs, line in frames for p in feature_points(hs, line[0], line[1])[0]]
    lo = [min(p[k] for p in everywhere) for k in (0, 1)]
    hi = [max(p[k] for p in everywhere) for k in (0, 1)]
    limits = _padded(lo, hi)
    images = []
    for step, loss, prob, hs, line in tqdm(
        frames, desc="animation", unit="frame", file=sys.stderr, leave=False, disable=not progress
    ):
        fig = _figure(figsize=(10, 4.4), layout="constrained", dpi=96)
        a, b_ax = fig.subplots(1, 2)
        decision_boundary(
            prob, xs, ys, title="input space: P(y=1|x)", ax=a, resolution=40, vrange=(0.0, 1.0)
        )
        feature_space(xs, hs, ys, line=line, axes=b_ax, limits=limits)
        fig.suptitle(f"step {step}: loss {loss:.4g}")
        canvas = agg.FigureCanvasAgg(fig)
        canvas.draw()
        images.append(Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("P"))
    path = os.fspath(path)
    ms = max(20, int(seconds * 1000))
    with replacing(path) as tmp:  # whole or not at all
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=ms, loop=0)
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


def _padded(lo: Sequence[float], hi: Sequence[float]) -> tuple[list[float], list[float]]:
    """Limits around the box lo–hi with room for the labels inside the axes."""
    span = [max(hi[k] - lo[k], 1.0) for k in (0, 1)]
    return [lo[k] - 0.3 * span[k] for k in (0, 1)], [hi[k] + 0.3 * span[k] for k in (0, 1)]


def _limit(
    ax: Any, limits: tuple[Sequence[float], Sequence[float]]
) -> tuple[list[float], list[float]]:
    lo, hi = list(limits[0]), list(limits[1])
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    return lo, hi


def _pad(ax: Any, points: list[list[float]]) -> tuple[list[float], list[float]]:
    """Limits with room for the labels inside the axes; returns (low, high) corners."""
    lo = [min(p[k] for p in points) for k in (0, 1)]
    hi = [max(p[k] for p in points) for k in (0, 1)]
    return _limit(ax, _padded(lo, hi))


def _groups(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """The indices of the points, grouped where points coincide (to 1e-9)."""
    groups: list[list[int]] = []
    for i, p in enumerate(points):
        for g in groups:
            q = points[g[0]]
            if all(math.isclose(p[k], q[k], rel_tol=1e-9, abs_tol=1e-9) for k in (0, 1)):
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def _scatter(
    ax: Any,
    points: Sequence[Sequence[float]],
    ys: Sequence[int],
    labels: Sequence[str] | None = None,
) -> None:
    """The samples by class. Samples on one point are drawn once, with one label naming
    them all; where that point holds both classes it gets a split marker, half in each
    class's colour, and its label says which sample is which."""
    groups = _groups(points)
    size = 130 if len(points) <= 12 else 30
    mixed = [g for g in groups if len({ys[i] for i in g}) > 1]
    for cls in (0, 1):
        pts = [points[g[0]] for g in groups if g not in mixed and ys[g[0]] == cls]
        if pts:
            ax.scatter(
                [p[0] for p in pts],
                [p[1] for p in pts],
                s=size,
                c=_COLORS[cls],
                marker=_MARKERS[cls],
                edgecolors="black",
                label=f"y = {cls}",
                zorder=3,
            )
    for k, g in enumerate(mixed):
        ax.plot(
            [points[g[0]][0]],
            [points[g[0]][1]],
            marker="o",
            markersize=math.sqrt(size) * 1.25,
            fillstyle="left",
            markerfacecolor=_COLORS[0],
            markerfacecoloralt=_COLORS[1],
            markeredgecolor="black",
            linestyle="none",
            label="y = 0 and y = 1 on one point" if k == 0 else None,
            zorder=3,
        )
    if labels:
        cx = sum(points[g[0]][0] for g in groups) / len(groups)
        cy = sum(points[g[0]][1] for g in groups) / len(groups)
        for g in groups:
            q = points[g[0]]
            # the label on the side away from the middle of the data, so it stays inside
            dx = 1 if q[0] <= cx else -1
            dy = 1 if q[1] <= cy else -1
            if g in mixed:
                text = "\n".join(f"{labels[i]}: y = {ys[i]}" for i in sorted(g, key=ys.__getitem__))
            else:
                text = " = ".join(labels[i] for i in g)
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


# -- many classes: the digits ---------------------------------------------------------------


def confusion_counts(true: Sequence[int], pred: Sequence[int], classes: int) -> list[list[int]]:
    """counts[t][p]: how many samples of the true class t were predicted as p.

    ValueError, naming the entry, for lists of unequal length, an empty one, or a label
    or prediction that is not a class index 0 … classes−1 (a −1 would otherwise count
    as the last class, by Python's negative indexing).
    """
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"confusion_matrix: classes must be a positive int, got {classes!r}")
    if len(true) != len(pred):
        raise ValueError(f"confusion_matrix: {len(true)} true labels but {len(pred)} predictions")
    if not true:
        raise ValueError("confusion_matrix: no samples")
    for name, seq in (("true", true), ("pred", pred)):
        for i, c in enumerate(seq):
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < classes:
                raise ValueError(
                    f"confusion_matrix: {name}[{i}] = {c!r} is not a class index "
                    f"(an int from 0 to {classes - 1})"
                )
    counts = [[0] * classes for _ in range(classes)]
    for t, p in zip(true, pred):
        counts[t][p] += 1
    return counts


def confusion_matrix(
    true: Sequence[int],
    pred: Sequence[int],
    path: str | os.PathLike[str] | None = None,
    *,
    classes: int = 10,
    title: str | None = None,
) -> Figure:
    """How often each class (row: the true one) was predicted as each (column), with counts.

    The diagonal is what is right; the title gives the accuracy it amounts to. The
    counts are :func:`confusion_counts`'s (which checks the inputs).
    """
    counts = confusion_counts(true, pred, classes)
    right = sum(counts[k][k] for k in range(classes))
    fig = _figure(figsize=(6.2, 5.4), layout="constrained")
    ax = fig.add_subplot()
    # from a neutral grey at 0 (the convention's zero) to a dark blue
    matplotlib = require("matplotlib", "nn", FEATURE)
    cmap = matplotlib.colors.LinearSegmentedColormap.from_list("counts", ["#e8e8e8", "#08306b"])
    shown = ax.imshow(counts, cmap=cmap)
    fig.colorbar(shown, ax=ax, label="samples")
    top = max(max(row) for row in counts) or 1
    for i in range(classes):
        for j in range(classes):
            if counts[i][j]:
                # mistakes (off the diagonal) in bold; red is kept for negative numbers
                color = "white" if counts[i][j] > top / 2 else "black"
                weight = "normal" if i == j else "bold"
                ax.text(
                    j,
                    i,
                    str(counts[i][j]),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color=color,
                    fontweight=weight,
                )
    ax.set(
        xticks=range(classes),
        yticks=range(classes),
        xlabel="predicted class",
        ylabel="true class",
        title=title or f"confusion matrix: {right} of {len(true)} right ({right / len(true):.1%})",
    )
    if path is not None:
        _savefig(fig, path)
    return fig


def digit_grid(
    images: Sequence[Sequence[float]],
    captions: Sequence[str],
    path: str | os.PathLike[str] | None = None,
    *,
    title: str = "",
    columns: int = 10,
    side: int = 8,
) -> Figure:
    """Images of `side`×`side` pixels (row by row, values in [0, 1]) in a grid, captioned."""
    n = max(1, len(images))
    rows = (n + columns - 1) // columns
    fig = _figure(figsize=(1.1 * columns, 1.3 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for k, ax in enumerate(a for row in axes for a in row):
        ax.set_axis_off()
        if k < len(images):
            pixels = [list(images[k][r * side : (r + 1) * side]) for r in range(side)]
            ax.imshow(pixels, cmap="gray_r", vmin=0.0, vmax=1.0)
            ax.set_title(captions[k], fontsize=9)
    if not images:
        axes[0][0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.suptitle(title)
    if path is not None:
        _savefig(fig, path)
    return fig


def class_gradients(
    means: Sequence[Sequence[float]],
    gradients: Sequence[Sequence[float]],
    path: str | os.PathLike[str] | None = None,
    *,
    counts: Sequence[int] | None = None,
    used: Sequence[bool] | None = None,
    title: str = "what each class responds to",
    label: str = "∂score/∂pixel",
    side: int = 8,
) -> Figure:
    """One column per class: above, the class's average digit; below, a signed map of
    its pixels (`gradients`: for the digits job, ink × ∂(the class's score)/∂(pixel),
    averaged over the class's test digits).

    Blue where the number is positive, red where negative, a neutral grey at 0. Each
    column is scaled to its own largest |number|, written under it (the key says so), so
    that every class shows its pattern. `counts` (how many digits each column averages)
    go in the captions. `used` marks the pixels ever lit in the training data: the others
    (the empty border) say nothing learned, and are drawn pale yellow and left out of the
    scale.
    """
    matplotlib = require("matplotlib", "nn", FEATURE)
    cmap = matplotlib.colors.LinearSegmentedColormap.from_list("signed", SIGNED_COLOURS)
    cmap = cmap.with_extremes(bad="#fff3c4")
    n = len(gradients)
    if len(means) != n:
        raise ValueError(f"class_gradients: {len(means)} average digits but {n} gradients")
    if used is not None:
        gradients = [[v if used[i] else math.nan for i, v in enumerate(g)] for g in gradients]
    fig = _figure(figsize=(1.15 * n + 1.7, 3.7), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    ink = signed = None
    for c in range(n):
        top = max((abs(v) for v in gradients[c] if math.isfinite(v)), default=0.0) or 1.0
        for row, ax in enumerate(axes[:, c]):
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                pixels = [list(means[c][r * side : (r + 1) * side]) for r in range(side)]
                ink = ax.imshow(pixels, cmap="gray_r", vmin=0.0, vmax=1.0)
                caption = f"{c}" + (f" ({counts[c]})" if counts is not None else "")
                ax.set_title(caption, fontsize=10)
            else:
                g = gradients[c]
                pixels = [[v / top for v in g[r * side : (r + 1) * side]] for r in range(side)]
                signed = ax.imshow(pixels, cmap=cmap, vmin=-1.0, vmax=1.0)
                ax.set_xlabel(f"±{top:.2g}", fontsize=8)
    axes[0, 0].set_ylabel("average\ndigit", fontsize=9)
    axes[1, 0].set_ylabel(label, fontsize=9)
    if ink is not None and signed is not None:
        k1 = fig.colorbar(ink, ax=axes[0, :], shrink=0.9, ticks=[0, 1], aspect=10)
        k1.set_label("ink", fontsize=8)
        k2 = fig.colorbar(signed, ax=axes[1, :], shrink=0.9, ticks=[-1, 0, 1], aspect=10)
        k2.ax.set_yticklabels(["−max", "0", "+max"])
        k2.set_label("each class its own max\n(under it)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    if path is not None:
        _savefig(fig, path)
    return fig


def weight_images(
    weights: Sequence[Sequence[float]],
    path: str | os.PathLike[str] | None = None,
    *,
    used: Sequence[bool] | None = None,
    title: str = "what each hidden unit looks for: its weights from the 8×8 pixels",
    columns: int = 8,
    side: int = 8,
) -> Figure:
    """Each unit's input weights as a `side`×`side` image, in the colours every picture here
    uses: blue where a bright pixel raises the unit's input (w > 0), red where it lowers it
    (w < 0), a neutral grey at 0. Each unit is scaled to its own largest |w| (the key says
    so: −1 … +1 of that), so that a unit with small weights still shows its pattern.

    `used` marks the pixels that are ever bright in the data: the others (the digits'
    empty border) never move their weights from where they started, so they are drawn
    pale yellow and left out of the scale.
    """
    matplotlib = require("matplotlib", "nn", FEATURE)
    colors = matplotlib.colors

    cmap = colors.LinearSegmentedColormap.from_list("red_grey_blue", SIGNED_COLOURS).with_extremes(
        bad="#fff3c4"
    )
    n = len(weights)
    rows = (n + columns - 1) // columns
    fig = _figure(figsize=(1.2 * columns + 1.0, 1.3 * rows + 0.7), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    shown = None
    for k, ax in enumerate(a for row in axes for a in row):
        ax.set_axis_off()
        if k < n:
            w = [v if used is None or used[i] else math.nan for i, v in enumerate(weights[k])]
            top = max((abs(v) for v in w if math.isfinite(v)), default=1.0) or 1.0
            pixels = [[v / top for v in w[r * side : (r + 1) * side]] for r in range(side)]
            shown = ax.imshow(pixels, cmap=cmap, vmin=-1.0, vmax=1.0)
            ax.set_title(f"unit {k + 1}", fontsize=8)
    if shown is not None:
        key = fig.colorbar(shown, ax=axes, shrink=0.6, ticks=[-1, 0, 1])
        key.ax.set_yticklabels(["−max|w|", "0", "+max|w|"])
        key.set_label("weight, each unit on its own scale (blue > 0, red < 0)")
    fig.suptitle(title + (" (pale yellow: pixels never lit)" if used is not None else ""))
    if path is not None:
        _savefig(fig, path)
    return fig
