"""Trace once, run fast: a recorded graph compiled to code.

``trace(f, example_inputs)`` runs `f` once on Values, records the graph it
builds, and generates code for it: the forward pass and the forward-plus-
backward pass. Calling that code costs the float arithmetic and little else:
no Value objects, no topological sort. It computes the engine's own float
operations in the engine's own order, so it gives the engine's numbers.

Two kinds of code, chosen by the graph's size (``mode=``):

* ``"lines"`` (up to :data:`LINES_MAX` operations): straight-line Python, one
  line per operation (:mod:`._lines`) -- the code to read next to the lecture's
  equations;
* ``"groups"`` (larger graphs that are wide: at least :data:`GROUP_WIDTH`
  operations a depth on average): one numpy statement per group of operations
  of one kind at one depth (:mod:`._grouped`), so that building and compiling
  it is linear in the graph, whatever its size. A deep, narrow graph (a long
  chain) stays straight-line code, which is linear too. Grouped and batched code
  need numpy, which comes with the ``arrays`` extra (:mod:`autodiff.extras`);
  without it ``"auto"`` gives straight-line code.

``trace(..., batched=True)`` traces one sample and runs the code on arrays, a
whole batch at once, on numpy or any array library (:mod:`._batched`).

Each kind of code prints one intermediate program (:mod:`._program`): the forward
statements and the adjoint statements in ``Value.backward``'s order, every rule
written once, as a formula or as a call -- so all of them compute what the
engine computes, bit for bit (the batched mean, which groups sums into matrix
products, to the last bits of rounding).

Never silently wrong. A trace replays *operations*; anything else the
function did with the numbers is refused, with :class:`TraceError`, rather
than frozen at the traced point (``strict=False`` turns each refusal into a
:class:`TraceWarning` and bakes the value in):

* a decision on a number that depends on the inputs: reading ``.data``,
  ``float()``, ``bool()``, ``format()``, ``local_grads`` or calling
  ``backward()`` on such a Value, a branch of a rule under
  ``grad(create_graph=True)``, an operation on it inside ``no_grad()``;
* Values that existed before the trace and are not inputs (a parameter list
  the function closes over): their numbers would be baked in as constants.

Reading numbers that do not depend on the inputs is fine, and so is any label:
the generated code knows the inputs by their validated ``names`` only.
"""

from __future__ import annotations

import builtins
import importlib.util
import keyword
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, Literal, overload

from autodiff import engine
from autodiff.engine import Value, enable_grad, gc_paused
from autodiff.extras import require
from autodiff.trace._batched import BatchedTraced
from autodiff.trace._lines import LineCode
from autodiff.trace._program import Program
from autodiff.trace._tape import Tape
from autodiff.trace._traced import Traced
from autodiff.trace._watch import TraceError, TraceWarning, Watch, describe

__all__ = [
    "GROUP_WIDTH",
    "LINES_MAX",
    "BatchedTraced",
    "Program",
    "TraceError",
    "TraceWarning",
    "Traced",
    "trace",
]

#: Graphs with more operations than this get grouped code (see the module docstring).
LINES_MAX = 2000

_GENERATED = re.compile(r"[vgd]\d+|g_root|xs|V|G")


#: Grouped code pays off when a depth holds at least this many operations on average.
GROUP_WIDTH = 8


def _wide(tape: Tape) -> bool:
    """Whether the graph is wide enough for grouped code (a deep chain is not: one node a
    depth makes one numpy statement a node)."""
    depths = {d for d, o in zip(tape.depth, tape.op) if o}
    return tape.n_ops >= GROUP_WIDTH * len(depths)


def _check_names(names: Sequence[str] | None, n: int) -> list[str]:
    if names is None:
        return [f"x{i}" for i in range(n)]  # valid, distinct, and never a generated name
    names = list(names)
    if len(names) != n:
        raise ValueError(f"trace: {n} example inputs but {len(names)} names")
    seen: set[str] = set()
    for name in names:
        if not (isinstance(name, str) and name.isidentifier()) or keyword.iskeyword(name):
            raise ValueError(f"trace: names must be Python identifiers, got {name!r}")
        # Python reads identifiers in NFKC form: "ｖ0" is the variable v0
        norm = unicodedata.normalize("NFKC", name)
        reserved = norm.startswith("_") or hasattr(builtins, norm) or _GENERATED.fullmatch(norm)
        if reserved or keyword.iskeyword(norm):
            raise ValueError(f"trace: the name {name!r} is used by the generated code")
        if norm in seen:
            raise ValueError(f"trace: names must be distinct, {name!r} repeats (as {norm!r})")
        seen.add(norm)
    return names


