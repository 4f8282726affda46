"""Every derivative in one table.

Each primitive operation is one :class:`Rule`: a name (recorded on the nodes it
makes, and shown by the renders), a ``forward`` function on plain floats, and a
``local`` function giving the *local derivatives* -- the partial derivative of
the output with respect to each input, i.e. one row of the Jacobian.

``local(*inputs, out)`` is written once and works on two kinds of number:

* on floats, when a node is recorded: the numbers are stored on the node, and
  the backward pass is one line of chain rule, ``parent.grad += local * grad``;
* on :class:`~autodiff.engine.Value` objects, for ``grad(..., create_graph=True)``:
  the same formula then records a graph of its own, which can be differentiated
  again (second and higher derivatives).

So the rules below use only arithmetic and the helpers :func:`exp`, :func:`log`,
:func:`sigmoid`, :func:`power`, :func:`select` and :func:`number`, which accept
either kind (and the symbols of :mod:`autodiff.trace`, which turn a rule into
code). A local derivative is a formula, never a constant standing in for one: a
branch that returns a constant does so only where the derivative really is
constant (relu's 0 and 1), so that differentiating it again stays right.

The numeric policy, the same for every operation:

* **NaN** propagates: an operation on NaN gives NaN, and so do the local
  derivatives that depend on it (``relu(nan)`` is NaN with derivative NaN).
* **Overflow** from finite inputs raises :class:`OverflowError` naming the
  operation and its inputs -- ``+ − × ÷ ** exp dot`` alike (:func:`overflow`).
  Infinite inputs are not overflow: they follow IEEE arithmetic
  (``exp(inf) = inf``, ``tanh(inf) = 1``).
* **Domain errors** raise: ``log`` of a number ≤ 0 and ``sqrt`` of a negative
  one (ValueError), a negative base to a non-integer power (ValueError), a zero
  divisor and zero to a negative power (ZeroDivisionError).
* **Derivatives never raise.** Where a derivative is infinite or undefined at a
  valid input (``sqrt'(0)``, ``d(a**b)/db`` for ``a < 0``) it is ``±inf`` or
  NaN, and a derivative too large for a float is ``±inf``, as in IEEE
  arithmetic and PyTorch.
"""

from __future__ import annotations

import inspect
import math
import operator
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

__all__ = [
    "RULES",
    "Rule",
    "exp",
    "is_numpy",
    "log",
    "number",
    "overflow",
    "power",
    "pow_ieee",
    "select",
    "select_array",
    "select_float",
    "sigmoid",
    "sigmoid_float",
    "softplus_float",
    "undefined",
]

# A number the rules compute with: a float, or a Value (duck-typed, see above).
Num = Any

_INF = math.inf
_NAN = math.nan


# ----------------------------------------------------------------------------
# The numeric policy
# ----------------------------------------------------------------------------


def overflow(name: str, symbol: str, inputs: Sequence[float], out: float) -> None:
    """Raise if finite `inputs` gave the non-finite `out`; else return.

    ±inf from finite inputs is an overflow (OverflowError); NaN from finite inputs is no
    number at all (ValueError): both name the operation and its inputs. Called, by the
    engine and by traced code alike, only after a cheap test has found `out` not finite
    (``out - out`` is 0.0 exactly for finite numbers). NaN or infinite inputs are not an
    error: their result stands.
    """
    if all(map(math.isfinite, inputs)):
        infix = _INFIX.get(name)
        if infix and len(inputs) == 2:
            expr = f"{name}: {inputs[0]!r} {infix} {inputs[1]!r}"
        else:
            shown = ", ".join(map(repr, inputs[:6])) + (", ..." if len(inputs) > 6 else "")
            expr = f"{name} ({symbol}): {name}({shown})" if len(inputs) > 1 else f"{name}({shown})"
        if out != out:
            raise ValueError(f"{expr} is NaN (not a number) although its inputs are finite")
        raise OverflowError(f"{expr} overflows a float (the largest is 1.8e308)")


_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}


# ----------------------------------------------------------------------------
# Float kernels: forward functions, stable and with clear errors
# ----------------------------------------------------------------------------


