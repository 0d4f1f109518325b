"""The interfaces every backend implements, as Protocols.

Shapes use the contest's names: a *pair* is two consecutive frames, a batch of
pairs is ``(B, 2, H, W, 3)`` uint8 RGB in numpy (the pivot between backends).

    pairs (B,2,874,1164,3) u8 --Scorer.outputs--> {"seg": (B,384,512) u8 argmax,
                                                   "pose": (B,12) f32}
    reference outputs, candidate outputs --Scorer.distortion--> per-sample
                                                   (pose (B,), seg (B,))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Scorer(Protocol):
    """A pair of frozen task networks that judge reconstructed pairs against originals."""

    kind: str                       # "contest", "stand-in" or "proxy"
    weights_sha256: Mapping[str, str]
    device: str

    def outputs(self, pairs: np.ndarray) -> dict[str, np.ndarray]:
        """Scorer outputs for a batch of pairs: ``seg`` class map and ``pose`` vector."""

    def distortion(self, reference: Mapping[str, np.ndarray],
                   candidate: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample (pose, seg) distortions of ``candidate`` against ``reference``."""


@runtime_checkable
class Renderer(Protocol):
    """Turns stored parameters and per-sample codes back into pairs of frames."""

    spec: Mapping[str, Any]         # architecture: names and integers, with ``renderer_id``

    def render(self, params: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray],
               samples: Sequence[int]) -> np.ndarray:
        """Pairs ``(len(samples), 2, H, W, 3)`` uint8 at full camera size."""


@runtime_checkable
class Codec(Protocol):
    """Makes a contest submission folder from a video and inflates it back."""

    name: str

    def compress(self, video: Path, out_dir: Path, **options: Any) -> Path:
        """Write ``out_dir/archive.zip`` and ``out_dir/inflate.sh``; return ``out_dir``."""

    def inflate(self, archive_dir: Path, inflated_dir: Path, names: Sequence[str]) -> None:
        """Write ``inflated_dir/<name>.raw`` for each video name."""


@runtime_checkable
class Backend(Protocol):
    """One ML framework's implementation of the interfaces above."""

    name: str

    def devices(self) -> list[str]:
        """Devices this framework can run on here (``cpu``, ``cuda:0``, ``mps``...)."""
