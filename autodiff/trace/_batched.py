"""Batched traces: one sample's graph, run on a whole batch of arrays at once.

``trace(f, example, batched=True)`` records `f` for one sample. At each call,
every input is a number -- shared by the whole batch, such as a weight -- or a
1-D array with one number per sample, on any array library that speaks the
Python array API (numpy, PyTorch, CuPy, JAX; through ``array-api-compat``), on
the device the arrays live on. Two programs are generated from the trace, each
compiled the first time it is needed, for each pattern of shared and
per-sample inputs and each array namespace:

* **per sample** (``value_and_grad``): the straight-line code of
  :mod:`._lines` with array kernels, every number a whole column of the batch;
* **the mean** (``mean_value_and_grad``): the mean of f over the batch and its
  gradient, with the layers found. A layer of a scalar graph is a set of
  ``dot`` nodes that read the same inputs with shared weights: they become one
  matrix product (the lecture's u = Wᵀx, recovered from scalars), and the
  elementwise operations that follow each of their columns one array
  operation. The gradients of the shared inputs come back as one array. Any
  part that does not group is run line by line, as in the per-sample code.

Errors: on numpy the forward pass runs with floating-point errors raised, and
a sample that raised is replayed through the rules to raise the engine's own
error (OverflowError, ZeroDivisionError, ValueError) -- or, when the engine
would not raise (a NaN input), the batch is rerun quietly. Other libraries do
not report floating-point errors: there, a sample whose value is not finite is
replayed the same way, but an overflow that a later operation hides
(``sigmoid(exp(1000))``) gives IEEE's answer, 1.0, where the engine raises.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from autodiff import engine
from autodiff.rules import RULES
from autodiff.trace._lines import (
    ArraySym,
    LineCode,
    NeedsNumbersError,
    Sym,
    code_of,
    dot_lines,
    sum_lines,
)
from autodiff.trace._tape import Tape

__all__ = ["BatchedTraced"]


# -- array kernels ---------------------------------------------------------------------


def _namespace(arrays: Sequence[Any], xp: Any) -> Any:
    """The array namespace of `arrays` (numpy for lists), or `xp` when given."""
    array_api_compat: Any
    try:
        import array_api_compat
    except ImportError:  # pragma: no cover - a dependency of the package
        array_api_compat = None
    if xp is not None:
        if array_api_compat is not None and not hasattr(xp, "__array_namespace_info__"):
            try:  # a plain library module (numpy, torch): its compatible namespace
                return array_api_compat.array_namespace(xp.asarray([0.0]))
            except (TypeError, AttributeError):
                pass
        return xp
    objs = [a for a in arrays if not isinstance(a, (list, tuple))]
    if array_api_compat is not None and objs:
        return array_api_compat.array_namespace(*objs)
    import numpy as np

    if array_api_compat is not None:
        return array_api_compat.array_namespace(np.asarray([0.0]))
    return np  # pragma: no cover


def _kernels(
    xp: Any,
) -> tuple[dict[str, object], dict[str, Callable[..., Any]], dict[str, Callable[..., Any]]]:
    """Helpers, forward kernels and local-derivative kernels for the namespace `xp`.

    The same formulas as the float kernels of rules.py, elementwise: the stable
    sigmoid and softplus, relu(nan) = nan, IEEE powers in derivatives.
    """
    f64 = xp.float64
    nan = math.nan

    def arr(x: Any) -> Any:
        return x if hasattr(x, "shape") else xp.asarray(x, dtype=f64)

    def step(x: Any) -> Any:
        # relu's derivative: 1 where x > 0, else 0 -- and 0, not nan, at a nan x; a nan
        # input makes a nan value, and samples with one are recomputed exactly (_exact).
        # A mask of booleans: multiplied by a gradient it is 1.0·g or 0.0·g (NaN for an
        # infinite g, as 0 · ∞ is), one pass instead of a cast and then a product.
        return arr(x) > 0.0

    def pow_local(a: Any, b: Any, out: Any) -> tuple[Any, Any]:
        a, b = arr(a), arr(b)
        flat = (b == 0.0) & ((a == 0.0) | xp.isnan(a))
        da = xp.where(flat, 0.0, b * xp.pow(a, b - 1.0))
        db = xp.where(
            (a > 0.0) | xp.isnan(a), out * xp.log(xp.abs(a)), xp.where(a == 0.0, 0.0, nan)
        )
        return da, db

    def logsumexp_local(*args: Any) -> tuple[Any, ...]:
        # the softmax, shifted by the largest z (rules._logsumexp_local)
        cols, out = [arr(z) for z in args[:-1]], arr(args[-1])
        m = cols[0]
        for z in cols[1:]:
            m = xp.maximum(m, z)
        finite = xp.isfinite(m)
        shift = xp.where(finite, m, 0.0)
        e = [xp.exp(z - shift) for z in cols]
        total = e[0]
        for ei in e[1:]:
            total = total + ei
        return tuple(xp.where(finite, ei / total, xp.exp(z - out)) for ei, z in zip(e, cols))

    def pick_local(y: Any, *rest: Any) -> tuple[Any, ...]:
        y = arr(y)
        ones = [xp.astype(y == float(k), f64) for k in range(len(rest) - 1)]
        return (xp.zeros_like(y), *ones)

    # the forwards on arrays are the rules' own (Rule.array), as the helpers the
    # generated code calls for the rules' formulas (exp, log, σ)
    forward: dict[str, Callable[..., Any]] = {
        name: functools.partial(rule.array, xp)
        for name, rule in RULES.items()
        if rule.array is not None
    }
    helpers: dict[str, object] = {
        "_xp": xp,
        "_exp": forward["exp"],
        "_log": forward["log"],
        "_sigmoid": forward["sigmoid"],
        "_relu": forward["relu"],
    }
    local: dict[str, Callable[..., Any]] = {
        "relu": lambda a, out: (step(a),),
        "abs": lambda a, out: (xp.sign(arr(a)),),
        "sqrt": lambda a, out: (0.5 * xp.pow(arr(out), -1.0),),
        "pow": pow_local,
        "pick": pick_local,
        "logsumexp": logsumexp_local,
    }
    # operations added with autodiff.op without an array forward: their float functions
    # mapped over numpy arrays element by element (other namespaces: refused)
    numpy_like = "numpy" in getattr(xp, "__name__", "")
    for name, rule in RULES.items():
        if name not in forward and numpy_like and name != "dot":
            forward[name] = _map_forward(rule.forward)
        if name not in local and numpy_like:
            local[name] = _map_local(rule.local, rule.arity)
    return helpers, forward, local


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


@contextlib.contextmanager
def _errors(np_like: bool, loud: bool) -> Iterator[None]:
    """numpy's floating-point errors raised (loud) or ignored; nothing elsewhere."""
    if not np_like:
        yield
        return
    import numpy as np

    with np.errstate(all="raise" if loud else "ignore", under="ignore"):
        yield