def sigmoid_float(x: float) -> float:
    """σ(x) = 1 / (1 + e^-x), finite for every float: ``exp`` only ever sees -|x|."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # nan stays nan
    return e / (1.0 + e)


def softplus_float(x: float) -> float:
    """ζ(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|); exact to the last bit at both ends."""
    if x != x:
        return x
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def select_float(x: float, neg: float, zero: float, pos: float) -> float:
    """`pos` where x > 0, `zero` where x = 0 (also −0.0), `neg` where x < 0; NaN for NaN."""
    if x > 0.0:
        return pos
    if x < 0.0:
        return neg
    return zero if x == 0.0 else _NAN


def pow_ieee(a: float, e: float) -> float:
    """a ** e as IEEE 754 defines it, for derivative formulas: never raises.

    Zero to a negative power is ±inf (the pole), a result too large is ±inf, and
    a negative base to a non-integer power is NaN (not Python's complex number).
    """
    try:
        r = a**e
    except ZeroDivisionError:  # ±0 ** negative
        return -_INF if (math.copysign(1.0, a) < 0.0 and _odd(e)) else _INF
    except OverflowError:
        return -_INF if (a < 0.0 and _odd(e)) else _INF
    return _NAN if type(r) is complex else r


def _odd(e: float) -> bool:
    return e.is_integer() and e % 2.0 == 1.0


def _relu_float(x: float) -> float:
    """max(0, x), with relu(−0.0) = 0.0 and relu(nan) = nan."""
    return x if x > 0.0 else (0.0 if x <= 0.0 else x)


def _exp_float(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        overflow("exp", "exp", (x,), _INF)
        raise  # pragma: no cover - overflow() raised


def _log_float(x: float) -> float:
    if x > 0.0 or x != x:  # nan stays nan
        return math.log(x)
    raise ValueError(f"log({x!r}): the logarithm is defined only for positive numbers")


def _sqrt_float(x: float) -> float:
    if x >= 0.0 or x != x:  # sqrt(-0.0) = -0.0, as IEEE says
        return math.sqrt(x)
    raise ValueError(f"sqrt({x!r}): the square root is defined only for numbers >= 0")


def _div_float(a: float, b: float) -> float:
    if b == 0.0:
        raise ZeroDivisionError(f"division by zero: {a!r} / {b!r}")
    out = a / b
    if out - out:  # not finite: an overflow, unless an input was already inf or nan
        overflow("div", "÷", (a, b), out)
    return out


def _pow_float(a: float, b: float) -> float:
    if a != a or b != b:
        return a**b  # IEEE: nan ** 0 = 1 ** nan = 1, else nan
    if a == 0.0 and b < 0.0:
        raise ZeroDivisionError(f"pow: 0.0 raised to a negative power ({a!r} ** {b!r})")
    if a < 0.0 and not b.is_integer() and math.isfinite(b):
        raise ValueError(
            "pow: a negative base to a non-integer power has no real value "
            f"(base {a!r}, exponent {b!r})"
        )
    try:
        return a**b
    except OverflowError:
        overflow("pow", "^", (a, b), _INF)
        raise  # pragma: no cover - overflow() raised


def _left_fold(terms: Any, start: float) -> float:
    """start + t₁ + t₂ + …, each addition rounded, left to right: a chain of +."""
    return reduce(operator.add, terms, start)


#: The sum of floats that rounds as a chain of + does. Up to Python 3.11 that is sum()
#: (a C loop); from 3.12 sum() of floats is compensated -- more accurate, and so not the
#: chain's rounding -- and the explicit left fold is used. The numbers are the same on
#: every version; only the speed differs.
fold: Any = sum if sys.version_info < (3, 12) else _left_fold


def _dot_float(b: float, *wx: float) -> float:
    # b + Σ wᵢxᵢ, the inputs being (b, w₁ … wₙ, x₁ … xₙ): the rounding of the chain
    # b + w₁x₁ + … it replaces (see `fold`)
    n = len(wx) // 2
    out = fold(map(operator.mul, wx[:n], wx[n:]), b)
    if out - out:  # a NaN here is inf − inf of two overflowed partial sums: an overflow too
        overflow("dot", "Σ", (b, *wx), out if out == out else _INF)
    return out


def _logsumexp_float(*zs: float) -> float:
    """log Σ e^zᵢ, shifted by the largest zᵢ so that no e^z overflows: finite for every
    finite z (1e300 included). NaN if any zᵢ is NaN; ±inf where the largest is."""
    if any(z != z for z in zs):
        return _NAN
    m = max(zs)
    if m - m:  # ±inf: the sum is dominated by it (all −inf: log 0 = −inf)
        return m
    return m + math.log(math.fsum(math.exp(z - m) for z in zs))


def _logsumexp_local(*args: Num) -> tuple[Num, ...]:
    # ∂/∂zᵢ log Σ e^z = softmax(z)ᵢ = e^(zᵢ − m) / Σⱼ e^(zⱼ − m), m the largest z
    # (args: z₁ … zₙ, out). Not e^(zᵢ − out): where out rounds to m (z = 1e300, 1e300)
    # that would be 1, not ½. The shift m is a number: it cancels, so it has no derivative.
    zs, out = args[:-1], args[-1]
    m = max(map(number, zs))
    if m - m != 0.0:  # an infinite or NaN score: the limit, e^(z − out), in IEEE arithmetic
        return tuple(exp(z - out) for z in zs)
    e = [exp(z - m) for z in zs]
    total = reduce(operator.add, e)  # the same sum, left to right, on floats and Values
    return tuple(ei / total for ei in e)


def _not_a_class(name: str, y: float, n: int) -> ValueError:
    """The error for a label y that is not a class index of n classes, naming `name` and y."""
    return ValueError(
        f"{name}: the label {y!r} is not a class index (an integer from 0 to {n - 1})"
    )


def _class_index(name: str, y: float, n: int) -> int:
    """The class index y (an integer 0 ≤ y < n) as an int; ValueError naming `name`."""
    if not (y == y and y.is_integer() and 0 <= y < n):
        raise _not_a_class(name, y, n)
    return int(y)


def _pick_float(y: float, *zs: float) -> float:
    """zs[y] for the class index y (an integer 0 ≤ y < len(zs)); ValueError otherwise."""
    return zs[_class_index("pick", y, len(zs))]


def _pick_local(y: Num, *rest: Num) -> tuple[Num, ...]:
    # ∂/∂y = 0 (a label), ∂/∂zₖ = 1 for k = y, else 0   (args: y, z₀ … zₙ₋₁, out)
    k = number(y)
    return (0.0, *[1.0 if i == k else 0.0 for i in range(len(rest) - 1)])


def _nll_float(y: float, *zs: float) -> float:
    """−log softmax(z)[y] = log Σₖ e^(zₖ − z_y), the softmax cross-entropy of one sample
    with the class y (checked as :func:`_pick_float` checks it).

    Shifted by the label's own score, so that it is exact at both ends (log 2 for
    z = (1e300, 1e300), not 0); finite for every finite z whose loss is a float. Not
    finite, PyTorch's ``cross_entropy``: −inf at the label's class (no other class
    impossible) is +inf, a −inf elsewhere is a class of probability 0, and a NaN or a
    +inf score anywhere gives NaN.
    """
    k = _class_index("nll", y, len(zs))
    zy = zs[k]
    if _INF in zs:
        return _NAN  # +inf − +inf inside PyTorch's log-softmax, as there
    # the label's own term is 0 exactly (zy − zy is, for a finite zy; for −inf it is NaN)
    return _logsumexp_float(*[z - zy if i != k else 0.0 for i, z in enumerate(zs)])


def _nll_local(*args: Num) -> tuple[Num, ...]:
    # ∂/∂y = 0 (a label); ∂/∂zₖ = softmax(z)ₖ − [k = y], the softmax of the scores less the
    # label's (as _nll_float takes them), shifted by the largest finite one m, a number that
    # cancels (no derivative): e^(dₖ − m) / Σⱼ e^(dⱼ − m), dₖ = zₖ − z_y.
    # With the label's score at −inf that is softmax − one-hot still (PyTorch's gradient
    # of its +inf loss); a NaN or +inf score makes every derivative NaN, as there.
    y, zs = args[0], args[1:-1]
    k = number(y)
    nums = [number(z) for z in zs]
    finite = [x for x in nums if x - x == 0.0]
    if any(x != x or x == _INF for x in nums) or not finite:
        # NaN, and on Values a NaN whose own derivatives are NaN at every order
        return (0.0, *[exp(z * _NAN) for z in zs])
    zy = zs[int(k)]
    if nums[int(k)] - nums[int(k)] == 0.0:  # shifted by the label's score first, as the loss
        zs = tuple(z - zy if i != k else 0.0 for i, z in enumerate(zs))
        finite = [number(z) for z in zs if number(z) - number(z) == 0.0]
    m = max(finite)
    e = [exp(z - m) for z in zs]
    total = reduce(operator.add, e)  # the same sum, left to right, on floats and Values
    return (0.0, *[ei / total - (1.0 if i == k else 0.0) for i, ei in enumerate(e)])


# ----------------------------------------------------------------------------
# Array kernels: each rule's forward on arrays of a namespace xp (numpy, torch, …),
# for batched traces; the same formulas as the float kernels, elementwise
# ----------------------------------------------------------------------------


def _arr(xp: Any, x: Any) -> Any:
    """An array of `x` (a float shared by the batch becomes a 0-d float64 array)."""
    return x if hasattr(x, "shape") else xp.asarray(x, dtype=xp.float64)


def _sigmoid_array(xp: Any, x: Any) -> Any:
    x = _arr(xp, x)
    e = xp.exp(-xp.abs(x))  # exp only ever sees −|x|, as sigmoid_float
    return xp.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus_array(xp: Any, x: Any) -> Any:
    x = _arr(xp, x)
    return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))


def select_array(xp: Any, x: Any, neg: Any, zero: Any, pos: Any, *, exact: bool = False) -> Any:
    """:func:`select_float` elementwise: the branch of each x's sign (NaN where x is NaN).

    A derivative that is 1 above 0 and 0 elsewhere (relu's) comes back, unless `exact`,
    as the mask ``x > 0`` -- one pass, and 0 rather than NaN at a NaN x: batched code
    recomputes a sample that holds a NaN with the scalar code, which says NaN.
    """
    x = _arr(xp, x)
    branches = (neg, zero, pos)
    if not exact and all(type(v) is float for v in branches) and branches == (0.0, 0.0, 1.0):
        return x > 0.0
    neg, zero, pos = (_arr(xp, v) for v in (neg, zero, pos))
    return xp.where(x > 0.0, pos, xp.where(x < 0.0, neg, xp.where(x == 0.0, zero, _NAN)))


def _relu_array(xp: Any, x: Any) -> Any:
    out = xp.maximum(_arr(xp, x), 0.0)
    out += 0.0  # relu(−0.0) = 0.0; relu(nan) = nan (maximum propagates it)
    return out


def is_numpy(xp: Any) -> bool:
    """Whether the array namespace `xp` is numpy's (itself or array-api-compat's wrapper of
    it) -- not ``jax.numpy``, whose name also holds "numpy"."""
    return getattr(xp, "__name__", "") in ("numpy", "array_api_compat.numpy")


def _scores(xp: Any, zs: tuple[Any, ...]) -> tuple[Any, bool]:
    """The scores as one (batch × classes) matrix, and whether they came as one: a rule
    over a row of scores (``Rule.rows``) is given either the matrix itself, by batched
    code that holds it, or one column per class."""
    if len(zs) == 1 and getattr(zs[0], "ndim", 0) == 2:
        return zs[0], True
    cols = xp.broadcast_arrays(*[_arr(xp, z) for z in zs])
    return xp.stack(cols, axis=-1), False


def _by_class(rows: Any, whole: bool) -> tuple[Any, ...]:
    """A row's derivatives as the caller gave the scores: one matrix, or one per class."""
    return (rows,) if whole else tuple(rows[..., k] for k in range(rows.shape[-1]))


