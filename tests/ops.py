"""One record per built-in operation: everything the tests know of it, in one place.

A new built-in is one ``Rule`` (autodiff/rules.py), one typing line (engine.Value's
TYPE_CHECKING block) and one record here; ``test_every_rule_has_one_record`` fails until
the record is written, and the record then drives

* the closed-form tests (tests/test_engine.py): ``special``'s value and first derivative
  against ``closed`` at ``points``;
* the special-values matrix (tests/test_special_values.py): ``special`` at 0, −0.0, ±1,
  tiny, subnormal, ±1e300, ±inf and NaN, to the third derivative, against ``closed`` in
  IEEE arithmetic and against ``torch`` (PyTorch, float64);
* the copies of the rule (tests/test_every_copy.py): ``use`` in grouped and batched code
  against eager, bit for bit, at special points;
* gradcheck's mutation test (tests/test_functional.py): ``use`` with the rule's local
  derivatives 1% off must fail gradcheck;
* the random graphs (tests/graphs.py): ``graph``, a form that stays inside the domain for
  any finite inputs (and works on PyTorch tensors too, for tests/test_torch.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from autodiff import Value, dot, logsumexp, nll, pick


@dataclass(frozen=True)
class Record:
    """One operation's domain, special forms and references (see the module docstring)."""

    #: the rule's name in autodiff.rules.RULES
    rule: str
    #: the operation on a list of `n` Values (every copy, gradcheck)
    use: Callable[[list[Value]], Value]
    #: how many inputs `use` reads (1 or 2)
    n: int
    #: the operation on one Value (the special-values matrix, the closed forms)
    special: Callable[[Value], Value]
    #: [f, f', f'', f'''] of `special` on a numpy float64, in IEEE arithmetic
    closed: Callable[[np.float64], list[Any]]
    #: `special` on a PyTorch tensor t: (t, torch) -> tensor
    torch: Callable[[Any, Any], Any]
    #: ordinary points of its domain, where `closed` is checked against the engine
    points: tuple[float, ...]
    #: (arity, function) for the random graphs, inside the domain for any finite inputs;
    #: None where the operation takes a list (the multi-class tests cover those)
    graph: tuple[int, Callable[..., Any]] | None


def _step(x: Any) -> Any:
    return np.float64(1.0) if x > 0 else (np.float64(0.0) if x <= 0 else np.float64(np.nan))


def sig(x: Any) -> Any:
    """σ(x), stable, on a float or a numpy float64."""
    return 1.0 / (1.0 + np.exp(-x)) if x >= 0 else np.exp(x) / (1.0 + np.exp(x))


def _softplus(x: Any) -> Any:
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x))) if x == x else x


def _tanh_closed(x: Any) -> list[Any]:
    t = np.tanh(x)
    return [t, 1 - t * t, -2 * t * (1 - t * t), (1 - t * t) * (6 * t * t - 2)]


def _sigmoid_closed(x: Any) -> list[Any]:
    s = sig(x)
    return [s, s * (1 - s), s * (1 - s) * (1 - 2 * s), s * (1 - s) * (1 - 6 * s + 6 * s * s)]


def _softplus_closed(x: Any) -> list[Any]:
    s = sig(x)
    return [_softplus(x), s, s * (1 - s), s * (1 - s) * (1 - 2 * s)]


def _dot3(a: Any, b: Any, c: Any) -> Any:
    """dot([a, b], [c, a], 0.5): a shared input on both sides (on other number types, the
    same sum written out: tests/test_torch.py)."""
    if isinstance(a, Value):
        return dot([a, b], [c, a], 0.5)
    return 0.5 + a * c + b * a


