"""Small data sets, generated here (no scikit-learn)."""

from __future__ import annotations

import math
import random

__all__ = ["moons", "xor"]


def xor() -> tuple[list[list[float]], list[int]]:
    """The lecture's four XOR samples, in its order (the columns of X), and labels 0/1.

    X = [[0, 1, 0, 1], [0, 0, 1, 1]] column by column: (0,0), (1,0), (0,1), (1,1);
    y = [0, 1, 1, 0].
    """
    return [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0, 1, 1, 0]


def moons(n: int = 100, noise: float = 0.1, seed: int = 0) -> tuple[list[list[float]], list[int]]:
    """Two interleaving half circles: `n` points, labels 0 (upper) and 1 (lower).

    The upper moon is (cos t, sin t) and the lower (1 − cos t, ½ − sin t) for t in
    [0, π], evenly spaced; Gaussian noise of standard deviation `noise` is added to
    every coordinate. Samples alternate between the moons; `seed` fixes the noise.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"moons: n must be an int >= 2, got {n!r}")
    if not noise >= 0.0:
        raise ValueError(f"moons: noise must be >= 0, got {noise!r}")
    rng = random.Random(seed)
    n_upper = (n + 1) // 2
    n_lower = n - n_upper
    points: list[tuple[list[float], int]] = []
    for i in range(n_upper):
        t = math.pi * i / max(n_upper - 1, 1)
        points.append(([math.cos(t), math.sin(t)], 0))
    for i in range(n_lower):
        t = math.pi * i / max(n_lower - 1, 1)
        points.append(([1.0 - math.cos(t), 0.5 - math.sin(t)], 1))
    order = [i // 2 if i % 2 == 0 else n_upper + i // 2 for i in range(n)]
    xs, ys = [], []
    for k in order:
        (px, py), label = points[k]
        xs.append([px + rng.gauss(0.0, noise), py + rng.gauss(0.0, noise)])
        ys.append(label)
    return xs, ys
