"""Arrays for batched traces: the namespace, the kernels, the error policy.

Everything here is read off the rule table: an operation's forward on arrays is its
Rule's ``array``, and its local derivatives on arrays, where ``local`` branches on the
numbers, its Rule's ``array_local``. An operation with neither (one added with
:func:`autodiff.op`) has its float functions mapped over numpy arrays element by
element -- slow, and exact -- and is refused, naming it, on other array libraries.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from autodiff.extras import require
from autodiff.rules import RULES, is_numpy
from autodiff.trace._program import helpers

__all__ = [
    "broadcast",
    "errors",
    "is_number",
    "kernels",
    "mappable",
    "namespace",
    "numpy_like",
    "quiet_for",
    "reductions",
    "to_list",
]


# the array types seen -> their namespace (array_api_compat's answer depends on the type)
_BY_TYPE: dict[frozenset[type], Any] = {}


def namespace(arrays: Sequence[Any], xp: Any) -> Any:
    """The array namespace of `arrays` (numpy for lists), or `xp` when given."""
    compat = require("array_api_compat", "arrays", "trace(..., batched=True)")
    if xp is not None:
        if not hasattr(xp, "__array_namespace_info__"):
            try:  # a plain library module (numpy, torch): its compatible namespace
                return compat.array_namespace(xp.asarray([0.0]))
            except (TypeError, AttributeError):
                pass
        return xp
    objs = [a for a in arrays if not isinstance(a, (list, tuple))]
    if objs:
        kinds = frozenset(map(type, objs))
        found = _BY_TYPE.get(kinds)  # a step asks every time: found once per kind of array
        if found is None:
            found = compat.array_namespace(*objs)
            if len(_BY_TYPE) < 64:
                _BY_TYPE[kinds] = found
        return found
    np = require("numpy", "arrays", "trace(..., batched=True)")
    return compat.array_namespace(np.asarray([0.0]))


def numpy_like(xp: Any) -> bool:
    """Whether `xp` is numpy (or its array-API wrapper): floating-point errors can be raised.
    (Not ``jax.numpy``, whose name also holds "numpy": JAX reports no such errors.)"""
    return is_numpy(xp)


def kernels(
    xp: Any,
) -> tuple[
    dict[str, object],
    dict[str, Callable[..., Any]],
    dict[str, Callable[..., Any]],
    dict[str, Callable[..., Any]],
]:
    """Helpers, forward kernels, local-derivative kernels and kernels of both at once for
    the namespace `xp`, from each Rule's ``array``, ``array_local`` and
    ``array_with_local`` (see the module docstring). Made from one snapshot of the table
    (``dict(RULES)`` is atomic), so an operation added in another thread meanwhile is
    either wholly in it or not at all."""
    table = dict(RULES)
    kinds: list[dict[str, Callable[..., Any]]] = [
        {
            name: functools.partial(getattr(rule, part), xp)
            for name, rule in table.items()
            if getattr(rule, part) is not None
        }
        for part in ("array", "array_local", "array_with_local")
    ]
    forward, local, both = kinds
    calls = helpers(xp)  # the helpers the templates call, as every printer has them
    if numpy_like(xp):  # operations without array kernels: mapped element by element
        for name, rule in table.items():
            if name not in forward and name != "dot":
                forward[name] = _map_forward(rule.forward)
            if name not in local:
                local[name] = _map_local(rule.local, rule.arity)
    return calls, forward, local, both


def _map_forward(fn: Callable[..., float]) -> Callable[..., Any]:
    """A rule's float forward mapped over numpy arrays, element by element (slow; exact)."""
    import numpy as np

    return np.vectorize(lambda *a: float(fn(*a)), otypes=[np.float64])  # type: ignore[no-any-return]


def _map_local(fn: Callable[..., Any], arity: int | None) -> Callable[..., Any]:
    """A rule's float local derivatives mapped over numpy arrays: a tuple of arrays."""
    import numpy as np

    def run(*args: Any) -> tuple[Any, ...]:
        k = arity if arity is not None else len(args) - 1
        if k == 1:
            one = np.vectorize(lambda *a: float(fn(*a)[0]), otypes=[np.float64])
            return (one(*args),)
        many = np.vectorize(lambda *a: tuple(map(float, fn(*a))), otypes=[np.float64] * k)
        return tuple(many(*args))

    return run


def mappable(name: str) -> bool:
    """Whether a layer's columns can go through the operation as one array: an
    operation of one input with a forward on arrays (its Rule says so)."""
    rule = RULES[name]
    return rule.arity == 1 and rule.array is not None


def row_start(name: str) -> int | None:
    """The input from which the operation's inputs are one row of scores, which batched
    code may give its array kernels as one matrix (its Rule's ``rows``); None if not."""
    return RULES[name].rows


def errors(np_like: bool, loud: bool) -> contextlib.AbstractContextManager[Any]:
    """numpy's floating-point errors raised (loud) or ignored; nothing elsewhere. (A
    context made directly, not by a generator: it is entered once per training step.)"""
    if not np_like:
        return contextlib.nullcontext()
    import numpy as np

    return np.errstate(all="raise" if loud else "ignore", under="ignore")


def reductions(xp: Any) -> tuple[Callable[[Any], float], Callable[[Any], bool]]:
    """The mean of a batch's values as a float, and whether every number of an array is
    finite -- what a batched step asks of its results each time -- decided once per
    namespace: on numpy by its ufuncs' reductions, which is ``numpy.mean``'s arithmetic
    (the sum, then ÷ n) bit for bit without the wrappers around it (3 µs of a 90 µs
    batch-10 step); elsewhere by the namespace's ``mean`` and ``all``. A value that is not
    an array (a loss that does not depend on the batch) is its own mean."""
    if numpy_like(xp):
        import numpy as np

        add, every, finite = np.add.reduce, np.logical_and.reduce, np.isfinite

        def mean(v: Any) -> float:
            return float(add(v) / v.shape[0]) if getattr(v, "ndim", 0) == 1 else float(v)

        def all_finite(a: Any) -> bool:
            return bool(every(finite(a), axis=None))

    else:

        def mean(v: Any) -> float:
            return float(xp.mean(v)) if hasattr(v, "shape") else float(v)

        def all_finite(a: Any) -> bool:
            return bool(xp.all(xp.isfinite(a)))

    return mean, all_finite


def quiet_for(xp: Any) -> Callable[[], Any]:
    """A context in which `xp` reports no floating-point error (the backward pass: its
    infinities and NaNs are checked afterwards)."""
    if numpy_like(xp):
        import numpy as np

        return lambda: np.errstate(all="ignore")
    return contextlib.nullcontext


def is_number(x: Any) -> bool:
    """Whether `x` is a real number (shared by the batch) rather than an array."""
    return isinstance(x, numbers.Real)


def to_list(a: Any, xp: Any) -> list[Any]:
    """The numbers of the array `a` as a Python list (from any device)."""
    if hasattr(a, "tolist"):
        try:
            return a.tolist()  # type: ignore[no-any-return]
        except (TypeError, RuntimeError):  # pragma: no cover - a device array
            pass
    import numpy as np

    return np.asarray(a).tolist()  # type: ignore[no-any-return]


def broadcast(xp: Any, a: Any, size: int, args: list[Any]) -> Any:
    """`a` as an array of the batch's length (a shared number repeated)."""
    if hasattr(a, "shape") and tuple(a.shape) == (size,):
        return a
    like = next(x for x in args if not isinstance(x, float))
    return xp.zeros_like(like) + a
