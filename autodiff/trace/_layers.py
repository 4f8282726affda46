"""The batched mean with its layers found: dot groups become matrix products.

Two steps, each reading the :class:`~._program.Program`:

* :func:`find_layers` is a pure function from the program (and which inputs are shared)
  to a :class:`Plan` of frozen records. A layer of a scalar graph is a set of ``dot``
  nodes that read the same inputs, in the same order, with shared weights: one matrix
  product (the lecture's u = Wᵀx, recovered from scalars); a :class:`Map` is one
  elementwise operation over columns of a group.
* :class:`MeanCode` prints the plan as ``mean_value_and_grad``: the mean of f over a batch
  and its gradient. The forward statements in the program's order, a group where its
  first node is; the backward pass in the program's adjoint order -- each gradient the
  sum of its terms in ``backward()``'s order, each ±1 shortcut the program's -- a group
  where its last node's derivatives are due. Anything that does not group is printed
  line by line from the program's templates, as in the per-sample code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autodiff.rules import is_numpy
from autodiff.trace._arrays import kernels, mappable, quiet_for, row_start
from autodiff.trace._program import (
    ArraySym,
    Program,
    Sym,
    compile_function,
    dot_lines,
    fill,
    forward_form,
    local_forms,
    sum_lines,
)

__all__ = ["BY_INPUT_MIN", "Layer", "Map", "MeanCode", "Plan", "find_layers"]

#: The fewest weights of a layer that ``MeanCode(by_input=True)`` gathers into one (in ×
#: out) matrix (see ``MeanCode._by_input``: where the gathers cost less than they save).
BY_INPUT_MIN = 1 << 15


@dataclass(frozen=True)
class Layer:
    """``U = A @ W + c``: the dot nodes `cols` over the same `inputs` (A's columns), with
    shared weights `w` (per column, their places in S) and biases `b`."""

    inputs: tuple[int, ...]
    cols: tuple[int, ...]
    w: tuple[tuple[int, ...], ...]
    b: tuple[int, ...]


@dataclass(frozen=True)
class Map:
    """``H = op(G[:, src_cols])``: one elementwise operation over columns of group `source`."""

    op: str
    source: int
    cols: tuple[int, ...]
    src_cols: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    """The groups found, which group and column each grouped slot is, and the ``dot``
    nodes over shared numbers only (an L2 penalty: one vector product)."""

    groups: tuple[Layer | Map, ...]
    member: Mapping[int, tuple[int, int]]
    shared_dots: frozenset[int]


def find_layers(program: Program, spos: Mapping[int, int], varies: Sequence[bool]) -> Plan:
    """The layers and maps of `program` (module docstring). `spos` gives the place in S of
    each shared number (shared input or constant), `varies` whether a slot depends on the
    batch. Layers are keyed by *which* inputs they read, in order; a dot written the other
    way round (inputs first, weights second) is read with its halves swapped."""
    groups: list[dict[str, Any]] = []  # built as lists, frozen at the end
    member: dict[int, tuple[int, int]] = {}
    layers: dict[tuple[int, ...], int] = {}
    maps: dict[tuple[str, int], int] = {}
    shared_dots: set[int] = set()
    for op in program.ops:
        s, name, a = op.slot, op.name, op.args
        if not varies[s]:
            if name == "dot" and all(p in spos for p in a):
                shared_dots.add(s)
            continue
        if name == "dot":
            m = (len(a) - 1) // 2
            ws, xs = a[1 : m + 1], a[m + 1 :]
            if not (a[0] in spos and m > 0):
                continue
            if not all(w in spos for w in ws):
                if not all(x in spos for x in xs):
                    continue
                ws, xs = xs, ws  # dot(inputs, weights): the shared half is the weights
            g = layers.setdefault(tuple(xs), len(groups))
            if g == len(groups):
                groups.append({"inputs": tuple(xs), "cols": [], "w": [], "b": []})
            member[s] = (g, len(groups[g]["cols"]))
            groups[g]["cols"].append(s)
            groups[g]["w"].append(tuple(spos[w] for w in ws))
            groups[g]["b"].append(spos[a[0]])
        elif len(a) == 1 and a[0] in member and mappable(name):
            src, col = member[a[0]]
            g = maps.setdefault((name, src), len(groups))
            if g == len(groups):
                groups.append({"op": name, "source": src, "cols": [], "src_cols": []})
            member[s] = (g, len(groups[g]["cols"]))
            groups[g]["cols"].append(s)
            groups[g]["src_cols"].append(col)
    # a "layer" of one dot over one input (a loss's mean over a list of one sample) is
    # a product of two numbers: printed as a line, unless a map reads it as a group
    sources = {g["source"] for g in groups if "op" in g}
    kept = [
        k
        for k, g in enumerate(groups)
        if k in sources or "op" in g or len(g["inputs"]) > 1 or len(g["cols"]) > 1
    ]
    new = {k: i for i, k in enumerate(kept)}
    frozen = tuple(
        Layer(g["inputs"], tuple(g["cols"]), tuple(g["w"]), tuple(g["b"]))
        if "inputs" in g
        else Map(g["op"], new[g["source"]], tuple(g["cols"]), tuple(g["src_cols"]))
        for g in (groups[k] for k in kept)
    )
    member = {s: (new[g], j) for s, (g, j) in member.items() if g in new}
    return Plan(frozen, member, frozenset(shared_dots))


class MeanCode:
    """``mean_value_and_grad`` for one pattern of shared and per-sample inputs.

    `mask` says which inputs are per sample. They arrive as one 1-D array each or, with
    `widths` (a training step's), in blocks: a block of width k is one (batch × k) matrix
    standing for k consecutive per-sample inputs, as the batch's data is held. With
    ``per_sample_grads=False`` no gradient is computed for them (a dead-code pass: a
    training step asks for none of the data's, so a first layer's ``gA = gU @ Wᵀ`` is
    never written). The gradient of the mean flows back through the plan's pieces:
    ``Aᵀ @ gU`` for a layer's weights, ``gU @ Wᵀ`` for its inputs, sums over the batch
    for the shared numbers, collected into one array. With ``by_input`` (the code a
    compiler is given whole) each large layer's weights are first gathered from P into
    one contiguous (in × out) matrix and the gradient handed back in P's order
    (:meth:`_by_input`). Everything is decided here: one
    compiled function per device, each with its own globals, never rewritten by a call,
    so one program runs from several threads, on several devices, at once.
    """

    def __init__(
        self,
        program: Program,
        names: Sequence[str],
        mask: tuple[bool, ...],
        xp: Any,
        per_sample_grads: bool = True,
        widths: tuple[int, ...] | None = None,
        by_input: bool = False,
    ) -> None:
        tape = program.tape
        self.program, self.tape, self.names, self.mask, self.xp = program, tape, names, mask, xp
        n_in, ops, args = tape.n_in, tape.op, tape.args
        per_sample = [i for i in range(n_in) if mask[i]]
        self.widths = widths or (1,) * len(per_sample)
        assert sum(self.widths) == len(per_sample)
        assert not per_sample_grads or max(self.widths, default=1) == 1
        it = iter(per_sample)
        #: per-sample input -> (its block, its column there)
        self.block = {next(it): (b, j) for b, k in enumerate(self.widths) for j in range(k)}
        varies = [*mask, *[False] * (len(ops) - n_in)]
        # which slots want a gradient: the shared inputs' ancestors always, the data's only
        # with per_sample_grads (a slot depends on what its arguments depend on)
        wanted = [not m or per_sample_grads for m in mask] + [False] * (len(ops) - n_in)
        for s in range(n_in, len(ops)):
            varies[s] = any(varies[a] for a in args[s])
            wanted[s] = any(wanted[a] for a in args[s])
        self.varies, self.wanted = varies, wanted
        # S: the shared inputs (in input order), then the constants
        shared = [i for i in range(n_in) if not mask[i]]
        consts = program.constants
        self.spos = {s: k for k, s in enumerate(shared + consts)}
        self.n_shared_inputs = len(shared)
        self.consts = [tape.value[s] for s in consts]
        self.plan = find_layers(program, self.spos, varies)
        #: with `by_input`, the place in P of each shared number as the code reads it (see
        #: :meth:`_by_input`), or None: P as given
        self.perm = self._by_input() if by_input else None
        if self.perm is not None:
            shared = [shared[k] for k in self.perm]
            self.spos = {s: k for k, s in enumerate(shared + consts)}
            self.plan = find_layers(program, self.spos, varies)
        #: group -> where its weights lie in P (see :meth:`_layout`)
        self.layouts = {
            g: self._layout(grp) for g, grp in enumerate(self.plan.groups) if isinstance(grp, Layer)
        }
        #: layer -> its input matrix with a column of ones, for the layers that take their
        #: biases in the product: on numpy, a layer of neurons over the batch's data reads
        #: [X 1] -- a block of the data as given, its ones appended by :meth:`columns` once
        #: per batch (``X{b}e``), or the data's columns stacked with ones -- so that
        #: ``U = [X 1] @ Bᵀ`` needs no pass adding the biases and ``gUᵀ @ [X 1]`` is the
        #: weights' and biases' gradient at once, as they lie (no sum, no concatenation).
        #: The data as a matrix or as columns: the same product, the same numbers.
        self.folded: dict[int, str] = {}
        self.ones_blocks: set[int] = set()  # the blocks taken as [X 1]
        for g, grp in enumerate(self.plan.groups):
            if not (is_numpy(xp) and isinstance(grp, Layer) and self.layouts[g][0] == "neurons"):
                continue
            block = self._block_of(grp.inputs)
            if block is not None:
                self.folded[g] = f"X{block}e"
                self.ones_blocks.add(block)
            elif all(s in self.block and self.widths[self.block[s][0]] == 1 for s in grp.inputs):
                xs = [self._value(s).code for s in grp.inputs]
                self.folded[g] = f"_xp.stack([{', '.join(xs)}, _xp.ones_like({xs[0]})], axis=1)"
        helpers, self._fk, self._lk, self._bk = kernels(xp)
        self.namespace: dict[str, object] = {**helpers, "_quiet": quiet_for(xp)}
        self._index_lists: dict[str, list[Any]] = {}
        self._shared_dot_index: dict[int, tuple[str, str]] = {}
        self._map_args: dict[Map, str] = {}  # a map's input, as the forward pass wrote it
        # a line over a row of scores that a group holds whole -> (the row's first input,
        # the group): the kernels are given the group's matrix (Rule.rows)
        self._rows: dict[int, tuple[int, int]] = {}
        # such a line whose derivatives the backward pass reads -> the variable that holds
        # them, made with its value by the rule's array_with_local (one pass for both)
        self._with_local: dict[int, str] = {}
        # the backward pass's bookkeeping, filled as it is printed
        # line slot -> its gradient's terms, each with the program's edges it stands for
        self._acc: dict[int, list[tuple[tuple[tuple[int, int], ...], str]]] = {}
        self._full: dict[int, list[str]] = {}  # group -> (batch × m) contributions
        # group -> column -> its terms, with their edges (as _acc)
        self._cols: dict[int, dict[int, list[tuple[tuple[tuple[int, int], ...], str]]]] = {}
        self._pieces: list[tuple[str, list[int]]] = []  # (1-D gradient code, S positions)
        self._n_tmp = 0
        fwd = self._forward()
        bwd = self._backward()
        self.source = self._function_source(fwd, bwd)
        self._positions = [pos for _, pos in self._pieces]
        self._index_cache: dict[Any, Any] = {}
        self._fns: dict[str, Any] = {}
        self._function(None)

    # -- where the weights are ------------------------------------------------------------

    def _by_input(self) -> list[int] | None:
        """The shared inputs reordered so that each large layer whose weights lie neuron
        by neuron (an MLP's parameters) has them input by input, then its biases: the
        (in × out) matrix the products read, contiguous. The function gathers P in that
        order once and hands its gradient back in P's. For a compiler given the whole
        step (``mean_function``, under ``jax.jit``): XLA multiplies by a strided (out ×
        in+1) view of P more slowly than by a contiguous matrix -- measured on one core,
        alternated with a hand-written ``jax.jit`` step: 64-2048-10 1.14× its time as
        views, 1.05× gathered; 64-512-10 1.12× and 0.95×; 784-256-256-10 1.05× and
        1.02× -- while gathering small layers costs more than it saves (64-32-10, every
        layer gathered: 0.99× → 1.06×): so only layers of :data:`BY_INPUT_MIN` weights or
        more are gathered. numpy's BLAS reads the view as fast (and takes the biases in
        the product). None when no layer is gathered."""
        order = list(range(self.n_shared_inputs))
        found = False
        for grp in self.plan.groups:
            if not isinstance(grp, Layer) or self._layout(grp)[0] != "neurons":
                continue
            n, m = len(grp.inputs), len(grp.cols)
            if m == 1 or n * m < BY_INPUT_MIN:  # (one neuron: the matrix already)
                continue
            base = grp.b[0] - n
            block = [base + j * (n + 1) + i for i in range(n) for j in range(m)]
            order[base : base + m * (n + 1)] = block + [base + j * (n + 1) + n for j in range(m)]
            found = True
        return order if found else None

    def _layout(self, grp: Layer) -> tuple[str, int]:
        """How a layer's weights and biases lie among the shared inputs P:

        * ``("neurons", base)``: neuron by neuron from `base` -- neuron j's n weights, then
          its bias (an MLP's parameters): one (m × n+1) block, read as a view, its
          gradient written as one block;
        * ``("inputs", base)``: the weights input by input (an n × m matrix from `base`)
          and the biases consecutive: views too;
        * ``("gather", 0)``: anything else (tied or scattered weights, constants): gathered
          with ``take`` each step.
        """
        n, m = len(grp.inputs), len(grp.cols)
        limit = self.n_shared_inputs  # views of P only: constants live in _K
        base = grp.b[0] - n
        row = n + 1
        starts = [base + j * row for j in range(m)]  # neuron j's first weight
        if (
            base >= 0
            and base + m * row <= limit
            and grp.b == tuple(s + n for s in starts)
            and all(grp.w[j] == tuple(range(s, s + n)) for j, s in enumerate(starts))
        ):
            return ("neurons", base)
        w0 = grp.w[0][0]
        if (
            w0 + n * m <= limit
            and all(grp.w[j] == tuple(range(w0 + j, w0 + n * m, m)) for j in range(m))
            and grp.b == tuple(range(grp.b[0], grp.b[0] + m))
            and grp.b[0] + m <= limit
        ):
            return ("inputs", w0)
        return ("gather", 0)

    # -- names ----------------------------------------------------------------------------

    def _gname(self, g: int) -> str:
        return ("u" if isinstance(self.plan.groups[g], Layer) else "h") + str(g)

    def _value(self, s: int) -> Sym:
        """How the code refers to slot s's value."""
        if s < self.tape.n_in:
            if self.mask[s]:
                b, j = self.block[s]
                return ArraySym(f"x{s}" if self.widths[b] == 1 else f"X{b}[:, {j}]")
            return ArraySym(f"s{self.spos[s]}")
        if not self.tape.op[s]:
            return ArraySym.const(self.tape.value[s])
        if s in self.plan.member:
            g, j = self.plan.member[s]
            return ArraySym(f"{self._gname(g)}[:, {j}]")
        return ArraySym(f"v{s}")

    def _index(self, values: list[Any]) -> str:
        name = f"_i{len(self._index_lists)}"
        self._index_lists[name] = values
        return name

    def _take(self, places: list[int]) -> str:
        """Code gathering the shared numbers at `places` of S: from P (the shared inputs)
        or _K (the constants) where they all lie in one, else from S, both end to end."""
        n = self.n_shared_inputs
        if max(places) < n:
            return f"_xp.take(P, {self._index(places)}, axis=0)"
        if min(places) >= n:
            return f"_xp.take(_K, {self._index([p - n for p in places])}, axis=0)"
        return f"_xp.take(S, {self._index(places)}, axis=0)"

    def _tmp(self) -> str:
        self._n_tmp += 1
        return f"t{self._n_tmp}"

    def _whole(self, g: int, cols: Sequence[int]) -> bool:
        """Whether `cols` are all of group g's columns, in order."""
        return list(cols) == list(range(len(self.plan.groups[g].cols)))

    def _map_arg(self, grp: Map) -> str:
        if grp not in self._map_args:
            src = self._gname(grp.source)
            self._map_args[grp] = (
                src
                if self._whole(grp.source, grp.src_cols)
                else f"_xp.take({src}, {self._index(list(grp.src_cols))}, axis=1)"
            )
        return self._map_args[grp]

    # -- forward ----------------------------------------------------------------------------

    def _forward(self) -> list[str]:
        lines: list[str] = []
        emitted: set[int] = set()
        for op in self.program.ops:
            where = self.plan.member.get(op.slot)
            if where is None:
                lines += self._forward_line(op.slot)
            elif where[0] not in emitted:  # a group, where its first node is
                emitted.add(where[0])
                lines += self._forward_group(where[0])
        return lines

    def _block_of(self, slots: Sequence[int]) -> int | None:
        """The data block whose whole matrix is `slots`, in order, or None."""
        where = self.block.get(slots[0])
        if where is not None and self.widths[where[0]] == len(slots) > 1:
            b = where[0]
            if [self.block.get(s) for s in slots] == [(b, j) for j in range(len(slots))]:
                return b
        return None

    def _matrix_of(self, slots: Sequence[int]) -> str:
        """A (batch × n) matrix whose columns are the values of `slots`."""
        first = self.plan.member.get(slots[0])
        if first is not None and list(slots) == list(self.plan.groups[first[0]].cols):
            return self._gname(first[0])
        b = self._block_of(slots)
        if b is not None:
            return f"X{b}"  # the batch's data, as given: one matrix
        return f"_xp.stack([{', '.join(self._value(s).code for s in slots)}], axis=1)"

    def _forward_group(self, g: int) -> list[str]:
        grp, name = self.plan.groups[g], self._gname(g)
        if isinstance(grp, Map):
            arg = self._map_arg(grp)
            return [
                f"    {name} = {self._apply(grp.op, [ArraySym(arg)])}  # {len(grp.cols)} × {grp.op}"
            ]
        n, m = len(grp.inputs), len(grp.cols)
        kind, base = self.layouts[g]
        if g in self.folded:  # [X 1], the biases taken in the product (see folded)
            lines = [f"    a{g} = {self.folded[g]}"]
        else:
            lines = [f"    a{g} = {self._matrix_of(grp.inputs)}"]
        if kind == "neurons":  # views of P: W's transpose and the biases, one block
            lines += [
                f"    B{g} = _xp.reshape(P[{base}:{base + m * (n + 1)}], ({m}, {n + 1}))"
                f"  # {m} neuron{'s' * (m != 1)}: {n} weights, then the bias",
            ]
            if g not in self.folded or any(self.wanted[s] for s in grp.inputs):
                lines.append(f"    W{g} = _T(B{g}[:, :{n}])")  # (folded: for gA only)
            if g not in self.folded:
                lines.append(f"    c{g} = B{g}[:, {n}]")
        elif kind == "inputs":
            b0 = grp.b[0]
            lines += [
                f"    W{g} = _xp.reshape(P[{base}:{base + n * m}], ({n}, {m}))  # the weights",
                f"    c{g} = P[{b0}:{b0 + m}]",
            ]
        else:
            w = self._take([grp.w[j][i] for i in range(n) for j in range(m)])
            lines += [
                f"    W{g} = _xp.reshape({w}, ({n}, {m}))  # the weights",
                f"    c{g} = {self._take(list(grp.b))}",
            ]
        what = f"{m} dot node{'s' * (m != 1)} over the same {n} inputs"
        if g in self.folded:
            return [*lines, f"    {name} = a{g} @ _T(B{g})  # {what}, and the biases"]
        return [*lines, f"    {name} = a{g} @ W{g}  # {what}", f"    {name} += c{g}"]

    def _apply(self, name: str, args: list[Sym]) -> str:
        """The code of the operation `name` on `args`: its template, else a kernel call."""
        form = forward_form(name, len(args))
        if form is not None:
            return fill(form, args, ArraySym).code
        self.namespace[f"_f_{name}"] = self._fk[name]
        return f"_f_{name}({', '.join(a.code for a in args)})"

    def _forward_line(self, s: int) -> list[str]:
        name, a = self.tape.op[s], self.tape.args[s]
        args = [self._value(p) for p in a]
        if s in self.plan.shared_dots:
            m = (len(a) - 1) // 2
            iw = self._index([self.spos[p] for p in a[1 : m + 1]])
            ix = self._index([self.spos[p] for p in a[m + 1 :]])
            self._shared_dot_index[s] = (iw, ix)
            take = f"_xp.sum(_xp.take(S, {iw}, axis=0) * _xp.take(S, {ix}, axis=0))"
            return [f"    v{s} = {args[0].code} + {take}"]
        if name == "dot":
            return dot_lines(f"v{s}", args, ArraySym)
        start = row_start(name)
        if start is not None and name in self._fk and name in self._lk:
            row = a[start:]
            first = self.plan.member.get(row[0]) if row else None
            if first is not None and list(row) == list(self.plan.groups[first[0]].cols):
                self._rows[s] = (start, first[0])  # the row: all of a group, in order
                args = [*args[:start], ArraySym(self._gname(first[0]))]
                if self.wanted[s] and name in self._bk:
                    self.namespace[f"_b_{name}"] = self._bk[name]
                    self._with_local[s] = f"d{s}"
                    return [f"    v{s}, d{s} = _b_{name}({', '.join(x.code for x in args)})"]
        return [f"    v{s} = {self._apply(name, args)}"]

    # -- backward ---------------------------------------------------------------------------

    def _backward(self) -> list[str]:
        """The adjoint statements in the program's order: a line's derivatives where the
        program has them, a group's where its last node's are."""
        lines: list[str] = []
        root = self.tape.root
        self._contribute(root, "_seed", self.varies[root])
        order = self.program.local_order  # (a gradient's terms arrive in its users' order)
        member = self.plan.member
        last = {member[c][0]: c for c in order if c in member}  # a group's last node
        for c in order:
            where = member.get(c)
            if where is None:
                self._backward_line(c, lines)
            elif last[where[0]] == c:
                self._backward_group(where[0], lines)
        return lines

    def _locals(self, name: str, operands: list[Sym], lines: list[str]) -> list[float | Sym]:
        """The local derivatives of `name` at `operands` (inputs, then output): its
        templates, else one kernel call into a fresh variable."""
        forms = local_forms(name, len(operands) - 1)
        if forms is not None:
            return [fill(d, operands, ArraySym) if isinstance(d, Sym) else d for d in forms]
        self.namespace[f"_l_{name}"] = self._lk[name]
        tmp = self._tmp()
        lines.append(f"    {tmp} = _l_{name}({', '.join(x.code for x in operands)})")
        return [ArraySym(f"{tmp}[{k}]") for k in range(len(operands) - 1)]

    def _contribute(
        self, parent: int, code: str, child_varies: bool, edges: tuple[tuple[int, int], ...] = ()
    ) -> None:
        """Add `code` -- standing for the program's terms `edges` (child, input k) -- to the
        gradient of slot `parent` (summed over the batch where the parent is shared);
        nothing for a constant or a slot whose gradient nobody wants."""
        if not self.wanted[parent] or (parent in self.spos and parent >= self.tape.n_in):
            return
        if child_varies and not self.varies[parent]:
            code = f"_xp.sum({code})"
        if parent in self.spos:
            self._pieces.append((f"_xp.reshape({code}, (1,))", [self.spos[parent]]))
        elif parent in self.plan.member:
            g, j = self.plan.member[parent]
            self._cols.setdefault(g, {}).setdefault(j, []).append((edges, code))
        else:
            self._acc.setdefault(parent, []).append((edges, code))

    def _ordered(self, s: int, terms: list[tuple[tuple[tuple[int, int], ...], str]]) -> list[str]:
        """The terms of slot s's gradient in the order of the program's adjoint statement
        (a term that stands for several edges -- a layer's ``gA`` column -- at its first)."""
        if len(terms) < 2:
            return [c for _, c in terms]
        rank = {(c, k): i for i, (c, k, _) in enumerate(self.program.terms_of(s))}
        last = len(rank)
        return [
            c
            for _, c in sorted(
                terms, key=lambda t: min((rank.get(e, last) for e in t[0]), default=-1)
            )
        ]

    def _grad_of_line(self, s: int, lines: list[str]) -> str | None:
        terms = self._ordered(s, self._acc.pop(s, []))
        if not terms:
            return None
        if len(terms) == 1 and terms[0].isidentifier():
            return terms[0]
        syms = [ArraySym(t if t.isidentifier() else f"({t})") for t in terms]
        lines.extend(sum_lines(f"g{s}", syms, ArraySym))
        return f"g{s}"

    def _backward_line(self, s: int, lines: list[str]) -> None:
        g = self._grad_of_line(s, lines)
        if g is None:
            return
        a = self.tape.args[s]
        if s in self.plan.shared_dots:
            iw, ix = self._shared_dot_index[s]
            m = (len(a) - 1) // 2
            self._contribute(a[0], g, False, ((s, 0),))
            for idx, ps in ((ix, a[1 : m + 1]), (iw, a[m + 1 :])):  # ∂/∂w = x, ∂/∂x = w
                self._pieces.append(
                    (f"_xp.take(S, {idx}, axis=0) * {g}", [self.spos[p] for p in ps])
                )
            return
        gs = ArraySym(g)
        if s in self._rows:  # the row's derivatives as one matrix, × the gradient, row by row
            start, grp = self._rows[s]
            tmp = self._with_local.get(s, "")
            if not tmp:  # (not made with the value by the forward pass)
                name = self.tape.op[s]
                self.namespace[f"_l_{name}"] = self._lk[name]
                tmp = self._tmp()
                given = [*(self._value(p).code for p in a[:start]), self._gname(grp), f"v{s}"]
                lines.append(f"    {tmp} = _l_{name}({', '.join(given)})")
            self._full.setdefault(grp, []).append(f"{tmp}[{start}] * _xp.reshape({g}, (-1, 1))")
            locals_: list[float | Sym] = [ArraySym(f"{tmp}[{k}]") for k in range(start)]
        else:
            operands = [self._value(p) for p in a] + [ArraySym(f"v{s}")]
            locals_ = self._locals(self.tape.op[s], operands, lines)
        for k, (parent, d) in enumerate(zip(a, locals_)):
            unit = self.program.unit(s, k)
            term = gs if unit == 1.0 else -gs if unit == -1.0 else gs._operand(d) * gs
            self._contribute(parent, term.code, self.varies[s], ((s, k),))

    def _backward_group(self, g: int, lines: list[str]) -> None:
        grp, name = self.plan.groups[g], self._gname(g)
        parts = self._full.pop(g, [])
        cols = self._cols.pop(g, {})
        if not parts and not cols:
            return
        if cols:
            zero = f"_xp.zeros_like({name}[:, 0])"
            stacked = [
                " + ".join(f"({c})" for c in self._ordered(grp.cols[j], cols[j]))
                if j in cols
                else zero
                for j in range(len(grp.cols))
            ]
            parts.append(f"_xp.stack([{', '.join(stacked)}], axis=1)")
        gname = f"g{name}"
        lines.append(f"    {gname} = {' + '.join(parts)}")
        if isinstance(grp, Map):
            (d,) = self._locals(grp.op, [ArraySym(self._map_arg(grp)), ArraySym(name)], lines)
            d = ArraySym.const(d) if isinstance(d, float) else d
            tmp = self._tmp()
            if d.arithmetic:  # a formula: computed into a fresh array, × the gradient in place
                lines += [f"    {tmp} = {d.code}", f"    {tmp} *= {gname}"]
            else:  # a helper's result (relu's: a mask), or an array the forward pass holds
                # (exp's derivative is its output, which the function returns): the
                # gradient -- a fresh array, read nowhere else -- is multiplied in place
                lines.append(f"    {gname} *= {d.code}")
                tmp = gname
            if self._whole(grp.source, grp.src_cols):
                self._full.setdefault(grp.source, []).append(tmp)
            else:
                for j, c in enumerate(grp.src_cols):
                    edge = ((grp.cols[j], 0),)  # the map's column j reads its source's column c
                    self._cols.setdefault(grp.source, {}).setdefault(c, []).append(
                        (edge, f"{tmp}[:, {j}]")
                    )
            return
        n, m = len(grp.inputs), len(grp.cols)
        kind, base = self.layouts[g]
        if kind == "neurons":  # one block, as the parameters lie: (m × n) weights, biases
            # (gUᵀ A and (Aᵀ gU)ᵀ are the same numbers; BLAS is faster at the one whose
            # result is wider than tall)
            k = n + (g in self.folded)  # the product's columns: with the biases', if folded
            prod = f"_T({gname}) @ a{g}" if m < k else f"_T(_T(a{g}) @ {gname})"
            if g in self.folded:
                lines.append(f"    gW{g} = _xp.reshape({prod}, (-1,))")
            else:
                bias = f"_xp.reshape(_colsum({gname}), ({m}, 1))"
                lines.append(
                    f"    gW{g} = _xp.reshape(_xp.concat([{prod}, {bias}], axis=1), (-1,))"
                )
            self._pieces.append((f"gW{g}", list(range(base, base + m * (n + 1)))))
        else:  # (no gradient for weights or biases that are all constants: nobody reads it)
            w = [grp.w[j][i] for i in range(n) for j in range(m)]
            if min(w) < self.n_shared_inputs:
                lines.append(f"    gW{g} = _xp.reshape(_T(a{g}) @ {gname}, (-1,))")
                self._pieces.append((f"gW{g}", w))
            if min(grp.b) < self.n_shared_inputs:
                self._pieces.append((f"_colsum({gname})", list(grp.b)))
        needs = [
            self.wanted[s] and not (s in self.spos and s >= self.tape.n_in) for s in grp.inputs
        ]
        if any(needs):  # (one neuron: an outer product, which BLAS does slowly, as a product)
            ga = f"{gname} * W{g}[:, 0]" if m == 1 else f"{gname} @ _T(W{g})"
            lines.append(f"    ga{g} = {ga}")
            first = self.plan.member.get(grp.inputs[0])
            if first is not None and list(grp.inputs) == list(self.plan.groups[first[0]].cols):
                self._full.setdefault(first[0], []).append(f"ga{g}")
            else:
                for i, s in enumerate(grp.inputs):
                    if needs[i]:
                        edges = tuple((c, self._x_input(c, i)) for c in grp.cols)
                        self._contribute(s, f"ga{g}[:, {i}]", True, edges)

    def _x_input(self, c: int, i: int) -> int:
        """Which input of the dot node c is its layer's input i (the x half, or the first
        half of a dot written inputs first)."""
        a, layer = self.tape.args[c], self.plan.groups[self.plan.member[c][0]]
        m = (len(a) - 1) // 2
        assert isinstance(layer, Layer)
        return 1 + m + i if a[1 + m + i] == layer.inputs[i] else 1 + i

    # -- the function -----------------------------------------------------------------------

    def _function_source(self, fwd: list[str], bwd: list[str]) -> str:
        per_sample = [i for i in range(self.tape.n_in) if self.mask[i]]
        root = self._value(self.tape.root).code
        seed = f"_xp.full_like({root}, 1.0 / _n)" if self.varies[self.tape.root] else "1.0"
        body = [
            *fwd,
            f"    _seed = {seed}",
            "    with _quiet():",
            *("    " + ln for ln in bwd),
        ]
        # the shared gradients: the pieces laid end to end where they tile the inputs
        # (each input's gradient one piece, in place), else concatenated and summed
        tiles = self._tiles()
        if tiles is not None:
            body.append(f"        _shared = {tiles}")
        elif self._pieces and self.n_shared_inputs:
            body += [
                f"        _flat = _xp.concat([{', '.join(p for p, _ in self._pieces)}, _zero1])",
                "        _picked = _xp.take(_flat, _ipos, axis=0)  # each input's pieces",
                "        _shared = _xp.sum(_xp.reshape(_picked, (_nshared, -1)), axis=1)",
            ]
        else:
            body.append("        _shared = None")
        grads_in = [
            f"{i}: {' + '.join(f'({t})' for t in self._ordered(i, self._acc[i]))}"
            for i in per_sample
            if self._acc.get(i)
        ]
        body.append(f"    return {root}, _shared, {{{', '.join(grads_in)}}}")
        # sK = S[K] for the shared numbers the code reads by name, and only those: most
        # weights are read as matrices (views of P, or take(S, …)), and a dead line per
        # weight would cost compile() more than the step
        text = "\n".join(body)
        named = sorted({int(k) for k in re.findall(r"\bs(\d+)\b", text)})
        blocks = list(dict.fromkeys(self.block[i][0] for i in per_sample))
        folded = self.ones_blocks  # (taken as [X 1]: X itself, a view, where it is read)
        params = [
            "P",
            "_n",
            *(
                f"X{b}e"
                if b in folded
                else f"X{b}"
                if self.widths[b] > 1
                else f"x{per_sample[sum(self.widths[:b])]}"
                for b in blocks
            ),
        ]
        n = self.n_shared_inputs
        head = [f"    s{k} = P[{k}]" if k < n else f"    s{k} = _K[{k - n}]" for k in named]
        head += [
            f"    X{b} = X{b}e[:, :{self.widths[b]}]"
            for b in sorted(folded)
            if re.search(rf"\bX{b}\b", text)
        ]
        if re.search(r"\bS\b", text):  # gathers: the shared inputs and constants
            head.insert(0, "    S = _xp.concat([P, _K])")
        if self.perm is not None:  # P in the order the code reads it (_by_input), and back
            head.insert(0, "    P = _xp.take(P, _perm, axis=0)  # each layer's weights in × out")
            if tiles is not None or (self._pieces and self.n_shared_inputs):
                body.insert(-1, "        _shared = _xp.take(_shared, _unperm, axis=0)")
        return f"def mean_value_and_grad({', '.join(params)}):\n" + "\n".join([*head, *body]) + "\n"

    def _tiles(self) -> str | None:
        """The shared gradient as the pieces laid end to end (zeros between them), when
        each piece's places are consecutive and no two pieces share one; else None."""
        n, spans = self.n_shared_inputs, []
        if not n:
            return None
        for code, pos in self._pieces:
            if pos != list(range(pos[0], pos[0] + len(pos))) or pos[-1] >= n:
                return None
            spans.append((pos[0], len(pos), code))
        spans.sort()
        parts, at = [], 0
        for start, k, code in spans:
            if start < at:
                return None  # two pieces for one input: summed the other way
            if start > at:
                parts.append(f"_xp.zeros_like(P[{at}:{start}])")
            parts.append(code)
            at = start + k
        if at < n:
            parts.append(f"_xp.zeros_like(P[{at}:{n}])")
        return parts[0] if len(parts) == 1 else f"_xp.concat([{', '.join(parts)}])"

    # -- running ----------------------------------------------------------------------------

    def _piece_positions(self) -> Any:
        """For each shared input (a row), the places of its gradient pieces in _flat,
        padded with the place of a trailing 0.0: a numpy array (n_shared × width)."""
        import numpy as np

        n = self.n_shared_inputs
        flat_len = sum(len(p) for p in self._positions)
        pos = np.fromiter((p for ps in self._positions for p in ps), np.int64, flat_len)
        ks = np.flatnonzero(pos < n)
        owner = pos[ks]
        order = np.argsort(owner, kind="stable")  # by input, each in order of its pieces
        ks, owner = ks[order], owner[order]
        counts = np.bincount(owner, minlength=n)
        width = max(1, int(counts.max()) if n else 1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if n else counts
        table = np.full((n, width), flat_len, dtype=np.int64)
        table[owner, np.arange(len(ks)) - starts[owner]] = ks
        return table.reshape(-1)

    def _indices(self, device: Any) -> dict[str, Any]:
        """The index arrays (and the constants) on `device`, made once per device."""
        key = str(device)
        cached = self._index_cache.get(key)
        if cached is None:
            xp, kw = self.xp, {} if device is None else {"device": device}
            cached = {
                name: xp.asarray(v, dtype=xp.int64, **kw) for name, v in self._index_lists.items()
            }
            if "_ipos" in self.source:  # (the pieces concatenated and summed: not tiled)
                # _ipos: for each shared input, the places of its gradient pieces in _flat
                # (padded with the index of a trailing 0.0): a tied weight's pieces summed
                cached["_ipos"] = xp.asarray(self._piece_positions(), dtype=xp.int64, **kw)
                cached["_nshared"] = self.n_shared_inputs
                cached["_zero1"] = xp.zeros(1, dtype=xp.float64, **kw)
            cached["_K"] = xp.asarray(self.consts, dtype=xp.float64, **kw)
            if self.perm is not None:
                unperm = [0] * len(self.perm)
                for k, p in enumerate(self.perm):
                    unperm[p] = k
                cached["_perm"] = xp.asarray(self.perm, dtype=xp.int64, **kw)
                cached["_unperm"] = xp.asarray(unperm, dtype=xp.int64, **kw)
            self._index_cache[key] = cached
        return cached  # type: ignore[no-any-return]

    def prepare(self, device: Any) -> None:
        """Make the index arrays and the compiled function for `device` now: outside any
        transformation (a function that jax.jit traces must not make them)."""
        self._function(device)

    def columns(self, columns: Sequence[Any]) -> list[Any]:
        """The per-sample arrays as the compiled function takes them: `columns` (one per
        block), a block that a layer reads with its biases (:attr:`folded`) with a column of
        ones appended -- a copy, to make once per batch (``BatchedTraced.mean_step`` does)."""
        if not self.ones_blocks:
            return list(columns)
        xp = self.xp
        return [
            xp.concat([c, xp.ones_like(c[:, :1])], axis=1) if b in self.ones_blocks else c
            for b, c in enumerate(columns)
        ]

    def run_arrays(
        self, shared: Any, taken: Sequence[Any], size: int, device: Any
    ) -> tuple[Any, Any, dict[int, Any]]:
        """:meth:`run` with the shared inputs as one array and the per-sample ones as
        :meth:`columns` made them."""
        return self._function(device)(shared, float(size), *taken)  # type: ignore[no-any-return]

    def run(self, args: list[Any], size: int, device: Any) -> tuple[Any, Any, dict[int, Any]]:
        xp, kw = self.xp, {} if device is None else {"device": device}
        shared = [a for a, is_array in zip(args, self.mask) if not is_array]
        per_sample = [a for a, is_array in zip(args, self.mask) if is_array]
        numbers = xp.asarray(shared, dtype=xp.float64, **kw)
        return self.run_arrays(numbers, self.columns(per_sample), size, device)

    def _function(self, device: Any) -> Any:
        """The compiled function for `device`, with its index arrays as its own globals."""
        key = str(device)
        fn = self._fns.get(key)
        if fn is None:  # (two threads may both make it: the same function, either kept)
            namespace = {**self.namespace, **self._indices(device)}
            fn = self._fns[key] = compile_function(self.source, namespace, "mean_value_and_grad")
        return fn
