"""Straight-line code: one line per operation, one statement per gradient.

A printer of the :class:`~._program.Program`: each forward statement is its rule's
template filled with variable names (``v3 = v1 * v2``); each adjoint statement a
sum of ``local × g_child`` terms in ``Value.backward``'s order
(``g3 = (1.0 - v5 * v5) * g7``), a branch on a sign printed as a helper call
(relu's derivative, ``_select(v3, 0.0, 0.0, 1.0)``); where a rule needs the actual
numbers otherwise -- pow's derivative, the domain checks -- the line calls its
function at run time instead (``d2 = _l_pow(v3, v4, v5)``). No derivative is
written twice, and branches inside an operation stay right at every point. Sums
and ``dot`` nodes longer than :data:`~._program.CHUNK` terms are split over
several statements, so no expression nests deeper than a constant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from autodiff.rules import RULES
from autodiff.trace._program import (
    Grad,
    Program,
    Sym,
    dot_lines,
    fill,
    helpers,
    sum_lines,
)

__all__ = ["LineCode"]


def _unfinite(values: Sequence[float]) -> bool:
    """Whether some number in `values` is inf or nan (cheap: one C-level sum)."""
    return 0.0 * sum(values) != 0.0


class LineCode:
    """The forward and value-and-gradient functions of a tape, as straight-line Python.

    `names` are the inputs' names (validated identifiers). `forward_kernels` and
    `local_kernels` give, for batched code, the array function that replaces a
    rule's ``forward`` or ``local`` where it needs the numbers (None: the rule's
    own function, for floats); an operation missing from them raises
    NotImplementedError. Scalar code ends its forward part with a cheap check
    that every checked-arithmetic result is finite, and else calls
    ``_tape_check`` (:meth:`Tape.check`), which raises the engine's own error.
    """

    def __init__(
        self,
        program: Program,
        names: Sequence[str],
        *,
        sym: type[Sym] = Sym,
        forward_kernels: dict[str, Callable[..., Any]] | None = None,
        local_kernels: dict[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.program = program
        self.tape = tape = program.tape
        self.sym = sym
        self.names = list(names)
        self.batched = forward_kernels is not None
        self._fk = forward_kernels
        self._lk = local_kernels
        self.namespace: dict[str, object] = {}
        if not self.batched:  # batched code brings its namespace's helpers itself
            self.namespace.update(helpers(), _unfinite=_unfinite, _tape_check=tape.check)
        self._fwd, self._checked, self._values = self._forward()
        self._bwd, self._grads = self._backward()

    # -- pieces ------------------------------------------------------------------

    def _call(self, kind: str, name: str, args: Sequence[Sym]) -> str:
        fn = f"_{kind}_{name}"
        if not self.batched:
            rule = RULES[name]
            self.namespace[fn] = rule.forward if kind == "f" else rule.local
        else:
            table = self._fk if kind == "f" else self._lk
            kernel = table.get(name) if table is not None else None
            if kernel is None:
                raise NotImplementedError(
                    f"trace(batched=True): no array kernel for the "
                    f"{'forward' if kind == 'f' else 'derivative'} of {name!r}"
                )
            self.namespace[fn] = kernel
        return f"{fn}({', '.join(a.code for a in args)})"

    def _forward(self) -> tuple[list[str], list[str], list[Sym]]:
        tape, sym = self.tape, self.sym
        values: list[Sym] = [sym(n) for n in self.names] + [sym("")] * (len(tape.op) - tape.n_in)
        for s in self.program.constants:  # written as literals
            values[s] = sym.const(tape.value[s])
        lines: list[str] = []
        checked: list[str] = []
        for n_vars, op in enumerate(self.program.ops):
            args = [values[a] for a in op.args]
            var = f"v{n_vars}"
            if op.name == "dot":
                lines.extend(dot_lines(var, args, sym))
            elif op.form is not None:
                lines.append(f"    {var} = {fill(op.form, args, sym).code}")
            else:
                lines.append(f"    {var} = {self._call('f', op.name, args)}")
            if op.form is not None or op.name == "dot":  # plain arithmetic never raises:
                checked.append(var)  # its result is checked (an overflow is the engine's error)
            values[op.slot] = sym(var)
        return lines, checked, values

    def _backward(self) -> tuple[list[str], list[str]]:
        tape, sym, values = self.tape, self.sym, self._values
        lines: list[str] = []
        grad: dict[int, Sym] = {}
        local: dict[int, Any] = {}  # slot -> its local derivatives: Syms, or their templates
        root = tape.root
        if tape.needs[root]:
            grad[root] = sym("g_root")
            lines.append("    g_root = 1.0")
        n_grads = n_locals = 0
        for st in self.program.adjoints:
            c = st.slot
            if isinstance(st, Grad):
                if st.alias:  # passed on unchanged (through +): another name for it
                    grad[c] = grad[st.terms[0][0]]
                    continue
                terms = []
                for child, k, unit in st.terms:
                    g = grad[child]
                    if unit is not None:  # 1.0·g and −1.0·g are g and −g, exactly
                        terms.append(g if unit == 1.0 else -g)
                        continue
                    d = local[child]
                    if type(d) is tuple:  # its templates, filled when first used
                        operands = [values[a] for a in tape.args[child]] + [values[child]]
                        d = local[child] = [
                            fill(f, operands, sym) if isinstance(f, Sym) else sym.const(f)
                            for f in d
                        ]
                    terms.append(d[k] * g)
                var = f"g{n_grads}"
                n_grads += 1
                lines.extend(sum_lines(var, terms, sym))
                grad[c] = sym(var)
                continue
            if st.forms is not None:
                local[c] = st.forms
            else:
                operands = [values[a] for a in tape.args[c]] + [values[c]]
                var = f"d{n_locals}"
                n_locals += 1
                lines.append(f"    {var} = {self._call('l', st.name, operands)}")
                local[c] = [sym(f"{var}[{k}]") for k in range(len(operands) - 1)]
        # backward() sums each gradient onto +0.0, so that a zero gradient is +0.0; this
        # code writes the first term directly, so it adds the +0.0 at the end (exact: only
        # the sign of a zero can differ, and only in the sum's last step)
        grads = [f"{grad[i].code} + 0.0" if i in grad else "0.0" for i in range(tape.n_in)]
        return lines, grads

    # -- the functions -------------------------------------------------------------

    def _check_lines(self) -> list[str]:
        if self.batched or not self._checked:
            return []
        vs = ", ".join(self._checked)
        return [
            f"    if _unfinite(({vs},)):",
            f"        _tape_check([{', '.join(self.names)}])",
        ]

    def forward_source(self) -> str:
        """``def forward(inputs...)``: the value."""
        root = self._values[self.tape.root].code
        body = self._fwd + self._check_lines() + [f"    return {root}"]
        return f"def forward({', '.join(self.names)}):\n" + "\n".join(body) + "\n"

    def value_and_grad_source(self) -> str:
        """``def value_and_grad(inputs...)``: the value and the gradient, as a list."""
        root = self._values[self.tape.root].code
        body = self._fwd + self._check_lines() + self._bwd
        body.append(f"    return {root}, [{', '.join(self._grads)}]")
        return f"def value_and_grad({', '.join(self.names)}):\n" + "\n".join(body) + "\n"
