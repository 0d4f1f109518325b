"""Inflate entry point: ``python inflate.py ARCHIVE_DIR INFLATED_DIR NAMES_FILE``.

For each name ``X.ext`` in NAMES_FILE it writes ``INFLATED_DIR/X.raw`` from the
archive member for ``X``, dispatched by the member's suffix: ``X.tac`` is a tac
archive, inflated by the renderer its header names (architecture id 1 ``hnerv_pair``:
``hnerv.py``; id 2 ``mask_warp``: ``mask_warp.py``), ``X.mkv`` and the other
classical suffixes a video (``classical.py``). Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tac_core.archive.format import ARCH_HNERV_PAIR_V1, ARCH_MASK_WARP_V1
from tac_core.errors import ArchiveError, TacError

from . import classical, hnerv, mask_warp
from .rawout import RawOutputError

CLASSICAL_SUFFIXES = (".mkv", ".mp4", ".ivf", ".webm", ".hevc")
TAC_SUFFIX = hnerv.SUFFIX
RENDERERS = {ARCH_HNERV_PAIR_V1: hnerv.inflate_member, ARCH_MASK_WARP_V1: mask_warp.inflate_member}


def architecture_id(data: bytes) -> int:
    """The architecture id in a tac archive's header (the header is parsed and checked whole)."""
    import tac_core.architectures  # noqa: F401  (registers the schemas by-position headers name)
    from tac_core.archive.reader import parse_header

    return parse_header(data)[0].id


def inflate_tac_member(member: Path, out: Path, device: str = "cpu") -> int:
    """Inflate a ``.tac`` member with the renderer of its architecture id."""
    arch = architecture_id(Path(member).read_bytes())
    if arch not in RENDERERS:
        raise ArchiveError(f"{Path(member).name}: archive holds architecture id {arch}; this runtime "
                           f"inflates ids {', '.join(map(str, sorted(RENDERERS)))} (hnerv_pair, mask_warp)")
    return RENDERERS[arch](member, out, device)


INFLATERS = {TAC_SUFFIX: inflate_tac_member, **{s: classical.inflate_member for s in CLASSICAL_SUFFIXES}}


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
