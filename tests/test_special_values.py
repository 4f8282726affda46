"""Every operation at the special points, to the third derivative: right, or a clear error.

For each operation, closed forms of the value and of the first three
derivatives are evaluated in IEEE arithmetic (numpy float64 scalars, so that
1/0 is inf and 0·inf is nan, as IEEE says), and the engine must give the same
numbers -- NaN where they are NaN, ±inf where they are ±inf -- at 0, −0.0, ±1, a
tiny and a subnormal number, ±1e300, ±inf and NaN. The engine may raise instead
(OverflowError, ValueError, ZeroDivisionError) only where the IEEE value it
would have to give is not finite: that is its documented policy (autodiff.rules),
never an exception where a number exists. The first derivative is taken both by
backward() and by grad(create_graph=True); higher ones by differentiating again.

A polynomial's derivatives that are constants (d²/dx² x² = 2) are constants at
±inf and NaN too; a derivative that depends on x is NaN at NaN -- relu's and
abs's included, which are constant only where x is a number.

Tolerance: closed forms and the engine compute the same function by different
formulas (numpy's exp/tanh may also differ from libm's in the last bit), so 1e-12
relative; infinities and NaN must match exactly.

PyTorch (float64), when installed, is a second oracle on the same points, except
where the two differ by design, each listed in TORCH_DIFFERS with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import oracle
import pytest
from ops import RECORDS

from autodiff import Value, grad

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, 5e-324, 1e300, -1e300, math.inf, -math.inf, math.nan]
LN2 = math.log(2.0)


# name -> (the operation on a Value, closed forms [f, f', f'', f'''] of a float64, the
# same in PyTorch): each rule's record (tests/ops.py), then further ways of calling the
# operators
FORMS: dict[str, tuple[Callable[[Value], Value], Callable[[np.float64], list], Callable]] = {
    name: (r.special, r.closed, r.torch) for name, r in RECORDS.items()
}
FORMS |= {
    "square": (lambda v: v**2, lambda x: [x**2, 2 * x, 2.0, 0.0], lambda t, torch: t**2),
    "recip": (
        lambda v: v**-1,
        lambda x: [x**-1.0, -(x**-2.0), 2 * x**-3.0, -6 * x**-4.0],
        lambda t, torch: t**-1,
    ),
    "pow0": (lambda v: v**0, lambda x: [1.0, 0.0, 0.0, 0.0], lambda t, torch: t**0),
    "pow_half": (
        lambda v: v**0.5,
        lambda x: [x**0.5, 0.5 * x**-0.5, -0.25 * x**-1.5, 0.375 * x**-2.5],
        lambda t, torch: t**0.5,
    ),
    "rpow": (
        lambda v: 2.0**v,
        lambda x: [p := np.float64(2.0) ** x, p * LN2, p * LN2**2, p * LN2**3],
        lambda t, torch: 2.0**t,
    ),
    "div_const": (
        lambda v: v / 3.0,
        lambda x: [x / 3.0, 1 / 3, 0.0, 0.0],
        lambda t, torch: t / 3.0,
    ),
    "add_sub": (
        lambda v: (v + 1.0) - v * 0.5,
        lambda x: [x + 1.0 - x * 0.5, 0.5, 0.0, 0.0],
        lambda t, torch: (t + 1.0) - t * 0.5,
    ),
}
OPS = {name: (fn, closed) for name, (fn, closed, _) in FORMS.items()}


ERRORS = (OverflowError, ValueError, ZeroDivisionError)


def engine(fn: Callable[[Value], Value], x: float) -> list[float | BaseException]:
    """[f, f', f'', f'''] by the engine; an exception stands in for what it raised."""
    v = Value(x)
    try:
        y = fn(v)
    except ERRORS as e:
        return [e]
    y.backward()
    out: list[float | BaseException] = [y.data, v.grad]
    g = y
    for _ in range(3):
        try:
            (g,) = grad(g, [v], create_graph=True)
        except ERRORS as e:
            out.append(e)
            break
        out.append(g.data)
    first_by_grad = out[2]
    out[2:] = out[3:]  # [f, f' (backward), f'', f''']
    if not isinstance(first_by_grad, BaseException):
        assert same(first_by_grad, out[1]), f"grad() gives {first_by_grad}, backward() {out[1]}"
    return out


def same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return a == pytest.approx(b, rel=1e-12, abs=1e-300)


def closed(closed_form: Callable[[np.float64], list], x: float) -> list[float]:
    with np.errstate(all="ignore"):
        return [float(np.float64(v)) for v in closed_form(np.float64(x))]


# (op, point, order) where the engine's answer is NaN, not the closed form's, and why
IEEE_LIMITS = {
    ("pow0", 1e-300, 2): "x**0 = 0·x^(−1) + 1 in the base: d² is 0·(−x^(−2)) = 0·(−∞) = NaN, "
    "because the exponent may be a variable whose mixed derivatives need that formula",
    ("pow0", 1e-300, 3): "as at order 2",
    # ∂/∂z log Σ e^z = e^(z − out): at z = out = ±∞ that is e^(∞ − ∞) = NaN (the softmax of an
    # infinite score is a limit, not a number)
    ("logsumexp", math.inf, 1): "e^(∞ − ∞)",
    ("logsumexp", math.inf, 2): "e^(∞ − ∞)",
    ("logsumexp", math.inf, 3): "e^(∞ − ∞)",
    # PyTorch's cross-entropy: a +inf score makes the loss and its derivatives NaN (its
    # log-softmax computes ∞ − ∞); the closed form's limit, softplus(∞) = ∞, is not that
    **{("nll", math.inf, k): "PyTorch's cross-entropy at a +inf score" for k in range(4)},
}

CASES = [pytest.param(name, x, id=f"{name}({x!r})") for name in OPS for x in SPECIAL]


@pytest.mark.parametrize(("name", "x"), CASES)
def test_every_op_at_every_special_point_to_the_third_derivative(name, x):
    fn, closed_form = OPS[name]
    expected = closed(closed_form, x)
    got = engine(fn, x)
    for k, (g, e) in enumerate(zip(got, expected)):
        if isinstance(g, BaseException):
            # raising is allowed only where the value or a lower derivative is not finite
            assert not all(map(math.isfinite, expected[: k + 1])), (
                f"{name}({x!r}): order {k} raised {g!r}, but IEEE gives {expected[: k + 1]}"
            )
            return
        if (name, x, k) in IEEE_LIMITS:
            assert math.isnan(g), IEEE_LIMITS[name, x, k]
            continue
        assert same(g, e), f"{name}({x!r}): order {k}: engine {g!r}, closed form {e!r}"
        if k == 0 and math.isfinite(x):
            assert math.isfinite(g) or not math.isfinite(e), "an overflow must raise"


def test_the_matrix_covers_every_rule():
    from autodiff.rules import RULES

    ops = set()
    for fn, _ in OPS.values():
        try:
            ops.add(fn(Value(0.5)).op)
        except ERRORS:  # pragma: no cover
            pass
    assert set(RULES) <= ops | {"add", "sub", "mul", "div"}
    assert {"add", "sub", "mul", "div"} <= {
        p.op for fn, _ in OPS.values() for p in [fn(Value(0.5)), *fn(Value(0.5)).parents]
    }


# -- PyTorch as a second oracle -------------------------------------------------------------

# (name, point kind) -> why the engine and PyTorch differ, by design
TORCH_DIFFERS = {
    "relu(nan)": "PyTorch's relu'(nan) is 1 (its mask is x <= 0); NaN propagates here",
    "abs(nan)": "PyTorch's abs'' at nan is 0; NaN propagates here",
    "pow_half(-0.0)": "PyTorch gives (−0.0)^0.5 a slope of −inf; IEEE pow(−0, −0.5) is +inf",
    "pow0(1e-300)": "x**0's second derivative at a tiny base: see IEEE_LIMITS",
}


@pytest.mark.parametrize(("name", "x"), CASES)
def test_every_op_at_every_special_point_matches_pytorch(name, x):
    # where the two differ by design (TORCH_DIFFERS), check that they still do, and why
    torch = oracle.torch()
    key = f"{name}({x!r})"
    fn, _ = OPS[name]
    got = engine(fn, x)
    if isinstance(got[0], BaseException):
        return  # the engine's policy: an error where PyTorch gives inf or nan (checked above)
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = _torch_op(name, t, torch)
    want = [y.item()]
    g = y
    for _ in range(3):
        if not g.requires_grad:
            want.append(0.0)
            g = torch.tensor(0.0, dtype=torch.float64)
            continue
        (g,) = torch.autograd.grad(g, t, create_graph=True, allow_unused=True)
        if g is None:
            g = torch.tensor(0.0, dtype=torch.float64)
        want.append(g.item())
    differ = []
    for k, (a, b) in enumerate(zip(got, want)):
        if isinstance(a, BaseException):
            assert not all(math.isfinite(w) for w in want[: k + 1])
            break
        if not same(a, b):
            differ.append(f"order {k}: engine {a!r}, PyTorch {b!r}")
    if key in TORCH_DIFFERS:
        assert differ, f"{key}: documented as differing ({TORCH_DIFFERS[key]}), but agrees"
    else:
        assert not differ, f"{key}: {differ}"


def _torch_op(name, t, torch):
    return FORMS[name][2](t, torch)
