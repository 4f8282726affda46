"""Optional dependencies, by layer: what each extra brings, and a clear error without it.

``pip install scalar-autodiff`` brings what the engine and its renders need (the engine
itself: the standard library only). The rest comes with *extras*:

* ``arrays`` -- numpy and array-api-compat: grouped traces of large graphs
  (``trace(..., mode="groups")``), batched traces (``trace(..., batched=True)``) and the
  array training steps of :mod:`nn` built on them;
* ``nn`` -- matplotlib and tqdm (and numpy): the pictures and progress bars of the main
  jobs ``python -m nn.xor`` and ``python -m nn.digits``.

``pip install "scalar-autodiff[arrays,nn]"`` (the README's ``.[dev]`` includes both).
Using a feature whose extra is missing raises :class:`MissingExtraError`, naming the
feature, the module and the extra to install.

>>> EXTRAS["arrays"]
('numpy', 'array_api_compat')
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["DISTRIBUTION", "EXTRAS", "MissingExtraError", "check", "require"]

#: The name pip installs the project by.
DISTRIBUTION = "scalar-autodiff"

#: extra -> the modules it brings (import names), as pyproject.toml lists them.
EXTRAS: dict[str, tuple[str, ...]] = {
    "arrays": ("numpy", "array_api_compat"),
    "nn": ("matplotlib", "tqdm", "numpy"),
    "jax": ("jax", "numpy", "array_api_compat"),
}


class MissingExtraError(ModuleNotFoundError):
    """A feature needs a module of an extra that is not installed (a ModuleNotFoundError,
    so ``except ImportError`` catches it too)."""

    def __init__(self, feature: str, module: str, extra: str) -> None:
        self.feature, self.extra = feature, extra
        super().__init__(
            f"{feature} needs {module}, which comes with the {extra!r} extra: "
            f'pip install "{DISTRIBUTION}[{extra}]"',
            name=module,
        )


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import `module` (of the extra `extra`) for `feature`; MissingExtraError if absent."""
    if extra not in EXTRAS or module.split(".")[0] not in EXTRAS[extra]:
        raise ValueError(f"require: {module!r} is not a module of an extra {extra!r}")
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(feature, module.split(".")[0], extra) from error


def check(extra: str, feature: str) -> None:
    """Raise MissingExtraError, before any work is done, if a module of `extra` is missing
    (a main job checks its extras up front rather than fail after training)."""
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, say
            found = False
        if not found:
            raise MissingExtraError(feature, module, extra)
