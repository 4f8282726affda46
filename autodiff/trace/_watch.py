"""What a trace must not freeze: decisions on the inputs' numbers, and captured Values.

While ``trace`` runs the traced function, the engine reports to a :class:`Watch`
(through the hooks in :mod:`autodiff.engine`, for this thread only):

* every *decision* taken on a Value's number -- ``.data``, ``float()``,
  ``bool()``, ``format()``, ``local_grads``, ``backward()``, a branch of a rule
  under ``grad(create_graph=True)``;
* every leaf made (the traced function's own constants);
* every operation run without recording (``no_grad``).

A decision on a number that depends on the inputs cannot be replayed by the
generated code, which only knows the operations: it would take the branch of
the traced point for every later input. So would a ``no_grad`` result computed
from the inputs (it is a constant to the graph). The watch raises
:class:`TraceError` at once (or warns, with ``strict=False``). Numbers that do
not depend on the inputs -- constants, parameters read for display -- are fine.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from autodiff.engine import Value

__all__ = ["TraceError", "TraceWarning", "Watch"]


class TraceError(RuntimeError):
    """The traced function did something the generated code could not replay."""


class TraceWarning(UserWarning):
    """As :class:`TraceError`, with ``trace(..., strict=False)``: the trace bakes it in."""


def _stacklevel() -> int:
    """The stack level of the first frame outside autodiff (for warnings)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("autodiff"):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level


def describe(v: Value) -> str:
    """A Value as a reader can find it: its label, or its number."""
    return (
        f"{v.label!r} (data {v._data!r})" if v.label else f"an unlabelled Value (data {v._data!r})"
    )


class Watch:
    """Follows one traced function: which Values depend on the inputs, which leaves it made."""

    def __init__(self, inputs: Sequence[Value], strict: bool) -> None:
        self.strict = strict
        self.depends_on: dict[Value, bool] = dict.fromkeys(inputs, True)
        self.made: set[Value] = set()
        self.problems: list[str] = []

    # -- the engine's hooks ---------------------------------------------------------

    def leaf(self, v: Value) -> None:
        self.made.add(v)

    def decision(self, v: Value, what: str) -> None:
        if self.depends(v):
            self.problem(
                f"trace: f used {what} of a Value computed from the inputs "
                f"({describe(v)}): the generated code cannot replay a decision taken on "
                "it, and would take this branch for every input. Compute with Value "
                "operations only (relu, select by arithmetic), or pass strict=False to "
                "accept the frozen branch"
            )

    def unrecorded(self, v: Value, operands: Sequence[Value]) -> None:
        if any(self.depends(o) for o in operands):
            self.depends_on[v] = True
            self.problem(
                "trace: f computed a Value from the inputs inside no_grad(): it has no "
                f"graph, so the trace would freeze it at {v._data!r} for every input. "
                "Compute it outside no_grad(), or pass strict=False to accept that"
            )

    # -- bookkeeping ----------------------------------------------------------------

    def problem(self, message: str) -> None:
        self.problems.append(message)
        if self.strict:
            raise TraceError(message)
        warnings.warn(message, TraceWarning, stacklevel=_stacklevel())

    def depends(self, v: Value) -> bool:
        """Whether `v`'s number depends on an input (iteratively, memoized)."""
        memo = self.depends_on
        known = memo.get(v)
        if known is not None:
            return known
        stack = [v]
        while stack:
            node = stack[-1]
            if node in memo:
                stack.pop()
                continue
            parents = node.parents
            pending = [p for p in parents if p not in memo]
            if pending:
                stack.extend(pending)
                continue
            memo[node] = any(memo[p] for p in parents)
            stack.pop()
        return memo[v]
