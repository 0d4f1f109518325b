"""Evidence: every score carries the axis it was measured on, and code decides the axis.

Only a full-sample run of the official scorers (sha256 verified) on the
official video (sha256 verified), decoded by the contest's decode path, may
carry a contest axis. Everything else is labelled for what it is.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from tac_core import contract
from tac_core.errors import EvidenceError

CONTEST_CPU = "contest-CPU"
CONTEST_CUDA = "contest-CUDA"
MACOS_CPU = "macOS-CPU advisory"
MLX_SIGNAL = "MLX research-signal"
PROXY = "proxy"
STAND_IN = "stand-in"
UNVERIFIED = "unverified-weights"
OFFICIAL_SCORERS = "official-scorers"   # verified weights, but another clip, a partial run or another decode
AXES = (CONTEST_CPU, CONTEST_CUDA, MACOS_CPU, MLX_SIGNAL, OFFICIAL_SCORERS, PROXY, STAND_IN, UNVERIFIED)
CONTEST_AXES = (CONTEST_CPU, CONTEST_CUDA)

DECODE_CPU = "pyav-cpu"            # the contest's CPU decode path
DECODE_DALI = "dali-cuda"          # the contest's CUDA decode path


def axis_for(*, scorer_kind: str, weights_verified: bool, video_sha256: str, samples: int,
             video_samples: int, decode_path: str, device: str, backend: str) -> str:
    """The strongest axis a measurement may claim, given how it was made."""
    if scorer_kind == "proxy":
        return PROXY
    if scorer_kind == "stand-in":
        return STAND_IN
    if scorer_kind != "contest":
        raise EvidenceError(f"unknown scorer kind {scorer_kind!r}")
    if not weights_verified:
        return UNVERIFIED
    full_contest_run = (video_sha256 == contract.CONTEST_VIDEO_SHA256 and samples == video_samples
                        and samples == contract.sample_count(contract.CONTEST_VIDEO_FRAMES))
    if backend == "mlx":
        return MLX_SIGNAL
    if sys.platform == "darwin" and not device.startswith("cuda"):
        return MACOS_CPU
    if full_contest_run and decode_path == DECODE_CPU and device == "cpu":
        return CONTEST_CPU
    if full_contest_run and decode_path == DECODE_DALI and device.startswith("cuda"):
        return CONTEST_CUDA
    # The official scorers on another clip, a partial run or another decode path:
    # a real measurement, but not a contest number.
    return OFFICIAL_SCORERS


def package_versions(names: tuple[str, ...] = ("tac", "numpy", "av", "torch", "torchvision", "timm",
                                               "segmentation-models-pytorch", "safetensors",
                                               "jax", "mlx")) -> dict[str, str]:
    """Installed versions of the packages a result depends on (absent ones are left out)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    found["python"] = platform.python_version()
    return found


@dataclass
class ScoreRecord:
    """Everything needed to trust, or refuse, one measured score."""

    axis: str
    samples: int
    seg: float
    pose: float
    archive_bytes: int
    original_bytes: int
    rate: float
    score: float
    archive_sha256: str
    inflated_sha256: dict[str, str]
    video_sha256: dict[str, str]
    scorer_weights_sha256: dict[str, str]
    device: str
    backend: str
    decode_path: str
    command: str
    versions: dict[str, str] = field(default_factory=package_versions)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.axis not in AXES:
            raise EvidenceError(f"unknown evidence axis {self.axis!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "ScoreRecord":
        data: dict[str, Any] = json.loads(text)
        return cls(**data)
