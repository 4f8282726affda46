"""What the command-line main jobs share: argument types and their one-line errors.

Every main job (``python -m nn.xor``, ``python -m nn.digits``) answers every failure a
user can cause with one line on stderr, never a traceback (:func:`run_job`): a bad
argument, an output it cannot write, an argument whose arithmetic overflows (a
learning rate of 1e308), a network too large for memory -- exit status 2; Ctrl-C --
exit status 130. Files are written whole or not at all (:mod:`autodiff.files`), so an
interrupted job leaves no partial file.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
from collections.abc import Callable, Sequence
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
    "run_job",
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


def probe_writable(out: str, names: Sequence[str] = ()) -> None:
    """Make `out` and check that a file can be written there, and that none of the files
    `names` the job will write there is a folder (OSError otherwise): before any work."""
    os.makedirs(out, exist_ok=True)
    for name in names:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, "a folder is where this file goes", path)
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


def run_job(prog: str, out: str, job: Callable[[], int]) -> int:
    """Run a main job's work and return its exit status, turning every failure a user can
    cause into one line on stderr: an output that cannot be written (OSError: a full
    disk, a folder where a picture goes), an argument whose arithmetic overflows
    (OverflowError, which the engine raises rather than train on inf), too little memory
    -- status 2; Ctrl-C -- status 130. Anything else is a bug, and keeps its traceback."""
    try:
        return job()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (no file is left half-written)", file=sys.stderr)
        return 130
    except MemoryError:
        print(
            f"{prog}: error: not enough memory for this network; try a smaller --hidden",
            file=sys.stderr,
        )
        return 2
    except OSError as e:
        return cannot_write(prog, e, out)
    except OverflowError as e:
        print(
            f"{prog}: error: training overflowed a float ({e}); try a smaller --lr", file=sys.stderr
        )
        return 2


def check_memory(n_bytes: int, what: str) -> None:
    """MemoryError, before anything is allocated, if a job needing about `n_bytes` cannot
    fit this machine's physical memory at all; nothing where its size cannot be read.

    The bound is the whole memory, not what is free at the moment: free memory excludes
    the page cache the kernel gives back on demand, and refusing a job that would run is
    worse than a job that runs out (whose MemoryError :func:`run_job` still reports)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that says
        return
    if n_bytes > total:
        raise MemoryError(f"{what}: about {n_bytes:,} bytes needed, the machine has {total:,}")