def _lse_rows(xp: Any, z: Any) -> Any:
    # log Σ e^z along each row, shifted by its largest z (as _logsumexp_float, NaN and ±inf
    # alike); class by class (_by_score)
    zc = _by_score(xp, z)
    m = xp.max(zc, axis=0)
    finite = xp.isfinite(m)
    shift = xp.where(finite, m, 0.0)
    total = xp.sum(xp.exp(zc - shift), axis=0)
    return xp.where(finite, shift + xp.log(total), m)


def _logsumexp_array(xp: Any, *zs: Any) -> Any:
    return _lse_rows(xp, _scores(xp, zs)[0])


def _class_numbers(xp: Any, zc: Any) -> Any:
    """The class numbers 0 … k−1 down the first axis of class-by-class scores zc
    (:func:`_by_score`): (k × 1), or (k,) for one row; elsewhere than numpy made from zc,
    to be on its device."""
    like = zc[:, :1] if zc.ndim == 2 else zc
    if is_numpy(xp):
        return xp.reshape(xp.arange(zc.shape[0], dtype=xp.float64), like.shape)
    return xp.cumulative_sum(xp.ones_like(like), axis=0) - 1.0


def _label_index(xp: Any, name: str, y: Any, z: Any) -> Any:
    """The class indices y as integer indices into the last axis of the scores z (one per
    row, shaped for ``take_along_axis``); ValueError naming `name` for a label that is not
    a class index (not an integer, out of range, or NaN) -- a test on the labels alone,
    not on a (batch × n) one-hot."""
    y = _arr(xp, y)
    n = z.shape[-1]
    ok = (y == xp.floor(y)) & (y >= 0.0) & (y < float(n))
    try:
        valid = bool(xp.all(ok))
    except TypeError:  # traced by jax.jit: no number to check, and the compiled step
        valid = True  # that jits it has run this same code on its labels, untraced
    if not valid:  # the float rule's error, naming the first label that is not one
        first = int(xp.argmin(xp.astype(xp.reshape(ok, (-1,)), xp.int8)))
        raise _not_a_class(name, float(xp.reshape(y, (-1,))[first]), n)
    index = xp.astype(y, xp.int64)
    if index.shape != z.shape[:-1]:  # a label shared by the batch
        index = xp.broadcast_to(index, z.shape[:-1])
    return index[..., None]


