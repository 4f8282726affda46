"""Small data sets: XOR and moons, generated here; handwritten digits, shipped.

No network and no scikit-learn: the digits are a file of this package
(``nn/datasets/digits.csv.gz``; its source and license are in the README beside it).
"""

from __future__ import annotations

import gzip
import math
import random
from importlib import resources

__all__ = ["DIGITS_SPLIT", "digits", "moons", "xor"]

#: How many of the 1,797 digits (after the fixed shuffle) are the training split.
DIGITS_SPLIT = 1347


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


def digits(split: str = "train") -> tuple[list[list[float]], list[int]]:
    """The 8×8 handwritten digits: (xs, ys) for ``split="train"`` (1,347) or ``"test"`` (450).

    Each x is 64 pixels, row by row, scaled to [0, 1]; each y a label 0–9. The split is
    fixed: the 1,797 images shuffled by ``random.Random(0)``, the first 1,347 for
    training (75 %), the other 450 for testing. The data is the UCI "Optical
    Recognition of Handwritten Digits" test set (Alpaydin and Kaynak, 1998; CC BY 4.0),
    shipped with this package: no network is needed.
    """
    if split not in ("train", "test"):
        raise ValueError(f"digits: split must be 'train' or 'test', got {split!r}")
    raw = (resources.files("nn") / "datasets" / "digits.csv.gz").read_bytes()
    rows = [line.split(",") for line in gzip.decompress(raw).decode("ascii").split()]
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    chosen = order[:DIGITS_SPLIT] if split == "train" else order[DIGITS_SPLIT:]
    xs = [[int(v) / 16.0 for v in rows[i][:64]] for i in chosen]
    ys = [int(rows[i][64]) for i in chosen]
    return xs, ys