def _record(
    f: Callable[[list[Value]], Value],
    example_inputs: Sequence[Any],
    names: list[str],
    strict: bool,
) -> tuple[Tape, list[Value]]:
    """Run f under a Watch and return the tape of its graph (and the input Values)."""
    numbers = list(example_inputs)
    for i, x in enumerate(numbers):  # (the message is made only for an input that is wrong)
        if type(x) is not float:
            numbers[i] = engine.as_float(x, f"trace: example_inputs[{i}]")
    xs = [Value(x, name) for x, name in zip(numbers, names)]
    watch = Watch(xs, strict)
    with gc_paused():
        with engine.observed(watch), enable_grad():
            out = f(xs)
        if watch.problems and strict:  # refused, but f caught the TraceError and went on
            raise TraceError(watch.problems[0])
        if not isinstance(out, Value):
            raise TypeError(f"trace: f must return a Value, got {type(out).__name__} {out!r}")
        tape = Tape(out, xs)
        captured = [v for v in tape.leaves or () if v not in watch.made]
        tape.leaves = None
        out = watch = None  # type: ignore[assignment]  # free the graph before the collector runs
    if captured:
        shown = ", ".join(describe(v) for v in captured[:5])
        more = f" and {len(captured) - 5} more" if len(captured) > 5 else ""
        message = (
            f"trace: f uses {len(captured)} Value(s) that existed before the trace and are "
            f"not inputs: {shown}{more}. The trace would bake their current numbers in as "
            "constants, so later changes to them would be ignored. Make them inputs (for a "
            "model, Module.bound does), or pass strict=False to bake them in"
        )
        if strict:
            raise TraceError(message)
        import warnings

        warnings.warn(message, TraceWarning, stacklevel=3)
    return tape, xs


@overload
def trace(
    f: Callable[[list[Value]], Value],
    example_inputs: Sequence[float],
    *,
    names: Sequence[str] | None = None,
    batched: Literal[False] = False,
    xp: Any = None,
    strict: bool = True,
    mode: str = "auto",
) -> Traced: ...


@overload
def trace(
    f: Callable[[list[Value]], Value],
    example_inputs: Sequence[float],
    *,
    names: Sequence[str] | None = None,
    batched: Literal[True],
    xp: Any = None,
    strict: bool = True,
    mode: str = "auto",
) -> BatchedTraced: ...


def trace(
    f: Callable[[list[Value]], Value],
    example_inputs: Sequence[float],
    *,
    names: Sequence[str] | None = None,
    batched: bool = False,
    xp: Any = None,
    strict: bool = True,
    mode: str = "auto",
) -> Traced | BatchedTraced:
    """Record `f` once at `example_inputs` and compile its forward and backward passes.

    Args:
        f: takes a list of n Values and returns one Value.
        example_inputs: the n numbers to trace at.
        names: the inputs' names in the generated code (distinct Python identifiers;
            default x0, x1, ...). Labels play no part.
        batched: trace one sample, run on arrays (:class:`BatchedTraced`).
        xp: with ``batched=True``, the array namespace (numpy, torch, ...); default:
            that of the arrays given at each call.
        strict: refuse (TraceError) what a trace cannot replay -- see the module
            docstring; False turns each refusal into a TraceWarning.
        mode: "lines", "groups" or "auto" (groups for graphs of more than LINES_MAX
            operations that are wide; see the module docstring).

    The result evaluates `f` and its gradient at any other n numbers, without
    building Values. The trace pauses the garbage collector while it runs (the
    graph holds no cycles) and frees the graph before resuming it.
    """
    names = _check_names(names, len(example_inputs))
    if mode not in ("auto", "lines", "groups"):
        raise ValueError(f"trace: mode must be 'auto', 'lines' or 'groups', got {mode!r}")
    with gc_paused():  # the graph, the tape and the code hold no cycles: nothing to collect
        return _compile(f, example_inputs, names, strict, batched, xp, mode)


def _compile(
    f: Callable[[list[Value]], Value],
    example_inputs: Sequence[Any],
    names: list[str],
    strict: bool,
    batched: bool,
    xp: Any,
    mode: str,
) -> Traced | BatchedTraced:
    tape, _ = _record(f, example_inputs, names, strict)
    n_ops = tape.n_ops
    program = Program(tape)  # one program; the kinds of code below print it
    if batched:
        return BatchedTraced(program, names, n_ops, xp)
    if mode == "auto":  # (without numpy, the 'arrays' extra: straight lines, slower to build)
        wide = n_ops > LINES_MAX and _wide(tape)
        mode = "groups" if wide and importlib.util.find_spec("numpy") else "lines"
    if mode == "groups":
        np = require("numpy", "arrays", "trace(..., mode='groups')")
        from autodiff.trace._grouped import GroupedCode

        return Traced(GroupedCode(program, np), len(names), n_ops, "groups")
    return Traced(LineCode(program, names), len(names), n_ops, "lines")
