"""Files written whole or not at all: the one way autodiff and nn write a file.

Every file the library or a main job writes -- SVG, PNG, GIF, HTML, JSON -- is written
to a temporary name in the same folder and renamed over the final name only once it
is complete (``os.replace``, atomic on POSIX and Windows within one file system). An
interrupt (Ctrl-C), a full disk or an error in the middle leaves the earlier file, or
none, never a truncated one; the temporary file is removed.

A new file gets the mode ``open()`` would give it (0666 less the umask); a file that
is replaced keeps its own mode.

>>> import os, tempfile
>>> from autodiff.files import write_file
>>> folder = tempfile.mkdtemp()
>>> path = write_file(os.path.join(folder, "a.txt"), "hello")
>>> open(path).read(), os.listdir(folder)
('hello', ['a.txt'])
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["replacing", "write_file"]


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[str]:
    """A temporary path beside `path` to write the whole file to, inside the block; it is
    renamed to `path` when the block ends, and removed if the block raises (any
    exception, KeyboardInterrupt included).

    The temporary name keeps the suffix (``.name.1f2e3d4c.png``), for writers that take
    the format from it (matplotlib, Pillow). The file exists, empty, when the block
    starts, with the mode the final file will have.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    stem, suffix = os.path.splitext(name)
    try:
        mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = os.path.join(folder, f".{stem}.{secrets.token_hex(4)}{suffix}")
    # O_EXCL: a fresh file, never another's; 0o666 less the umask, as open() gives
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        if mode is not None:
            os.chmod(tmp, mode)  # a replaced file keeps its mode
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.filename == tmp:  # name the file asked for
            raise type(e)(e.errno, e.strerror, path) from e
        raise


def write_file(path: str | os.PathLike[str], data: str | bytes) -> str:
    """Write `data` (text as UTF-8, or bytes) to `path` whole or not at all (see
    :func:`replacing`); returns the path."""
    path = os.fspath(path)
    with replacing(path) as tmp:
        if isinstance(data, str):
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(data)
        else:
            with open(tmp, "wb") as f:
                f.write(data)
    return path
