"""Compiled training: a model's loss traced once, then stepped as generated code.

* :func:`compile_step` -- the loss of a fixed batch and its gradient as straight-line
  (or grouped) code, then the optimizer's usual ``step()``;
* :func:`compile_batch_step` -- one sample's loss traced once and run over the whole
  batch as matrix products, the optimizer's update done on arrays.

**Where the numbers live.** A wide network has tens of thousands of parameters; a step
that loops over them in Python (reading each ``.data``, setting each ``.grad``, updating
each one) spends more time there than in its matrix products. So while
:func:`compile_batch_step`'s steps run, an :class:`ArrayParameters` *owns* the
parameters' numbers in one array, and hands them back whole: it holds the Values under
an :class:`autodiff.engine.Lease`, and the engine brings the numbers home -- every
``.data`` and ``.grad``, in one pass -- before anyone reads a Value (``.data``, ``.grad``,
any arithmetic with it, ``backward()``, pickling, copying), and tells the holder when a
Value's ``.data`` was set by hand, so that the next step reads the Values again.

Why this design and not a Value that reads through to the array: the engine's
operations read a Value's number from its slot, which is what makes them fast; a Value
whose storage *is* an array would cost every operation of every graph an indirection.
An owner that lends the numbers out and takes them back whole costs nothing between
steps when nobody looks, and one pass over the parameters when somebody does. There is
never a second copy anyone can read stale: there is one current place at a time, and
the engine knows which.

Several compiled steps sharing one optimizer over one model (minibatches) share one
:class:`ArrayParameters` -- one array, one optimizer state -- so each step starts where
the last one ended, whichever it was. Two holders of the same Values (two optimizers)
take them in turn: the one about to step takes them, the other hands its numbers back
first.
"""

from __future__ import annotations

import ctypes
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from autodiff import Value, gc_paused, trace
from autodiff.engine import Lease
from autodiff.extras import require
from nn.module import Module
from nn.optim import Optimizer

__all__ = ["ArrayParameters", "compile_batch_step", "compile_step", "keep_freed_memory"]


def compile_step(
    model: Module, loss_fn: Callable[[], Value], opt: Optimizer
) -> Callable[[], float]:
    """A training step from a trace: loss and gradient as generated code, then opt.step().

    `loss_fn()` builds the loss from `model` as usual; it is traced once, as a
    function of the model's distinct parameters (a tied weight is one input, so
    its gradient sums over its uses, as in eager). The data the loss sees -- the
    batch -- is baked in, and the trace refuses anything it could not replay
    (see ``autodiff.trace``): a Value captured from outside the model, a branch on
    the numbers. Each call of the returned function computes the loss and the
    gradients at the current parameters, stores the gradients in ``.grad`` and
    lets `opt` update. It returns the loss as a float; ``.traced`` on it is the
    :class:`autodiff.Traced`.
    """
    params = model.parameters()

    def loss_of(ps: list[Value]) -> Value:
        with model.bound(ps):
            return loss_fn()

    with gc_paused():
        traced = trace(loss_of, [p.data for p in params])

    def step() -> float:
        loss, grads = traced.value_and_grad([p.data for p in params])
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        return loss

    step.traced = traced  # type: ignore[attr-defined]
    return step