# -- the traced object ---------------------------------------------------------------------


class BatchedTraced:
    """A trace of one sample's function, run on a batch (see the module docstring).

    ``value_and_grad(xs)`` returns the value for every sample and, for every
    input, its gradient for every sample (arrays of the batch's length).
    ``mean_value_and_grad(xs)`` returns the mean of the values over the batch
    and the gradient of that mean: a float for each shared input, an array for
    each per-sample input. ``source`` is the per-sample code;
    ``mean_source(xs)`` the grouped code for the pattern of inputs in `xs`.
    """

    def __init__(self, tape: Tape, names: Sequence[str], n_nodes: int, xp: Any) -> None:
        self._tape = tape
        self._names = list(names)
        self.n_inputs = len(names)
        #: Operations in the recorded graph (nodes that are not inputs or constants).
        self.n_nodes = n_nodes
        self._xp = xp
        self._programs: dict[tuple[Any, ...], Any] = {}
        self._scalar: Any = None  # the scalar code, for samples holding a NaN or inf

    # -- inputs ------------------------------------------------------------------------

    def _batch(self, xs: Sequence[Any]) -> tuple[Any, list[Any], tuple[bool, ...], int, Any]:
        """(namespace, arguments, which are arrays, batch size, device)."""
        if len(xs) != self.n_inputs:
            raise ValueError(f"BatchedTraced: expected {self.n_inputs} inputs, got {len(xs)}")
        arrays = [x for x in xs if type(x) is not float and not _is_number(x)]
        if not arrays:
            raise ValueError("BatchedTraced: no input is an array: there is no batch")
        xp = _namespace(arrays, self._xp)
        device = None
        args: list[Any] = []
        size: int | None = None
        for i, x in enumerate(xs):
            if type(x) is float:
                args.append(x)
                continue
            if _is_number(x):
                args.append(engine.as_float(x, f"BatchedTraced: xs[{i}]"))
                continue
            a = (
                xp.asarray(x, dtype=xp.float64)
                if device is None
                else xp.asarray(x, dtype=xp.float64, device=device)
            )
            if device is None:
                device = getattr(a, "device", None)
            if a.ndim != 1 or (size is not None and a.shape[0] != size):
                shown = "" if size is None else f" ({size})"
                raise ValueError(
                    f"BatchedTraced: xs[{i}] must be a number or a 1-D array of the batch's "
                    f"length{shown}, got shape {tuple(a.shape)}"
                )
            size = int(a.shape[0])
            args.append(a)
        if not size:
            raise ValueError(
                "BatchedTraced: the batch is empty (every array input has 0 samples); "
                "give at least one sample"
            )
        mask = tuple(not isinstance(a, float) for a in args)
        return xp, args, mask, size, device

    def _np_like(self, xp: Any) -> bool:
        return "numpy" in getattr(xp, "__name__", "")

    # -- the programs --------------------------------------------------------------------

    def _per_sample(self, xp: Any) -> tuple[LineCode, dict[str, Callable[..., Any]]]:
        key = ("sample", xp.__name__)
        prog = self._programs.get(key)
        if prog is None:
            helpers, fk, lk = _kernels(xp)
            code = LineCode(
                self._tape, self._names, sym=ArraySym, forward_kernels=fk, local_kernels=lk
            )
            namespace = {**helpers, **code.namespace}
            fns: dict[str, Callable[..., Any]] = {}
            for name in ("forward", "value_and_grad"):
                src = getattr(code, f"{name}_source")()
                exec(compile(src, f"<autodiff.trace batched {name}>", "exec"), namespace)
                fns[name] = namespace.pop(name)  # type: ignore[assignment]  # (no cycle)
            prog = self._programs[key] = (code, fns)
        return prog  # type: ignore[no-any-return]

    @property
    def source(self) -> str:
        """The per-sample code (numpy kernels)."""
        code, _ = self._per_sample(_namespace([], None))
        return code.forward_source() + "\n\n" + code.value_and_grad_source()

    def _mean(self, xp: Any, mask: tuple[bool, ...]) -> MeanCode:
        key = ("mean", xp.__name__, mask)
        prog = self._programs.get(key)
        if prog is None:
            prog = self._programs[key] = MeanCode(self._tape, self._names, mask, xp)
        return prog  # type: ignore[no-any-return]

    def mean_source(self, xs: Sequence[Any]) -> str:
        """The grouped code for the inputs `xs` (which are shared, which per sample)."""
        xp, _, mask, _, _ = self._batch(xs)
        return self._mean(xp, mask).source

    # -- running -------------------------------------------------------------------------

    def _replay(self, args: Any, size: int, xp: Any, samples: Any = None) -> None:
        """Raise the engine's error for the first sample (of `samples`) that raises one.

        `args` is the list of arguments, or a function that makes it (the array fast
        path builds it only here, on the way to an error)."""
        if callable(args):
            args = args()
        columns = [a if isinstance(a, float) else _to_list(a, xp) for a in args]
        for k in range(size) if samples is None else samples:
            self._tape.check([c if isinstance(c, float) else c[k] for c in columns])

    def _guard(self, run: Callable[[bool], Any], args: Any, size: int, xp: Any) -> Any:
        """Run with numpy's errors raised; on one, find the sample the engine rejects."""
        np_like = self._np_like(xp)
        try:
            with _errors(np_like, loud=True):
                return run(True)
        except FloatingPointError:
            self._replay(args, size, xp)  # raises the engine's error, if it has one
            with _errors(np_like, loud=False):
                return run(False)

    def _check_values(self, values: Any, args: Any, size: int, xp: Any) -> None:
        if self._np_like(xp) or not hasattr(values, "shape"):
            return  # numpy raised already
        finite = xp.isfinite(values)
        if bool(xp.all(finite)):  # one number from the device, not one per sample
            return
        bad = _to_list(~finite, xp)
        self._replay(args, size, xp, [k for k, b in enumerate(bad) if b])

    def __call__(self, xs: Sequence[Any]) -> Any:
        """f for every sample: an array."""
        xp, args, _, size, _ = self._batch(xs)
        _, fns = self._per_sample(xp)
        values = self._guard(lambda loud: fns["forward"](*args), args, size, xp)
        values = _broadcast(xp, values, size, args)
        self._check_values(values, args, size, xp)
        return values

    def value_and_grad(self, xs: Sequence[Any]) -> tuple[Any, list[Any]]:
        """(f for every sample, [∂f/∂xᵢ for every sample, for each input])."""
        xp, args, _, size, _ = self._batch(xs)
        return self._per_sample_value_and_grad(xp, args, size)

    def _per_sample_value_and_grad(
        self, xp: Any, args: list[Any], size: int
    ) -> tuple[Any, list[Any]]:
        _, fns = self._per_sample(xp)
        value, grads = self._guard(lambda loud: fns["value_and_grad"](*args), args, size, xp)
        value = _broadcast(xp, value, size, args)
        self._check_values(value, args, size, xp)
        grads = [_broadcast(xp, g, size, args) for g in grads]
        finite = xp.isfinite(value)
        if not bool(xp.all(finite)):  # a NaN or inf sample: recompute it exactly, by itself
            bad = _to_list(~finite, xp)
            value, grads = self._exact(xp, args, value, grads, [k for k, b in enumerate(bad) if b])
        return value, grads

    def _exact(
        self, xp: Any, args: list[Any], value: Any, grads: list[Any], samples: list[int]
    ) -> tuple[Any, list[Any]]:
        """`value` and `grads` with the given samples recomputed by the scalar code.

        The array kernels are exact for finite numbers and infinities; for a NaN
        input they may give a 0 derivative where the engine gives NaN (relu's). The
        scalar code is the engine's arithmetic exactly.
        """
        if self._scalar is None:
            from autodiff.trace._lines import LineCode
            from autodiff.trace._traced import Traced

            self._scalar = Traced(
                LineCode(self._tape, self._names), self.n_inputs, self.n_nodes, "lines"
            )
        columns = [a if isinstance(a, float) else _to_list(a, xp) for a in args]
        vals = _to_list(value, xp)
        gs = [_to_list(g, xp) for g in grads]
        for k in samples:
            v, g = self._scalar.value_and_grad(
                [c if isinstance(c, float) else c[k] for c in columns]
            )
            vals[k] = v
            for i, gi in enumerate(g):
                gs[i][k] = gi
        like = next(a for a in args if not isinstance(a, float))
        device = getattr(like, "device", None)
        kw = {} if device is None else {"device": device}
        return xp.asarray(vals, dtype=xp.float64, **kw), [
            xp.asarray(g, dtype=xp.float64, **kw) for g in gs
        ]

    def mean_value_and_grad(self, xs: Sequence[Any]) -> tuple[float, list[Any]]:
        """(mean of f over the batch, [∂mean/∂xᵢ for each input]).

        A shared input's gradient is a float; a per-sample input's an array (its
        sample's share of the mean). The code groups the layers of the graph into
        matrix products (see the module docstring).
        """
        xp, args, mask, size, device = self._batch(xs)
        prog = self._mean(xp, mask)
        value, shared, per_sample = self._guard(
            lambda loud: prog.run(args, size, device), args, size, xp
        )
        self._check_values(value, args, size, xp)
        mean = float(xp.mean(value)) if hasattr(value, "shape") else float(value)
        shared_list = _to_list(shared, xp) if shared is not None else []
        if not (math.isfinite(mean) and all(map(math.isfinite, shared_list))):
            # NaN or inf somewhere: the exact per-sample results, averaged
            values, grads_ps = self._per_sample_value_and_grad(xp, args, size)
            mean = float(xp.mean(values))
            shared_list = [float(xp.mean(g)) for g, a in zip(grads_ps, mask) if not a]
            per_sample = {i: g / size for i, (g, a) in enumerate(zip(grads_ps, mask)) if a}
        it = iter(shared_list)
        grads: list[Any] = []
        for i, is_array in enumerate(mask):  # (+ 0.0: a zero gradient is +0.0, as backward's)
            if is_array:
                g = per_sample.get(i)
                grads.append(xp.zeros(size, dtype=xp.float64) if g is None else g + 0.0)
            else:
                grads.append(next(it) + 0.0)
        return mean, grads

    def mean_value_and_grad_arrays(self, shared: Any, columns: Sequence[Any]) -> tuple[float, Any]:
        """:meth:`mean_value_and_grad` for a training step: arrays in, arrays out.

        The first ``len(shared)`` inputs are shared by the whole batch and given as one
        1-D float64 array (the weights); the others are `columns`, 1-D float64 arrays of
        the batch's length, in input order. Returns the mean and the shared inputs'
        gradient as one array. Each array is checked once -- not each number -- so a
        step costs the same Python work for ten weights or a hundred thousand.
        """
        xp = _namespace([shared, *columns], self._xp)
        n_shared = self.n_inputs - len(columns)
        if getattr(shared, "ndim", None) != 1 or int(shared.shape[0]) != n_shared:
            raise ValueError(
                f"BatchedTraced: expected the {n_shared} shared inputs as one 1-D array, got "
                f"shape {getattr(shared, 'shape', type(shared).__name__)}"
            )
        size = None
        for i, c in enumerate(columns):
            if getattr(c, "ndim", None) != 1 or (size is not None and int(c.shape[0]) != size):
                raise ValueError(
                    f"BatchedTraced: column {i} must be a 1-D array of the batch's length"
                )
            size = int(c.shape[0])
        if not size:
            raise ValueError("BatchedTraced: the batch is empty; give at least one sample")
        for a in (shared, *columns):
            if a.dtype != xp.float64:
                raise TypeError(f"BatchedTraced: arrays must be float64, got {a.dtype}")
        device = getattr(shared, "device", None)
        mask = (False,) * n_shared + (True,) * len(columns)
        prog = self._mean(xp, mask)

        def args() -> list[Any]:  # for the error path only: one float per shared input
            return [*_to_list(shared, xp), *columns]

        value, grads, _ = self._guard(
            lambda loud: prog.run_arrays(shared, columns, size, device), args, size, xp
        )
        self._check_values(value, args, size, xp)
        mean = float(xp.mean(value)) if hasattr(value, "shape") else float(value)
        if grads is None:
            grads = xp.zeros_like(shared)
        elif not (math.isfinite(mean) and bool(xp.all(xp.isfinite(grads)))):
            mean, slow = self.mean_value_and_grad(args())  # NaN or inf: the exact way
            grads = xp.asarray(
                slow[:n_shared],
                dtype=xp.float64,
                **({} if device is None or self._np_like(xp) else {"device": device}),
            )
        return mean, grads + 0.0  # a zero gradient is +0.0, as backward's

    def __repr__(self) -> str:
        return f"<BatchedTraced: {self.n_inputs} inputs, {self.n_nodes} operations>"


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real)


