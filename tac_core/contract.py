"""The contest evaluation contract: one definition of each fact.

Everything here restates the public comma video compression challenge's
evaluation (see docs/contract.md); nothing else in tac hard-codes these
numbers. Sizes are (width, height) where named ``*_SIZE`` and (height,
width) where named ``*_HW``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

# --- the video -------------------------------------------------------------
CAMERA_SIZE = (1164, 874)          # (W, H) of every frame
CAMERA_HW = (CAMERA_SIZE[1], CAMERA_SIZE[0])
FPS = 20
FRAME_BYTES = CAMERA_HW[0] * CAMERA_HW[1] * 3   # one uint8 RGB frame
CAMERA_FOCAL_PX = 910.0

CONTEST_VIDEO_NAME = "0.mkv"
CONTEST_VIDEO_FRAMES = 1200
CONTEST_VIDEO_BYTES = 37_545_489
CONTEST_VIDEO_SHA256 = "2611f5f3e186f3529777749f97bd4cce3a208d6b3559e137bd45d256980d2fa9"

# --- the scorers -----------------------------------------------------------
SEGNET_FILE = "segnet.safetensors"
POSENET_FILE = "posenet.safetensors"
SEGNET_BYTES = 38_502_892
SEGNET_SHA256 = "68956e328d4c5d875389a1a444870e6bac1c052c9986123827af95c07c6991b6"
POSENET_BYTES = 55_835_560
POSENET_SHA256 = "0f3a0874c5c387f990d7b88bd1d7e1f6de35d98b45f2a289989db2c77b9b6576"
OFFICIAL_SHA256 = {SEGNET_FILE: SEGNET_SHA256, POSENET_FILE: POSENET_SHA256}

MODEL_INPUT_SIZE = (512, 384)      # (W, H) both scorers see
MODEL_INPUT_HW = (MODEL_INPUT_SIZE[1], MODEL_INPUT_SIZE[0])
SEGNET_CLASSES = 5
POSE_OUTPUTS = 12                  # PoseNet's `pose` head width
POSE_SCORED = 6                    # only the first six enter the distortion
POSENET_IN_CHANNELS = 12           # six yuv planes per frame, two frames
POSENET_MEAN = 255 / 2
POSENET_STD = 255 / 4

# --- samples ---------------------------------------------------------------
SEQ_LEN = 2                        # frames per sample: (0,1), (2,3), ...
BATCH_SIZE = 16                    # pairs per batch in the official order

# --- the submission --------------------------------------------------------
ARCHIVE_NAME = "archive.zip"
INFLATE_SCRIPT = "inflate.sh"
INFLATED_DIR = "inflated"
INFLATE_TIME_LIMIT_S = 30 * 60

# --- the score -------------------------------------------------------------
SEG_WEIGHT = 100.0
POSE_WEIGHT_INSIDE_SQRT = 10.0
RATE_WEIGHT = 25.0


def score(seg: float, pose: float, rate: float) -> float:
    """The contest score: 100 * seg + sqrt(10 * pose) + 25 * rate (lower is better)."""
    return SEG_WEIGHT * seg + math.sqrt(POSE_WEIGHT_INSIDE_SQRT * pose) + RATE_WEIGHT * rate


def score_terms(seg: float, pose: float, rate: float) -> dict[str, float]:
    """The three addends of ``score``, to show where a score comes from."""
    return {
        "seg": SEG_WEIGHT * seg,
        "pose": math.sqrt(POSE_WEIGHT_INSIDE_SQRT * pose),
        "rate": RATE_WEIGHT * rate,
    }


def rate(archive_bytes: int, original_bytes: int) -> float:
    """Compression rate: archive bytes over the original videos' bytes."""
    if original_bytes <= 0:
        raise ValueError("original size must be positive")
    return archive_bytes / original_bytes


def contest_equivalent_original_bytes(frames: int) -> float:
    """Bytes a clip of ``frames`` frames would have at the contest video's bytes per frame.

    Rates on clips other than the contest video use this denominator, so that
    they do not depend on how that clip happened to be encoded.
    """
    return CONTEST_VIDEO_BYTES * frames / CONTEST_VIDEO_FRAMES


def sample_count(frames: int) -> int:
    """Number of scored samples (non-overlapping pairs) in ``frames`` frames."""
    return frames // SEQ_LEN


def sample_frames(index: int) -> tuple[int, int]:
    """Frame indices of sample ``index``: (2i, 2i + 1)."""
    return SEQ_LEN * index, SEQ_LEN * index + 1


@dataclass(frozen=True)
class Batch:
    """A run of consecutive samples: ``[first, first + count)``."""

    index: int
    first: int
    count: int

    @property
    def frame_range(self) -> range:
        return range(self.first * SEQ_LEN, (self.first + self.count) * SEQ_LEN)


def batches(samples: int, batch_size: int = BATCH_SIZE) -> Iterator[Batch]:
    """Split ``samples`` into batches of ``batch_size``; the last may be partial."""
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    for index, first in enumerate(range(0, samples, batch_size)):
        yield Batch(index, first, min(batch_size, samples - first))


@dataclass(frozen=True)
class Components:
    """The measured parts of a contest score."""

    samples: int
    seg: float
    pose: float
    archive_bytes: int
    original_bytes: int

    @property
    def rate(self) -> float:
        return rate(self.archive_bytes, self.original_bytes)

    @property
    def score(self) -> float:
        return score(self.seg, self.pose, self.rate)


def report_lines(c: Components) -> list[str]:
    """The result lines of the official report, formatted as it formats them."""
    return [
        f"=== Evaluation results over {c.samples} samples ===",
        f"  Average PoseNet Distortion: {c.pose:.8f}",
        f"  Average SegNet Distortion: {c.seg:.8f}",
        f"  Submission file size: {c.archive_bytes:,} bytes",
        f"  Original uncompressed size: {c.original_bytes:,} bytes",
        f"  Compression Rate: {c.rate:.8f}",
        f"  Final score: 100*segnet_dist + \u221a(10*posenet_dist) + 25*rate = {c.score:.2f}",
    ]
