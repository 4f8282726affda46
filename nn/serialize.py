"""Saving and loading models and optimizers as JSON.

``save(path, model, optimizer)`` writes one JSON file holding the model's
``state_dict()`` and, optionally, the optimizer's; ``load(path, model,
optimizer)`` puts them back (strictly: every entry checked, nothing changed
unless all of them fit). JSON, not pickle: a file anyone can read, diff and
load without running code from it. Floats are written with ``repr``, so they
come back bit for bit; a round trip reproduces predictions exactly, and
resumed training takes the very steps it would have taken without stopping.
The file is written to a temporary name first, then renamed: a failed write
leaves no half-written file behind.

Models also pickle and deep-copy (``copy.deepcopy`` keeps tied weights tied),
for use in the same program; this file format is the one to keep.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from nn.module import Module
from nn.optim import Optimizer

__all__ = ["FORMAT", "load", "save"]

#: The "format" field of a saved file.
FORMAT = "autodiff-nn"
_VERSION = 1


def save(path: str | os.PathLike[str], model: Module, optimizer: Optimizer | None = None) -> str:
    """Write `model`'s (and `optimizer`'s) state to the JSON file `path`; returns the path."""
    if not isinstance(model, Module):
        raise TypeError(f"save: model must be a Module, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"save: optimizer must be an Optimizer, got {type(optimizer).__name__}")
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": _VERSION,
        "model": {"class": type(model).__name__, "state": model.state_dict()},
    }
    if optimizer is not None:
        doc["optimizer"] = optimizer.state_dict()
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".autodiff-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(
    path: str | os.PathLike[str], model: Module, optimizer: Optimizer | None = None
) -> dict[str, Any]:
    """Restore `model` (and `optimizer`) from the JSON file `path`; returns the document.

    ValueError names what does not fit: another format, another model class, a
    missing, extra or mis-shaped entry. Nothing is changed unless all of it fits.
    """
    with open(os.fspath(path), encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"load: {os.fspath(path)!r} is not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"load: {os.fspath(path)!r} is not an {FORMAT} file")
    if doc.get("version") != _VERSION:
        raise ValueError(
            f"load: unsupported version {doc.get('version')!r} (this reads {_VERSION})"
        )
    saved = doc.get("model", {})
    if saved.get("class") != type(model).__name__:
        raise ValueError(
            f"load: the file holds a {saved.get('class')!r}, not a {type(model).__name__!r}"
        )
    if optimizer is not None and "optimizer" not in doc:
        raise ValueError("load: the file holds no optimizer state")
    # check both before changing either: load_state_dict checks all of its entries first
    before = model.state_dict()
    model.load_state_dict(saved.get("state"))
    if optimizer is not None:
        try:
            optimizer.load_state_dict(doc["optimizer"])
        except BaseException:
            model.load_state_dict(before)
            raise
    return doc  # type: ignore[no-any-return]
