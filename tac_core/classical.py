"""Classical codecs as submission makers: downscale, encode with x265 or SVT-AV1 through PyAV,
and inflate by decoding and bicubic upsampling (the runtime's ``classical`` module).

``X265_BASELINE`` is the contest's "baseline_fast": lanczos downscale to 0.45x (even sizes),
x265 ultrafast, CRF 30, all-intra.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from tac_core import contract, video
from tac_core.errors import InputError


@dataclass(frozen=True)
class ClassicalCodec:
    """An encoder, a scale and its settings; ``compress`` writes a submission folder."""

    name: str
    encoder: str
    crf: int
    scale: float
    preset: str
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not 0.05 <= self.scale <= 1.0:
            raise InputError(f"{self.name}: scale must be within 0.05..1, got {self.scale}")
        if not 0 <= self.crf <= 63:
            raise InputError(f"{self.name}: CRF must be within 0..63, got {self.crf}")

    def with_settings(self, crf: int | None = None, scale: float | None = None,
                      preset: str | None = None) -> "ClassicalCodec":
        return replace(self, crf=self.crf if crf is None else crf, scale=self.scale if scale is None else scale,
                       preset=self.preset if preset is None else preset)

    def scaled_size(self, width: int, height: int) -> tuple[int, int]:
        """(W, H) after scaling, truncated to even numbers as the baseline's filter does."""
        return (int(width * self.scale / 2) * 2, int(height * self.scale / 2) * 2)

    def options(self) -> dict[str, str]:
        return {"crf": str(self.crf), "preset": self.preset, **dict(self.extra)}

    def encode_member(self, source: Path, member: Path) -> int:
        """Encode one video into ``member`` (Matroska); returns its frame count."""
        size = self.scaled_size(*contract.CAMERA_SIZE)
        frames = video.decode_frames(source, raw=True)
        return video.encode_frames(member, frames, codec=self.encoder, options=self.options(), size=size,
                                   interpolation="LANCZOS")

    def compress(self, source: Path, out_dir: Path) -> Path:
        """Write a submission folder for the video ``source`` into ``out_dir``."""
        from tac_core.export import write_submission

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        member = out_dir / f".{Path(source).stem}.encoding.mkv"
        try:
            self.encode_member(Path(source), member)
            data = member.read_bytes()
        finally:
            member.unlink(missing_ok=True)
        return write_submission(out_dir, f"{Path(source).stem}.mkv", data)

X265_BASELINE = ClassicalCodec(
    name="x265", encoder="libx265", crf=30, scale=0.45, preset="ultrafast",
    extra=(("x265-params", "keyint=1:min-keyint=1:scenecut=0:frame-threads=4:log-level=warning"),))
AV1 = ClassicalCodec(name="av1", encoder="libsvtav1", crf=40, scale=0.45, preset="8",
                     extra=(("svtav1-params", "tune=0"),))
CODECS = {c.name: c for c in (X265_BASELINE, AV1)}