class ArrayParameters:
    """The numbers of an optimizer's parameters as one float64 array (and their last
    gradient), owned while compiled steps run and handed back whole (module docstring).

    One per optimizer, namespace and device: every compiled step of that optimizer
    shares it (:meth:`of`).
    """

    def __init__(self, opt: Optimizer, xp: Any, device: Any = None) -> None:
        self.opt = opt
        self.params: list[Value] = list(opt.params)
        self.xp = xp
        self.device = device
        self.kw = {} if device is None else {"device": device}
        self.values: Any = None
        self.grads: Any = None
        self.lease = Lease(self.params, self._numbers)
        self.library = getattr(xp, "__name__", type(xp).__name__)
        self.mutable = _mutable(xp, self.kw)

    @classmethod
    def of(cls, opt: Optimizer, xp: Any, device: Any = None) -> ArrayParameters:
        """The holder of `opt`'s parameters on `xp` and `device`: the one already made
        (other compiled steps of `opt`), or a new one. It lives as long as `opt` does."""
        held = _HOMES.setdefault(opt, [])
        for home in held:
            if home.xp is xp and home.device == device and home.params == opt.params:
                return home
        home = cls(opt, xp, device)
        held.append(home)
        return home

    def _numbers(self) -> tuple[list[float], list[float]]:
        """The numbers to hand back: the parameters' and their last gradient's."""
        return self.values.tolist(), self.grads.tolist()

    def step(self, run: Callable[[Any], tuple[float, Any]], fused: Any = None) -> float:
        """One step: `run(values)` gives the loss and the gradient (an array), then the
        optimizer updates the array in place. The Values are read first if they were set
        by hand, or if another holder had them, since the last step.

        With `fused` (a jitted function of the values, the optimizer's state and its
        scalars, see :func:`_jitted`), the whole step is that one call; where its numbers
        are not all finite nothing of it is kept, and the step is taken again by `run`,
        op by op, which raises the engine's error or gives its numbers."""
        lease = self.lease
        with lease.lock:
            if not lease.holds or lease.edited or self.values is None:
                lease.take()  # any other holder hands its numbers back first
                self.values = self.xp.asarray(
                    [p.data for p in self.params], dtype=self.xp.float64, **self.kw
                )
            if fused is not None:
                state = self.opt.state_arrays(self.values)
                loss, grads, values, state = fused(self.values, state, self.opt.scalars())
                number = float(loss)  # (NaN unless every number of the step is finite)
                if number == number:
                    self.opt.commit(state)
                    self.values, self.grads = values, grads
                    lease.newer()
                    return number
            loss, grads = run(self.values)
            new = self.opt.update(self.values, grads)
            if new is None and not self.mutable:  # an optimizer of the old kind, on JAX
                raise TypeError(
                    f"{type(self.opt).__name__}.update returned nothing, and {self.library}'s "
                    "arrays cannot be changed in place: the step would not train. Return "
                    "the new values from update()"
                )
            self.values = self.values if new is None else new
            self.grads = grads
            lease.newer()
        return loss


def _is_jax(xp: Any) -> bool:
    return str(getattr(xp, "__name__", "")).startswith("jax")


def _jitted(traced: Any, data: Any, labels: Any, opt: Optimizer, xp: Any) -> Any:
    """Loss, gradient and the optimizer's update as one function under ``jax.jit``: the
    mean code (:meth:`~autodiff.trace.BatchedTraced.mean_function`) and
    :meth:`Optimizer.apply`, with the settings passed in (a changed lr takes effect) and
    the batch too (sharded over devices, it is run on all of them: XLA reduces the
    gradient). Its loss is NaN unless every number of the step came out finite -- one
    number to bring back to the host, which says both (a step that is not finite is
    taken again op by op)."""
    import jax

    mean_and_grad = None

    def fused(values: Any, state: Any, scalars: Any, batch: Any) -> Any:
        first.traces += 1  # type: ignore[attr-defined]  # (when JAX traces it: once)
        loss, grads = mean_and_grad(values, batch)  # type: ignore[misc]
        new_values, new_state = opt.apply(xp, values, grads, state, scalars)
        finite = xp.isfinite(loss) & xp.all(xp.isfinite(grads)) & xp.all(xp.isfinite(new_values))
        return xp.where(finite, loss, xp.nan), grads, new_values, new_state

    def first(values: Any, state: Any, scalars: Any) -> Any:
        # (the settings as one float64 array: one transfer, not one per Python float)
        scalars = np_host.asarray(scalars, dtype=np_host.float64)
        nonlocal mean_and_grad
        if mean_and_grad is None:
            # once, untraced: the checks a trace cannot make (labels that are class
            # indices, the engine's errors) run on this batch before it is jitted -- on
            # numpy's copies (the same numbers; JAX op by op would cost seconds)
            host = [np_host.asarray(a, dtype=np_host.float64) for a in (values, data, labels)]
            traced.mean_value_and_grad_arrays(host[0], host[1:])
            mean_and_grad = traced.mean_function(values, [data, labels])
        return jitted(values, state, scalars, [data, labels])

    np_host = require("numpy", "arrays", "compile_batch_step")
    jitted = jax.jit(fused)
    first.jitted = jitted  # type: ignore[attr-defined]
    first.traces = 0  # type: ignore[attr-defined]  # how many times JAX traced it
    return first


def _mutable(xp: Any, kw: dict[str, Any]) -> bool:
    """Whether `xp`'s arrays can be changed in place (JAX's cannot)."""
    probe = xp.zeros(1, dtype=xp.float64, **kw)
    try:
        probe[0] = 1.0
    except (TypeError, ValueError, NotImplementedError):
        return False
    return True


# optimizer -> the holders of its parameters (weakly: a dropped optimizer takes them along)
_HOMES: weakref.WeakKeyDictionary[Optimizer, list[ArrayParameters]] = weakref.WeakKeyDictionary()


