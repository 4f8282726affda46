"""Modules: ``Module``, and the ``Neuron``, ``Layer`` and ``MLP`` built on it.

A :class:`Module` finds its parameters the way PyTorch's does: every Value, every
sub-module, and every list or tuple of either that is assigned as an attribute
is registered, in the order of assignment. ``parameters()`` walks them and lists
each distinct Value once (a weight shared by two layers -- *tied* -- is one
parameter), ``named_parameters()`` gives each its dotted name
(``layers.0.neurons.3.w.1``), and ``state_dict()`` / ``load_state_dict()`` save
and restore their numbers as a plain dictionary of floats and lists (see
:mod:`nn.serialize` for files). A subclass needs no ``super().__init__()``, and
defines ``forward``: calling the module calls it.

There is no ``train()``/``eval()`` difference to worry about: nothing here
(no dropout, no batch norm) behaves differently in training; both methods exist,
set ``training``, and change nothing else, so PyTorch-style loops run as they are.

Initialisation is scaled to the fan-in ``nin`` so that a layer's outputs start
with about the variance of its inputs, whatever its width:

* relu: He (Kaiming) uniform, w ~ U(−√(6/nin), √(6/nin)), variance 2/nin: relu
  zeroes about half of its inputs, and the factor 2 makes up for that;
* tanh, sigmoid, linear: LeCun uniform, w ~ U(−√(3/nin), √(3/nin)), variance 1/nin.

Biases start at 0, except in relu units, which start at 0.1: a relu unit whose
pre-activation is exactly 0 on a sample gets no gradient from it (relu'(0) = 0),
and with zero biases that is every unit on the input (0, 0) -- XOR's first
sample. With 0.1 every unit starts active there. (On XOR with 8 hidden units
this takes the seeds solved from 93/100 to 100/100.)

Every random number comes from one ``random.Random``, made from ``seed`` or
passed in as ``rng``, so a model is reproducible.
"""

from __future__ import annotations

import math
import numbers
import random
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from autodiff import Value, dot
from autodiff.engine import shown

__all__ = [
    "ACTIVATIONS",
    "RELU_BIAS",
    "MLP",
    "Layer",
    "LoadResult",
    "Member",
    "Module",
    "Neuron",
    "check_plain_stack",
]

Input = Sequence["Value | float"]
State = dict[str, "float | list[float]"]

#: The initial bias of a relu unit (see the module docstring).
RELU_BIAS = 0.1


def _identity(v: Value) -> Value:
    """The linear activation: the pre-activation as it is."""
    return v


#: Activation name -> function of a Value (module-level functions: models pickle).
ACTIVATIONS: dict[str, Callable[[Value], Value]] = {
    "relu": Value.relu,
    "tanh": Value.tanh,
    "sigmoid": Value.sigmoid,
    "linear": _identity,
}


