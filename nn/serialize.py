"""Saving and loading models and optimizers as JSON.

``save(path, model, optimizer)`` writes one JSON file holding the model's
``state_dict()`` and, optionally, the optimizer's; ``load(path, model,
optimizer)`` puts them back (strictly: every entry checked, nothing changed
unless all of them fit). JSON, not pickle: a file anyone can read, diff and
load without running code from it.

The file is standard JSON (RFC 8259), which any tool reads. Finite floats are
written with ``repr``, so they come back bit for bit, −0.0 included; JSON has no
NaN or infinity, so those are written as the strings ``"nan"``, ``"-nan"`` (a
NaN with its sign bit set), ``"inf"`` and ``"-inf"``, wherever a number may be
(a diverged model can be saved and inspected). A round trip reproduces
predictions exactly, and resumed training takes the very steps it would have
taken without stopping. (Files that older versions wrote with bare ``NaN`` and
``Infinity`` are still read.)

The file is written to a temporary file beside it, then renamed over it
(:mod:`autodiff.files`, as every file autodiff and nn write): a failed write leaves
no half-written file behind. A new file gets the mode ``open()`` would give it (0666
less the umask); an existing file keeps its mode.

Loading trusts nothing: a file that is not JSON, nested too deeply, with a
section of the wrong type, a number too large for a float, or an entry that does
not fit the model or the optimizer is refused with a ValueError or TypeError that
names the entry, and the model and optimizer are left unchanged.

Models also pickle and deep-copy (``copy.deepcopy`` keeps tied weights tied),
for use in the same program; this file format is the one to keep.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any

from autodiff.engine import shown
from autodiff.files import write_file
from nn.optim import Optimizer

if TYPE_CHECKING:  # (nn.module imports this module: a model is known by what it does)
    from nn.module import Module

__all__ = ["FORMAT", "NON_FINITE", "load", "save"]

#: The "format" field of a saved file.
FORMAT = "autodiff-nn"
_VERSION = 1


#: How the numbers JSON cannot hold are written.
NON_FINITE = {"nan": math.nan, "-nan": -math.nan, "inf": math.inf, "-inf": -math.inf}


def _encode(x: Any) -> Any:
    """A state value (a number, or a list of numbers) with NaN and ±inf as strings."""
    if isinstance(x, float) and not math.isfinite(x):
        if x != x:
            return "-nan" if math.copysign(1.0, x) < 0 else "nan"
        return "inf" if x > 0 else "-inf"
    if isinstance(x, (list, tuple)):
        return [_encode(v) for v in x]
    return x


def _decode(x: Any) -> Any:
    """The inverse of :func:`_encode`; anything else is left for the checks to name."""
    if isinstance(x, str) and x in NON_FINITE:
        return NON_FINITE[x]
    if isinstance(x, list):
        return [NON_FINITE[v] if isinstance(v, str) and v in NON_FINITE else v for v in x]
    return x


def save(path: str | os.PathLike[str], model: Module, optimizer: Optimizer | None = None) -> str:
    """Write `model`'s (and `optimizer`'s) state to the JSON file `path`; returns the path.

    Standard JSON, written atomically, with the mode a new file would get from
    ``open()`` or the one the existing file has (see the module docstring).
    """
    if not callable(getattr(model, "state_dict", None)):
        raise TypeError(f"save: model must be a Module, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"save: optimizer must be an Optimizer, got {type(optimizer).__name__}")
    state = {k: _encode(v) for k, v in model.state_dict().items()}
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": _VERSION,
        "model": {"class": type(model).__name__, "state": state},
    }
    if optimizer is not None:
        doc["optimizer"] = {k: _encode(v) for k, v in optimizer.state_dict().items()}
    return write_file(path, json.dumps(doc, indent=1, allow_nan=False))  # whole or not at all


def _finite_float(text: str) -> float:
    """A JSON number literal with a fraction or exponent; one beyond a float's range is
    refused (Python would read 1e400 as inf)."""
    x = float(text)
    if math.isinf(x):
        raise ValueError(f"the number {text[:40]} is too large for a float")
    return x


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose names are unique (json would keep the last of two silently)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"the name {shown(twice)} appears twice in one object")
    return out


def _section(doc: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise TypeError(
            f"load: {where} must be a JSON object, got {type(value).__name__} {shown(value)}"
        )
    return value


def load(
    path: str | os.PathLike[str], model: Module, optimizer: Optimizer | None = None
) -> dict[str, Any]:
    """Restore `model` (and `optimizer`) from the JSON file `path`; returns the document.

    ValueError or TypeError names what does not fit: not JSON, nested too deeply,
    another format, another model class, a section of the wrong type, a name given
    twice, a missing, extra or mis-shaped entry, a number that is not one or does not
    fit a float.
    Nothing is changed unless all of it fits.
    """
    name = os.fspath(path)
    with open(name, encoding="utf-8") as f:
        text = f.read()
    try:
        doc = json.loads(text, parse_float=_finite_float, object_pairs_hook=_unique)
    except RecursionError:
        raise ValueError(f"load: {name!r} is nested too deeply to be a saved model") from None
    except ValueError as e:  # JSONDecodeError, a number out of range, an int too long
        raise ValueError(f"load: {name!r} is not a readable JSON file ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"load: {name!r} is not an {FORMAT} file")
    version = doc.get("version")
    if type(version) is not int or version != _VERSION:
        raise ValueError(f"load: unsupported version {shown(version)} (this reads {_VERSION})")
    saved = _section(doc, "model", "'model'")
    if saved.get("class") != type(model).__name__:
        raise ValueError(
            f"load: the file holds a {shown(saved.get('class'))}, not a {type(model).__name__!r}"
        )
    state = _section(saved, "state", "'model.state'")
    state = {k: _decode(v) for k, v in state.items()}
    opt_state = None
    if optimizer is not None:
        if "optimizer" not in doc:
            raise ValueError("load: the file holds no optimizer state")
        opt_state = {k: _decode(v) for k, v in _section(doc, "optimizer", "'optimizer'").items()}
    # check both before changing either: load_state_dict checks all of its entries first
    before = model.state_dict()
    model.load_state_dict(state)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(opt_state)  # type: ignore[arg-type]
        except BaseException:
            model.load_state_dict(before)
            raise
    return doc  # type: ignore[no-any-return]
