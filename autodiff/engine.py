"""`Value`, a scalar that remembers how it was computed, and `backward`.

Every arithmetic operation on a :class:`Value` returns a new Value that records

* ``parents``: the one or two Values it was computed from, and
* ``local_grads``: the partial derivative of itself with respect to each parent,
  as numbers, computed once when the node is made (see :mod:`autodiff.rules`).

Back-propagation is then the chain rule, one line per edge::

    parent.grad += local_grad * node.grad        # ∇ₓz = Jᵀ ∇_y z, one row at a time

visited in reverse topological order, so that a node's gradient is complete
before it is passed on.  The order is found without recursion (Kahn's
algorithm), and a node holds no closure, only numbers and its parents, so a
graph contains no reference cycles and is freed by reference counting the
moment it is dropped.

Layout, for speed: almost every operation has one or two inputs, so a node
keeps its parents and local derivatives in four slots (``_p0, _p1, _d0, _d1``)
rather than in two tuples; ``parents`` and ``local_grads`` give them back as
tuples. One object per node instead of three is ~1.5x less memory, and far
fewer objects for Python's cyclic garbage collector to count and scan (see
bench/). The one n-ary operation, :func:`dot` (a neuron's b + Σ wᵢxᵢ as a
single node), keeps its tuples in ``_p0`` and ``_d0``.

Threads: grad mode (:class:`no_grad`, :class:`enable_grad`) belongs to the
thread -- precisely, to the :mod:`contextvars` context, so asyncio tasks each
have their own -- and ``backward`` passes are serialized by a lock, so threads
may build and back-propagate graphs, shared parameters included, at once.
"""

from __future__ import annotations

import functools
import gc
import math
import numbers
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from autodiff.rules import RULES, Rule, overflow, pow_ieee, select_float

__all__ = [
    "Lease",
    "Number",
    "Value",
    "dot",
    "enable_grad",
    "gc_paused",
    "is_grad_enabled",
    "local_on_values",
    "logsumexp",
    "nll",
    "no_grad",
    "op",
    "pick",
    "topological_order",
]

#: What an operation accepts besides a Value.
Number = int | float

F = TypeVar("F", bound=Callable[..., Any])

# Grad mode, per thread and per asyncio task. The ContextVar holds this context's
# innermost no_grad/enable_grad block; a block applies while it is active (inside its
# `with`), and one that has exited -- seen by an asyncio task made inside it -- gives
# way to the block it was in. `_blocks` counts the active blocks in all threads: when it
# is 0, which is the common case, every context records, and a new node costs one
# global read to know it.
_grad_block: ContextVar[Any] = ContextVar("autodiff grad mode", default=None)
_blocks = 0
_blocks_lock = threading.Lock()


def _recording() -> bool:
    """This context's grad mode (called only while some block is active somewhere)."""
    block = _grad_block.get()
    while block is not None and not block.active:
        block = block.prev
    return block is None or block.mode  # type: ignore[no-any-return]


# autodiff.trace watches the traced function through these hooks. `_observers`
# counts the traces running in any thread (so that, when it is 0, every hook
# costs one global read); `_observer` is this thread's (or task's) own trace.
_observers = 0
_observers_lock = threading.Lock()
_observer: ContextVar[Any] = ContextVar("autodiff trace observer", default=None)

# A rule's `local` evaluated on Values (a derivative to be differentiated again): the rule,
# while it runs in this thread or task, so that taking a number out of a Value there
# (float(), math.sin) raises instead of freezing the derivative.
_in_local: ContextVar[Rule | None] = ContextVar("autodiff local on values", default=None)


def local_on_values(rule: Rule, args: Sequence[Value], out: Value) -> tuple[Any, ...]:
    """``rule.local(*args, out)`` on Values: the local derivatives as Values (or constant
    floats) whose own graphs can be differentiated again -- what ``grad(...,
    create_graph=True)`` and so ``hessian`` use.

    A `local` that takes a number out of a Value -- ``math.sin(a)``, ``float(a)``,
    ``int(a)``, ``round(a)`` -- would give a number with no derivative: a second
    derivative silently 0. That raises TypeError here, naming the rule and what to
    write instead. Other operations (built-in, or the user's own from :func:`op`) are
    fine inside a `local`: derivative towers as in JAX.
    """
    token = _in_local.set(rule)
    try:
        return tuple(rule.local(*args, out))
    finally:
        _in_local.reset(token)


def _number_taken(v: Value, how: str) -> None:
    rule = _in_local.get()
    name = rule.name if rule is not None else "?"
    raise TypeError(
        f"Rule {name!r}: its local derivative took the number out of a Value with {how}, "
        f"at {v.data!r}; what it computes from that number would be a constant to "
        "autodiff, so its own derivative (a second derivative, a Hessian) would be "
        "silently 0. Write the local with operations on its inputs: arithmetic, ** and "
        "abs(), autodiff.rules' exp, log, sigmoid, power, select and number, Value "
        "methods (a.tanh()), or your own operations from autodiff.op (a sin whose local "
        "calls your cos)"
    )


# -- Values whose numbers are held elsewhere for a while -------------------------------
# nn's compiled training keeps a model's parameters in one array while its steps run,
# under a Lease. The Values stay the numbers' one home in what anyone sees: reading a
# leased Value's .data or .grad, computing with any Value, backward(), pickling and
# copying first bring every Lease's newer numbers home (_settle_all), and writing a
# leased Value's .data tells its Lease to read the Values again before its next step.
# Two counters keep this free when nothing is leased: reads look at `_newer` (Leases
# holding numbers newer than their Values'), writes at `_leased` (Values leased at all).
_newer = 0
_leased = 0
_NEWER: list[Lease] = []  # held strongly until settled: dropping a step loses no numbers
_LEASES: dict[int, weakref.ref[Lease]] = {}  # id(Value) -> its Lease
_leases_lock = threading.RLock()