def _activation(name: object, where: str) -> Callable[[Value], Value]:
    try:
        return ACTIVATIONS[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(
            f"{where}: unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


def _rng(seed: int | None, rng: random.Random | None, where: str) -> random.Random:
    if rng is not None and seed is not None:
        raise ValueError(f"{where}: give seed= or rng=, not both")
    if rng is not None and not isinstance(rng, random.Random):
        raise TypeError(f"{where}: rng must be a random.Random, got {type(rng).__name__}")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise TypeError(f"{where}: seed must be an int, got {type(seed).__name__} {seed!r}")
    return rng if rng is not None else random.Random(seed)


def _check_size(n: object, what: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"{what} must be a positive int, got {type(n).__name__} {n!r}")
    if n < 1:
        raise ValueError(f"{what} must be a positive int, got {n!r}")
    return n


def _registrable(value: object) -> bool:
    if isinstance(value, (Value, Module)):
        return True
    return isinstance(value, (list, tuple)) and any(isinstance(v, (Value, Module)) for v in value)


# Module.bound changes the model in place: one thread at a time (reentrant: a bound
# block may bind again).
_BINDING = threading.RLock()


def _check_not_bound_elsewhere(module: Module) -> None:
    """RuntimeError if another thread has `module` bound (its parameters substituted)."""
    owner = module.__dict__.get("_bound_by")
    if owner is not None and owner != threading.get_ident():
        raise RuntimeError(
            f"{type(module).__name__}: another thread has replaced its parameters with "
            "Module.bound (a trace is running there); use the model from that thread until "
            "it is done, or give each thread its own copy"
        )


class LoadResult(NamedTuple):
    """What ``load_state_dict(..., strict=False)`` did not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Member(NamedTuple):
    """One registered place of a module tree (see :meth:`Module.named_members`)."""

    #: the dotted name (``layers.0.neurons.3.w``)
    name: str
    #: the Module, list or tuple that holds it (None for the module walked from)
    holder: Any
    #: its attribute name in a Module, or its index in a list or tuple
    key: str | int | None
    #: a Module, a Value, a list or tuple of Values only (one entry), or a mixed list
    #: or tuple (whose items follow it)
    value: Any


def _is_vector(value: object) -> bool:
    """A list or tuple of Values only: one state entry, one list of numbers."""
    return isinstance(value, (list, tuple)) and all(type(v) is Value for v in value)


class Module:
    """Something with parameters, found from its attributes (see the module docstring)."""

    training: bool = True

    def __setattr__(self, name: str, value: object) -> None:
        registry = self.__dict__.setdefault("_registered", {})
        if _registrable(value) and not name.startswith("_"):
            registry[name] = None  # keeps the position of the first assignment
        else:
            registry.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__.get("_registered", {}).pop(name, None)
        object.__delattr__(self, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "_bound_by" in self.__dict__:
            _check_not_bound_elsewhere(self)
        return self.forward(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        """What pickle and copy take: the attributes (the Values pickle their current
        numbers themselves, also while compiled steps hold them)."""
        if "_bound_by" in self.__dict__:  # a copy made inside `bound` is not bound itself
            return {k: v for k, v in self.__dict__.items() if k != "_bound_by"}
        return self.__dict__

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """What calling the module computes; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    # -- what is registered: one walk, from which everything else derives ------------

    def named_members(self, prefix: str = "") -> Iterator[Member]:
        """Every registered place of the tree, this module first, depth first in
        assignment order: sub-modules, Values, lists and tuples (of Values only: one
        member; mixed: the container, then each of its Values, modules and lists).

        The one traversal of a module tree: ``parameters``, ``named_parameters``,
        ``modules``, ``state_dict``, ``load_state_dict`` and ``bound`` all read it.
        Iterative (no recursion, however deep the nesting). A tied weight appears at
        each of its places.
        """
        stack: list[Member] = [Member(prefix.removesuffix("."), None, None, self)]
        while stack:
            member = stack.pop()
            yield member
            obj = member.value
            if isinstance(obj, Module):
                d = obj.__dict__
                keys: list[Any] = list(d.get("_registered", ()))
                items = [(k, getattr(obj, k)) for k in keys]
                base = prefix if obj is self else f"{member.name}."
            elif isinstance(obj, (list, tuple)) and not _is_vector(obj):
                items = [
                    (i, v) for i, v in enumerate(obj) if isinstance(v, (Value, Module, list, tuple))
                ]
                base = f"{member.name}."
            else:
                continue
            stack.extend(Member(f"{base}{k}", obj, k, v) for k, v in reversed(items))

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Value]]:
        """(dotted name, Value) for each distinct parameter, in a fixed order.

        A Value registered in several places (a tied weight) is listed once, under
        the first name it is found by.
        """
        _check_not_bound_elsewhere(self)
        seen: set[int] = set()
        out: list[tuple[str, Value]] = []
        for name, _, _, value in self.named_members(prefix):
            if type(value) is Value:
                pairs = [(name, value)]
            elif _is_vector(value):
                pairs = [(f"{name}.{i}", v) for i, v in enumerate(value)]
            else:
                continue
            for n, v in pairs:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append((n, v))
        return out

    def parameters(self) -> list[Value]:
        """Every trainable Value of this module, each once, in ``named_parameters()``'s
        order (found without making the names)."""
        _check_not_bound_elsewhere(self)
        out: list[Value] = []
        for member in self.named_members():
            value = member.value
            if type(value) is Value:
                out.append(value)
            elif _is_vector(value):
                out.extend(value)
        return list(dict.fromkeys(out))  # a tied weight once, where it is first found

    def zero_grad(self) -> None:
        """Set every parameter's gradient to 0 (before the next backward pass)."""
        for p in self.parameters():
            p.grad = 0.0

    def train(self, mode: bool = True) -> Module:
        """Set ``training`` on this module and its sub-modules; nothing else changes."""
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self) -> Module:
        """``train(False)``: kept for PyTorch-style loops; computation is the same."""
        return self.train(False)

    def modules(self) -> Iterator[Module]:
        """This module and every module inside it (each sub-module, and theirs)."""
        for member in self.named_members():
            if isinstance(member.value, Module):
                yield member.value

    # -- substituting parameters (for autodiff.trace) --------------------------------

    @contextmanager
    def bound(self, values: Sequence[Value]) -> Iterator[Module]:
        """Use `values` as the parameters inside the block (in ``parameters()`` order).

        This makes a loss a function of the parameters, which is what
        ``autodiff.trace`` needs: ``with model.bound(ps): loss = ...``. A tied
        weight is replaced at every place it is used. The module's own
        parameters are back in place on exit.

        Threads: binding changes the model itself, so one thread binds at a time
        (another thread's ``bound`` waits), and while it does, using the model or any
        module inside it from another thread -- calling it, asking for its parameters
        -- raises RuntimeError instead of computing with the substituted Values.
        """
        with _BINDING:
            own = self.parameters()
            values = list(values)
            if len(values) != len(own):
                raise ValueError(f"bound: expected {len(own)} values, got {len(values)}")
            for i, v in enumerate(values):
                if not isinstance(v, Value):
                    raise TypeError(f"bound: values[{i}] must be a Value, got {type(v).__name__}")
            marked = [(m, m.__dict__.get("_bound_by")) for m in self.modules()]
            self._substitute({id(p): v for p, v in zip(own, values)})
            for m, _ in marked:
                m.__dict__["_bound_by"] = threading.get_ident()
            try:
                yield self
            finally:
                self._substitute({id(v): p for p, v in zip(own, values)})
                for m, before in marked:
                    if before is None:
                        m.__dict__.pop("_bound_by", None)
                    else:
                        m.__dict__["_bound_by"] = before

    def _substitute(self, mapping: dict[int, Value]) -> None:
        """Replace each registered Value whose id is in `mapping`, at every place it is
        held: lists in place, tuples rebuilt (a tuple inside a tuple too)."""
        rebuilt: dict[int, tuple[Any, ...]] = {}  # id(old tuple) -> its new tuple
        for _, holder, key, value in reversed(list(self.named_members())):  # items first
            if type(value) is Value:
                new: Any = mapping.get(id(value), value)
            elif isinstance(value, list):
                get = mapping.get
                value[:] = [get(id(v), v) if type(v) is Value else v for v in value]
                continue
            elif isinstance(value, tuple):
                items = [
                    rebuilt.get(id(v), v) if type(v) is not Value else mapping.get(id(v), v)
                    for v in value
                ]
                new = tuple(items) if any(a is not b for a, b in zip(items, value)) else value
            else:
                continue
            if new is value or holder is None:
                continue
            if isinstance(holder, Module):
                object.__setattr__(holder, key, new)  # type: ignore[arg-type]
            elif isinstance(holder, list):
                holder[key] = new  # type: ignore[index]
            else:  # a tuple: rebuilt when its own member comes (later in this order)
                rebuilt[id(value)] = new

    # -- state ------------------------------------------------------------------------

    def _state_entries(self) -> list[tuple[str, Any]]:
        """(name, Value or list/tuple of Values) for each state entry, in order."""
        return [
            (m.name, m.value)
            for m in self.named_members()
            if type(m.value) is Value or _is_vector(m.value)
        ]

    def state_dict(self) -> State:
        """The parameters' numbers: ``{dotted name: float, or list of floats}``.

        A list (or tuple) of Values is one entry holding a list; a single Value a
        float. Plain data: ``json.dumps`` writes it, and floats round-trip exactly.
        """
        out: State = {}
        for name, entry in self._state_entries():
            out[name] = [v.data for v in entry] if isinstance(entry, (list, tuple)) else entry.data
        return out

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Set the parameters from `state` (as ``state_dict()`` gives it).

        Every entry is checked before anything changes: a number where a list is
        expected, a list of the wrong length, or anything but real numbers raises
        (ValueError/TypeError naming the entry). With ``strict`` (the default),
        missing and unexpected names raise too; otherwise they are returned. A tied
        weight must get one number at all of its places.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict: expected a dict, got {type(state).__name__}")
        entries = dict(self._state_entries())
        missing = [k for k in entries if k not in state]
        unexpected = [k for k in state if k not in entries]
        if strict and (missing or unexpected):
            raise ValueError(
                f"load_state_dict: missing entries {missing}, unexpected entries {unexpected}"
            )
        updates: dict[int, tuple[Value, float, str]] = {}
        for name, entry in entries.items():
            if name not in state:
                continue
            given = state[name]
            if isinstance(entry, (list, tuple)):
                if not isinstance(given, (list, tuple)):
                    raise ValueError(
                        f"load_state_dict: {name!r} holds {len(entry)} numbers, got "
                        f"{type(given).__name__} {shown(given)}"
                    )
                if len(given) != len(entry):
                    raise ValueError(
                        f"load_state_dict: {name!r} holds {len(entry)} numbers, got {len(given)}"
                    )
                pairs = [(v, x, f"{name}[{i}]") for i, (v, x) in enumerate(zip(entry, given))]
            else:
                pairs = [(entry, given, name)]
            for v, x, where in pairs:
                f = _real(x, f"load_state_dict: {where!r}")
                prev = updates.get(id(v))
                if prev is not None and not (prev[1] == f or (prev[1] != prev[1] and f != f)):
                    raise ValueError(
                        f"load_state_dict: {prev[2]!r} and {where!r} are one (tied) parameter "
                        f"but get different numbers, {prev[1]!r} and {f!r}"
                    )
                updates[id(v)] = (v, f, where)
        for v, f, _ in updates.values():
            v.data = f
        return LoadResult(missing, unexpected)


