"""`Traced`: a recorded graph compiled to straight-line or grouped code.

Its own module, so that the batched runtime (:mod:`autodiff.trace._batched`), which
falls back on the scalar code for samples holding a NaN or an infinity, and the
package (:mod:`autodiff.trace`) both use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from autodiff import engine
from autodiff.trace._program import Program, compile_function

__all__ = ["Traced"]


class Traced:
    """A graph recorded by :func:`trace`, compiled to code.

    ``traced(xs)`` gives the value at the n numbers `xs`;
    ``traced.value_and_grad(xs)`` the value and the gradient with respect to
    every input. Results are Python floats computed in double precision,
    whatever the type of the numbers given (numpy scalars included).
    ``traced.source`` (and ``str(traced)``) is the generated code; each
    function is compiled the first time it is called.
    """

    def __init__(self, code: Any, n_inputs: int, n_nodes: int, mode: str) -> None:
        self._code = code
        self.n_inputs = n_inputs
        #: Operations in the recorded graph (nodes that are not inputs or constants).
        self.n_nodes = n_nodes
        #: "lines" or "groups": which kind of code (see the module docstring).
        self.mode = mode
        self._compiled: dict[str, Callable[..., Any]] = {}

    @property
    def program(self) -> Program:
        """The intermediate program the code prints (see :mod:`autodiff.trace`)."""
        return self._code.program  # type: ignore[no-any-return]

    @property
    def source(self) -> str:
        """The generated code: ``forward`` and ``value_and_grad``."""
        return self._code.forward_source() + "\n\n" + self._code.value_and_grad_source()

    def _function(self, name: str) -> Callable[..., Any]:
        fn = self._compiled.get(name)
        if fn is None:
            source = getattr(self._code, f"{name}_source")()
            fn = self._compiled[name] = compile_function(source, dict(self._code.namespace), name)
        return fn

    def _floats(self, xs: Sequence[Any]) -> list[float]:
        if len(xs) != self.n_inputs:
            raise ValueError(f"Traced: expected {self.n_inputs} inputs, got {len(xs)}")
        return [
            x if type(x) is float else engine.as_float(x, f"Traced: xs[{i}]")
            for i, x in enumerate(xs)
        ]

    def _run(self, name: str, xs: list[float]) -> Any:
        fn = self._function(name)
        if self.mode == "lines":
            return fn(*xs)
        with self._code.np.errstate(all="ignore"):  # inf and nan are checked by the code
            return fn(xs)

    def __call__(self, xs: Sequence[float]) -> float:
        """f at `xs`."""
        return self._run("forward", self._floats(xs))  # type: ignore[no-any-return]

    def value_and_grad(self, xs: Sequence[float]) -> tuple[float, list[float]]:
        """(f(xs), [∂f/∂xᵢ for each input]) at `xs`."""
        return self._run("value_and_grad", self._floats(xs))  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"<Traced: {self.n_inputs} inputs, {self.n_nodes} operations, {self.mode}>"
