"""File helpers: hashing, and writing so that no partial file ever looks complete."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import BinaryIO, Iterator

from tac_core.errors import InputError

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            h = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, expected a file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


@contextlib.contextmanager
def atomic_output(path: Path, mode: str = "wb") -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    On any exception (a full disk, Ctrl-C) the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    tmp = _temp_name(path)
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (text is UTF-8)."""
    with atomic_output(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a readable file, else an ``InputError`` naming it and ``what`` it is."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if not path.is_file():
        raise InputError(f"{path}: {what} is not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: {what} is not readable")
    return path


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is an existing folder, else an ``InputError``."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: {what} not found or not a folder")
    return path
