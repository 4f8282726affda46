"""The lecture's networks as code (../shared/lecture, claims L1-L17).

Notation as on the slides: x ∈ R², W is 2×2 with u¹ = Wᵀx (so u¹ⱼ = Σᵢ Wᵢⱼ xᵢ),
c, w ∈ R², b a scalar, y ∈ {0, 1}. Matrices are lists of rows.

* :func:`perceptron` — L1, f(x) = σ(wᵀx + b) (the slide's exponent sign fixed).
* :func:`fit_linear_xor` — L3, the least-squares linear model on XOR, closed form.
* :func:`collapse_linear` — L4, a linear hidden layer is one linear model.
* :func:`relu_network` — L5/L6, h = max(0, Wᵀx + c), y = wᵀh + b.
* :func:`forward` — L11, the forward pass u¹ … L with the logistic head, every
  step a labelled Value ready to be drawn.
* :func:`mlp` — the same network as an ``nn.MLP`` (for the network views and the
  layer explorer).
* :func:`slide_gradients` — L12, L13, L16: the slides' closed-form gradients,
  computed with plain floats, to set beside the engine's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autodiff import Value
from autodiff.rules import sigmoid_float
from nn.module import MLP

__all__ = [
    "LECTURE_B",
    "LECTURE_C",
    "LECTURE_W",
    "LECTURE_W_OUT",
    "Forward",
    "collapse_linear",
    "fit_linear_xor",
    "forward",
    "mlp",
    "parameters",
    "perceptron",
    "relu_network",
    "slide_gradients",
]

Num = Value | float
Matrix = Sequence[Sequence[float]]

#: The slide's hand-set XOR network (L6).
LECTURE_W: list[list[float]] = [[1.0, 1.0], [1.0, 1.0]]
LECTURE_C: list[float] = [0.0, -1.0]
LECTURE_W_OUT: list[float] = [1.0, -2.0]
LECTURE_B: float = 0.0


def _wt_x(W: Sequence[Sequence[Num]], x: Sequence[Num]) -> list[Num]:
    """Wᵀx: component j is Σᵢ W[i][j]·x[i]."""
    out = []
    for j in range(len(W[0])):
        s: Num = W[0][j] * x[0]
        for i in range(1, len(x)):
            s = s + W[i][j] * x[i]
        out.append(s)
    return out


def _dot(a: Sequence[Num], b: Sequence[Num]) -> Num:
    s: Num = a[0] * b[0]
    for ai, bi in zip(a[1:], b[1:]):
        s = s + ai * bi
    return s


def mlp() -> MLP:
    """The slide's hand-set network (L6) as an :class:`nn.MLP`: MLP(2, [2, 1]), ReLU, with
    W, c, w, b set to the slide's numbers (W[i][j] is the weight from input i to unit j)."""
    model = MLP(2, [2, 1], activation="relu", seed=0)
    hidden, out = model.layers[0].neurons, model.layers[1].neurons[0]
    for j, neuron in enumerate(hidden):
        for i, w in enumerate(neuron.w):
            w.data = LECTURE_W[i][j]
        neuron.b.data = LECTURE_C[j]
    for i, w in enumerate(out.w):
        w.data = LECTURE_W_OUT[i]
    out.b.data = LECTURE_B
    return model


def perceptron(x: Sequence[Num], w: Sequence[Num], b: Num) -> Value:
    """L1: f(x; w) = S(wᵀx + b) = 1 / (1 + e^−(wᵀx + b)).

    The slide writes the exponent as −w₁x₁ − … − w_dx_d + b; the intended form,
    used here, negates b as well.
    """
    z = _dot(w, x) + b
    return z.sigmoid() if isinstance(z, Value) else Value(z).sigmoid()


def fit_linear_xor(X: Matrix, y: Sequence[float]) -> tuple[list[float], float, float]:
    """L3: the w, b minimising L = (1/n) Σ (y − (wᵀx + b))², by the normal equations.

    Returns (w, b, L). On XOR: w = 0, b = ½, L = ¼. (The slide writes argmax; a
    loss is minimised: argmin.)
    """
    n, d = len(X), len(X[0])
    rows = [[*x, 1.0] for x in X]  # augmented with a 1 for b
    # normal equations AᵀA θ = Aᵀy, solved by Gauss-Jordan elimination with pivoting
    m = [
        [sum(r[i] * r[j] for r in rows) for j in range(d + 1)]
        + [sum(r[i] * t for r, t in zip(rows, y))]
        for i in range(d + 1)
    ]
    for col in range(d + 1):
        pivot = max(range(col, d + 1), key=lambda r: abs(m[r][col]))
        if m[pivot][col] == 0.0:
            raise ValueError("fit_linear_xor: the inputs do not determine a unique fit")
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(d + 1):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [a - f * p for a, p in zip(m[r], m[col])]
    theta = [m[i][d + 1] / m[i][i] for i in range(d + 1)]
    w, b = theta[:d], theta[d]
    loss = sum((t - (sum(wi * xi for wi, xi in zip(w, x)) + b)) ** 2 for x, t in zip(X, y)) / n
    return w, b, loss


