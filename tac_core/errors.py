"""Typed errors. Each is raised with a sentence a user can act on.

The CLI turns any ``TacError`` into one line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TacError(Exception):
    """Base of every error tac raises on purpose."""


class InputError(TacError):
    """A file, folder or argument given by the user is missing or malformed."""


class VideoError(InputError):
    """A video cannot be opened, decoded, or has the wrong shape."""


class RawFramesError(InputError):
    """A ``.raw`` frame file is missing or is not a whole number of frames."""


class WeightsError(InputError):
    """A scorer or renderer weight file is missing, unreadable or mismatched."""


class BackendError(TacError):
    """A backend, renderer, scorer or codec that was asked for is not available."""


class EvidenceError(TacError):
    """A score record or calibration would claim more than its inputs allow."""


class ArchiveError(TacError):
    """An archive is malformed, truncated, oversized or otherwise unreadable."""