class Lease:
    """The numbers of `values` held elsewhere -- by `numbers`, which gives the holder's
    current ``(data, grads)``, one float each, in the order of `values`.

    The holder calls :meth:`take` before it computes with its own copy (it then holds
    the Values: another Lease holding any of them hands its numbers back and loses
    them all), :meth:`newer` after a step that changed its numbers, and reads the
    Values again when :attr:`edited` (a leased Value's ``.data`` was set) or when it
    no longer :attr:`holds` them. :meth:`settle` writes the holder's numbers into the
    Values; every read of a Value does so first while any Lease is newer.
    """

    def __init__(
        self, values: Sequence[Value], numbers: Callable[[], tuple[Sequence[float], Any]]
    ) -> None:
        self.values = list(values)
        self._numbers = numbers
        #: held while the holder steps or hands back: one lock for all Leases, so that
        #: two holders of one Value (taking it in turn) can never wait on each other
        self.lock = _leases_lock
        self.is_newer = False
        #: a leased Value's .data was set by hand: the holder must read the Values again
        self.edited = False
        #: whether this Lease holds its Values (another may have taken them)
        self.holds = False

    def take(self) -> None:
        """Hold the Values (the holder has just read their numbers)."""
        global _leased
        with _leases_lock:
            others = {}
            for v in self.values:
                ref = _LEASES.get(id(v))
                other = ref() if ref is not None else None
                if other is not None and other is not self:
                    others[id(other)] = other
            for other in others.values():
                other.release()
            me = weakref.ref(self, _forget(list(map(id, self.values))))
            for v in self.values:
                _LEASES[id(v)] = me
            _leased = len(_LEASES)
            self.holds, self.edited = True, False

    def release(self) -> None:
        """Hand the numbers back and hold the Values no more."""
        global _leased
        with _leases_lock:
            self.settle()
            for v in self.values:
                ref = _LEASES.get(id(v))
                if ref is not None and ref() is self:
                    del _LEASES[id(v)]
            _leased = len(_LEASES)
            self.holds = False

    def newer(self) -> None:
        """The holder's numbers changed (a step): the Values are behind until settled."""
        global _newer
        with _leases_lock:
            if not self.is_newer:
                self.is_newer = True
                _NEWER.append(self)
                _newer = len(_NEWER)

    def settle(self) -> None:
        """Write the holder's newer numbers into the Values, ``.data`` and ``.grad``; the
        flag is cleared only once all are written (a reader in another thread waits)."""
        global _newer
        with self.lock:
            if not self.is_newer:
                return
            data, grads = self._numbers()
            for v, x, g in zip(self.values, data, grads):
                v._data = x
                v._grad = g
            with _leases_lock:
                self.is_newer = False
                _NEWER.remove(self)
                _newer = len(_NEWER)


def _forget(ids: list[int]) -> Callable[[Any], None]:
    """A weakref callback dropping a collected Lease's entries from _LEASES."""

    def forget(ref: Any) -> None:
        global _leased
        with _leases_lock:
            for i in ids:
                if _LEASES.get(i) is ref:
                    del _LEASES[i]
            _leased = len(_LEASES)

    return forget


def _settle_all() -> None:
    """Bring every Lease's newer numbers home (cheap when none is newer)."""
    for lease in list(_NEWER):
        lease.settle()


def _write(v: Value, x: float) -> None:
    """Set a Value's .data by hand: if it is leased, bring the numbers home first, and
    tell its Lease to read the Values again before its next step."""
    ref = _LEASES.get(id(v))
    lease = ref() if ref is not None else None
    if lease is None:
        v._data = x
        return
    with lease.lock:
        lease.settle()
        v._data = x
        lease.edited = True


# The topological sort keeps a counter on each node while it runs (backward(), and the
# trace's tape, which numbers the nodes in the same slot after it): one at a time.
# Reentrant, so that the tape can hold it across the sort and its own pass.
backward_lock = threading.RLock()


def is_grad_enabled() -> bool:
    """True unless inside :class:`no_grad` (in this thread or asyncio task)."""
    return not _blocks or _recording()


class _Block:
    """One no_grad/enable_grad block as entered: its mode, whether it is still in its
    `with`, and the block it was entered in."""

    __slots__ = ("mode", "active", "prev")

    def __init__(self, mode: bool, prev: _Block | None) -> None:
        self.mode, self.active, self.prev = mode, True, prev