def collapse_linear(
    W: Matrix, c: Sequence[float], w: Sequence[float], b: float
) -> tuple[list[float], float]:
    """L4: wᵀ(Wᵀx + c) + b = w̃ᵀx + b̃ with w̃ = Ww and b̃ = wᵀc + b."""
    w_tilde = [sum(W[i][j] * w[j] for j in range(len(w))) for i in range(len(W))]
    b_tilde = sum(wj * cj for wj, cj in zip(w, c)) + b
    return w_tilde, b_tilde


def relu_network(
    x: Sequence[Num],
    W: Sequence[Sequence[Num]] = LECTURE_W,
    c: Sequence[Num] = LECTURE_C,
    w: Sequence[Num] = LECTURE_W_OUT,
    b: Num = LECTURE_B,
) -> tuple[list[Value], list[Value], Value]:
    """L5/L6: (Wᵀx + c, h = max(0, Wᵀx + c), y = wᵀh + b) for one sample x."""
    pre = [Value(v) if not isinstance(v, Value) else v for v in _wt_x(W, x)]
    pre = [p + cj for p, cj in zip(pre, c)]
    h = [p.relu() for p in pre]
    return pre, h, _dot(w, h) + b  # type: ignore[return-value]


@dataclass
class Forward:
    """The named steps of the lecture's forward pass (L11), each a labelled Value."""

    u1: list[Value]
    u2: list[Value]
    h: list[Value]
    u3: Value
    z: Value
    u4: Value
    L: Value


def parameters(
    W: Matrix = LECTURE_W,
    c: Sequence[float] = LECTURE_C,
    w: Sequence[float] = LECTURE_W_OUT,
    b: float = LECTURE_B,
) -> tuple[list[list[Value]], list[Value], list[Value], Value]:
    """W, c, w, b as Values labelled as on the slides (default: the hand-set network, L6)."""
    Wv = [[Value(v, f"W{i + 1},{j + 1}") for j, v in enumerate(row)] for i, row in enumerate(W)]
    cv = [Value(v, f"c{j + 1}") for j, v in enumerate(c)]
    wv = [Value(v, f"w{j + 1}") for j, v in enumerate(w)]
    return Wv, cv, wv, Value(b, "b")


def _labelled(v: Value, label: str) -> Value:
    v.label = label
    return v


def forward(
    x: Sequence[float | Value],
    y: int,
    W: Sequence[Sequence[Value]],
    c: Sequence[Value],
    w: Sequence[Value],
    b: Value,
) -> Forward:
    """L11: u¹ = Wᵀx, u² = u¹ + c, h = max(0, u²), u³ = wᵀh, z = u³ + b, u⁴ = (1−2y)z, L = ζ(u⁴).

    Parameters are Values (so their gradients can be read after ``L.backward()``);
    every intermediate gets the slide's name as its label.
    """
    if y not in (0, 1):
        raise ValueError(f"forward: the label y must be 0 or 1, got {y!r}")
    xv = [v if isinstance(v, Value) else Value(v, f"x{'₁₂'[i]}") for i, v in enumerate(x)]
    u1 = [_labelled(v, f"u¹{'₁₂'[j]}") for j, v in enumerate(_wt_x(W, xv))]  # type: ignore[arg-type]
    u2 = [_labelled(u + cj, f"u²{'₁₂'[j]}") for j, (u, cj) in enumerate(zip(u1, c))]
    h = [_labelled(u.relu(), f"h{'₁₂'[j]}") for j, u in enumerate(u2)]
    u3 = _labelled(_dot(w, h), "u³")  # type: ignore[arg-type]
    z = _labelled(u3 + b, "z")
    u4 = _labelled(Value(1 - 2 * y, "1−2y") * z, "u⁴")
    L = _labelled(u4.softplus(), "L")
    return Forward(u1, u2, h, u3, z, u4, L)


def slide_gradients(
    x: Sequence[float], y: int, W: Matrix, c: Sequence[float], w: Sequence[float], b: float
) -> dict[str, float | list[float] | list[list[float]]]:
    """The slides' closed forms (L12, L13, L16), in plain floats, for one sample.

    With s = σ(u⁴)(1−2y) and f = 1[u² > 0]:
    ∂L/∂u⁴ = σ(u⁴); ∂L/∂z = ∂L/∂b = ∂L/∂u³ = s; ∇_w L = s·h; ∇_h L = s·w;
    ∇_{u²}L = ∇_c L = ∇_{u¹}L = s·f ⊙ w; ∇_W L = x (s·f ⊙ w)ᵀ.
    """
    u1 = [sum(W[i][j] * x[i] for i in range(len(x))) for j in range(len(c))]
    u2 = [u + cj for u, cj in zip(u1, c)]
    h = [max(0.0, u) for u in u2]
    z = sum(wj * hj for wj, hj in zip(w, h)) + b
    u4 = (1 - 2 * y) * z
    s = sigmoid_float(u4) * (1 - 2 * y)
    f = [1.0 if u > 0 else 0.0 for u in u2]
    g_u2 = [s * fj * wj for fj, wj in zip(f, w)]
    return {
        "dL/du4": sigmoid_float(u4),
        "dL/dz": s,
        "dL/db": s,
        "dL/du3": s,
        "grad_w": [s * hj for hj in h],
        "grad_h": [s * wj for wj in w],
        "grad_u2": g_u2,
        "grad_c": g_u2,
        "grad_u1": g_u2,
        "grad_W": [[xi * g for g in g_u2] for xi in x],
    }