def _to_list(a: Any, xp: Any) -> list[Any]:
    if hasattr(a, "tolist"):
        try:
            return a.tolist()  # type: ignore[no-any-return]
        except (TypeError, RuntimeError):  # pragma: no cover - a device array
            pass
    import numpy as np

    return np.asarray(a).tolist()  # type: ignore[no-any-return]


def _broadcast(xp: Any, a: Any, size: int, args: list[Any]) -> Any:
    """`a` as an array of the batch's length (a shared number repeated)."""
    if hasattr(a, "shape") and tuple(a.shape) == (size,):
        return a
    like = next(x for x in args if not isinstance(x, float))
    return xp.zeros_like(like) + a


# -- the mean, with the layers found ----------------------------------------------------


class MeanCode:
    """``mean_value_and_grad`` for one pattern of shared and per-sample inputs.

    Reads the tape and finds, in order:

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

    def __init__(self, tape: Tape, names: Sequence[str], mask: tuple[bool, ...], xp: Any) -> None:
        self.tape, self.names, self.mask, self.xp = tape, list(names), mask, xp
        helpers, self._fk, self._lk = _kernels(xp)
        self.namespace: dict[str, object] = dict(helpers)
        self._index_lists: dict[str, list[Any]] = {}
        self._index_cache: dict[Any, dict[str, Any]] = {}
        n_in, ops, args = tape.n_in, tape.op, tape.args
        varies = list(mask) + [False] * (len(ops) - n_in)
        for s in range(n_in, len(ops)):
            varies[s] = any(varies[a] for a in args[s])
        self.varies = varies
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
        exec(compile(self.source, "<autodiff.trace mean>", "exec"), self.namespace)
        # popped from its own globals, as in Traced._function: no reference cycle
        self._fn: Callable[..., Any] = self.namespace.pop("mean_value_and_grad")  # type: ignore[assignment]

    # -- finding the layers -----------------------------------------------------------

    def _plan(self) -> None:
        tape, varies, spos = self.tape, self.varies, self.spos
        ops, args = tape.op, tape.args
        self.member: dict[int, tuple[int, int]] = {}  # slot -> (group, column)
        self.groups: list[dict[str, Any]] = []
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
                if a[0] in spos and all(w in spos for w in ws) and m > 0:
                    key = xs
                elif a[0] in spos and all(x in spos for x in xs) and m > 0:
                    ws, xs, key = xs, ws, ws
                else:
                    continue
                key = tuple(xs)
                g = layers.get(key)
                if g is None:
                    g = layers[key] = len(self.groups)
                    self.groups.append(
                        {"kind": "layer", "inputs": key, "cols": [], "w": [], "b": []}
                    )
                grp = self.groups[g]
                self.member[s] = (g, len(grp["cols"]))
                grp["cols"].append(s)
                grp["w"].append([spos[w] for w in ws])
                grp["b"].append(spos[a[0]])
            elif len(a) == 1 and a[0] in self.member and _mappable(name):
                src = self.member[a[0]][0]
                g = maps.get((name, src))
                if g is None:
                    g = maps[(name, src)] = len(self.groups)
                    self.groups.append(
                        {"kind": "map", "op": name, "source": src, "cols": [], "src_cols": []}
                    )
                grp = self.groups[g]
                self.member[s] = (g, len(grp["cols"]))
                grp["cols"].append(s)
                grp["src_cols"].append(self.member[a[0]][1])

    # -- code --------------------------------------------------------------------------

    def _index(self, values: list[Any]) -> str:
        name = f"_i{len(self._index_lists)}"
        self._index_lists[name] = values
        return name

    def _value(self, s: int) -> Sym:
        """How the code refers to slot s's value."""
        if s < self.tape.n_in:
            if self.mask[s]:
                return ArraySym(f"x{s}")
            self._used_shared.add(s)
            return ArraySym(f"s{self.spos[s]}")
        if not self.tape.op[s]:
            return ArraySym.const(self.tape.value[s])
        if s in self.member:
            g, j = self.member[s]
            return ArraySym(f"{self._gname(g)}[:, {j}]")
        return ArraySym(f"v{s}")

    def _gname(self, g: int) -> str:
        return ("u" if self.groups[g]["kind"] == "layer" else "h") + str(g)

    def _emit(self) -> None:
        tape, ops = self.tape, self.tape.op
        self._used_shared: set[int] = set()
        fwd: list[str] = []
        emitted: set[int] = set()
        items: list[tuple[str, int]] = []  # ("group", g) or ("line", slot), in forward order
        for s in range(tape.n_in, len(ops)):
            name = ops[s]
            if not name:
                continue
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
            if list(slots) == self.groups[g]["cols"]:
                return self._gname(g)
        return f"_xp.stack([{', '.join(self._value(s).code for s in slots)}], axis=1)"

    def _forward_group(self, g: int) -> list[str]:
        grp = self.groups[g]
        name = self._gname(g)
        if grp["kind"] == "layer":
            n, m = len(grp["inputs"]), len(grp["cols"])
            w = self._index([grp["w"][j][i] for i in range(n) for j in range(m)])
            b = self._index(grp["b"])
            a = self._matrix_of(grp["inputs"])
            grp["a"] = f"a{g}"
            return [
                f"    a{g} = {a}",
                f"    W{g} = _xp.reshape(_xp.take(S, {w}, axis=0), ({n}, {m}))  # the weights",
                f"    c{g} = _xp.take(S, {b}, axis=0)",
                f"    {name} = a{g} @ W{g}  # {m} dot nodes over the same {n} inputs",
                f"    {name} += c{g}",
            ]
        src = self._gname(grp["source"])
        cols = grp["src_cols"]
        arg = (
            src
            if cols == list(range(len(self.groups[grp["source"]]["cols"])))
            else (f"_xp.take({src}, {self._index(cols)}, axis=1)")
        )
        grp["arg"] = arg
        op = grp["op"]
        try:
            expr = code_of(RULES[op].forward(ArraySym(arg)))
        except (NeedsNumbersError, TypeError, AttributeError):
            fn = f"_f_{op}"
            self.namespace[fn] = self._fk[op]
            expr = f"{fn}({arg})"
        return [f"    {name} = {expr}  # {len(cols)} × {op}"]

    def _forward_line(self, s: int) -> list[str]:
        name = self.tape.op[s]
        args = [self._value(a) for a in self.tape.args[s]]
        var = f"v{s}"
        if name == "dot" and s in self.shared_dot:
            m = (len(args) - 1) // 2
            a = self.tape.args[s]
            iw = self._index([self.spos[p] for p in a[1 : m + 1]])
            ix = self._index([self.spos[p] for p in a[m + 1 :]])
            self._shared_dots = getattr(self, "_shared_dots", {})
            self._shared_dots[s] = (iw, ix)
            return [
                f"    {var} = {args[0].code} + "
                f"_xp.sum(_xp.take(S, {iw}, axis=0) * _xp.take(S, {ix}, axis=0))"
            ]
        if name == "dot":
            return dot_lines(var, args, ArraySym)
        try:
            expr = code_of(RULES[name].forward(*args))
        except (NeedsNumbersError, TypeError, AttributeError):
            fn = f"_f_{name}"
            self.namespace[fn] = self._fk[name]
            expr = f"{fn}({', '.join(a.code for a in args)})"
        return [f"    {var} = {expr}"]

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
        """Add `code` to the gradient of slot `parent` (reduced over the batch if it is shared)."""
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
        syms = [self._value(p) for p in a] + [ArraySym(f"v{s}")]
        try:
            locals_ = list(RULES[name].local(*syms))
            for d in locals_:
                if not (type(d) is float or isinstance(d, Sym)):
                    raise NeedsNumbersError
        except (NeedsNumbersError, TypeError, AttributeError):
            fn = f"_l_{name}"
            self.namespace[fn] = self._lk[name]
            tmp = self._tmp()
            lines.append(f"    {tmp} = {fn}({', '.join(x.code for x in syms)})")
            locals_ = [ArraySym(f"{tmp}[{k}]") for k in range(len(a))]
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
            m = len(grp["cols"])
            zero = f"_xp.zeros_like({name}[:, 0])"
            stacked = []
            for j in range(m):
                cs = cols.get(j)
                stacked.append(" + ".join(f"({c})" for c in cs) if cs else zero)
            parts.append(f"_xp.stack([{', '.join(stacked)}], axis=1)")
        lines.append(f"    {gname} = {' + '.join(parts)}")
        if grp["kind"] == "layer":
            a, w = grp["a"], f"W{g}"
            n, m = len(grp["inputs"]), len(grp["cols"])
            lines.append(f"    gW{g} = _xp.reshape(_xp.matrix_transpose({a}) @ {gname}, (-1,))")
            self._pieces.append((f"gW{g}", [grp["w"][j][i] for i in range(n) for j in range(m)]))
            self._pieces.append((f"_xp.sum({gname}, axis=0)", list(grp["b"])))
            inputs = grp["inputs"]
            if any(self._needs(s) for s in inputs):
                lines.append(f"    g{a} = {gname} @ _xp.matrix_transpose({w})")
                first = self.member.get(inputs[0])
                if first is not None and list(inputs) == self.groups[first[0]]["cols"]:
                    self._full.setdefault(first[0], []).append(f"g{a}")
                else:
                    for i, s in enumerate(inputs):
                        if self._needs(s):
                            self._contribute(s, f"g{a}[:, {i}]", True, lines)
            return
        # an elementwise map: gradient of its source's columns
        op, arg = grp["op"], grp["arg"]
        try:
            (d,) = RULES[op].local(ArraySym(arg), ArraySym(name))
            if not (type(d) is float or isinstance(d, Sym)):
                raise NeedsNumbersError
            d = ArraySym("1.0")._operand(d)
            computed = True
        except (NeedsNumbersError, TypeError, AttributeError):
            fn = f"_l_{op}"
            self.namespace[fn] = self._lk[op]
            d = ArraySym(f"{fn}({arg}, {name})[0]")
            computed = False
        src = grp["source"]
        tmp = self._tmp()
        if computed:  # a formula: computed into a fresh array, then × the gradient in place
            lines.append(f"    {tmp} = {d.code}")
            lines.append(f"    {tmp} *= {gname}")
        else:  # a kernel's result (relu's: a mask), × the gradient in one pass
            lines.append(f"    {tmp} = {d.code} * {gname}")
        contrib = tmp
        if grp["src_cols"] == list(range(len(self.groups[src]["cols"]))):
            self._full.setdefault(src, []).append(contrib)
        else:
            for j, c in enumerate(grp["src_cols"]):
                self._cols.setdefault(src, {}).setdefault(c, []).append(f"{tmp}[:, {j}]")

    def _needs(self, s: int) -> bool:
        return self.tape.needs[s] and not (s in self.spos and s >= self.tape.n_in)

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
        params = ", ".join(["S", "_n", *(f"x{i}" for i in per_sample)])
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
        ns = self.namespace
        ns.update(self._indices(device))
        ns["_quiet"] = _quiet_for(xp)
        return self._fn(xp.concat([shared, consts]), float(size), *columns)  # type: ignore[no-any-return]

    def run(self, args: list[Any], size: int, device: Any) -> tuple[Any, Any, dict[int, Any]]:
        xp = self.xp
        kw = {} if device is None else {"device": device}
        shared = [a for a, is_array in zip(args, self.mask) if not is_array] + self.consts
        shared_array = xp.asarray(shared, dtype=xp.float64, **kw)
        ns = self.namespace
        ns.update(self._indices(device))
        ns["_quiet"] = _quiet_for(xp)
        per_sample = [a for a, is_array in zip(args, self.mask) if is_array]
        return self._fn(shared_array, float(size), *per_sample)  # type: ignore[no-any-return]


def _mappable(name: str) -> bool:
    """Whether a layer's columns can go through the operation as one array: an
    operation of one input with a forward on arrays (its Rule says so)."""
    rule = RULES[name]
    return rule.arity == 1 and rule.array is not None


def _quiet_for(xp: Any) -> Callable[[], Any]:
    if "numpy" in getattr(xp, "__name__", ""):
        import numpy as np

        return lambda: np.errstate(all="ignore")
    return contextlib.nullcontext
