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
  gradient, with the layers found (:mod:`._layers`): ``dot`` nodes that read the
  same inputs with shared weights become one matrix product. The gradients of the
  shared inputs come back as one array.

Both are printed from the trace's one :class:`~._program.Program`; this module is
the runtime: inputs checked, programs compiled and cached, errors replayed.

Errors: on numpy the forward pass runs with floating-point errors raised, and
a sample that raised is replayed through the rules to raise the engine's own
error (OverflowError, ZeroDivisionError, ValueError) -- or, when the engine
would not raise (a NaN input), the batch is rerun quietly. Other libraries do
not report floating-point errors: there, a sample whose value is not finite is
replayed the same way, but an overflow that a later operation hides
(``sigmoid(exp(1000))``) gives IEEE's answer, 1.0, where the engine raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from autodiff import engine
from autodiff.extras import require
from autodiff.trace._arrays import (
    broadcast,
    errors,
    is_number,
    kernels,
    namespace,
    numpy_like,
    reductions,
    to_list,
)
from autodiff.trace._layers import MeanCode
from autodiff.trace._lines import LineCode
from autodiff.trace._program import ArraySym, Program, compile_function
from autodiff.trace._traced import Traced

__all__ = ["BatchedTraced"]


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

    def __init__(self, program: Program, names: Sequence[str], n_nodes: int, xp: Any) -> None:
        if xp is None:  # the default namespaces: numpy, through array-api-compat
            require("numpy", "arrays", "trace(..., batched=True)")
        require("array_api_compat", "arrays", "trace(..., batched=True)")
        self._program = program
        self._tape = program.tape
        self._names = list(names)
        self.n_inputs = len(names)
        #: Operations in the recorded graph (nodes that are not inputs or constants).
        self.n_nodes = n_nodes
        self._xp = xp
        self._programs: dict[tuple[Any, ...], Any] = {}
        self._scalar: Any = None  # the scalar code, for samples holding a NaN or inf

    @property
    def program(self) -> Program:
        """The intermediate program the per-sample and mean code print."""
        return self._program

    # -- inputs ------------------------------------------------------------------------

    def _batch(self, xs: Sequence[Any]) -> tuple[Any, list[Any], tuple[bool, ...], int, Any]:
        """(namespace, arguments, which are arrays, batch size, device)."""
        if len(xs) != self.n_inputs:
            raise ValueError(f"BatchedTraced: expected {self.n_inputs} inputs, got {len(xs)}")
        arrays = [x for x in xs if type(x) is not float and not is_number(x)]
        if not arrays:
            raise ValueError("BatchedTraced: no input is an array: there is no batch")
        xp = namespace(arrays, self._xp)
        device = None
        args: list[Any] = []
        size: int | None = None
        for i, x in enumerate(xs):
            if type(x) is float:
                args.append(x)
                continue
            if is_number(x):
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
        return numpy_like(xp)

    # -- the programs --------------------------------------------------------------------

    def _per_sample(self, xp: Any) -> tuple[LineCode, dict[str, Callable[..., Any]]]:
        key = ("sample", xp.__name__)
        prog = self._programs.get(key)
        if prog is None:
            helpers, fk, lk, _ = kernels(xp)
            code = LineCode(
                self._program, self._names, sym=ArraySym, forward_kernels=fk, local_kernels=lk
            )
            fns = {
                name: compile_function(
                    getattr(code, f"{name}_source")(), {**helpers, **code.namespace}, name
                )
                for name in ("forward", "value_and_grad")
            }
            prog = self._programs[key] = (code, fns)
        return prog  # type: ignore[no-any-return]

    @property
    def source(self) -> str:
        """The per-sample code (numpy kernels)."""
        code, _ = self._per_sample(namespace([], None))
        return code.forward_source() + "\n\n" + code.value_and_grad_source()

    def _mean(
        self,
        xp: Any,
        mask: tuple[bool, ...],
        per_sample_grads: bool = True,
        widths: tuple[int, ...] | None = None,
        by_input: bool = False,
    ) -> MeanCode:
        key = ("mean", xp.__name__, mask, per_sample_grads, widths, by_input)
        prog = self._programs.get(key)
        if prog is None:
            prog = MeanCode(
                self._program, self._names, mask, xp, per_sample_grads, widths, by_input
            )
            self._programs[key] = prog
        return prog  # type: ignore[no-any-return]

    def _step_code(
        self, xp: Any, n_shared: int, widths: tuple[int, ...], by_input: bool = False
    ) -> MeanCode:
        """The mean code of a training step (the first `n_shared` inputs shared, the rest in
        blocks of `widths`, no gradient for them), found by a key of a few numbers: a mask
        of one flag per weight would cost a step more to hash than its bias additions.
        `by_input`: each layer's weights read as one (in × out) matrix (MeanCode)."""
        key = ("step", xp.__name__, n_shared, widths, by_input)
        prog = self._programs.get(key)
        if prog is None:
            mask = (False,) * n_shared + (True,) * sum(widths)
            prog = self._programs[key] = self._mean(xp, mask, False, widths, by_input)
        return prog  # type: ignore[no-any-return]

    def mean_source(self, xs: Sequence[Any], *, per_sample_grads: bool = True) -> str:
        """The grouped code for the inputs `xs` (which are shared, which per sample): that of
        :meth:`mean_value_and_grad`, or with ``per_sample_grads=False`` that of
        :meth:`mean_value_and_grad_arrays` (a training step: no gradient for the data)."""
        xp, _, mask, _, _ = self._batch(xs)
        return self._mean(xp, mask, per_sample_grads).source

    # -- running -------------------------------------------------------------------------

    def _replay(self, args: Any, size: int, xp: Any, samples: Any = None) -> None:
        """Raise the engine's error for the first sample (of `samples`) that raises one.

        `args` is the list of arguments, or a function that makes it (the array fast
        path builds it only here, on the way to an error)."""
        if callable(args):
            args = args()
        columns = [a if isinstance(a, float) else to_list(a, xp) for a in args]
        for k in range(size) if samples is None else samples:
            self._tape.check([c if isinstance(c, float) else c[k] for c in columns])

    def _guard(self, run: Callable[[bool], Any], args: Any, size: int, xp: Any) -> Any:
        """Run with numpy's errors raised; on one, find the sample the engine rejects."""
        np_like = self._np_like(xp)
        try:
            with errors(np_like, loud=True):
                return run(True)
        except FloatingPointError:
            self._replay(args, size, xp)  # raises the engine's error, if it has one
            with errors(np_like, loud=False):
                return run(False)

    def _check_values(self, values: Any, args: Any, size: int, xp: Any) -> None:
        if self._np_like(xp) or not hasattr(values, "shape"):
            return  # numpy raised already
        finite = xp.isfinite(values)
        if bool(xp.all(finite)):  # one number from the device, not one per sample
            return
        bad = to_list(~finite, xp)
        self._replay(args, size, xp, [k for k, b in enumerate(bad) if b])

    def __call__(self, xs: Sequence[Any]) -> Any:
        """f for every sample: an array."""
        xp, args, _, size, _ = self._batch(xs)
        _, fns = self._per_sample(xp)
        values = self._guard(lambda loud: fns["forward"](*args), args, size, xp)
        values = broadcast(xp, values, size, args)
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
        value = broadcast(xp, value, size, args)
        self._check_values(value, args, size, xp)
        grads = [broadcast(xp, g, size, args) for g in grads]
        finite = xp.isfinite(value)
        if not bool(xp.all(finite)):  # a NaN or inf sample: recompute it exactly, by itself
            bad = to_list(~finite, xp)
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
            self._scalar = Traced(
                LineCode(self._program, self._names), self.n_inputs, self.n_nodes, "lines"
            )
        columns = [a if isinstance(a, float) else to_list(a, xp) for a in args]
        vals = to_list(value, xp)
        gs = [to_list(g, xp) for g in grads]
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
        mean = reductions(xp)[0](value)
        shared_list = to_list(shared, xp) if shared is not None else []
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

        The first inputs are shared by the whole batch and given as one 1-D float64 array
        (the weights); the others are `columns`, in input order: 1-D float64 arrays of the
        batch's length, or 2-D ones (batch × k) standing for k consecutive inputs -- the
        data as one matrix, used as it is (the first layer's product reads it; nothing is
        stacked per step). Returns the mean and the shared inputs' gradient as one array;
        no gradient is computed for the per-sample inputs. :meth:`mean_step` with these
        columns, called once.
        """
        return self.mean_step(shared, columns)(shared)

    def mean_step(self, shared: Any, columns: Sequence[Any]) -> Callable[[Any], tuple[float, Any]]:
        """:meth:`mean_value_and_grad_arrays` for one batch, checked once: `columns` (the
        batch, as there) and the shape of `shared` are checked and the code found now; the
        function returned takes the shared inputs -- a 1-D float64 array shaped as
        `shared`, on its device -- and gives the mean and the gradient, as that method
        does. A training loop over a fixed batch pays for the checks of its arrays once,
        not at every step; each step checks only that its array is of that shape."""
        xp = namespace([shared, *columns], self._xp)
        columns = _one_wide(columns)
        widths = tuple(int(c.shape[1]) if getattr(c, "ndim", None) == 2 else 1 for c in columns)
        n_shared = self.n_inputs - sum(widths)
        if getattr(shared, "ndim", None) != 1 or int(shared.shape[0]) != n_shared:
            raise ValueError(
                f"BatchedTraced: expected the {n_shared} shared inputs as one 1-D array, got "
                f"shape {getattr(shared, 'shape', type(shared).__name__)}"
            )
        size = None
        for i, c in enumerate(columns):
            ok = getattr(c, "ndim", None) in (1, 2) and (size is None or int(c.shape[0]) == size)
            if not ok or (c.ndim == 2 and int(c.shape[1]) < 1):
                raise ValueError(
                    f"BatchedTraced: column {i} must be a 1-D array of the batch's length "
                    "(or a 2-D one, batch × k, for k inputs)"
                )
            size = int(c.shape[0])
        if not size:
            raise ValueError("BatchedTraced: the batch is empty; give at least one sample")
        for a in (shared, *columns):
            if a.dtype != xp.float64:
                raise TypeError(f"BatchedTraced: arrays must be float64, got {a.dtype}")
        device = getattr(shared, "device", None)
        prog = self._step_code(xp, n_shared, widths)  # only the shared gradients, the data as given
        taken = prog.columns(columns)  # as its code takes them, made once for the batch
        shape = tuple(shared.shape)
        kw = {} if device is None or self._np_like(xp) else {"device": device}
        mean_of, all_finite = reductions(xp)

        def step(values: Any) -> tuple[float, Any]:
            if tuple(values.shape) != shape or values.dtype != xp.float64:
                raise ValueError(
                    f"BatchedTraced: expected the {n_shared} shared inputs as one 1-D float64 "
                    f"array, got shape {tuple(values.shape)} of {values.dtype}"
                )

            def args() -> list[Any]:  # for the error path only: one float per shared input,
                cols: list[Any] = []  # one 1-D array per per-sample input
                for c in columns:
                    cols += [c] if c.ndim == 1 else [c[:, j] for j in range(int(c.shape[1]))]
                return [*to_list(values, xp), *cols]

            value, grads, _ = self._guard(
                lambda loud: prog.run_arrays(values, taken, size, device),
                args,
                size,
                xp,
            )
            self._check_values(value, args, size, xp)
            mean = mean_of(value)
            if grads is None:
                grads = xp.zeros_like(values)
            elif not (math.isfinite(mean) and all_finite(grads)):
                mean, slow = self.mean_value_and_grad(args())  # NaN or inf: the exact way
                grads = xp.asarray(slow[:n_shared], dtype=xp.float64, **kw)
            grads += 0.0  # a zero gradient is +0.0, as backward's (the array is the step's own)
            return mean, grads

        return step

    def mean_function(self, shared: Any, columns: Sequence[Any]) -> Callable[..., Any]:
        """The code of :meth:`mean_value_and_grad_arrays` for arrays shaped as `shared` and
        `columns`, as a pure function ``f(shared, columns) -> (mean, gradient)``: no checks,
        no replay of errors, nothing but array operations -- for ``jax.jit`` to compile
        whole (and, given arrays sharded over devices, to run on all of them). Its caller
        checks that the results are finite and, where they are not, takes
        :meth:`mean_value_and_grad_arrays`, which raises the engine's errors."""
        xp = namespace([shared, *columns], self._xp)
        columns = _one_wide(columns)
        widths = tuple(int(c.shape[1]) if getattr(c, "ndim", None) == 2 else 1 for c in columns)
        # (a compiler given the whole function reads each layer's weights fastest as one
        # contiguous in × out matrix: gathered so once inside it, MeanCode._by_input)
        prog = self._step_code(xp, self.n_inputs - sum(widths), widths, by_input=True)
        size, device = int(columns[0].shape[0]), getattr(shared, "device", None)
        prog.prepare(device)

        def f(values: Any, cols: Sequence[Any]) -> Any:
            value, grads, _ = prog.run_arrays(values, prog.columns(_one_wide(cols)), size, device)
            mean = xp.mean(value) if hasattr(value, "shape") else value
            return mean, (xp.zeros_like(values) if grads is None else grads) + 0.0

        return f

    def __repr__(self) -> str:
        return f"<BatchedTraced: {self.n_inputs} inputs, {self.n_nodes} operations>"


def _one_wide(columns: Sequence[Any]) -> list[Any]:
    """The columns, a (batch × 1) block as the 1-D column it stands for: the code takes a
    block of one input as that input's column (a model of one input: its data, n × 1)."""
    return [
        c[:, 0] if getattr(c, "ndim", None) == 2 and int(c.shape[1]) == 1 else c for c in columns
    ]