class no_grad:  # noqa: N801 -- named like PyTorch's, which users know
    """Operations inside record no parents (a graph is not built).

    Use it for parameter updates and evaluation. As a context manager it nests,
    and restores the previous mode on exit, also when an exception leaves the
    block; as a decorator (``@no_grad`` or ``@no_grad()``) it runs the function
    so. The mode belongs to the thread (and asyncio task) that set it: other
    threads keep recording. One object serves one ``with`` block at a time.
    """

    __slots__ = ("_token", "_block")
    _mode = False

    def __new__(cls, func: Callable[..., Any] | None = None) -> Any:
        if func is not None:  # @no_grad without parentheses
            return cls._decorate(func)
        return super().__new__(cls)

    def __init__(self, func: Callable[..., Any] | None = None) -> None:
        self._token: Token[Any] | None = None
        self._block: _Block | None = None

    def __enter__(self) -> no_grad:
        global _blocks
        if self._token is not None:
            raise RuntimeError(
                f"{type(self).__name__}: this object is already in use; "
                f"write `with {type(self).__name__}():` for each block"
            )
        self._block = _Block(self._mode, _grad_block.get())
        self._token = _grad_block.set(self._block)
        with _blocks_lock:
            _blocks += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _blocks
        token, self._token = self._token, None
        self._block.active = False  # type: ignore[union-attr]
        with _blocks_lock:
            _blocks -= 1
        _grad_block.reset(token)  # type: ignore[arg-type]

    def __call__(self, func: F) -> F:
        """Decorate `func` (``@no_grad()``): it runs with the mode set, in its own block."""
        return type(self)._decorate(func)

    @classmethod
    def _decorate(cls, func: F) -> F:
        if not callable(func):
            raise TypeError(f"{cls.__name__}: expected a function to decorate, got {func!r}")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with cls():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class enable_grad(no_grad):  # noqa: N801
    """Record the graph inside, even within ``no_grad`` (as PyTorch's); also a decorator."""

    __slots__ = ()
    _mode = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector inside the block; restore the caller's setting.

    Graphs of Values hold no reference cycles and are freed by reference
    counting alone, so the collector has nothing to find in them -- but it still
    walks every live node, again and again, while a large graph is being built.
    Pausing it around the building of a large graph (``optimizer.step(closure)``
    in nn, ``grad``, ``jacobian``, ``hessian`` and ``trace`` do so) loses nothing
    of autodiff's. Drop the graph before the block ends: the first collection
    after it would otherwise walk every node that is still alive.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def as_float(x: object, where: str) -> float:
    """The float of a real number; TypeError naming `where` for anything else, and
    OverflowError naming it for a number too large for a float (an int of 10**400)."""
    if type(x) is float:
        return x  # type: ignore[return-value]
    if isinstance(x, numbers.Real):
        try:
            return float(x)
        except OverflowError:
            raise OverflowError(
                f"{where}: {shown(x)} is too large for a float (the largest is 1.8e308)"
            ) from None
    raise TypeError(
        f"{where}: expected a real number (int or float), got {type(x).__name__} {shown(x)}"
    )


def shown(x: object, limit: int = 60) -> str:
    """``repr(x)`` for an error message, cut to about `limit` characters; an int too long to
    print (Python refuses ints of over 4,300 digits) is described by its size instead."""
    if isinstance(x, int) and x.bit_length() > 4000:
        return f"an int of {x.bit_length()} bits"
    text = repr(x)
    return text if len(text) <= limit else f"{text[: limit - 12]}…{text[-10:]} ({len(text)} chars)"


def _check_label(label: object, where: str) -> str:
    if type(label) is not str:
        raise TypeError(f"{where}: label must be a str, got {type(label).__name__} {label!r}")
    return label  # type: ignore[return-value]


