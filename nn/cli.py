"""What the command-line main jobs share: argument types and their one-line errors.

Every main job (``python -m nn.xor``, ``python -m nn.digits``) answers a bad argument
or an output folder it cannot write with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

from autodiff.extras import MissingExtraError

__all__ = [
    "Parser",
    "cannot_write",
    "folder",
    "integer",
    "positive_float",
    "positive_int",
    "probe_writable",
]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (not the usage block), status 2."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(s: str) -> int:
    """An int ≥ 1."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s!r}")
    return v


def integer(s: str) -> int:
    """Any int (a seed)."""
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {s!r}") from None


def positive_float(s: str) -> float:
    """A positive, finite number (a learning rate)."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {s!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number, got {s!r}")
    return v


def folder(s: str) -> str:
    """A folder to write into (it need not exist yet; a file is refused)."""
    if not s.strip():
        raise argparse.ArgumentTypeError("must name a folder, got an empty string")
    if os.path.exists(s) and not os.path.isdir(s):
        raise argparse.ArgumentTypeError(f"{s!r} is a file, not a folder")
    return s


def probe_writable(out: str) -> None:
    """Make `out` and check that a file can be written there (OSError otherwise)."""
    os.makedirs(out, exist_ok=True)
    probe = os.path.join(out, ".write-test")
    with open(probe, "w"):
        pass
    os.remove(probe)


def missing_extra(prog: str, error: MissingExtraError) -> int:
    """Say in one line on stderr which extra the job needs (and the pip command); returns
    the exit status, 2."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    return 2


def cannot_write(prog: str, error: OSError, out: str) -> int:
    """Say in one line on stderr that `out` (or the file in `error`) cannot be written;
    returns the exit status, 2."""
    where = error.filename or out
    print(f"{prog}: error: cannot write to {where!r}: {error.strerror or error}", file=sys.stderr)
    return 2
