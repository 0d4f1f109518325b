"""Inflate entry point: ``python inflate.py ARCHIVE_DIR INFLATED_DIR NAMES_FILE``.

For each name ``X.ext`` in NAMES_FILE it writes ``INFLATED_DIR/X.raw`` from the
archive member for ``X``, dispatched by the member's suffix: ``X.tac`` is an
``hnerv_pair`` model (``hnerv.py``), ``X.mkv`` and the other classical suffixes a
video (``classical.py``). Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tac_core.errors import TacError

from . import classical, hnerv
from .rawout import RawOutputError

CLASSICAL_SUFFIXES = (".mkv", ".mp4", ".ivf", ".webm", ".hevc")
INFLATERS = {hnerv.SUFFIX: hnerv.inflate_member, **{s: classical.inflate_member for s in CLASSICAL_SUFFIXES}}


def _device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def find_member(archive_dir: Path, stem: str) -> Path:
    """The archive member for video ``stem``: ``<stem>.tac`` or ``<stem>.<classical suffix>``."""
    for suffix in INFLATERS:
        candidate = archive_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{archive_dir}: no archive member for video {stem!r}")


def inflate(archive_dir: Path, inflated_dir: Path, names: list[str], device: str | None = None) -> dict[str, int]:
    """Inflate every named video; returns frames written per name."""
    device = device or _device()
    written = {}
    for name in names:
        stem = Path(name).stem
        member = find_member(Path(archive_dir), stem)
        written[name] = INFLATERS[member.suffix](member, Path(inflated_dir) / f"{stem}.raw", device)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        sys.stderr.write("usage: inflate.py ARCHIVE_DIR INFLATED_DIR NAMES_FILE\n")
        return 2
    archive_dir, inflated_dir, names_file = (Path(a) for a in argv)
    try:
        names = [ln.strip() for ln in names_file.read_text().splitlines() if ln.strip()]
        for name, frames in inflate(archive_dir, inflated_dir, names).items():
            print(f"{name}: {frames} frames -> {inflated_dir / (Path(name).stem + '.raw')}")
    except (TacError, RawOutputError, FileNotFoundError, OSError) as exc:
        sys.stderr.write(f"inflate: error: {exc}\n")
        return 2
    return 0
