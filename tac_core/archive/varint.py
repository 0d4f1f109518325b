"""LEB128 varints and a bounds-checked cursor over archive bytes.

Every read checks the bytes that remain first, so a truncated or hostile
header fails with ``TruncatedArchiveError`` and never over-reads.
"""

from __future__ import annotations

from tac_core.archive.errors import ArchiveLimitError, MalformedArchiveError, TruncatedArchiveError
from tac_core.archive.format import MAX_NAME_BYTES, MAX_VARINT_BYTES

_U64 = 1 << 64


def uvarint(value: int) -> bytes:
    """The minimal unsigned LEB128 encoding of ``0 <= value < 2**64``."""
    if not 0 <= value < _U64:
        raise ValueError(f"uvarint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def svarint(value: int) -> bytes:
    """A signed integer, zigzag-mapped, as a uvarint."""
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"svarint out of range: {value}")
    return uvarint(((value << 1) ^ (value >> 63)) & (_U64 - 1))


def text(value: str) -> bytes:
    """A length-prefixed UTF-8 string (1..255 bytes)."""
    raw = value.encode("utf-8")
    if not 1 <= len(raw) <= MAX_NAME_BYTES:
        raise ValueError(f"string must be 1..{MAX_NAME_BYTES} bytes of UTF-8, got {len(raw)}: {value!r}")
    return uvarint(len(raw)) + raw


class Cursor:
    """Reads varints, strings and byte runs from ``data``, refusing to run past its end."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data = memoryview(data)
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> memoryview:
        """The next ``n`` bytes; ``TruncatedArchiveError`` if fewer remain."""
        if n > self.remaining:
            raise TruncatedArchiveError(f"archive ends inside {what}: needs {n} bytes at offset "
                                        f"{self.pos}, {self.remaining} remain")
        view = self.data[self.pos:self.pos + n]
        self.pos += n
        return view

    def uvarint(self, what: str, cap: int | None = None) -> int:
        """A minimal uvarint, at most ``cap`` when a cap is given."""
        value = shift = 0
        for i in range(MAX_VARINT_BYTES):
            if self.pos >= len(self.data):
                raise TruncatedArchiveError(f"archive ends inside {what} (a varint at offset {self.pos})")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if i and byte == 0:
                    raise MalformedArchiveError(f"{what}: non-minimal varint ending at offset {self.pos - 1}")
                if value >= _U64:
                    raise MalformedArchiveError(f"{what}: varint exceeds 64 bits at offset {self.pos - 1}")
                if cap is not None and value > cap:
                    raise ArchiveLimitError(f"{what} is {value}, above the format's cap of {cap}")
                return value
            shift += 7
        raise MalformedArchiveError(f"{what}: varint longer than {MAX_VARINT_BYTES} bytes at offset {self.pos}")

    def svarint(self, what: str) -> int:
        raw = self.uvarint(what)
        return (raw >> 1) ^ -(raw & 1)

    def text(self, what: str) -> str:
        n = self.uvarint(f"length of {what}", MAX_NAME_BYTES)
        if n == 0:
            raise MalformedArchiveError(f"{what} is empty; names must have 1..{MAX_NAME_BYTES} bytes")
        raw = bytes(self.take(n, what))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedArchiveError(f"{what} is not valid UTF-8: {raw!r}") from None