def compile_batch_step(
    model: Module,
    sample_loss: Callable[[list[Value], Value], Value],
    xs: Sequence[Sequence[float]],
    ys: Sequence[float],
    opt: Optimizer,
    *,
    xp: Any = None,
    device: Any = None,
    keep_memory: bool = True,
    mesh: Any = None,
) -> Callable[[], float]:
    """A training step that runs one sample's traced loss over the whole batch at once.

    `sample_loss(x, y)` builds one sample's loss from `model`, with the sample x
    (a list of Values) and its label y (a Value), using arithmetic on y rather
    than checks of its value (``(1 - y * model(x)).relu()``, not ``losses.hinge``).
    It is traced once (``autodiff.trace(..., batched=True)``) as a function of the
    parameters, x and y; each call computes the mean loss over the batch and its
    gradient with the layers found (matrix products; see
    ``BatchedTraced.mean_value_and_grad``) and updates the parameters as
    ``opt.step()`` would, with the same arithmetic. Returns the mean loss as a float.
    The batch is held as arrays of the namespace `xp` (numpy by default; a torch or
    cupy namespace runs it there), on `device` (a GPU, for one) when given. With
    ``xp=jax.numpy`` (float64 on: ``jax_enable_x64``) the whole step is one function
    under ``jax.jit`` (:func:`_jitted`); with `mesh` (a ``jax.sharding.Mesh`` of one axis)
    it is data-parallel: the batch sharded over the mesh's devices (its size a multiple of
    theirs), the parameters replicated, the gradient reduced by XLA -- one device's numbers.

    While the steps run, the parameters' numbers live in one array
    (:class:`ArrayParameters`, see the module docstring): reading any parameter --
    ``.data``, ``.grad``, calling the model, ``state_dict()``, pickling -- first brings
    them home, whole, and a weight set by hand is what the next step starts from.
    Several steps made for one optimizer (minibatches) share one array. An optimizer
    over some of the parameters only (frozen ones), or in another order, takes the
    per-Value path: each ``.grad`` set, then ``opt.step()``. The step returns the loss
    before its update; ``step.loss()`` gives the loss of the model as it is now. With
    ``keep_memory`` (the default) the C allocator is asked to reuse the memory of each step's
    arrays (:func:`keep_freed_memory`): 1.5–2.1× faster wide steps in the bench, on numpy
    and under ``jax.jit``. The
    setting is process-wide and stays once made; ``keep_memory=False`` in every call of a
    process leaves the allocator as it was.
    """
    params = model.parameters()
    n = len(params)
    if len(xs) != len(ys):
        raise ValueError(f"compile_batch_step: {len(xs)} samples but {len(ys)} labels")
    if not xs:
        raise ValueError("compile_batch_step: the batch is empty")
    d = len(xs[0])

    def loss_of(v: list[Value]) -> Value:
        with model.bound(v[:n]):
            return sample_loss(v[n : n + d], v[n + d])

    example = [p.data for p in params] + [*xs[0], ys[0]]
    with gc_paused():
        # (JAX's namespace is found from its arrays at each call: the one-time checks of a
        # jitted step run on numpy's copies of them through the same trace)
        traced = trace(loss_of, example, batched=True, xp=None if _is_jax(xp) else xp)
    if xp is None:
        xp = require("numpy", "arrays", "compile_batch_step")
    kw = {} if device is None else {"device": device}
    data = xp.asarray([[float(v) for v in x] for x in xs], dtype=xp.float64, **kw)  # n × d
    if data.dtype != xp.float64:  # JAX without x64 makes float32 of everything, silently
        raise TypeError(
            f"compile_batch_step: {getattr(xp, '__name__', xp)} gave {data.dtype} arrays when "
            "asked for float64, and the engine's numbers are float64; with JAX, enable them "
            "first: jax.config.update('jax_enable_x64', True)"
        )
    labels = xp.asarray([float(y) for y in ys], dtype=xp.float64, **kw)
    if mesh is not None:  # the batch split over the devices, row by row
        if not _is_jax(xp):
            raise ValueError(
                "compile_batch_step: mesh= shards the batch with JAX: give xp=jax.numpy"
            )
        jax = require("jax", "jax", "compile_batch_step(mesh=...)")
        from jax.sharding import NamedSharding, PartitionSpec

        (axis,) = mesh.axis_names
        if len(xs) % mesh.size:
            raise ValueError(
                f"compile_batch_step: {len(xs)} samples do not split evenly over the mesh's "
                f"{mesh.size} devices"
            )
        data = jax.device_put(data, NamedSharding(mesh, PartitionSpec(axis, None)))
        labels = jax.device_put(labels, NamedSharding(mesh, PartitionSpec(axis)))
        device = NamedSharding(mesh, PartitionSpec())  # the parameters: on every device
    elif _is_jax(xp) and device is None:
        # the parameters committed to one device from the first step on, as the jitted
        # step's results are: one compilation, not one for uncommitted arrays and another
        device = require("jax", "jax", "compile_batch_step").devices()[0]

    def loss_now() -> float:
        """The mean loss of the model as it is now -- after the last step's update --
        computed by the same code as a step, nothing updated."""
        values = xp.asarray([p.data for p in params], dtype=xp.float64, **kw)  # home first
        return float(traced.mean_value_and_grad_arrays(values, [data, labels])[0])

    if [id(p) for p in opt.params] != [id(p) for p in params]:
        # an optimizer over other parameters, or in another order: set each .grad, step
        # (the gradient from the same code as an array step's)

        def step_values() -> float:
            values = xp.asarray([p.data for p in params], dtype=xp.float64, **kw)
            loss, grads = traced.mean_value_and_grad_arrays(values, [data, labels])
            for p, g in zip(params, grads.tolist()):
                p.grad = g
            opt.step()
            return loss

        step_values.traced = traced  # type: ignore[attr-defined]
        step_values.loss = loss_now  # type: ignore[attr-defined]
        step_values.sync = lambda: None  # type: ignore[attr-defined]  # nothing is held
        return step_values
    home = ArrayParameters.of(opt, xp, device)
    if keep_memory:
        keep_freed_memory()  # each step's arrays reuse the last one's memory

    prepared: list[Callable[[Any], tuple[float, Any]]] = []  # the batch checked once

    def run(values: Any) -> tuple[float, Any]:  # the batch as one matrix, and its labels
        if not prepared:  # (two threads may both make it: the same function, either kept)
            prepared.append(traced.mean_step(values, [data, labels]))
        return prepared[0](values)

    # under JAX, the whole step jitted -- for an optimizer that has its step as a pure
    # function (apply); one that only updates in place takes the op-by-op path (and is
    # refused there, its update reaching nothing)
    pure = type(opt).apply is not Optimizer.apply
    fused = _jitted(traced, data, labels, opt, xp) if _is_jax(xp) and pure else None

    def step() -> float:
        return home.step(run, fused)

    step.traced = traced  # type: ignore[attr-defined]
    step.fused = fused  # type: ignore[attr-defined]  # the jitted step (JAX), or None
    step.loss = loss_now  # type: ignore[attr-defined]
    step.sync = home.lease.settle  # type: ignore[attr-defined]  # hand the numbers back now
    return step


