"""A recorded graph as plain lists of integers: what the code generators read.

Every node gets a *slot*: the inputs first (slot i is input i), then every
other node in an order in which parents come before children. For each slot
the tape keeps its operation (``""`` for an input or a constant), its parents'
slots, its value at the trace, its depth (the longest path from a leaf),
whether it depends on an input, and -- for the backward pass -- the order in
which ``Value.backward`` visits the nodes, so that generated code can add up
each gradient in exactly the order, and with exactly the rounding, of the
eager engine. The tape holds no Value: the graph is freed once it is built.
Building it is one pass over the graph for the order and one for the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from autodiff import engine
from autodiff.engine import Value
from autodiff.rules import RULES, overflow

__all__ = ["Tape"]


class Tape:
    """The graph of `root`, its inputs being `inputs` (distinct Values)."""

    __slots__ = (
        "n_in",
        "op",
        "args",
        "value",
        "depth",
        "needs",
        "root",
        "order",
        "leaves",
    )

    def __init__(self, root: Value, inputs: Sequence[Value]) -> None:
        # The order is engine.topological_order: Value.backward's, so that the code adds up
        # each gradient as backward does. Then each node's `_uses` slot -- the sort's
        # counter, back at 0 -- holds its slot number + 1, under the sort's lock, and
        # every one is put back to 0 before this returns, also on error.
        with engine.backward_lock:
            order = engine.topological_order(root)
            try:
                self._build(root, inputs, order)
            finally:
                for v in order:
                    v._uses = 0
                for x in inputs:
                    x._uses = 0

    def _build(self, root: Value, inputs: Sequence[Value], order: list[Value]) -> None:
        self.n_in = n = len(inputs)
        op: list[str] = [""] * n
        args: list[tuple[int, ...]] = [()] * n
        value: list[float] = [x._data for x in inputs]
        depth: list[int] = [0] * n
        needs: list[bool] = [True] * n
        #: the leaves that are not inputs, as Values (for trace's checks; then dropped)
        self.leaves: list[Value] | None = []
        leaves = self.leaves
        for i, x in enumerate(inputs):
            x._uses = i + 1  # slot + 1: 0 means "not numbered yet"
        p0: Any
        s = n
        for v in reversed(order):  # parents before children
            if v._uses:
                continue  # an input
            s += 1
            v._uses = s
            value.append(v._data)
            p0 = v._p0
            if p0 is None:
                op.append("")
                args.append(())
                depth.append(0)
                needs.append(False)
                leaves.append(v)
                continue
            op.append(v.op)
            if type(p0) is tuple:
                a = tuple([p._uses - 1 for p in p0])
                args.append(a)
                depth.append(1 + max(map(depth.__getitem__, a)))
                needs.append(any(map(needs.__getitem__, a)))
            elif v._p1 is None:
                i = p0._uses - 1
                args.append((i,))
                depth.append(1 + depth[i])
                needs.append(needs[i])
            else:
                i, j = p0._uses - 1, v._p1._uses - 1
                args.append((i, j))
                di, dj = depth[i], depth[j]
                depth.append(1 + (di if di > dj else dj))
                needs.append(needs[i] or needs[j])
        self.op, self.args, self.value, self.depth = op, args, value, depth
        #: whether each slot's number depends on an input (only those get gradients)
        self.needs = needs
        self.root = root._uses - 1
        #: every slot of the graph, in the order Value.backward releases them (root first)
        self.order = [v._uses - 1 for v in order]

    @property
    def n_ops(self) -> int:
        """How many operations (nodes that are not inputs or constants)."""
        return len(self.op) - self.op.count("")

    def check(self, xs: Sequence[float]) -> None:
        """Run the graph at `xs` the way the engine does, raising what the engine raises.

        Generated code is fast and checks little on its own; when its results hold a
        number that is not finite, this replays the operations one at a time through
        the rules' own functions, so that an overflow, a division by zero or a domain
        error raises exactly the engine's error (and a NaN or inf that came in with
        the inputs goes through, as in the engine).
        """
        v: list[Any] = list(xs) + self.value[len(xs) :]
        for s in range(self.n_in, len(self.op)):
            name = self.op[s]
            if not name:
                continue
            ins = [v[a] for a in self.args[s]]
            rule = RULES[name]
            out = rule.forward(*ins)
            if not math.isfinite(out):  # from finite inputs: the engine's OverflowError
                overflow(rule.name, rule.symbol, ins, out)
            v[s] = out