def _pick_array(xp: Any, y: Any, *zs: Any) -> Any:
    z, _ = _scores(xp, zs)
    return _picked(xp, _label_index(xp, "pick", y, z), z)


def _picked(xp: Any, index: Any, z: Any) -> Any:
    # each row's label's score, as it is (−0.0 and NaN too); on numpy by row and column
    # numbers, a third of take_along_axis's time at (1000 × 10)
    if z.ndim == 2 and is_numpy(xp):
        return z[xp.arange(z.shape[0]), index[:, 0]]
    return xp.take_along_axis(z, index, axis=-1)[..., 0]


# ----------------------------------------------------------------------------
# Helpers that work on floats and on Values alike
# ----------------------------------------------------------------------------


def exp(x: Num) -> Num:
    """e^x of a float or a Value."""
    return math.exp(x) if type(x) is float else x.exp()


def log(x: Num) -> Num:
    """log x of a float or a Value."""
    return math.log(x) if type(x) is float else x.log()


def sigmoid(x: Num) -> Num:
    """σ(x) of a float or a Value."""
    return sigmoid_float(x) if type(x) is float else x.sigmoid()


def power(x: Num, e: Num) -> Num:
    """x ** e with IEEE semantics (:func:`pow_ieee`), for derivative formulas.

    On Values it records a ``pow`` node whose value is the IEEE one, so that
    ``d/dx x^b = b·x^(b−1)`` is ``inf`` at x = 0 for 0 < b < 1 -- and its own
    derivative is right there too -- where ``x ** (b - 1)`` would raise.
    """
    if type(x) is float and type(e) is float:
        return pow_ieee(x, e)
    return x._power(e)