class Value:
    """A scalar node of a computational graph.

    Attributes:
        data: the number (a float).
        grad: ∂root/∂self after ``root.backward()``; 0.0 before.
        label: a name for display (settable, a str).
        op: the name of the operation that produced this Value, "" for a leaf.
        parents: the Values it was computed from (empty for a leaf).
        local_grads: ∂self/∂parent for each parent, as floats.

    ``==`` and ``hash`` are identity, as for any object (and as PyTorch tensors'
    hash): Values are dictionary keys throughout autodiff (gradients by node),
    so ``a == b`` compares the nodes, not the numbers -- compare ``a.data``.
    """

    __slots__ = (
        "_data",
        "_grad",
        "_label",
        "op",
        "_p0",
        "_p1",
        "_d0",
        "_d1",
        "_uses",
        "__weakref__",
    )

    _grad: float
    op: str
    _label: str
    _data: float
    _p0: Value | tuple[Value, ...] | None  # a tuple only for dot
    _p1: Value | None
    _d0: Any  # float, or a tuple of floats for dot
    _d1: float
    _uses: int

    def __init__(self, data: Number, label: str = "") -> None:
        self._label = _check_label(label, "Value")
        self._data = as_float(data, "Value")
        self._grad = 0.0
        self.op = ""
        self._p0 = self._p1 = None
        self._uses = 0
        if _observers:
            _note_leaf(self)

    @property
    def label(self) -> str:
        """A name for display (the renders show it); any str."""
        return self._label

    @label.setter
    def label(self, label: str) -> None:
        self._label = _check_label(label, "Value.label")

    @property
    def parents(self) -> tuple[Value, ...]:
        """The Values this one was computed from, in the operation's order."""
        p0 = self._p0
        if p0 is None:
            return ()
        if isinstance(p0, tuple):  # dot
            return p0
        p1 = self._p1
        return (p0,) if p1 is None else (p0, p1)

    @property
    def local_grads(self) -> tuple[float, ...]:
        """∂self/∂parent for each of ``parents``: this node's row of the Jacobian."""
        if _observers:
            _observe(self, "local_grads")
        p0 = self._p0
        if p0 is None:
            return ()
        if type(p0) is tuple:  # dot
            return self._d0  # type: ignore[no-any-return]
        return (self._d0,) if self._p1 is None else (self._d0, self._d1)

    def __repr__(self) -> str:
        label = f", label={self._label!r}" if self._label else ""
        op = f", op={self.op!r}" if self.op else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{label}{op})"

    @property
    def data(self) -> float:
        """The number held, a float. Settable (optimizers do), to a real number only."""
        if _observers:  # only while autodiff.trace runs a function, in some thread
            _observe(self, ".data")
        if _newer:  # a Lease holds newer numbers than the Values': bring them home first
            _settle_all()
        return self._data

    @data.setter
    def data(self, value: Number) -> None:
        x = as_float(value, "Value.data")
        if _leased:
            _write(self, x)
        else:
            self._data = x

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        """What pickle and copy take: the slots, with any leased numbers brought home."""
        if _newer:
            _settle_all()
        return None, {k: getattr(self, k) for k in _PICKLED if hasattr(self, k)}

    @property
    def grad(self) -> float:
        """∂root/∂self after ``root.backward()`` (0.0 before); settable, to a real number."""
        if _newer:
            _settle_all()
        return self._grad

    @grad.setter
    def grad(self, value: Number) -> None:
        x = value if type(value) is float else as_float(value, "Value.grad")
        if _newer:
            _settle_all()
        self._grad = x

    # -- the number, taken out -------------------------------------------------------
    # Each of these ends the graph: what is computed from the number is a constant to
    # autodiff. Inside a rule's `local` evaluated on Values (a derivative that will be
    # differentiated again) that would freeze the derivative without a word, so there
    # they raise instead (see local_on_values).

    def __float__(self) -> float:
        if _in_local.get() is not None:
            _number_taken(self, "float() (or a math.* function)")
        return self.data

    def __int__(self) -> int:
        if _in_local.get() is not None:
            _number_taken(self, "int()")
        return int(self.data)

    def __trunc__(self) -> int:
        if _in_local.get() is not None:
            _number_taken(self, "math.trunc()")
        return math.trunc(self.data)

    def __floor__(self) -> int:
        if _in_local.get() is not None:
            _number_taken(self, "math.floor()")
        return math.floor(self.data)

    def __ceil__(self) -> int:
        if _in_local.get() is not None:
            _number_taken(self, "math.ceil()")
        return math.ceil(self.data)

    def __round__(self, ndigits: int | None = None) -> float | int:
        if _in_local.get() is not None:
            _number_taken(self, "round()")
        return round(self.data, ndigits)

    def __bool__(self) -> bool:
        """True unless the number is 0, as for a number (and a PyTorch scalar)."""
        return self.data != 0.0

    def __format__(self, spec: str) -> str:
        """Format the number: ``f"{loss:.4f}"``; an empty spec gives ``str(value)``."""
        return format(self.data, spec) if spec else str(self)

    def item(self) -> float:
        """The number held, as a float (PyTorch's name for it)."""
        return self.data

    # -- arithmetic ---------------------------------------------------------

    # + and × make most of the nodes of a network, so they record their node
    # in place (one call fewer each); their derivatives still come from RULES,
    # and their overflow check is the one of rules.overflow.

    def __add__(self, other: Value | Number) -> Value:
        if type(other) is not Value:
            other = _lift(other, _ADD)
        if _newer:
            _settle_all()
        a = self._data
        b = other._data  # type: ignore[union-attr]
        out = a + b
        if out - out:  # not finite: an overflow raises, an inf or nan input propagates
            overflow("add", "+", (a, b), out)
        v = _new(Value)
        v._data = out
        v._grad = 0.0
        v._label = ""
        v._uses = 0
        if not _blocks or _recording():
            v.op = "add"
            v._p0 = self
            v._p1 = other  # type: ignore[assignment]
            v._d0, v._d1 = _add_local(a, b, out)
        else:
            v.op = ""
            v._p0 = v._p1 = None
            if _observers:
                _note_unrecorded(v, (self, other))
        return v

    __radd__ = __add__  # a + b = b + a; only the order the parents are drawn in differs

    def __mul__(self, other: Value | Number) -> Value:
        if type(other) is not Value:
            other = _lift(other, _MUL)
        if _newer:
            _settle_all()
        a = self._data
        b = other._data  # type: ignore[union-attr]
        out = a * b
        if out - out:
            overflow("mul", "×", (a, b), out)
        v = _new(Value)
        v._data = out
        v._grad = 0.0
        v._label = ""
        v._uses = 0
        if not _blocks or _recording():
            v.op = "mul"
            v._p0 = self
            v._p1 = other  # type: ignore[assignment]
            v._d0, v._d1 = _mul_local(a, b, out)
        else:
            v.op = ""
            v._p0 = v._p1 = None
            if _observers:
                _note_unrecorded(v, (self, other))
        return v

    __rmul__ = __mul__  # a × b = b × a

    def __pos__(self) -> Value:
        return self

    # Every other operator and function is the rule table's: installed below the class
    # from each Rule's `method` (and `doc`). These declarations are for type checkers.
    if TYPE_CHECKING:

        def __sub__(self, other: Value | Number) -> Value: ...
        def __rsub__(self, other: Number) -> Value: ...
        def __truediv__(self, other: Value | Number) -> Value: ...
        def __rtruediv__(self, other: Number) -> Value: ...
        def __pow__(self, other: Value | Number) -> Value: ...
        def __rpow__(self, other: Number) -> Value: ...
        def __neg__(self) -> Value: ...
        def __abs__(self) -> Value: ...
        def exp(self) -> Value: ...
        def log(self) -> Value: ...
        def sqrt(self) -> Value: ...
        def tanh(self) -> Value: ...
        def sigmoid(self) -> Value: ...
        def softplus(self) -> Value: ...
        def relu(self) -> Value: ...

    # -- what the rules call on a Value (see autodiff.rules) -------------------

    def _power(self, e: Value | Number) -> Value:
        """self ** e with IEEE semantics (rules.power): the power inside a derivative."""
        other = e if type(e) is Value else _lift(e, _POW)
        a, b = self._data, other._data  # type: ignore[union-attr]
        out = pow_ieee(a, b)
        if _blocks and not _recording():
            return _leaf(out)
        return _node(out, "pow", self, other, *_POW.local(a, b, out))  # type: ignore[arg-type]

    def _number(self) -> float:
        """rules.number on a Value: its float, read by a rule that branches on it (pow)."""
        if _observers:
            _observe(self, "a branch on its value (pow's derivative under create_graph=True)")
        return self._data

    def _select(self, neg: Any, zero: Any, pos: Any) -> Any:
        """rules.select on a Value: the branch its data takes (a decision on the number)."""
        if _observers:
            _observe(self, "a branch on its value (relu, abs or pow under create_graph=True)")
        x = self._data
        if x != x:  # NaN: a derivative that stays NaN however often it is differentiated
            return (self * x).exp()
        return select_float(x, neg, zero, pos)

    # -- back-propagation -----------------------------------------------------

    def backward(self, gradient: float = 1.0) -> None:
        """Fill in ``.grad`` of every Value this one depends on, by back-propagation.

        The root is seeded with ``gradient`` (1.0: the derivative of itself; a
        real number, TypeError otherwise). Leaves (Values with no parents)
        accumulate across calls, as in PyTorch; every interior node's gradient is
        recomputed from scratch, so a second call adds exactly the same amounts
        to the leaves again. If anything interrupts the pass (KeyboardInterrupt,
        MemoryError), every ``.grad`` is left as it was before the call.

        No recursion: the nodes are visited in :func:`topological_order`'s order
        (Kahn's algorithm), root first, so that a node's gradient is complete before
        it is passed on, one line of chain rule per edge: ``parent.grad += local *
        grad``. The hot path, so the sort is fused with the chain rule here: two
        passes over the graph instead of four (1.4× faster on a 10⁵-node chain). Every
        other path runs the one shared evaluator, :func:`autodiff.functional.chain_rule`,
        and tests/test_program.py pins this loop to it bit for bit, every node's gradient.
        """
        if type(gradient) is not float:
            gradient = as_float(gradient, "backward: gradient")
        if _observers:
            _observe(self, "backward()")
        if _newer:  # leaves' gradients are added to: bring any held elsewhere home first
            _settle_all()
        with backward_lock:
            self._backward(gradient)

    def _backward(self, gradient: float) -> None:
        p: Any  # a parent, or dot's tuple of parents: one local for speed in the loops below
        seen = [self]  # every node, once
        saved = [self._grad]  # the gradient each held before, to restore on error
        held = []  # leaves and the gradient they held before this pass
        if self._p0 is None:
            held.append((self, self._grad))
        stack = [self]
        try:
            while stack:
                node = stack.pop()  # leaves are not stacked (but the root may be one)
                ps = node._p0
                for p in ps if type(ps) is tuple else (ps, node._p1):
                    if p is None:
                        break
                    n = p._uses
                    if n == 0:
                        seen.append(p)
                        saved.append(p._grad)
                        if p._p0 is None:
                            held.append((p, p._grad))
                        else:
                            stack.append(p)
                        p._grad = 0.0
                    p._uses = n + 1
            self._grad = gradient
            ready: list[Value] = [self] if self._p0 is not None else []
            while ready:
                node = ready.pop()
                g = node._grad
                p = node._p0
                if type(p) is tuple:  # dot: many parents
                    for p, local in zip(p, node._d0):  # noqa: B020
                        p._grad += local * g
                        n = p._uses - 1
                        p._uses = n
                        if n == 0 and p._p0 is not None:
                            ready.append(p)
                    continue
                p._grad += node._d0 * g
                n = p._uses - 1
                p._uses = n
                if n == 0 and p._p0 is not None:
                    ready.append(p)
                p = node._p1
                if p is not None:
                    p._grad += node._d1 * g
                    n = p._uses - 1
                    p._uses = n
                    if n == 0 and p._p0 is not None:
                        ready.append(p)
            # Each leaf's contributions were summed on their own; add what it held
            # once, so that a repeated pass adds the very same float again:
            # backward() twice is exactly 2×, not 2× ± rounding.
            for leaf, before in held:
                leaf._grad += before
        except BaseException:  # e.g. KeyboardInterrupt: put every gradient back
            for node, before in zip(seen, saved):
                node._grad = before
                node._uses = 0
            raise


