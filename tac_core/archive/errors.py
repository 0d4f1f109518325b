"""The archive's error family: every failure to read or write an archive is an ``ArchiveError``.

Readers of untrusted files catch ``ArchiveError`` and nothing else; any other
exception escaping the reader is a bug.
"""

from __future__ import annotations

from tac_core.errors import ArchiveError

__all__ = [
    "ArchiveError",
    "ArchiveLimitError",
    "ArchiveWriteError",
    "MalformedArchiveError",
    "PackagingError",
    "QuantizationError",
    "StageError",
    "TruncatedArchiveError",
    "UnknownIdError",
]


class MalformedArchiveError(ArchiveError):
    """The bytes break a rule of the wire format (magic, order, padding, trailing bytes)."""


class TruncatedArchiveError(MalformedArchiveError):
    """The archive ends before a field or payload it declares."""


class ArchiveLimitError(ArchiveError):
    """A declared count or size exceeds one of the format's caps."""


class UnknownIdError(ArchiveError):
    """A quantizer, stage, transform, dtype or architecture id this reader does not know."""


class StageError(ArchiveError):
    """An entropy stage failed to decode, or decoded to another size than declared."""


class QuantizationError(ArchiveError):
    """A tensor cannot be quantised as asked (non-finite values, scale overflow, bad axis)."""


class ArchiveWriteError(ArchiveError):
    """The writer was given something it cannot store (bad names, shapes, mixed quantizers)."""


class PackagingError(ArchiveError):
    """An ``archive.zip`` is malformed or unsafe (links, path traversal, oversized members)."""
