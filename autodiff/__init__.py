"""autodiff: a scalar reverse-mode automatic-differentiation engine.

* :mod:`autodiff.engine` -- ``Value``, ``backward``, ``no_grad``, ``dot``: the graph
  and the chain rule, in one short file;
* :mod:`autodiff.rules` -- every derivative, one entry per operation, in one table;
* :mod:`autodiff.functional` -- ``grad`` (also of higher order), ``jacobian``,
  ``hessian``, ``gradcheck``;
* :mod:`autodiff.trace` -- ``trace``: a recorded graph compiled to code (also batched,
  on any array library);
* :mod:`autodiff.render` -- graphviz drawings of the forward and backward graphs
  (imported on its own: it is the one part that needs a dependency);
* :mod:`autodiff.extras` -- what the optional extras bring (``[arrays]``, ``[nn]``).

>>> from autodiff import Value
>>> x = Value(3.0, label="x")
>>> y = x * x + 2 * x
>>> y.backward()
>>> x.grad
8.0
"""

from autodiff.engine import (
    Value,
    dot,
    enable_grad,
    gc_paused,
    is_grad_enabled,
    logsumexp,
    nll,
    no_grad,
    op,
    pick,
    topological_order,
)
from autodiff.functional import GradcheckError, grad, gradcheck, hessian, jacobian
from autodiff.rules import Rule
from autodiff.trace import BatchedTraced, Traced, TraceError, TraceWarning, trace

__all__ = [
    "Value",
    "dot",
    "logsumexp",
    "pick",
    "nll",
    "op",
    "Rule",
    "gc_paused",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "topological_order",
    "grad",
    "jacobian",
    "hessian",
    "gradcheck",
    "GradcheckError",
    "trace",
    "Traced",
    "BatchedTraced",
    "TraceError",
    "TraceWarning",
]
__version__ = "0.6.0"