def _real(x: object, where: str) -> float:
    """The float of a real number (not a bool); TypeError naming `where` otherwise, and
    ValueError for one too large for a float (an int of 10**400 in a file)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{where}: expected a real number, got {type(x).__name__} {shown(x)}")
    try:
        return float(x)
    except OverflowError:
        raise ValueError(f"{where}: {shown(x)} does not fit a float") from None


class Neuron(Module):
    """One unit: activation(w · x + b), the weighted sum being one ``dot`` node."""

    def __init__(
        self,
        nin: int,
        activation: str = "relu",
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.nin = _check_size(nin, "Neuron: nin")
        self.activation = activation
        self._act = _activation(activation, "Neuron")
        gen = _rng(seed, rng, "Neuron")
        bound = math.sqrt((6.0 if activation == "relu" else 3.0) / nin)
        self.w = [Value(gen.uniform(-bound, bound)) for _ in range(nin)]
        self.b = Value(RELU_BIAS if activation == "relu" else 0.0)

    def forward(self, x: Input) -> Value:
        """activation(b + Σ wᵢxᵢ) for one sample x."""
        if len(x) != self.nin:
            raise ValueError(f"Neuron: expected {self.nin} inputs, got {len(x)}")
        return self._act(dot(self.w, x, self.b))  # b + Σ wᵢxᵢ as one node

    def __repr__(self) -> str:
        return f"Neuron({self.nin}, activation={self.activation!r})"


class Layer(Module):
    """`nout` neurons reading the same `nin` inputs; returns a list of `nout` Values."""

    def __init__(
        self,
        nin: int,
        nout: int,
        activation: str = "relu",
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        _check_size(nin, "Layer: nin")
        _check_size(nout, "Layer: nout")
        _activation(activation, "Layer")
        gen = _rng(seed, rng, "Layer")
        self.nin, self.nout, self.activation = nin, nout, activation
        self.neurons = [Neuron(nin, activation, rng=gen) for _ in range(nout)]

    def forward(self, x: Input) -> list[Value]:
        """Each neuron's output for one sample x."""
        if len(x) != self.nin:
            raise ValueError(f"Layer: expected {self.nin} inputs, got {len(x)}")
        x = [v if type(v) is Value else Value(v) for v in x]  # type: ignore[arg-type]  # once
        return [n(x) for n in self.neurons]

    def __repr__(self) -> str:
        return f"Layer({self.nin}, {self.nout}, activation={self.activation!r})"