def topological_order(root: Value) -> list[Value]:
    """Every Value `root` depends on, root first, each before all of its parents.

    The one topological sort of the project: ``grad``, the traces (which add up each
    gradient in this order, so with backward's rounding) and the renders use it, and
    ``backward`` visits the nodes in this order too (fused with its chain rule, for
    speed). It changes nothing it is given.
    """
    with backward_lock:
        return _kahn(root)


def _kahn(root: Value) -> list[Value]:
    """Kahn's algorithm, iterative, counting in the nodes' ``_uses`` slots (faster than a
    dict; the caller holds backward_lock). The first pass counts how often each node is
    used as a parent within this graph, the second releases a node once all its users
    are out. Every count is back to 0 when it returns, also on error."""
    p: Any
    p0: Any
    stack = [root]
    seen = [root]
    try:
        while stack:
            node = stack.pop()
            p0 = node._p0
            if p0 is None:
                continue
            for p in p0 if type(p0) is tuple else ((p0,) if node._p1 is None else (p0, node._p1)):
                n = p._uses
                if n == 0:
                    seen.append(p)
                    stack.append(p)
                p._uses = n + 1
        order = []
        ready = [root]
        while ready:
            node = ready.pop()
            order.append(node)
            p0 = node._p0
            if p0 is None:
                continue
            for p in p0 if type(p0) is tuple else ((p0,) if node._p1 is None else (p0, node._p1)):
                n = p._uses - 1
                p._uses = n
                if n == 0:
                    ready.append(p)
    except BaseException:
        for v in seen:
            v._uses = 0
        raise
    return order


