"""Grouped code for large graphs: each statement runs one operation over many nodes.

Straight-line Python costs Python's compiler about 2 µs per operation, which
at 10⁵ nodes is most of a second before anything runs. Here the graph is cut
into *groups* instead -- the nodes of one operation at one depth (the length
of the longest path from a leaf) -- and each group is one numpy statement over
index arrays: ``V[96:1696] = V[_a3] * V[_a4]`` multiplies 1,600 pairs. A chain
of ``+`` in which each partial sum is used once (what ``sum()`` builds) is
folded into one n-ary sum first, so that its length does not become depth.
The code is a few dozen statements for a network's loss, whatever the batch;
finding the groups is done with numpy, linear in the nodes.

Exactly the engine's numbers, still:

* ``+ − × ÷``, ``neg``, ``abs``, ``sqrt`` and relu are IEEE operations that
  numpy rounds as Python does; ``exp``, ``log``, ``tanh``, ``sigmoid``,
  ``softplus`` and ``pow`` call the rules' own float functions (numpy's
  vectorised ``exp`` and ``tanh`` can differ in the last bit).
* Sums -- a ``dot``, a folded chain -- run left to right (``np.cumsum`` is a
  sequential scan), as the engine does; each gradient is the sum of its
  contributions in the order ``Value.backward`` adds them, by the same scan.
* When a value comes out inf or nan, :meth:`Tape.check` replays the forward
  pass through the rules to raise the engine's own error.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import Any

from autodiff.rules import RULES
from autodiff.trace._program import Program, helpers, local_kinds

__all__ = ["GroupedCode"]

_SUM = "sum"  # a folded chain of +: not a rule, b + t₁ + t₂ + … with every local 1.0


def _runtime(np: Any) -> dict[str, object]:
    def map_floats(f: Callable[..., float], *arrays: Any) -> Any:
        """f applied to each element (Python floats in, float64 array out); a number
        among `arrays` (a constant of a template) goes with every element."""
        arrays = np.broadcast_arrays(*arrays)
        return np.fromiter(map(f, *(a.tolist() for a in arrays)), float, arrays[0].size)

    def fold(first: Any, terms: Any) -> Any:
        """first + t₀ + t₁ + … per row, left to right (cumsum scans sequentially)."""
        return np.cumsum(np.concatenate((first[:, None], terms), axis=1), axis=1)[:, -1]

    def gsum(terms: Any) -> Any:
        """0.0 + t₀ + t₁ + … per row: a gradient summed as Value.backward sums it."""
        zero = np.zeros((terms.shape[0], 1))
        return np.cumsum(np.concatenate((zero, terms), axis=1), axis=1)[:, -1]

    return {
        "_np": np,
        "_map": map_floats,
        "_fold": fold,
        "_gsum": gsum,
        **helpers(np, mapped=map_floats),  # the rules' float functions, element by element
    }


class GroupedCode:
    """A tape's forward and value-and-gradient functions as grouped numpy statements."""

    def __init__(self, program: Program, np: Any) -> None:
        self.program = program
        self.tape = tape = program.tape
        self.np = np
        self.namespace: dict[str, object] = _runtime(np)
        self.namespace["_tape_check"] = tape.check
        self._n_arrays = 0
        self._graph()
        self._forward()
        self._backward()

    def _array(self, values: Any) -> str:
        name = f"_a{self._n_arrays}"
        self._n_arrays += 1
        self.namespace[name] = self.np.asarray(values, dtype=self.np.intp)
        return name

    # -- the graph to group: chains of + folded -----------------------------------------

    def _graph(self) -> None:
        """The nodes to compute and their arguments (chains of + folded), with their depths.

        A folded chain keeps its last node's depth: every node's depth stays above its
        arguments' (that is all grouping needs), and chains of one shape -- a layer's
        sums, sample after sample -- share one depth, so they land in one group.
        """
        np, tape = self.np, self.tape
        ops, args, n = tape.op, tape.args, len(tape.op)
        uses = np.bincount(
            np.fromiter(itertools.chain.from_iterable(args), np.intp), minlength=n
        ).tolist()
        # fold: s = a + b where a is a + used only here: s takes a's chain of terms, each
        # term known by the + node and the input it came through (the program's terms)
        chain_of = [0] * n  # for a + node: 1 + the index of its chain in `chains`
        chains: list[tuple[list[int], list[tuple[int, int]]]] = []  # (terms, their edges)
        absorbed = bytearray(n)
        for s in [s for s in range(tape.n_in, n) if ops[s] == "add"]:
            left, right = args[s]
            c = chain_of[left]
            if c and uses[left] == 1:
                chain, edges = chains[c - 1]
                chain.append(right)
                edges.append((s, 1))
                absorbed[left] = 1
                chain_of[s] = c
            else:
                chains.append(([left, right], [(s, 0), (s, 1)]))
                chain_of[s] = len(chains)
        eff = [s for s in range(tape.n_in, n) if ops[s] and not absorbed[s]]
        folded = {s: chains[chain_of[s] - 1] for s in eff if chain_of[s]}
        folded = {s: c for s, c in folded.items() if len(c[0]) > 2}
        self.eff = eff  # the tape slot of each node computed
        self.eff_op = [_SUM if s in folded else ops[s] for s in eff]
        self.eff_args = [tuple(folded[s][0]) if s in folded else args[s] for s in eff]
        #: a folded chain's arguments as the program's terms (its + nodes and their input k)
        self.chain_edges = {i: folded[s][1] for i, s in enumerate(eff) if s in folded}
        self.absorbed = absorbed
        self.depth = tape.depth

    # -- forward -----------------------------------------------------------------

    def _forward(self) -> None:
        np, tape = self.np, self.tape
        n_in, n = tape.n_in, len(tape.op)
        consts = self.program.constants
        new = np.full(n, -1, dtype=np.intp)
        new[:n_in] = np.arange(n_in)
        k = n_in
        new[consts] = np.arange(k, k + len(consts))
        k += len(consts)
        # and the constant local derivatives of the operations here (1.0 for a sum's terms;
        # an operation added with autodiff.op may have any), keyed with their sign: −0.0 too
        local_consts = {1.0}
        for name, m in set(zip(self.eff_op, map(len, self.eff_args))):
            if name != _SUM:
                local_consts.update(d[1] for d in local_kinds(name, m) if d[0] == "const")
        ordered = sorted(local_consts, key=_key)
        self.namespace["_K"] = np.array([tape.value[s] for s in consts] + ordered)
        self.const_slot = {_key(x): k + i for i, x in enumerate(ordered)}
        k += len(ordered)
        lines = [f"    V[{n_in}:{k}] = _K  # the constants"]
        # groups: nodes of one operation and arity at one depth, in order of depth
        eff = np.asarray(self.eff, dtype=np.intp)
        names = sorted(set(self.eff_op))
        code = {name: i for i, name in enumerate(names)}
        opc = np.fromiter(map(code.__getitem__, self.eff_op), np.intp, len(eff))
        nargs = np.fromiter(map(len, self.eff_args), np.intp, len(eff))
        depth = np.asarray(self.depth, dtype=np.intp)[eff] if len(eff) else np.zeros(0, np.intp)
        order = np.lexsort((nargs, opc, depth))
        new[eff[order]] = np.arange(k, k + len(eff))
        self.new = new
        # the arguments of every node as one flat array (CSR), in new slots
        self.eptr = np.zeros(len(eff) + 1, dtype=np.intp)
        np.cumsum(nargs, out=self.eptr[1:])
        self.eflat = new[np.fromiter(itertools.chain.from_iterable(self.eff_args), np.intp)]
        bounds = [0]
        if len(eff):
            key = np.stack((depth[order], opc[order], nargs[order]))
            change = np.flatnonzero((key[:, 1:] != key[:, :-1]).any(axis=0)) + 1
            bounds += change.tolist()
        bounds.append(len(eff))
        self.groups: list[tuple[str, int, int, Any]] = []  # (op, start, end, eff indices)
        for lo, hi in itertools.pairwise(bounds):
            if lo == hi:
                continue
            members = order[lo:hi]
            name = self.eff_op[members[0]]
            start = k + lo
            self.groups.append((name, start, k + hi, members))
            lines.append(self._forward_group(name, start, k + hi, members))
        self.n_values = k + len(eff)
        self.forward_lines = lines

    def _cols(self, members: Any, m: int) -> Any:
        """The (members × m) matrix of the members' argument slots."""
        np = self.np
        return self.eflat[self.eptr[members][:, None] + np.arange(m)]

    def _forward_group(self, name: str, start: int, end: int, members: Any) -> str:
        m = len(self.eff_args[members[0]])
        cols = self._cols(members, m)
        where = f"  # depth {self.depth[self.eff[members[0]]]}: {end - start} × {name}"
        target = f"V[{start}:{end}]"
        if name == "dot":
            h = (m - 1) // 2
            b = self._array(cols[:, 0])
            w, x = self._array(cols[:, 1 : h + 1]), self._array(cols[:, h + 1 :])
            return f"    {target} = _fold(V[{b}], V[{w}] * V[{x}]){where}"
        if name == _SUM:
            first, rest = self._array(cols[:, 0]), self._array(cols[:, 1:])
            return f"    {target} = _fold(V[{first}], V[{rest}]){where}"
        ins = [f"V[{self._array(cols[:, j])}]" for j in range(m)]
        rule = RULES[name]
        if rule.exact and rule.array is not None:  # numpy's numbers are the engine's
            fn = f"_a_{name}"
            self.namespace[fn] = functools.partial(rule.array, self.np)
            return f"    {target} = {fn}({', '.join(ins)}){where}"
        fn = f"_f_{name}"
        self.namespace[fn] = RULES[name].forward
        return f"    {target} = _map({fn}, {', '.join(ins)}){where}"

    # -- backward ----------------------------------------------------------------

    def _backward(self) -> None:
        np, tape, new = self.np, self.tape, self.new
        n_edges = int(self.eptr[-1])
        eloc = np.zeros(n_edges, dtype=np.intp)  # the V slot of each edge's local derivative
        lines: list[str] = []
        k = self.n_values
        for name, start, end, members in self.groups:
            m = len(self.eff_args[members[0]])
            kinds = [("const", 1.0)] * m if name == _SUM else local_kinds(name, m)
            base = self.eptr[members]
            for j, kind in enumerate(kinds):
                if kind[0] == "const":
                    eloc[base + j] = self._const(kind[1])
                elif kind[0] == "arg":
                    eloc[base + j] = self.eflat[base + kind[1]]
                elif kind[0] == "out":
                    eloc[base + j] = np.arange(start, end)
                else:  # computed over the group into V[k:k+n]
                    lines.append(self._local_line(name, j, kind, start, end, members, k))
                    eloc[base + j] = np.arange(k, k + end - start)
                    k += end - start
        self.n_slots = k
        # the edges (child -> parent) along which gradients flow: each gradient's terms as
        # the program gives them, in backward()'s order (a chain's inside has none)
        eff = np.asarray(self.eff, dtype=np.intp)
        child = np.repeat(np.arange(len(eff)), np.diff(self.eptr))  # index into eff
        base = np.full(len(tape.op), -1, dtype=np.intp)  # the edge of (node, input 0)
        base[eff] = self.eptr[:-1]
        # a folded chain's terms: the edge of (+ node, input k) at [2·node + k]
        chained = np.full(2 * len(tape.op), -1, dtype=np.intp)
        if self.chain_edges:  # (all chains at once: a sum per sample is thousands of chains)
            lens = np.fromiter(map(len, self.chain_edges.values()), np.intp, len(self.chain_edges))
            total = int(lens.sum())
            flat = itertools.chain.from_iterable(
                itertools.chain.from_iterable(self.chain_edges.values())
            )
            nodes = np.fromiter(flat, np.intp, 2 * total)
            firsts = self.eptr[np.fromiter(self.chain_edges, np.intp, len(lens))]
            offset = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
            chained[2 * nodes[0::2] + nodes[1::2]] = np.repeat(firsts, lens) + offset
        parents, count, users, ks = self.program.term_arrays(np)
        absorbed = np.frombuffer(bytes(self.absorbed), dtype=np.uint8).astype(bool)
        kept = ~absorbed[parents]
        keep_term = np.repeat(kept, count)
        parents, count = parents[kept], count[kept]
        users, ks = users[keep_term], ks[keep_term]
        in_chain = chained[2 * users + np.minimum(ks, 1)]  # (+ nodes have inputs 0 and 1)
        sel = np.where(in_chain >= 0, in_chain, base[users] + ks)
        e_child, e_loc = child[sel], eloc[sel]
        first = np.cumsum(count) - count
        # gradients: G[0] is the root's; parents grouped by depth (deepest first) and #terms
        depth = np.asarray(self.depth, dtype=np.intp)
        gslot = np.full(len(tape.op), -1, dtype=np.intp)
        root = tape.root
        gslot[root] = 0
        glines = ["    G[0] = 1.0  # the root"]
        order = np.lexsort((count, -depth[parents]))
        bounds = [0]
        if len(order):
            gkey = np.stack((depth[parents][order], count[order]))
            bounds += (np.flatnonzero((gkey[:, 1:] != gkey[:, :-1]).any(axis=0)) + 1).tolist()
        bounds.append(len(order))
        g = 1
        for lo, hi in itertools.pairwise(bounds):
            if lo == hi:
                continue
            idx = order[lo:hi]
            nterms = int(count[idx[0]])
            edges = first[idx][:, None] + np.arange(nterms)
            li = self._array(e_loc[edges])
            ci = self._array(gslot[eff[e_child[edges]]])
            start, g = g, g + (hi - lo)
            gslot[parents[idx]] = np.arange(start, g)
            where = f"  # {hi - lo} gradient(s) of {nterms} term(s)"
            if nterms == 1:
                glines.append(f"    G[{start}:{g}] = V[{li}][:, 0] * G[{ci}][:, 0] + 0.0{where}")
            else:
                glines.append(f"    G[{start}:{g}] = _gsum(V[{li}] * G[{ci}]){where}")
        zero = g  # G[zero] = 0.0: the gradient of an input the root does not depend on
        self.n_grads = g + 1
        gin = gslot[: tape.n_in].copy()
        gin[gin < 0] = zero
        self.grad_index = self._array(gin)
        self.local_lines = lines
        self.grad_lines = [*glines, f"    G[{zero}] = 0.0"]
        self.root_slot = int(new[root])

    def _const(self, x: float) -> int:
        return self.const_slot[_key(x)]

    def _local_line(
        self, name: str, j: int, kind: tuple[Any, ...], start: int, end: int, members: Any, k: int
    ) -> str:
        m = len(self.eff_args[members[0]])
        cols = self._cols(members, m)
        ins = [f"V[{self._array(cols[:, i])}]" for i in range(m)] + [f"V[{start}:{end}]"]
        where = f"  # ∂{name}/∂input {j}"
        target = f"V[{k}:{k + end - start}]"
        if kind[0] == "code":  # the rule's own formula, evaluated on whole arrays
            return f"    {target} = {kind[1].format(*ins)}{where}"
        fn = f"_l_{name}_{j}"
        local = RULES[name].local
        self.namespace[fn] = lambda *xs, _j=j, _local=local: _local(*xs)[_j]
        return f"    {target} = _map({fn}, {', '.join(ins)}){where}"

    # -- the functions ---------------------------------------------------------------

    def _head(self) -> list[str]:
        return [
            f"    V = _np.empty({self.n_slots})",
            f"    V[:{self.tape.n_in}] = xs",
            *self.forward_lines,
            f"    if not _np.isfinite(V[:{self.n_values}]).all():  # inf or nan: is it an error?",
            "        _tape_check(xs)",
        ]

    def forward_source(self) -> str:
        """``def forward(xs)``: the value."""
        body = [*self._head(), f"    return V[{self.root_slot}].item()"]
        return "def forward(xs):\n" + "\n".join(body) + "\n"

    def value_and_grad_source(self) -> str:
        """``def value_and_grad(xs)``: the value and the gradient as a list."""
        body = [
            *self._head(),
            *self.local_lines,
            f"    G = _np.empty({self.n_grads})",
            *self.grad_lines,
            f"    return V[{self.root_slot}].item(), G[{self.grad_index}].tolist()",
        ]
        return "def value_and_grad(xs):\n" + "\n".join(body) + "\n"


def _key(x: float) -> tuple[float, float]:
    """A float as a key that tells −0.0 from 0.0 (and NaN from nothing else: repr)."""
    return (x, math.copysign(1.0, x)) if x == x else (math.inf, 0.0)
