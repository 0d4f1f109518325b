"""Contest packaging: ``archive.zip`` with one member, written byte for byte the same every time.

The zip is assembled by hand (no timestamps, extra fields or comments that
vary), stored or deflated, whichever is smaller. Reading refuses anything a
hostile zip could use: several members, links, absolute or ``..`` paths,
encryption, and members larger than the cap.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tac_core.archive import format as fmt
from tac_core.archive.errors import PackagingError

DEFAULT_MEMBER = "a"
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
_DOS_TIME = 0
_MODE = stat.S_IFREG | 0o644


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return c.compress(data) + c.flush()


def pack_zip(container: bytes, member: str = DEFAULT_MEMBER) -> bytes:
    """A deterministic single-member zip holding ``container`` (stored or deflated, the smaller)."""
    _check_member_name(member)
    name = member.encode("utf-8")
    deflated = _deflate(container)
    method, body = (8, deflated) if len(deflated) < len(container) else (0, container)
    crc = zlib.crc32(container) & 0xFFFFFFFF
    version = 20 if method == 8 else 10
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, version, 0, method, _DOS_TIME, _DOS_DATE,
                        crc, len(body), len(container), len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | version, version, 0, method,
                          _DOS_TIME, _DOS_DATE, crc, len(body), len(container), len(name), 0, 0, 0, 0,
                          _MODE << 16, 0) + name
    offset = len(local) + len(body)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0)
    return local + body + central + end


def zip_overhead(zip_bytes: bytes, container: bytes) -> int:
    """Bytes the zip adds around the container."""
    return len(zip_bytes) - len(container)


def _check_member_name(name: str) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if (not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":")
            or ".." in p.parts or name.endswith(("/", "\\")) or "\x00" in name):
        raise PackagingError(f"zip member name {name!r} is unsafe (absolute, '..', a folder or empty)")


def read_zip_member(data: bytes, max_bytes: int = fmt.MAX_CONTAINER_BYTES) -> tuple[str, bytes]:
    """``(name, bytes)`` of the single member of a zip, refusing anything unsafe."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except Exception as exc:  # zipfile signals malformed input with many exception types
        raise PackagingError(f"not a readable zip ({type(exc).__name__}: {exc})") from None
    if len(infos) != 1:
        raise PackagingError(f"archive.zip must hold exactly one member, it holds {len(infos)}")
    info = infos[0]
    _check_member_name(info.filename)
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise PackagingError(f"zip member {info.filename!r} is a link, folder or special file")
    if info.flag_bits & 1:
        raise PackagingError(f"zip member {info.filename!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise PackagingError(f"zip member {info.filename!r} uses compression method {info.compress_type}; "
                             f"only stored and deflated are accepted")
    if info.file_size > max_bytes:
        raise PackagingError(f"zip member {info.filename!r} declares {info.file_size} bytes, "
                             f"above the cap of {max_bytes}")
    try:
        with zf.open(info) as f:
            body = f.read(max_bytes + 1)
    except Exception as exc:  # zipfile/zlib report corrupt members with many exception types
        raise PackagingError(f"zip member {info.filename!r} is corrupt ({type(exc).__name__}: {exc})") from None
    if len(body) > max_bytes or len(body) != info.file_size:
        raise PackagingError(f"zip member {info.filename!r} holds {len(body)} bytes, "
                             f"not the {info.file_size} it declares (or above the cap)")
    return info.filename, body


def unpack_zip(data: bytes, folder: Path, max_bytes: int = fmt.MAX_CONTAINER_BYTES) -> Path:
    """Extract the single member into ``folder`` (checked as ``read_zip_member`` does); its path."""
    name, body = read_zip_member(data, max_bytes)
    folder = Path(folder)
    target = folder / PurePosixPath(name.replace("\\", "/"))
    if folder.resolve() not in target.resolve().parents:
        raise PackagingError(f"zip member {name!r} would land outside {folder}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    return target


def is_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"