# -- recording a node ---------------------------------------------------------

_new = object.__new__


def _leaf(data: float) -> Value:
    """A new leaf holding `data` (a float), with no label."""
    v = _new(Value)
    v._data = data
    v._grad = 0.0
    v._label = v.op = ""
    v._p0 = v._p1 = None
    v._uses = 0
    if _observers:
        _note_leaf(v)
    return v


def _node(out: float, op: str, p0: Any, p1: Value | None, d0: Any, d1: float) -> Value:
    """A new Value `out`, made by `op` from p0 (and p1) with local derivatives d0 (and d1)."""
    v = _new(Value)
    v._data = out
    v._grad = 0.0
    v._label = ""
    v._uses = 0
    v.op = op
    v._p0 = p0
    v._p1 = p1
    v._d0 = d0
    v._d1 = d1
    return v


def _lift(x: object, rule: Rule) -> Value:
    """A number as a leaf Value (the constant of ``x * 2``); TypeError naming `rule`."""
    if type(x) is Value:
        return x  # type: ignore[return-value]
    if type(x) is float:
        return _leaf(x)  # type: ignore[arg-type]
    if isinstance(x, numbers.Real):
        return _leaf(as_float(x, f"{rule.name} ({rule.symbol})"))
    raise TypeError(
        f"{rule.name} ({rule.symbol}): expected a Value or a real number (int or float), "
        f"got {type(x).__name__} {shown(x)}"
    )


def _apply(rule: Rule, args: tuple[Value, ...]) -> Value:
    """Record one operation: the one path every operation takes -- a built-in or a user's
    (:func:`op`), called as a function, a method or an operator (``+`` and ``×`` are
    written out in the class for speed, with this path's checks and the same numbers;
    tests/test_user_ops.py pins every way of calling every rule to the same bits and
    the same errors).

    The numeric policy, for every rule: the result is stored as a float (TypeError
    naming the rule for a result that is not a real number); finite inputs that give
    ±inf raise OverflowError, and NaN ValueError, naming the operation and its inputs
    (:func:`~autodiff.rules.overflow`); the local derivatives are floats, one per input.
    """
    if _newer:
        _settle_all()
    arity = rule.n_inputs
    if arity == 1:  # most operations: the same steps as below, without packing the inputs
        a = args[0]
        x = a._data
        out = rule.forward(x)
        if type(out) is not float or out - out:  # not a float, or not finite
            out = _checked(rule, (x,), out)
        if _blocks and not _recording():
            return _unrecorded(out, args)
        d = rule.local(x, out)
        try:
            (d0,) = d
        except ValueError:
            raise ValueError(f"{rule.name}: local gave {len(d)} derivatives for 1 input") from None
        if type(d0) is not float:
            d0 = as_float(d0, f"{rule.name}: its local derivative")
        return _node(out, rule.name, a, None, d0, 0.0)
    if arity == 2:
        a, b = args
        x, y = a._data, b._data
        out = rule.forward(x, y)
        if type(out) is not float or out - out:
            out = _checked(rule, (x, y), out)
        if _blocks and not _recording():
            return _unrecorded(out, args)
        d = rule.local(x, y, out)
        try:
            d0, d1 = d
        except ValueError:
            raise ValueError(f"{rule.name}: local gave {len(d)} derivatives for 2 inputs") from None
        if type(d0) is not float or type(d1) is not float:
            d0 = as_float(d0, f"{rule.name}: its local derivative")
            d1 = as_float(d1, f"{rule.name}: its local derivative")
        return _node(out, rule.name, a, b, d0, d1)
    data = tuple([a._data for a in args])  # any number of inputs: dot, logsumexp, pick
    out = rule.forward(*data)
    if type(out) is not float or out - out:
        out = _checked(rule, data, out)
    if _blocks and not _recording():
        return _unrecorded(out, args)
    d = rule.local(*data, out)
    if len(d) != len(data):
        raise ValueError(f"{rule.name}: local gave {len(d)} derivatives for {len(data)} inputs")
    if rule.name not in _BUILTIN and not all(type(x) is float for x in d):  # (built-ins'
        d = tuple([as_float(x, f"{rule.name}: its local derivative") for x in d])  # are)
    return _node(out, rule.name, args, None, tuple(d), 0.0)


def _unrecorded(out: float, operands: Sequence[Value]) -> Value:
    """The result of an operation run without recording (no_grad): a leaf."""
    v = _leaf(out)
    if _observers:
        _note_unrecorded(v, operands)
    return v


def _checked(rule: Rule, data: Sequence[float], out: object) -> float:
    """The numeric policy on a result that is not a finite float: a real number becomes
    a float (TypeError naming the rule otherwise); a non-finite result from finite
    inputs raises (OverflowError for ±inf, ValueError for NaN); from inf or nan inputs it
    stands."""
    x = out if type(out) is float else as_float(out, f"{rule.name}: the result of its forward")
    if x - x:
        overflow(rule.name, rule.symbol, data, x)
    return x  # type: ignore[return-value]


# -- the rule table: adding operations ---------------------------------------------------