_KEPT: bool | None = None


def keep_freed_memory() -> bool:
    """Let the C allocator reuse the memory of a step's arrays instead of returning it.

    A training step makes and frees the same large arrays every time (a batch of 1,000
    through a 256-wide layer: 2 MiB each). glibc serves blocks that large with fresh
    ``mmap`` pages and gives them back on free, so every step pays a page fault per
    page of every array -- here 40 % of a 2-256-256-1 step. With ``mallopt`` every
    block comes from the heap and 128 MiB of free heap is kept, so the next step reuses
    the same memory. Raising the mmap threshold alone is not enough: glibc caps it at
    32 MiB, and larger blocks are common -- JAX's compiled step takes its temporaries
    as one block (47 MiB at 64-2048-10, batch 1,000: half of its step time was page
    faults), a batch of 10⁶ through 64 inputs is 512 MiB -- so mmap is turned off
    (``M_MMAP_MAX`` = 0; glibc still maps memory when the heap cannot grow). Memory freed
    stays with the process for reuse, up to its high-water mark. The setting is
    process-wide and lasts; on a C library other than glibc nothing is done. Returns
    whether it took effect.
    """
    global _KEPT
    if _KEPT is None:
        _KEPT = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None)
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # not glibc
                return False
            m_trim_threshold, m_mmap_threshold, m_mmap_max = -1, -3, -4
            _KEPT = all(
                mallopt(ctypes.c_int(option), ctypes.c_int(value))
                for option, value in (
                    (m_mmap_threshold, 32 << 20),  # (what stays if M_MMAP_MAX is refused)
                    (m_trim_threshold, 128 << 20),
                    (m_mmap_max, 0),
                )
            )
    return _KEPT
