"""Parameters held in one array between the steps of a compiled batch step.

A wide network has tens of thousands of parameters; a training step that loops over
them in Python (reading each ``.data``, setting each ``.grad``, updating each one in
the optimizer) spends more time there than in its matrix products.
:func:`nn.train.compile_batch_step` therefore keeps the parameters' numbers in one
array while it steps (and the optimizer its running state), and brings the Values up
to date only when someone looks: every ``Module`` method that reads or writes its
parameters (calling it, ``parameters()``, ``named_parameters()``, ``state_dict()``,
``load_state_dict()``, ``zero_grad()``) and every ``Optimizer`` method first calls
:func:`sync`. So ``model.parameters()`` always shows the current numbers, and a
change made through them (a loaded state, a hand-set weight) is read back into the
array before the next step.
"""

from __future__ import annotations

import ctypes
import sys
import weakref
from collections.abc import Sequence
from typing import Any

from autodiff import Value

__all__ = ["ArrayParameters", "attach", "keep_freed_memory", "sync"]

# module or optimizer -> the ArrayParameters holding its numbers (weakly: a model that is
# dropped takes nothing with it)
_HELD: weakref.WeakKeyDictionary[Any, ArrayParameters] = weakref.WeakKeyDictionary()


class ArrayParameters:
    """The numbers of `params` as one float64 array ``values`` (and their gradient
    ``grads``), and which side -- the array or the Values -- holds the newest."""

    def __init__(self, params: Sequence[Value], xp: Any, device: Any = None) -> None:
        self.params = list(params)
        self.xp = xp
        self.kw = {} if device is None else {"device": device}
        self.values = xp.asarray([p._data for p in self.params], dtype=xp.float64, **self.kw)
        self.grads: Any = None
        self._array_is_newer = False  # the Values are behind: write them before any read
        self._values_may_differ = False  # someone held the Values: read them before a step

    def before_step(self) -> Any:
        """The array of the parameters' numbers, read back from the Values if they may
        have been changed since the last step."""
        if self._values_may_differ:
            self.sync()
            self.values = self.xp.asarray(
                [p._data for p in self.params], dtype=self.xp.float64, **self.kw
            )
            self._values_may_differ = False
        return self.values

    def after_step(self, grads: Any) -> None:
        """The step wrote new numbers (and gradients) into the arrays."""
        self.grads = grads
        self._array_is_newer = True

    def sync(self) -> None:
        """Bring every Value up to date: its ``.data`` and its ``.grad`` of the last step."""
        if self._array_is_newer:
            self._array_is_newer = False
            for p, x, g in zip(self.params, self.values.tolist(), self.grads.tolist()):
                p._data = x
                p.grad = g
        self._values_may_differ = True  # whoever looks may write


def attach(holders: Sequence[Any], state: ArrayParameters) -> None:
    """Let each of `holders` (modules, an optimizer) find `state` from :func:`sync`."""
    for h in holders:
        _HELD[h] = state


def sync(holder: Any) -> None:
    """Bring the parameters of `holder` up to date, if an array holds them (cheap if not)."""
    if _HELD:
        state = _HELD.get(holder)
        if state is not None:
            state.sync()


_KEPT: bool | None = None


def keep_freed_memory() -> bool:
    """Let the C allocator reuse the memory of a step's arrays instead of returning it.

    A training step makes and frees the same large arrays every time (a batch of 1,000
    through a 256-wide layer: 2 MiB each). glibc serves blocks that large with fresh
    ``mmap`` pages and gives them back on free, so every step pays a page fault per
    page of every array -- here 40 % of a 2-256-256-1 step. Raising its thresholds
    (``mallopt``: blocks up to 32 MiB from the heap, 128 MiB of free heap kept) makes
    the next step reuse the same memory. The setting is process-wide and lasts; on a
    C library other than glibc nothing is done. Returns whether it took effect.
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
            m_trim_threshold, m_mmap_threshold = -1, -3
            _KEPT = bool(mallopt(ctypes.c_int(m_mmap_threshold), ctypes.c_int(32 << 20))) and bool(
                mallopt(ctypes.c_int(m_trim_threshold), ctypes.c_int(128 << 20))
            )
    return _KEPT
