"""autodiff: a scalar reverse-mode automatic-differentiation engine.

>>> from autodiff import Value
>>> x = Value(3.0, label="x")
>>> y = x * x + 2 * x
>>> y.backward()
>>> x.grad
8.0
"""

from autodiff.engine import Value, dot, gc_paused, is_grad_enabled, no_grad, topological_order
from autodiff.functional import GradcheckError, grad, gradcheck, hessian, jacobian
from autodiff.trace import Traced, TraceWarning, trace

__all__ = [
    "Value",
    "dot",
    "gc_paused",
    "no_grad",
    "is_grad_enabled",
    "topological_order",
    "grad",
    "jacobian",
    "hessian",
    "gradcheck",
    "GradcheckError",
    "trace",
    "Traced",
    "TraceWarning",
]
__version__ = "0.1.0"