# op() changes the table and Value's methods together, under one lock: two threads are
# never both granted one name. Readers (traces) take a snapshot of the table (dict(RULES),
# atomic), so none sees it half-updated.
_registry_lock = threading.Lock()
# the user operations that have computed something: Values recorded with them (and traces
# of those) may be alive, so their rule is theirs for good -- replace= is refused for them
_used: set[str] = set()


def op(rule: Rule, *, replace: bool = False) -> Callable[..., Any]:
    """Add an operation: `rule` (a :class:`~autodiff.rules.Rule`) is checked, entered in
    the rule table, and returned as a function of Values and numbers.

    A name already taken is refused -- unless ``replace=True``, it was taken by an
    operation added with ``op`` (a built-in never is), and that operation has not
    computed anything yet (re-running a notebook cell before using it). Once it has,
    Values recorded with it may be alive, and their derivatives -- at every order, in
    every trace -- must stay its rule's: restart, or give the new rule another name.
    With ``rule.method`` set, Values get that method too (``x.log1p()``); a name Value
    already answers to (its own methods, and those it inherits from ``object``, such as
    ``__hash__`` or ``__reduce_ex__``) is refused.

    The operation then works like a built-in one everywhere: ``backward``, ``grad`` at
    every order, ``hessian``, ``trace`` (straight-line and grouped code: the eager
    numbers bit for bit), batched traces (through ``rule.array``, or ``forward`` mapped
    over numpy arrays element by element), the renders (``rule.symbol``), ``gradcheck``.
    On numbers alone it returns a float; with a Value among its inputs, a Value. It is
    recorded by the path every operation takes, with the same checks: an overflow from
    finite inputs raises OverflowError, a NaN from finite inputs ValueError.

    >>> import math
    >>> from autodiff import Rule, Value, op
    >>> log1p = op(Rule("log1p_doc", "log1p", math.log1p, lambda a, out: (1 / (1 + a),)))
    >>> x = Value(1.0)
    >>> log1p(x).backward(); x.grad
    0.5
    """
    if not isinstance(rule, Rule):
        raise TypeError(f"op: expected a Rule, got {type(rule).__name__} {shown(rule)}")
    rule.check()
    methods = _methods(rule, user=True)  # rule.method, if the user gave one: x.log1p()
    with _registry_lock:
        taken = RULES.get(rule.name)
        if taken is not None:
            if not replace or rule.name in _BUILTIN:
                raise ValueError(
                    f"op: the name {rule.name!r} is taken (by the operation drawn as "
                    f"{taken.symbol!r}); give the rule another name"
                )
            if rule.name in _used:
                raise ValueError(
                    f"op: {rule.name!r} has already computed something: Values recorded "
                    "with it may be alive, and their derivatives (at every order, in every "
                    "trace) must stay its rule's. Give the new rule another name, or start "
                    "a new session (restart the kernel) to redefine it"
                )
        for name in methods:
            held = getattr(Value.__dict__.get(name), "rule", None)
            mine = taken is not None and held is taken and name in Value.__dict__
            if hasattr(Value, name) and not mine:
                raise ValueError(
                    f"op: Value already answers to {name!r} (a method of its own or one "
                    f"it inherits); give the rule {rule.name!r} another method name"
                )
        if taken is not None:  # the replaced rule's methods go with it
            for name, fn in list(Value.__dict__.items()):
                if getattr(fn, "rule", None) is taken:
                    delattr(Value, name)
        RULES[rule.name] = rule
        for name, fn in methods.items():
            setattr(Value, name, fn)
    arity = rule.arity
    name = rule.name

    def apply(*args: Value | Number) -> Any:
        if arity is not None and len(args) != arity:
            raise TypeError(f"{name}: takes {arity} input(s), got {len(args)}")
        _used.add(name)
        for a in args:
            if type(a) is not Value and not isinstance(a, numbers.Real):
                symbolic = getattr(a, "_rule_call", None)  # a formula or a trace's symbol
                if symbolic is not None:
                    return symbolic(rule, args)
        lifted = [a if type(a) is Value else _lift(a, rule) for a in args]
        if any(type(a) is Value for a in args):
            return _apply(rule, tuple(lifted))
        # numbers in, a number out: the forward and _apply's checks, no derivatives (a
        # local may call this very operation on numbers: a sin whose local calls a cos)
        data = [a._data for a in lifted]
        out = rule.forward(*data)
        return out if type(out) is float and not out - out else _checked(rule, data, out)

    apply.__name__ = apply.__qualname__ = name
    apply.__doc__ = f"The operation {name!r} ({rule.symbol}), added with autodiff.op."
    apply.rule = rule  # type: ignore[attr-defined]
    return apply


def logsumexp(zs: Sequence[Value | Number]) -> Value:
    """log Σᵢ e^zsᵢ as one node, stable for every finite z (shifted by the largest).

    Its derivatives are the softmax, e^(zᵢ − out); with :func:`pick` it makes the softmax
    cross-entropy, log Σ e^z − z_y (:func:`nn.losses.cross_entropy`).
    """
    if len(zs) == 0:
        raise ValueError("logsumexp: no scores (an empty sequence)")
    return _apply(_LSE, tuple([z if type(z) is Value else _lift(z, _LSE) for z in zs]))


def pick(zs: Sequence[Value | Number], y: Value | Number) -> Value:
    """zs[y], the score of class y, as one node; y may be a Value (a traced label).

    ValueError unless y is an integer index into zs. Its derivative is 1 for zs[y], 0
    for the other scores and for y: choosing an entry is an operation of the graph,
    not a decision of Python's, so a trace replays it for any label.
    """
    if len(zs) == 0:
        raise ValueError("pick: no scores (an empty sequence)")
    args = [y if type(y) is Value else _lift(y, _PICK)]
    args += [z if type(z) is Value else _lift(z, _PICK) for z in zs]
    return _apply(_PICK, tuple(args))


