"""What an evaluation reads: a submission folder and the originals it is scored against.

Shared by every backend's evaluator, so the checks (and their messages) are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tac_core import contract, video
from tac_core.errors import InputError
from tac_core.files import require_dir, require_file

VIDEO_SUFFIXES = (".mkv", ".mp4", ".hevc", ".avi", ".mov", ".webm")
RATE_BASES = ("folder", "videos", "contest-per-frame")


@dataclass(frozen=True)
class VideoPair:
    """One original video and the inflated frames that stand for it."""

    name: str
    original: Path
    inflated: Path
    frames: int

    @property
    def samples(self) -> int:
        return contract.sample_count(self.frames)


@dataclass(frozen=True)
class EvaluationInputs:
    submission_dir: Path
    archive: Path
    archive_bytes: int
    original_bytes: int
    rate_basis: str
    videos: tuple[VideoPair, ...]

    @property
    def samples(self) -> int:
        return sum(v.samples for v in self.videos)


def read_names(names_file: Path | None, video_dir: Path) -> list[str]:
    """Video names from a names file (one a line), or every video file in ``video_dir``."""
    if names_file is None:
        names = sorted(p.name for p in video_dir.iterdir() if p.is_file() and p.suffix in VIDEO_SUFFIXES)
        if not names:
            raise InputError(f"{video_dir}: no video files ({', '.join(VIDEO_SUFFIXES)}) in the folder")
        return names
    require_file(names_file, "video names file")
    try:
        names = [line.strip() for line in Path(names_file).read_text().splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise InputError(f"{names_file}: video names file is not text") from None
    if not names:
        raise InputError(f"{names_file}: video names file lists no videos")
    return names


def folder_bytes(video_dir: Path) -> int:
    """Total bytes of every file under ``video_dir``: the official rate's denominator."""
    return sum(p.stat().st_size for p in Path(video_dir).rglob("*") if p.is_file())


def gather(submission_dir: Path, video_dir: Path, names_file: Path | None = None,
           rate_basis: str = "folder") -> EvaluationInputs:
    """Check everything an evaluation needs before any scoring starts.

    Refuses (``InputError``) a missing archive, video or ``.raw`` file, a ``.raw`` file that is
    not whole frames, a video that is not 1164x874, and frame counts that differ.
    """
    submission_dir = require_dir(Path(submission_dir), "submission folder")
    video_dir = require_dir(Path(video_dir), "original-videos folder")
    archive = require_file(submission_dir / contract.ARCHIVE_NAME, "archive")
    if rate_basis not in RATE_BASES:
        raise InputError(f"unknown rate basis {rate_basis!r}; expected one of {', '.join(RATE_BASES)}")
    pairs = []
    for name in read_names(names_file, video_dir):
        original = video_dir / name
        if not original.is_file():
            raise InputError(f"{original}: video named in the names file not found")
        info = video.probe(original)
        if (info["height"], info["width"]) != contract.CAMERA_HW:
            raise InputError(f"{original}: video is {info['width']}x{info['height']}, "
                             f"expected {contract.CAMERA_SIZE[0]}x{contract.CAMERA_SIZE[1]}")
        inflated = submission_dir / contract.INFLATED_DIR / (Path(name).stem + ".raw")
        frames = video.raw_frame_count(inflated)
        if frames != info["frames"]:
            raise InputError(f"{inflated}: {frames} inflated frames, but {original} has {info['frames']}; "
                             f"the counts must be equal")
        if frames < contract.SEQ_LEN:
            raise InputError(f"{original}: fewer than {contract.SEQ_LEN} frames, nothing to score")
        pairs.append(VideoPair(name, original, inflated, frames))
    if rate_basis == "folder":
        original_bytes = folder_bytes(video_dir)
    elif rate_basis == "videos":
        original_bytes = sum(p.original.stat().st_size for p in pairs)
    else:
        original_bytes = round(contract.contest_equivalent_original_bytes(sum(p.frames for p in pairs)))
    return EvaluationInputs(submission_dir, archive, archive.stat().st_size, original_bytes,
                            rate_basis, tuple(pairs))