def select(x: Num, neg: Num, zero: Num, pos: Num) -> Num:
    """A branch on the sign of x (:func:`select_float`): relu's and abs's derivatives.

    A Value answers by its data: the branches are constant in x, so there is
    nothing to record (the derivative of a piecewise-constant function is 0).
    Reading the data is a decision, which :func:`autodiff.trace` refuses to
    freeze. A trace symbol calls the rule's function at run time.
    """
    if type(x) is float:  # select_float, inline: relu's derivative is on the hot path
        if x > 0.0:
            return pos
        if x < 0.0:
            return neg
        return zero if x == 0.0 else _NAN
    return x._select(neg, zero, pos)


def number(x: Num) -> float:
    """The float a number or a Value holds (for a rule that branches on it)."""
    return x if type(x) is float else x._number()


# ----------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One primitive: its name, its value on floats, and its local derivatives.

    ``symbol`` is how the renders draw the operation. ``local(*inputs, out)`` must be
    written with arithmetic and this module's helpers (:func:`exp`, :func:`log`,
    :func:`sigmoid`, :func:`power`, :func:`select`), so that it works on floats, on
    Values (higher derivatives) and on the trace's symbols. ``array(xp, *inputs)``,
    optional, is the forward on arrays of the namespace `xp`, for batched traces;
    without it they map ``forward`` over numpy arrays element by element. ``exact``
    says that ``array`` gives ``forward``'s numbers to the bit (IEEE's correctly
    rounded operations: + − × ÷ √, a sign, a max), so that the grouped code, which
    is exact against the engine, may use it instead of mapping ``forward``.
    Batched code runs ``local`` itself on the trace's symbols -- :func:`select` and
    :func:`power` print as array code -- so a derivative is written once.
    ``array_local(xp, *inputs, out)``, optional, is ``local`` on arrays for a rule whose
    array form differs in substance (the table says where and why: ``pow``, and the
    rules over a row of scores); a ``local`` that computes with plain floats and has
    none is mapped over numpy arrays element by element. ``rows``, for a rule over a
    sample's row of scores (logsumexp, pick, nll), is the first input of that row: batched
    code that holds the row as one (batch × classes) matrix gives ``array`` and
    ``array_local`` that matrix as one input, and takes the row's derivatives back as one
    matrix -- one call for all classes, not one column each. ``method`` names
    the :class:`~autodiff.engine.Value` method that applies the operation
    (``"exp"``, or an operator: ``"__sub__"`` also gives ``__rsub__``), with ``doc``
    as its docstring; user operations usually have none and are called as functions.
    ``array_with_local(xp, *inputs)``, optional, with ``array`` and ``array_local``, gives
    both at once, ``(out, locals)``, for a rule over a row of scores (``rows``) whose two
    share their work (nll: one exp a score serves the loss and the softmax): to the bit
    what the two give one after the other (tests/test_multiclass.py holds it to that);
    batched code that holds the row as one matrix and will need the derivatives calls it
    in the forward pass.
    """

    name: str
    symbol: str
    forward: Callable[..., float]
    local: Callable[..., tuple[Num, ...]]
    array: Callable[..., Any] | None = None
    exact: bool = False
    array_local: Callable[..., tuple[Any, ...]] | None = None
    rows: int | None = None
    method: str = ""
    doc: str = ""
    array_with_local: Callable[..., tuple[Any, tuple[Any, ...]]] | None = None

    def check(self) -> None:
        """Refuse a malformed rule, naming it: a name that cannot name generated code, a
        symbol that is not text, a part that cannot be called, or a ``local`` that does
        not take the inputs of ``forward`` and its output."""
        where = f"Rule {self.name!r}"
        if not (isinstance(self.name, str) and self.name.isidentifier()):
            raise ValueError(f"Rule: the name must be a Python identifier, got {self.name!r}")
        if not isinstance(self.symbol, str) or not self.symbol:
            raise TypeError(f"{where}: symbol must be a non-empty str, got {self.symbol!r}")
        for part in ("forward", "local"):
            if not callable(getattr(self, part)):
                raise TypeError(f"{where}: {part} must be callable, got {getattr(self, part)!r}")
        for part in ("array", "array_local", "array_with_local"):
            if getattr(self, part) is not None and not callable(getattr(self, part)):
                raise TypeError(
                    f"{where}: {part} must be callable or None, got {getattr(self, part)!r}"
                )
        if self.rows is not None and (
            type(self.rows) is not int
            or self.rows < 0
            or self.array is None
            or self.array_local is None
        ):
            raise ValueError(
                f"{where}: rows must be None or the index of an input, with array and "
                f"array_local given (they take the row as one matrix), got {self.rows!r}"
            )
        if self.array_with_local is not None and self.rows is None:
            raise ValueError(
                f"{where}: array_with_local is for a rule over a row of scores: it stands for "
                "array and array_local at once; give rows, array and array_local too"
            )
        if not isinstance(self.method, str) or (self.method and not self.method.isidentifier()):
            raise ValueError(
                f"{where}: method must be a Python identifier or '', got {self.method!r}"
            )
        if not isinstance(self.doc, str):
            raise TypeError(f"{where}: doc must be a str, got {self.doc!r}")
        n_local = self.arity
        try:
            params = inspect.signature(self.forward).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature: nothing to compare
            return
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            n_forward = None
        else:
            n_forward = sum(p.default is p.empty and p.kind is not p.KEYWORD_ONLY for p in params)
        if n_forward != n_local:
            raise ValueError(
                f"{where}: forward takes {n_forward if n_forward is not None else 'any number of'}"
                f" inputs but local takes {n_local if n_local is not None else 'any number of'} "
                "and the output: local(*inputs, out) must take forward's inputs, then out"
            )

    def __post_init__(self) -> None:
        # the arity, found once, as a plain attribute (the engine reads it on every node)
        try:
            n = self._arity()
        except (TypeError, ValueError):  # not a function with a signature: check() says so
            n = None
        object.__setattr__(self, "n_inputs", n)

    #: :attr:`arity`, stored when the rule is made (read on every operation)
    n_inputs: int | None = field(init=False, repr=False, compare=False, default=None)

    @property
    def arity(self) -> int | None:
        """How many inputs the operation takes (None: any number, as ``dot``)."""
        return self.n_inputs

    def _arity(self) -> int | None:
        params = inspect.signature(self.local).parameters.values()
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            return None
        # the parameters local must be given (a defaulted one, as a bound helper, is not)
        return sum(p.default is p.empty and p.kind is not p.KEYWORD_ONLY for p in params) - 1


_ONES = (1.0, 1.0)
_ONE_MINUS_ONE = (1.0, -1.0)


def _pow_local(a: Num, b: Num, out: Num) -> tuple[Num, Num]:
    # d/da a^b = b·a^(b−1): a power, not b·out/a, so it is exact where out
    # underflows (x = 1e-200) and has derivatives of its own at a = 0
    # (d²/dx² x² = 2 there). d/db a^b = a^b·log a, real only for a > 0.
    av, bv = number(a), number(b)
    if bv == 0.0 and (type(a) is float or not math.isfinite(pow_ieee(av, -1.0))):
        # a^0 = 1: flat in a. On floats (first order) that is all there is to know; on
        # Values the formula is kept where it is finite, for the mixed derivative
        # ∂²(a^b)/∂a∂b = a^(b−1) of a variable exponent at 0. At a = 0, ±inf, nan or a
        # subnormal a, b·a^(b−1) would be 0·∞: there it is the constant 0, as in PyTorch.
        da: Num = 0.0
    else:
        da = b * power(a, b - 1.0)
    if av > 0.0 or av != av:
        db: Num = out * log(a)
    elif av == 0.0:
        db = 0.0  # 0^b = 0 for every b > 0: flat in b
    else:
        db = undefined(a, b)  # a negative base: a^b is not real away from integer b
    return da, db


def undefined(a: Num, b: Num) -> Num:
    """NaN, for a derivative that does not exist: on Values, a NaN whose own derivatives
    in `a` and `b` are NaN too, so that higher derivatives agree whichever way they are
    taken (a Hessian stays symmetric: NaN in both mixed partials)."""
    if type(a) is float or type(b) is float or not hasattr(a, "_data"):
        return _NAN
    return a * _NAN + b * _NAN  # never overflows: NaN inputs are not an overflow


def _dot_local(*args: Num) -> tuple[Num, ...]:
    # ∂/∂b = 1, ∂/∂wᵢ = xᵢ, ∂/∂xᵢ = wᵢ   (args: b, w₁ … wₙ, x₁ … xₙ, out)
    n = (len(args) - 2) // 2
    return (1.0, *args[n + 1 : 2 * n + 1], *args[1 : n + 1])


# array forwards too long for a table line
def _add_array(xp: Any, a: Any, b: Any) -> Any:
    return a + b


def _sub_array(xp: Any, a: Any, b: Any) -> Any:
    return a - b


def _mul_array(xp: Any, a: Any, b: Any) -> Any:
    return a * b


def _div_array(xp: Any, a: Any, b: Any) -> Any:
    return _arr(xp, a) / b


def _sqrt_array(xp: Any, a: Any) -> Any:
    return xp.sqrt(_arr(xp, a))


def _abs_array(xp: Any, a: Any) -> Any:
    return xp.abs(_arr(xp, a))


def _tanh_array(xp: Any, a: Any) -> Any:
    return xp.tanh(_arr(xp, a))


def _pow_array(xp: Any, a: Any, b: Any) -> Any:
    return xp.pow(_arr(xp, a), _arr(xp, b))


def _neg_array(xp: Any, a: Any) -> Any:
    return -a


def _exp_array(xp: Any, a: Any) -> Any:
    return xp.exp(_arr(xp, a))


def _log_array(xp: Any, a: Any) -> Any:
    return xp.log(_arr(xp, a))


# local derivatives on arrays, only where the array form differs in substance from `local`
# (which batched code otherwise runs on symbols, branches and powers included):
# pow's `local` branches on both numbers at once, keeping on Values a formula in one branch
# for the mixed derivative ∂²(a^b)/∂a∂b, and must not evaluate log of a float ≤ 0 -- on
# arrays every branch is computed and chosen elementwise; the multi-class rules
# (logsumexp, pick, nll) take one row of scores per sample as one matrix
def _pow_array_local(xp: Any, a: Any, b: Any, out: Any) -> tuple[Any, Any]:
    a, b = _arr(xp, a), _arr(xp, b)
    flat = (b == 0.0) & ((a == 0.0) | xp.isnan(a))
    da = xp.where(flat, 0.0, b * xp.pow(a, b - 1.0))
    db = xp.where((a > 0.0) | xp.isnan(a), out * xp.log(xp.abs(a)), xp.where(a == 0.0, 0.0, _NAN))
    return da, db


def _logsumexp_array_local(xp: Any, *args: Any) -> tuple[Any, ...]:
    # the softmax, shifted by the largest z (as _logsumexp_local); class by class
    # (_by_score), handed back in the scores' shape
    z, whole = _scores(xp, args[:-1])
    zc = _by_score(xp, z)
    out = _arr(xp, args[-1])
    m = xp.max(zc, axis=0)
    finite = xp.isfinite(m)
    e = xp.exp(zc - xp.where(finite, m, 0.0))
    soft = xp.where(finite, e / xp.sum(e, axis=0), xp.exp(zc - out))
    return _by_class(_by_row(xp, soft), whole)


def _pick_array_local(xp: Any, y: Any, *rest: Any) -> tuple[Any, ...]:
    # one-hot rows of the labels (checked by the forward, _label_index): nll's class
    # numbers (made from the scores seen class by class), laid along each row
    z, whole = _scores(xp, rest[:-1])
    classes = _by_row(xp, _class_numbers(xp, _by_row(xp, z)))  # (1 × k), or (k,) for one row
    one_hot = xp.astype(_arr(xp, y)[..., None] == classes, xp.float64) + xp.zeros_like(z)
    return (xp.zeros_like(_arr(xp, y)), *_by_class(one_hot, whole))


# The two nll kernels are _nll_float and _nll_local wherever the loss is finite, and
# give a NaN or an infinity wherever it is not -- not necessarily the rule's: batched
# code recomputes such a sample with the scalar rules (the loss is not finite exactly
# where a score is NaN or +inf, or the label's is −inf, which is where the largest score
# is not finite). So the common case costs a few passes over the scores, not a dozen.
def _by_score(xp: Any, z: Any) -> Any:
    """The scores of a (batch × classes) matrix laid out class by class: a (classes ×
    batch) array, contiguous, so that a sum or a maximum over a row of scores is one pass of
    elementwise operations along the batch (numpy reduces a short last axis row by row:
    10× slower at 10 classes), and the sum adds the classes left to right, as the float
    rules do. A single row (1-D) is returned as it is."""
    if z.ndim != 2:
        return z
    if is_numpy(xp):
        return z.T.copy()  # (C order: one call, not three -- 8 of 11 µs at 1000 × 10)
    k, b = z.shape[-1], z.shape[0]
    return xp.reshape(xp.reshape(xp.matrix_transpose(z), (-1,)), (k, b))  # (a copy, C order)


def _by_row(xp: Any, zc: Any) -> Any:
    """Class-by-class numbers (:func:`_by_score`) back in the scores' (batch × classes)
    shape, and the other way: a transposed view, no copy (1-D: as it is)."""
    return xp.matrix_transpose(zc) if zc.ndim == 2 else zc


def _nll_rows(xp: Any, y: Any, z: Any) -> tuple[Any, Any, Any, Any]:
    """What nll's forward and its derivatives share, row by row: the labels' indices, the
    rows' largest term m, and e^(d − m) with its sums over each row, d the scores less the
    label's -- its own term zy − zy is 0.0 exactly for a finite zy, NaN for an infinite one,
    so that m ≥ 0.0 -- class by class (_by_score), as _nll_float and _nll_local compute."""
    index = _label_index(xp, "nll", y, z)
    d = _by_score(xp, z) - _picked(xp, index, z)
    m = xp.max(d, axis=0)
    e = xp.exp(d - m)
    return index, m, e, xp.sum(e, axis=0)


def _nll_array(xp: Any, y: Any, *zs: Any) -> Any:
    # row by row: the log-sum-exp of the scores less the label's (_nll_rows)
    _, m, _, total = _nll_rows(xp, y, _scores(xp, zs)[0])
    return m + xp.log(total)


def _nll_grads(xp: Any, y: Any, rows: tuple[Any, ...], whole: bool) -> tuple[Any, ...]:
    # softmax − one-hot from _nll_rows' parts, handed back in the scores' shape: on numpy the
    # labels' places of the (classes × batch) softmax made 1 less in place, one pass
    index, _, e, total = rows
    if is_numpy(xp) and e.ndim == 2:
        e /= total
        e[index[:, 0], xp.arange(e.shape[1])] -= 1.0
        soft = e
    else:
        soft = e / total - xp.astype(_class_numbers(xp, e) == _arr(xp, y), xp.float64)
    return (xp.zeros_like(_arr(xp, y)), *_by_class(_by_row(xp, soft), whole))


def _nll_array_local(xp: Any, y: Any, *rest: Any) -> tuple[Any, ...]:
    z, whole = _scores(xp, rest[:-1])
    return _nll_grads(xp, y, _nll_rows(xp, y, z), whole)


def _nll_array_with_local(xp: Any, y: Any, *zs: Any) -> tuple[Any, tuple[Any, ...]]:
    # the loss and its derivatives from one pass of _nll_rows (one exp a score, not two)
    z, whole = _scores(xp, zs)
    rows = _nll_rows(xp, y, z)
    return rows[1] + xp.log(rows[3]), _nll_grads(xp, y, rows, whole)


#: name -> Rule. The op name stored on a node is the key here.
# One rule per entry: name, symbol, forward on floats, local derivatives; then the
# forward on arrays, whether it gives the float forward's numbers to the bit, the local
# derivatives on arrays where `local` branches, and the Value method with its docstring.
# fmt: off
RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("add", "+", lambda a, b: a + b, lambda a, b, out: _ONES,
             array=_add_array, exact=True, method="__add__", doc="a + b; derivatives 1 and 1."),
        Rule("sub", "−", lambda a, b: a - b, lambda a, b, out: _ONE_MINUS_ONE,
             array=_sub_array, exact=True, method="__sub__", doc="a − b; derivatives 1 and −1."),
        Rule("mul", "×", lambda a, b: a * b, lambda a, b, out: (b, a),
             array=_mul_array, exact=True, method="__mul__", doc="a × b; derivatives b and a."),
        Rule("div", "÷", _div_float, lambda a, b, out: (1.0 / b, -out / b),
             array=_div_array, exact=True, method="__truediv__",
             doc="a ÷ b; derivatives 1/b and −a/b². ZeroDivisionError for b = 0."),
        Rule("pow", "^", _pow_float, _pow_local,
             array=_pow_array, array_local=_pow_array_local, method="__pow__",
             doc="a ** b; derivatives b·a^(b−1) and a^b·log a (NaN for a < 0)."),
        Rule("neg", "−", lambda a: -a, lambda a, out: (-1.0,),
             array=_neg_array, exact=True, method="__neg__", doc="−a; derivative −1."),
        Rule("exp", "exp", _exp_float, lambda a, out: (out,),
             array=_exp_array, method="exp", doc="e^self. OverflowError above ~709.78."),
        Rule("log", "log", _log_float, lambda a, out: (1.0 / a,),
             array=_log_array, method="log", doc="Natural logarithm. ValueError unless self > 0."),
        Rule("sqrt", "√", _sqrt_float, lambda a, out: (0.5 * power(out, -1.0),),
             array=_sqrt_array, exact=True, method="sqrt",
             doc="√self; derivative 1/(2√self), inf at 0. ValueError for a negative number."),
        Rule("abs", "abs", abs, lambda a, out: (select(a, -1.0, 0.0, 1.0),),
             array=_abs_array, exact=True, method="__abs__",
             doc="|x|; derivative sign(x), 0 at 0 (as PyTorch)."),
        Rule("tanh", "tanh", math.tanh, lambda a, out: (1.0 - out * out,),
             array=_tanh_array, method="tanh", doc="Hyperbolic tangent; derivative 1 − tanh²."),
        Rule("sigmoid", "σ", sigmoid_float, lambda a, out: (out * (1.0 - out),),
             array=_sigmoid_array, method="sigmoid",
             doc="Logistic σ(x) = 1/(1+e^−x), stable for every float; derivative σ(1−σ)."),
        Rule("softplus", "ζ", softplus_float, lambda a, out: (sigmoid(a),),
             array=_softplus_array, method="softplus",
             doc="ζ(x) = log(1+e^x), stable for every float; derivative σ(x)."),
        # relu(x) = max(0, x), NaN for NaN; relu'(0) = 0, as in PyTorch
        Rule("relu", "relu", _relu_float, lambda a, out: (select(a, 0.0, 0.0, 1.0),),
             array=_relu_array, exact=True, method="relu",
             doc="max(0, x) (NaN for NaN); derivative 1 for x > 0, else 0 (0 at 0, as PyTorch)."),
        # b + Σ wᵢxᵢ in one node: a neuron (batched code makes layers of them: no array)
        Rule("dot", "Σ", _dot_float, _dot_local),
        # log Σ e^zᵢ, stable for every finite z: with pick, a softmax cross-entropy
        Rule("logsumexp", "logΣexp", _logsumexp_float, _logsumexp_local,
             array=_logsumexp_array, array_local=_logsumexp_array_local, rows=0),
        # zs[y], the score of the class y: a label that may itself be traced
        Rule("pick", "pick", _pick_float, _pick_local,
             array=_pick_array, array_local=_pick_array_local, rows=1),
        # −log softmax(z)[y], one sample's cross-entropy: exact for finite z, PyTorch's
        # limits for infinite ones (a −inf at the label's class: +inf, softmax − one-hot)
        Rule("nll", "−log softmax", _nll_float, _nll_local,
             array=_nll_array, array_local=_nll_array_local, rows=1,
             array_with_local=_nll_array_with_local),
    )
}
# fmt: on
