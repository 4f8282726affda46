"""The batched mean with its layers found: dot groups become matrix products.

:class:`MeanCode` rewrites a :class:`~._program.Program` for one pattern of shared
and per-sample inputs into ``mean_value_and_grad``: the mean of f over a batch and its
gradient. A layer of a scalar graph is a set of ``dot`` nodes that read the same
inputs with shared weights: they become one matrix product (the lecture's u = Wᵀx,
recovered from scalars), and the elementwise operations that follow each of their
columns one array operation. Any part that does not group is printed line by line,
from the program's templates, as in the per-sample code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autodiff.trace._arrays import kernels, mappable, quiet_for
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

__all__ = ["Layer", "Map", "MeanCode"]


@dataclass
class Layer:
    """``u = A @ W + c``: the dot nodes `cols` over the same `inputs` (the columns of A),
    with shared weights and biases (their places in S, column by column)."""

    inputs: tuple[int, ...]
    cols: list[int] = field(default_factory=list)
    w: list[list[int]] = field(default_factory=list)
    b: list[int] = field(default_factory=list)
    a: str = ""  # the input matrix's name in the code


@dataclass
class Map:
    """``h = op(g[:, src_cols])``: one elementwise operation over columns of group `source`."""

    op: str
    source: int
    cols: list[int] = field(default_factory=list)
    src_cols: list[int] = field(default_factory=list)
    arg: str = ""  # the code of the operation's input (columns of the source)


class MeanCode:
    """``mean_value_and_grad`` for one pattern of shared and per-sample inputs.

    Rewrites the program: reads its forward statements and finds, in order:

    * *layers*: ``dot`` nodes that depend on the batch, whose weights and bias
      are shared numbers (inputs or constants), grouped by the inputs they
      read -- the same Values in the same order -- into ``u = A @ W + c``;
    * *maps*: one elementwise operation applied to columns of a group;
    * *shared dots*: ``dot`` nodes over shared numbers only (an L2 penalty):
      one vector product;
    * everything else, one line per node (1-D arrays, or 0-d for numbers that
      do not depend on the batch).

    The gradient of the mean flows back through the same pieces: ``Aᵀ @ gU``
    for a layer's weights, ``gU @ Wᵀ`` for its inputs, sums over the batch for
    the shared numbers, collected into one array.
    """

    def __init__(
        self,
        program: Program,
        names: Sequence[str],
        mask: tuple[bool, ...],
        xp: Any,
        per_sample_grads: bool = True,
        widths: tuple[int, ...] | None = None,
    ) -> None:
        tape = program.tape
        self.program = program
        self.tape, self.names, self.mask, self.xp = tape, list(names), mask, xp
        # how the per-sample inputs arrive: one 1-D array each, or (`widths`, a training
        # step's) in blocks -- a block of width k is one (batch × k) matrix standing for k
        # consecutive per-sample inputs, as the batch's data is held: no per-step stacking
        per_sample = [i for i in range(tape.n_in) if mask[i]]
        widths = widths or (1,) * len(per_sample)
        assert sum(widths) == len(per_sample) and (per_sample_grads is False or max(widths) == 1)
        self.block: dict[int, tuple[int, int]] = {}  # input -> (block, column)
        it = iter(per_sample)
        for b, k in enumerate(widths):
            for j in range(k):
                self.block[next(it)] = (b, j)
        self.widths = widths
        helpers, self._fk, self._lk = kernels(xp)
        self.namespace: dict[str, object] = dict(helpers)
        self._index_lists: dict[str, list[Any]] = {}
        self._index_cache: dict[Any, dict[str, Any]] = {}
        self._shared_dots: dict[int, tuple[str, str]] = {}  # slot -> (weights, inputs) index
        n_in, ops, args = tape.n_in, tape.op, tape.args
        varies = list(mask) + [False] * (len(ops) - n_in)
        for s in range(n_in, len(ops)):
            varies[s] = any(varies[a] for a in args[s])
        self.varies = varies
        # which slots need a gradient: those that depend on an input whose gradient is
        # asked for -- the shared ones always, the per-sample ones (the data) only with
        # `per_sample_grads`. A training step asks for none of the data's, so no work is
        # done for them (a first layer's gA = gU @ Wᵀ, for one): a dead-code pass.
        wanted = [not m or per_sample_grads for m in mask] + [False] * (len(ops) - n_in)
        for s in range(n_in, len(ops)):
            wanted[s] = any(wanted[a] for a in args[s])
        self.wanted = wanted
        # S: the shared inputs (in input order), then the constants
        self.spos: dict[int, int] = {}
        for i in range(n_in):
            if not mask[i]:
                self.spos[i] = len(self.spos)
        self.n_shared_inputs = len(self.spos)
        self.consts = []
        for s in range(n_in, len(ops)):
            if not ops[s]:
                self.spos[s] = len(self.spos)
                self.consts.append(tape.value[s])
        self._plan()
        self._emit()
        self.source = self._source()
        self.namespace["_quiet"] = quiet_for(xp)
        # one function per device, each with its own globals (the index arrays live on the
        # device): made once, never rewritten by a call, so that one program runs from
        # several threads, on several devices, at once
        self._fns: dict[str, Any] = {}
        self._function(None)

    # -- finding the layers -----------------------------------------------------------

    def _plan(self) -> None:
        tape, varies, spos = self.tape, self.varies, self.spos
        ops, args = tape.op, tape.args
        self.member: dict[int, tuple[int, int]] = {}  # slot -> (group, column)
        self.groups: list[Layer | Map] = []
        layers: dict[tuple[int, ...], int] = {}
        maps: dict[tuple[str, int], int] = {}
        self.shared_dot: set[int] = set()
        for s in range(tape.n_in, len(ops)):
            name = ops[s]
            if not name or not varies[s]:
                if name == "dot" and all(a in spos for a in args[s]):
                    self.shared_dot.add(s)
                continue
            a = args[s]
            if name == "dot":
                m = (len(a) - 1) // 2
                ws, xs = a[1 : m + 1], a[m + 1 :]
                if not (a[0] in spos and m > 0):
                    continue
                if not all(w in spos for w in ws):
                    if not all(x in spos for x in xs):
                        continue
                    ws, xs = xs, ws  # dot(inputs, weights): the shared half is the weights
                key = tuple(xs)
                g = layers.get(key)
                if g is None:
                    g = layers[key] = len(self.groups)
                    self.groups.append(Layer(key))
                layer = self.groups[g]
                assert isinstance(layer, Layer)
                self.member[s] = (g, len(layer.cols))
                layer.cols.append(s)
                layer.w.append([spos[w] for w in ws])
                layer.b.append(spos[a[0]])
            elif len(a) == 1 and a[0] in self.member and mappable(name):
                src = self.member[a[0]][0]
                g = maps.get((name, src))
                if g is None:
                    g = maps[(name, src)] = len(self.groups)
                    self.groups.append(Map(name, src))
                group = self.groups[g]
                self.member[s] = (g, len(group.cols))
                group.cols.append(s)
                assert isinstance(group, Map)
                group.src_cols.append(self.member[a[0]][1])

    # -- code --------------------------------------------------------------------------

    def _index(self, values: list[Any]) -> str:
        name = f"_i{len(self._index_lists)}"
        self._index_lists[name] = values
        return name

    def _value(self, s: int) -> Sym:
        """How the code refers to slot s's value."""
        if s < self.tape.n_in:
            if self.mask[s]:
                b, j = self.block[s]
                return ArraySym(f"x{s}" if self.widths[b] == 1 else f"X{b}[:, {j}]")
            self._used_shared.add(s)
            return ArraySym(f"s{self.spos[s]}")
        if not self.tape.op[s]:
            return ArraySym.const(self.tape.value[s])
        if s in self.member:
            g, j = self.member[s]
            return ArraySym(f"{self._gname(g)}[:, {j}]")
        return ArraySym(f"v{s}")

    def _gname(self, g: int) -> str:
        return ("u" if isinstance(self.groups[g], Layer) else "h") + str(g)

    def _emit(self) -> None:
        self._used_shared: set[int] = set()
        fwd: list[str] = []
        emitted: set[int] = set()
        items: list[tuple[str, int]] = []  # ("group", g) or ("line", slot), in forward order
        for op in self.program.ops:
            s = op.slot
            if s in self.member:
                g = self.member[s][0]
                if g not in emitted:
                    emitted.add(g)
                    fwd.extend(self._forward_group(g))
                    items.append(("group", g))
                continue
            fwd.extend(self._forward_line(s))
            items.append(("line", s))
        self.fwd = fwd
        self.items = items
        self.bwd = self._backward(items)

    def _matrix_of(self, slots: Sequence[int]) -> str:
        """A (batch × n) matrix whose columns are the values of `slots`."""
        first = self.member.get(slots[0])
        if first is not None:
            g = first[0]
            if list(slots) == self.groups[g].cols:
                return self._gname(g)
        where = self.block.get(slots[0])
        if where is not None and self.widths[where[0]] == len(slots) > 1:
            b = where[0]
            if [self.block.get(s) for s in slots] == [(b, j) for j in range(len(slots))]:
                return f"X{b}"  # the batch's data, as given: one matrix
        return f"_xp.stack([{', '.join(self._value(s).code for s in slots)}], axis=1)"

    def _forward_group(self, g: int) -> list[str]:
        grp = self.groups[g]
        name = self._gname(g)
        if isinstance(grp, Layer):
            n, m = len(grp.inputs), len(grp.cols)
            w = self._index([grp.w[j][i] for i in range(n) for j in range(m)])
            b = self._index(grp.b)
            a = self._matrix_of(grp.inputs)
            grp.a = f"a{g}"
            return [
                f"    a{g} = {a}",
                f"    W{g} = _xp.reshape(_xp.take(S, {w}, axis=0), ({n}, {m}))  # the weights",
                f"    c{g} = _xp.take(S, {b}, axis=0)",
                f"    {name} = a{g} @ W{g}  # {m} dot node{'s' * (m != 1)} over the same {n} "
                "inputs",
                f"    {name} += c{g}",
            ]
        src = self._gname(grp.source)
        cols = grp.src_cols
        arg = (
            src
            if cols == list(range(len(self.groups[grp.source].cols)))
            else (f"_xp.take({src}, {self._index(cols)}, axis=1)")
        )
        grp.arg = arg
        return [f"    {name} = {self._apply(grp.op, [ArraySym(arg)])}  # {len(cols)} × {grp.op}"]

    def _apply(self, name: str, args: list[Sym]) -> str:
        """The code of the operation `name` on `args`: its template, else a kernel call."""
        form = forward_form(name, len(args))
        if form is not None:
            return fill(form, args, ArraySym).code
        fn = f"_f_{name}"
        self.namespace[fn] = self._fk[name]
        return f"{fn}({', '.join(a.code for a in args)})"

    def _locals(self, name: str, operands: list[Sym], lines: list[str]) -> list[float | Sym]:
        """The local derivatives of `name` at `operands` (inputs, then output): its
        templates, else one kernel call into a fresh variable."""
        forms = local_forms(name, len(operands) - 1)
        if forms is not None:
            return [fill(d, operands, ArraySym) if isinstance(d, Sym) else d for d in forms]
        fn = f"_l_{name}"
        self.namespace[fn] = self._lk[name]
        tmp = self._tmp()
        lines.append(f"    {tmp} = {fn}({', '.join(x.code for x in operands)})")
        return [ArraySym(f"{tmp}[{k}]") for k in range(len(operands) - 1)]

    def _forward_line(self, s: int) -> list[str]:
        name = self.tape.op[s]
        args = [self._value(a) for a in self.tape.args[s]]
        var = f"v{s}"
        if name == "dot" and s in self.shared_dot:
            m = (len(args) - 1) // 2
            a = self.tape.args[s]
            iw = self._index([self.spos[p] for p in a[1 : m + 1]])
            ix = self._index([self.spos[p] for p in a[m + 1 :]])
            self._shared_dots[s] = (iw, ix)
            return [
                f"    {var} = {args[0].code} + "
                f"_xp.sum(_xp.take(S, {iw}, axis=0) * _xp.take(S, {ix}, axis=0))"
            ]
        if name == "dot":
            return dot_lines(var, args, ArraySym)
        return [f"    {var} = {self._apply(name, args)}"]

    # -- backward -------------------------------------------------------------------

    def _backward(self, items: list[tuple[str, int]]) -> list[str]:
        tape, varies = self.tape, self.varies
        lines: list[str] = []
        self._acc: dict[int, list[str]] = {}  # line slot -> contributions
        self._full: dict[int, list[str]] = {}  # group -> (batch × m) contributions
        self._cols: dict[int, dict[int, list[str]]] = {}  # group -> column -> contributions
        self._pieces: list[tuple[str, list[int]]] = []  # (1-D gradient code, S positions)
        root = tape.root
        self._contribute(root, "_seed", varies[root], lines)
        self._n_tmp = 0
        for kind, ref in reversed(items):
            if kind == "group":
                self._backward_group(ref, lines)
            else:
                self._backward_line(ref, lines)
        return lines

    def _tmp(self) -> str:
        self._n_tmp += 1
        return f"t{self._n_tmp}"

    def _contribute(self, parent: int, code: str, child_varies: bool, lines: list[str]) -> None:
        """Add `code` to the gradient of slot `parent` (reduced over the batch if it is shared);
        nothing for a slot whose gradient nobody asked for."""
        if not self.wanted[parent]:
            return
        if parent in self.spos:
            if parent >= self.tape.n_in:
                return  # a constant
            if child_varies:
                code = f"_xp.sum({code})"
            self._pieces.append((f"_xp.reshape({code}, (1,))", [self.spos[parent]]))
            return
        if child_varies and not self.varies[parent]:
            code = f"_xp.sum({code})"
        if parent in self.member:
            g, j = self.member[parent]
            self._cols.setdefault(g, {}).setdefault(j, []).append(code)
            return
        self._acc.setdefault(parent, []).append(code)

    def _grad_of_line(self, s: int, lines: list[str]) -> str | None:
        terms = self._acc.pop(s, None)
        if not terms:
            return None
        if len(terms) == 1 and terms[0].isidentifier():
            return terms[0]
        var = f"g{s}"
        lines.extend(
            sum_lines(
                var,
                [ArraySym(t) if t.isidentifier() else ArraySym(f"({t})") for t in terms],
                ArraySym,
            )
        )
        return var

    def _backward_line(self, s: int, lines: list[str]) -> None:
        g = self._grad_of_line(s, lines)
        if g is None:
            return
        tape = self.tape
        name, a = tape.op[s], tape.args[s]
        if s in self.shared_dot:
            iw, ix = self._shared_dots[s]
            m = (len(a) - 1) // 2
            self._contribute(a[0], g, False, lines)
            for idx, ps in ((ix, a[1 : m + 1]), (iw, a[m + 1 :])):  # ∂/∂w = x, ∂/∂x = w
                self._pieces.append(
                    (f"_xp.take(S, {idx}, axis=0) * {g}", [self.spos[p] for p in ps])
                )
            return
        locals_ = self._locals(name, [self._value(p) for p in a] + [ArraySym(f"v{s}")], lines)
        gs = ArraySym(g)
        for parent, d in zip(a, locals_):
            if parent in self.spos and parent >= tape.n_in:
                continue  # a constant: no gradient
            term = (
                gs
                if (type(d) is float and d == 1.0)
                else (-gs if type(d) is float and d == -1.0 else gs._operand(d) * gs)
            )
            self._contribute(parent, term.code, self.varies[s], lines)

    def _backward_group(self, g: int, lines: list[str]) -> None:
        grp = self.groups[g]
        name = self._gname(g)
        full = self._full.pop(g, [])
        cols = self._cols.pop(g, {})
        if not full and not cols:
            return
        gname = f"g{name}"
        parts = list(full)
        if cols:
            m = len(grp.cols)
            zero = f"_xp.zeros_like({name}[:, 0])"
            stacked = []
            for j in range(m):
                cs = cols.get(j)
                stacked.append(" + ".join(f"({c})" for c in cs) if cs else zero)
            parts.append(f"_xp.stack([{', '.join(stacked)}], axis=1)")
        lines.append(f"    {gname} = {' + '.join(parts)}")
        if isinstance(grp, Layer):
            a, w = grp.a, f"W{g}"
            n, m = len(grp.inputs), len(grp.cols)
            lines.append(f"    gW{g} = _xp.reshape(_xp.matrix_transpose({a}) @ {gname}, (-1,))")
            self._pieces.append((f"gW{g}", [grp.w[j][i] for i in range(n) for j in range(m)]))
            self._pieces.append((f"_xp.sum({gname}, axis=0)", list(grp.b)))
            inputs = grp.inputs
            if any(self._needs(s) for s in inputs):
                lines.append(f"    g{a} = {gname} @ _xp.matrix_transpose({w})")
                first = self.member.get(inputs[0])
                if first is not None and list(inputs) == self.groups[first[0]].cols:
                    self._full.setdefault(first[0], []).append(f"g{a}")
                else:
                    for i, s in enumerate(inputs):
                        if self._needs(s):
                            self._contribute(s, f"g{a}[:, {i}]", True, lines)
            return
        # an elementwise map: gradient of its source's columns
        (d,) = self._locals(grp.op, [ArraySym(grp.arg), ArraySym(name)], lines)
        d = ArraySym.const(d) if isinstance(d, float) else d
        src = grp.source
        tmp = self._tmp()
        if d.arithmetic:  # a formula: computed into a fresh array, then × the gradient in place
            lines.append(f"    {tmp} = {d.code}")
            lines.append(f"    {tmp} *= {gname}")
        else:  # a helper's result (relu's: a mask), or an array the forward pass holds --
            # exp's derivative is its output, whose numbers the function returns: never
            # multiplied in place -- × the gradient into a new array, in one pass
            lines.append(f"    {tmp} = {d.code} * {gname}")
        contrib = tmp
        if grp.src_cols == list(range(len(self.groups[src].cols))):
            self._full.setdefault(src, []).append(contrib)
        else:
            for j, c in enumerate(grp.src_cols):
                self._cols.setdefault(src, {}).setdefault(c, []).append(f"{tmp}[:, {j}]")

    def _needs(self, s: int) -> bool:
        return self.wanted[s] and not (s in self.spos and s >= self.tape.n_in)

    # -- the function -------------------------------------------------------------------

    def _source(self) -> str:
        n_in = self.tape.n_in
        per_sample = [i for i in range(n_in) if self.mask[i]]
        root = self._value(self.tape.root).code
        seed = f"_xp.zeros_like({root}) + 1.0 / _n" if self.varies[self.tape.root] else "1.0"
        body = [*self.fwd, f"    _seed = {seed}", "    with _quiet():"]
        body += ["    " + ln for ln in self.bwd]
        grads_in = []
        for i in per_sample:
            g = self._grad_of_line_code(i)
            grads_in.append(f"{i}: {g}" if g else "")
        # the shared gradients: pieces concatenated, then summed into input order
        pieces = [p for p, _ in self._pieces]
        self._positions = [pos for _, pos in self._pieces]
        if pieces and self.n_shared_inputs:
            body.append(f"        _flat = _xp.concat([{', '.join(pieces)}, _zero1])")
            body.append("        _picked = _xp.take(_flat, _ipos, axis=0)  # each input's pieces")
            body.append("        _shared = _xp.sum(_xp.reshape(_picked, (_nshared, -1)), axis=1)")
        else:
            body.append("        _shared = None")
        body.append(f"    return {root}, _shared, {{{', '.join(x for x in grads_in if x)}}}")
        # sK = S[K] for the shared numbers the code reads by name, and only those: most
        # weights are read as matrices (take(S, …)), and a dead line per weight would cost
        # compile() more than the step
        named = {int(k) for k in re.findall(r"\bs(\d+)\b", "\n".join(body))}
        head = [f"    s{k} = S[{k}]" for k in sorted(named)]
        blocks, seen = [], set()
        for i in per_sample:
            b = self.block[i][0]
            if b not in seen:
                seen.add(b)
                blocks.append(f"x{i}" if self.widths[b] == 1 else f"X{b}")
        params = ", ".join(["S", "_n", *blocks])
        return f"def mean_value_and_grad({params}):\n" + "\n".join([*head, *body]) + "\n"

    def _grad_of_line_code(self, i: int) -> str | None:
        terms = self._acc.get(i)
        if not terms:
            return None
        return " + ".join(f"({t})" for t in terms)

    # -- running ------------------------------------------------------------------------

    def _piece_positions(self) -> Any:
        """For each shared input (a row), the places of its gradient pieces in _flat,
        padded with the place of a trailing 0.0: a numpy array (n_shared × width)."""
        import numpy as np

        n = self.n_shared_inputs
        sizes = [len(p) for p in self._positions]
        flat_len = sum(sizes)
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
        key = (str(device),)
        cached = self._index_cache.get(key)
        if cached is not None:
            return cached
        xp = self.xp
        kw = {} if device is None else {"device": device}
        out = {name: xp.asarray(v, dtype=xp.int64, **kw) for name, v in self._index_lists.items()}
        # _ipos: for each shared input, the places of its gradient pieces in _flat (padded
        # with the index of a trailing 0.0), so that a tied weight's pieces are summed
        out["_ipos"] = xp.asarray(self._piece_positions(), dtype=xp.int64, **kw)
        out["_nshared"] = self.n_shared_inputs
        out["_zero1"] = xp.zeros(1, dtype=xp.float64, **kw)
        self._index_cache[key] = out
        return out

    def run_arrays(
        self, shared: Any, columns: Sequence[Any], size: int, device: Any
    ) -> tuple[Any, Any, dict[int, Any]]:
        """:meth:`run` with the shared inputs as one array (the constants appended once)."""
        xp = self.xp
        key = ("consts", str(device))
        consts = self._index_cache.get(key)
        if consts is None:
            kw = {} if device is None else {"device": device}
            consts = self._index_cache[key] = xp.asarray(self.consts, dtype=xp.float64, **kw)
        fn = self._function(device)
        return fn(xp.concat([shared, consts]), float(size), *columns)  # type: ignore[no-any-return]

    def run(self, args: list[Any], size: int, device: Any) -> tuple[Any, Any, dict[int, Any]]:
        xp = self.xp
        kw = {} if device is None else {"device": device}
        shared = [a for a, is_array in zip(args, self.mask) if not is_array] + self.consts
        shared_array = xp.asarray(shared, dtype=xp.float64, **kw)
        per_sample = [a for a, is_array in zip(args, self.mask) if is_array]
        return self._function(device)(shared_array, float(size), *per_sample)  # type: ignore[no-any-return]

    def _function(self, device: Any) -> Any:
        """The compiled function for `device`, with its index arrays as its own globals."""
        key = str(device)
        fn = self._fns.get(key)
        if fn is None:  # (two threads may both make it: the same function, either kept)
            namespace = {**self.namespace, **self._indices(device)}
            fn = self._fns[key] = compile_function(self.source, namespace, "mean_value_and_grad")
        return fn