def nll(zs: Sequence[Value | Number], y: Value | Number) -> Value:
    """−log softmax(zs)[y] = log Σₖ e^(zsₖ − zs_y), one sample's softmax cross-entropy with
    the class y, as one node (y may be a Value: a traced label).

    Exact for every finite score whose loss is a float (shifted by the label's own score:
    log 2 for zs = (1e300, 1e300)); its derivatives are softmax(zs) − one-hot(y). Scores
    that are not finite follow PyTorch's ``cross_entropy``: −inf at the label's class
    gives +inf with the gradient softmax − one-hot, a NaN or a +inf score NaN.
    ValueError unless y is a class index.
    """
    if len(zs) == 0:
        raise ValueError("nll: no scores (an empty sequence)")
    args = [y if type(y) is Value else _lift(y, _NLL)]
    args += [z if type(z) is Value else _lift(z, _NLL) for z in zs]
    return _apply(_NLL, tuple(args))


def dot(
    ws: Sequence[Value | Number], xs: Sequence[Value | Number], bias: Value | Number = 0.0
) -> Value:
    """bias + Σᵢ wsᵢ·xsᵢ as a single node: a neuron's weighted sum.

    The same value and gradients as the chain of ``*`` and ``+`` it replaces
    (summed left to right, rounding as that chain does), with 2n fewer nodes to
    build, store and walk. Numbers are taken as constants.
    """
    rule = _DOT
    if len(ws) != len(xs):
        raise ValueError(f"dot: {len(ws)} weights but {len(xs)} inputs")
    args = (
        bias if type(bias) is Value else _lift(bias, rule),
        *[w if type(w) is Value else _lift(w, rule) for w in ws],
        *[x if type(x) is Value else _lift(x, rule) for x in xs],
    )
    return _apply(rule, args)


# -- what autodiff.trace watches ------------------------------------------------------


def _observe(v: Value, what: str) -> None:
    """A number of `v` was used to decide something (`what`): tell this thread's trace."""
    obs = _observer.get()
    if obs is not None:
        obs.decision(v, what)


def _note_leaf(v: Value) -> None:
    """A leaf was made: tell this thread's trace (leaves made inside it are its constants)."""
    obs = _observer.get()
    if obs is not None:
        obs.leaf(v)


def _note_unrecorded(v: Value, operands: Sequence[Value]) -> None:
    """An operation ran without recording (no_grad): tell this thread's trace."""
    obs = _observer.get()
    if obs is not None:
        obs.unrecorded(v, operands)


@contextmanager
def observed(observer: Any) -> Iterator[None]:
    """Run the block with `observer` watching this thread's Values (autodiff.trace)."""
    global _observers
    token = _observer.set(observer)
    with _observers_lock:
        _observers += 1
    try:
        yield
    finally:
        with _observers_lock:
            _observers -= 1
        _observer.reset(token)


# -- Value's methods, from the rule table ---------------------------------------------


def _methods(rule: Rule, user: bool = False) -> dict[str, Callable[..., Value]]:
    """The Value methods that apply `rule` through :func:`_apply`: ``rule.method`` (a
    binary operator also its reflected form), each carrying its rule as ``.rule``. A
    `user` rule's methods also mark it used (see :func:`op`)."""
    name = rule.method
    methods: dict[str, Callable[..., Value]]
    if not name:
        return {}
    if rule.arity == 1:
        if user:

            def unary(self: Value) -> Value:
                _used.add(rule.name)
                return _apply(rule, (self,))

        else:

            def unary(self: Value) -> Value:
                return _apply(rule, (self,))

        methods = {name: unary}
    elif rule.arity == 2 and name.startswith("__"):

        def binary(self: Value, other: Value | Number) -> Value:
            if user:
                _used.add(rule.name)
            return _apply(rule, (self, other if type(other) is Value else _lift(other, rule)))

        def reflected(self: Value, other: Number) -> Value:
            if user:
                _used.add(rule.name)
            return _apply(rule, (other if type(other) is Value else _lift(other, rule), self))

        methods = {name: binary, "__r" + name[2:]: reflected}
    else:
        raise ValueError(f"Rule {rule.name!r}: no Value method {name!r} at its arity")
    for method_name, fn in methods.items():
        fn.__name__ = method_name
        fn.__qualname__ = f"Value.{method_name}"
        fn.__doc__ = rule.doc or f"The operation {rule.name!r} ({rule.symbol})."
        fn.rule = rule  # type: ignore[attr-defined]
    return methods


for _rule in RULES.values():
    for _name, _fn in _methods(_rule).items():
        if _name not in Value.__dict__:  # the class writes out + and × itself (inlined)
            setattr(Value, _name, _fn)

_ADD, _MUL, _POW = RULES["add"], RULES["mul"], RULES["pow"]  # the inlined + and ×; _power
_add_local = _ADD.local
_mul_local = _MUL.local
_DOT, _LSE, _PICK, _NLL = RULES["dot"], RULES["logsumexp"], RULES["pick"], RULES["nll"]
_PICKLED = ("_data", "_grad", "_label", "op", "_p0", "_p1", "_d0", "_d1", "_uses")
_BUILTIN = frozenset(RULES)  # the operations no op() may replace
assert all(rule.arity in (1, 2, None) for rule in RULES.values()), "see Layout"
