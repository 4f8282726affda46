"""PyTorch, the test oracle: imported where installed.

Without it the cross-checks skip, saying so -- except where ``AUTODIFF_REQUIRE_TORCH``
is set, as ``.ci/run`` sets it after installing torch: there a missing oracle is a failure,
so that CI can never pass with the cross-checks silently skipped.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


def torch() -> Any:
    """The torch module; skips the calling test (or module) without it."""
    try:
        import torch as module
    except ImportError:
        if os.environ.get("AUTODIFF_REQUIRE_TORCH"):
            pytest.fail("PyTorch is not installed, and AUTODIFF_REQUIRE_TORCH says it must be")
        pytest.skip(
            "PyTorch is not installed (pip install torch==2.13.0): the oracle does not run",
            allow_module_level=True,
        )
    return module
