"""Writing files so that a reader never sees half of one: the one home of atomic writes.

Every file selfie_tl writes (reports, CSV/JSON results, edit and adapter files, the model
cache) goes through :func:`atomic_path` or :func:`staging_dir`: the content is written to a
temporary sibling and renamed into place only when complete, so an interrupted run leaves
the previous file (or nothing) behind, never a truncated one. :func:`check_output_path`
validates a destination before any long computation starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from selfie_tl.errors import InvalidArgumentError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_path(path: str | os.PathLike, what: str = "output file") -> Path:
    """Check that ``path`` can be written as a file, before any work is done.

    Args:
        path: the destination.
        what: how to name it in the error (e.g. ``"--csv"``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InvalidArgumentError: ``path`` is a directory, its folder does not exist, or the
            folder is not writable.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> check_output_path(d / "report.html").name
        'report.html'
        >>> check_output_path(d / "missing" / "r.html")
        Traceback (most recent call last):
        ...
        selfie_tl.errors.InvalidArgumentError: output file ...: folder ... does not exist
    """
    if not isinstance(path, str | os.PathLike) or str(path) == "":
        raise InvalidArgumentError(f"{what} must be a file path, got {path!r}")
    path = Path(path).expanduser()
    if path.is_dir():
        raise InvalidArgumentError(f"{what} {path} is a directory; give a file name inside it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidArgumentError(f"{what} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InvalidArgumentError(f"{what} {path}: folder {parent} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` when the block succeeds.

    The final file gets the permissions a plain ``open(path, "w")`` would give (or keeps
    those of the file it replaces). On any exception, ``KeyboardInterrupt`` included, the
    temporary file is removed and ``path`` is left as it was.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(out) as tmp:
        ...     _ = tmp.write_text("hello")
        >>> out.read_text()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path.

    Example:
        >>> import tempfile, pathlib
        >>> write_text(pathlib.Path(tempfile.mkdtemp()) / "b.txt", "x").read_text()
        'x'
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


@contextlib.contextmanager
def staging_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder of ``final``; rename it into place on success.

    If another process finished ``final`` first, the staged copy is discarded (the first
    complete one wins). On failure the staging folder is removed.

    Example:
        >>> import tempfile, pathlib
        >>> final = pathlib.Path(tempfile.mkdtemp()) / "entry"
        >>> with staging_dir(final) as tmp:
        ...     _ = (tmp / "f.txt").write_text("1")
        >>> sorted(p.name for p in final.iterdir())
        ['f.txt']
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["atomic_path", "check_output_path", "staging_dir", "write_bytes", "write_text"]