# fmt: off
RECORDS: dict[str, Record] = {r.rule: r for r in (
    Record("add", lambda v: v[0] + v[1], 2,
           lambda v: v + 1.0, lambda x: [x + 1.0, 1.0, 0.0, 0.0], lambda t, torch: t + 1.0,
           (-2.0, 0.5), (2, lambda a, b: a + b)),
    Record("sub", lambda v: v[0] - v[1], 2,
           lambda v: 1.0 - v, lambda x: [1.0 - x, -1.0, 0.0, 0.0], lambda t, torch: 1.0 - t,
           (-2.0, 0.5), (2, lambda a, b: a - b)),
    Record("mul", lambda v: v[0] * v[1], 2,
           lambda v: v * v, lambda x: [x * x, 2 * x, 2.0, 0.0], lambda t, torch: t * t,
           (-3.0, 0.0, 1.5), (2, lambda a, b: a * b)),
    Record("div", lambda v: v[0] / v[1], 2,
           lambda v: 3.0 / v, lambda x: [3 / x, -3 / x**2, 6 / x**3, -18 / x**4],
           lambda t, torch: 3.0 / t, (-2.0, 0.5, 4.0), (2, lambda a, b: a / (b * b + 0.5))),
    Record("pow", lambda v: v[0] ** v[1], 2,
           lambda v: v**3, lambda x: [x**3, 3 * x**2, 6 * x, 6.0], lambda t, torch: t**3,
           (-3.0, 0.0, 1.5), (2, lambda a, b: (a * a + 0.5) ** b.tanh())),
    Record("neg", lambda v: -v[0], 1,
           lambda v: -v, lambda x: [-x, -1.0, 0.0, 0.0], lambda t, torch: -t,
           (-2.0, 0.0, 3.5), (1, lambda a: -a)),
    Record("exp", lambda v: v[0].exp(), 1,
           lambda v: v.exp(), lambda x: [np.exp(x)] * 4, lambda t, torch: t.exp(),
           (-3.0, 0.0, 0.5, 10.0), (1, lambda a: a.exp())),
    Record("log", lambda v: v[0].log(), 1,
           lambda v: v.log(), lambda x: [np.log(x), 1 / x, -1 / x**2, 2 / x**3],
           lambda t, torch: t.log(), (1e-3, 0.5, 1.0, 7.0), (1, lambda a: (a * a + 0.25).log())),
    Record("sqrt", lambda v: v[0].sqrt(), 1,
           lambda v: v.sqrt(),
           lambda x: [np.sqrt(x), 0.5 / np.sqrt(x), -0.25 / np.sqrt(x) ** 3,
                      0.375 / np.sqrt(x) ** 5],
           lambda t, torch: t.sqrt(), (0.25, 2.0, 9.0), (1, lambda a: (a * a + 0.25).sqrt())),
    Record("abs", lambda v: abs(v[0]), 1,
           abs, lambda x: [np.abs(x), np.sign(x), 0.0 * _step(x), 0.0 * _step(x)],
           lambda t, torch: t.abs(), (-2.0, 0.5), (1, lambda a: abs(a - 0.5))),
    Record("tanh", lambda v: v[0].tanh(), 1,
           lambda v: v.tanh(), _tanh_closed, lambda t, torch: t.tanh(),
           (-3.0, 0.0, 0.7), (1, lambda a: a.tanh())),
    Record("sigmoid", lambda v: v[0].sigmoid(), 1,
           lambda v: v.sigmoid(), _sigmoid_closed, lambda t, torch: t.sigmoid(),
           (-5.0, 0.0, 2.0), (1, lambda a: a.sigmoid())),
    Record("softplus", lambda v: v[0].softplus(), 1,
           lambda v: v.softplus(), _softplus_closed,
           lambda t, torch: torch.nn.functional.softplus(t),
           (-5.0, 0.0, 3.0), (1, lambda a: a.softplus())),
    Record("relu", lambda v: v[0].relu(), 1,
           lambda v: v.relu(), lambda x: [np.maximum(x, 0.0), _step(x), 0 * _step(x),
                                          0 * _step(x)],
           lambda t, torch: t.relu(), (-2.0, 0.0, 3.0), (1, lambda a: a.relu())),
    Record("dot", lambda v: dot([v[0], v[1]], [v[1], v[0]], v[0]), 2,
           lambda v: dot([v, v], [v, 2.0], 0.5),
           lambda x: [0.5 + x * x + 2 * x, 2 * x + 2, 2.0, 0.0],
           lambda t, torch: 0.5 + t * t + t * 2.0, (-1.5, 0.0, 2.0), (3, _dot3)),
    # log(e^x + e^0) is the softplus: its derivatives are σ and σ's
    Record("logsumexp", lambda v: logsumexp([v[0], v[1]]), 2,
           lambda v: logsumexp([v, 0.0]), _softplus_closed,
           lambda t, torch: torch.logsumexp(torch.stack([t, torch.zeros_like(t)]), 0),
           (-5.0, 0.0, 3.0), None),
    # −log softmax([v, 0])[1] = log(e^v + 1): the softplus again
    Record("nll", lambda v: nll([v[0], v[1]], 1), 2,
           lambda v: nll([v, 0.0], 1), _softplus_closed,
           lambda t, torch: torch.nn.functional.cross_entropy(
               torch.stack([t, torch.zeros_like(t)]).unsqueeze(0), torch.tensor([1])),
           (-5.0, 0.0, 3.0), None),
    Record("pick", lambda v: pick([v[0], v[1]], 1) * v[0], 2,
           lambda v: pick([v * 3.0, v], 1), lambda x: [x, 1.0, 0.0, 0.0],
           lambda t, torch: torch.stack([t * 3.0, t])[1], (-1.0, 2.0), None),
)}
# fmt: on