class MLP(Module):
    """A multi-layer perceptron: f(x) = lᴺ(… l²(l¹(x))), the lecture's L2.

    Args:
        nin: the number of inputs.
        nouts: the width of each layer, the last being the number of outputs
            (a list of positive ints: ``MLP(2, [16, 1])``).
        activation: of every hidden layer.
        output_activation: of the last layer ("linear" gives raw scores z).
        seed, rng: where the initial weights come from (one of them, or neither).

    Called on one sample, it returns a Value when there is one output, else a list.
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        activation: str = "relu",
        output_activation: str = "linear",
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        _check_size(nin, "MLP: nin")
        if not isinstance(nouts, (list, tuple)):
            raise TypeError(
                f"MLP: nouts must be a list of layer widths, such as [16, 1], got "
                f"{type(nouts).__name__} {nouts!r}"
            )
        if not nouts:
            raise ValueError("MLP: nouts must list at least one layer width")
        for i, n in enumerate(nouts):
            _check_size(n, f"MLP: nouts[{i}]")
        _activation(activation, "MLP")
        _activation(output_activation, "MLP")
        gen = _rng(seed, rng, "MLP")
        sizes = [nin, *nouts]
        acts = [activation] * (len(nouts) - 1) + [output_activation]
        self.nin = nin
        self.layers = [Layer(sizes[i], sizes[i + 1], acts[i], rng=gen) for i in range(len(nouts))]

    def hidden(self, x: Input) -> list[Value]:
        """The last hidden layer's output: the learned features h = φ(x) (the lecture's L7)."""
        if len(self.layers) < 2:
            raise ValueError("MLP.hidden: this MLP has no hidden layer")
        for layer in self.layers[:-1]:
            x = layer(x)
        return x  # type: ignore[return-value]

    def forward(self, x: Input) -> Value | list[Value]:
        """The network's output for one sample x."""
        if len(x) != self.nin:
            raise ValueError(f"MLP: expected {self.nin} inputs, got {len(x)}")
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x  # type: ignore[return-value]

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"MLP([{inner}])"


def check_plain_stack(model: MLP, who: str) -> None:
    """ValueError, naming `who` and the model's type, unless calling `model` runs its
    layers one after the other -- what a picture that draws the layers shows. A subclass
    with its own ``forward`` or ``__call__`` (or layers or neurons with their own)
    computes something such a picture could not show."""
    if not isinstance(model, MLP):
        raise TypeError(f"{who}: expected an MLP, got {type(model).__name__}")
    kinds: list[tuple[type, type]] = [(type(model), MLP)]
    for layer in model.layers:
        kinds += [(type(layer), Layer)] + [(type(n), Neuron) for n in layer.neurons]
    for kind, base in kinds:
        for method in ("forward", "__call__"):
            if getattr(kind, method) is not getattr(base, method):
                raise ValueError(
                    f"{who}: {kind.__name__} defines its own {method}, so what "
                    f"{type(model).__name__} computes is not the stack of layers this page "
                    "draws; draw a plain MLP with the same layers"
                )
