"""``SceneConfig``: everything that decides a synthetic clip, validated at construction.

Two equal configs give byte-identical frames, class maps and poses; the
config's JSON form is stored beside every written clip and keys the cache of
the default clip.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from tac_core import contract
from tac_core.errors import InputError

MAX_SECONDS = 3600.0


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"scene {name} must be a finite number, got {value!r}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"scene {name} must be an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class SceneConfig:
    """A synthetic driving clip: its seed, length and the knobs of its world.

    - ``seed``: any integer >= 0; the only source of randomness.
    - ``seconds``, ``fps``: clip length; ``frames`` = round(seconds * fps), at least 1.
    - ``lanes``: lanes of the road, all in the ego car's direction (1 to 6).
    - ``speed_min``, ``speed_max``: range of the ego car's speed in m/s.
    - ``max_curvature``: sharpest bend of the road in 1/m (0 is a straight road).
    - ``vehicles_per_lane``: other vehicles kept around the ego car in each lane.
    - ``sensor_noise``: standard deviation of the per-frame sensor noise, in 8-bit levels.
    """

    seed: int = 0
    seconds: float = 10.0
    fps: int = contract.FPS
    lanes: int = 3
    speed_min: float = 10.0
    speed_max: float = 30.0
    max_curvature: float = 1.0 / 350.0
    vehicles_per_lane: int = 3
    sensor_noise: float = 1.2

    def __post_init__(self) -> None:
        if _integer("seed", self.seed) < 0:
            raise InputError(f"scene seed must be >= 0, got {self.seed}")
        seconds = _number("seconds", self.seconds)
        if not 0 < seconds <= MAX_SECONDS:
            raise InputError(f"scene length must be more than 0 and at most {MAX_SECONDS:g} seconds, "
                             f"got {self.seconds!r}")
        if not 1 <= _integer("fps", self.fps) <= 240:
            raise InputError(f"scene fps must be between 1 and 240, got {self.fps}")
        if round(seconds * self.fps) < 1:
            raise InputError(f"{self.seconds!r} seconds at {self.fps} fps is less than one frame")
        if not 1 <= _integer("lanes", self.lanes) <= 6:
            raise InputError(f"scene lanes must be between 1 and 6, got {self.lanes}")
        lo, hi = _number("speed_min", self.speed_min), _number("speed_max", self.speed_max)
        if not 0 < lo <= hi <= 60:
            raise InputError(f"scene speeds must satisfy 0 < speed_min <= speed_max <= 60 m/s, "
                             f"got {lo:g} and {hi:g}")
        if not 0 <= _number("max_curvature", self.max_curvature) <= 0.02:
            raise InputError(f"scene max_curvature must be between 0 and 0.02 per metre "
                             f"(a 50 m radius), got {self.max_curvature!r}")
        if not 0 <= _integer("vehicles_per_lane", self.vehicles_per_lane) <= 8:
            raise InputError(f"scene vehicles_per_lane must be between 0 and 8, got {self.vehicles_per_lane}")
        if not 0 <= _number("sensor_noise", self.sensor_noise) <= 20:
            raise InputError(f"scene sensor_noise must be between 0 and 20 levels, got {self.sensor_noise!r}")

    @property
    def frames(self) -> int:
        """Number of frames: round(seconds * fps)."""
        return round(self.seconds * self.fps)

    @property
    def pairs(self) -> int:
        """Number of non-overlapping frame pairs (2i, 2i + 1)."""
        return contract.sample_count(self.frames)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): stored with clips and hashed for the cache key."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SceneConfig":
        """The config written by ``to_json``; unknown keys are an error."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"scene config is not valid JSON ({exc})") from None
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) - known:
            extra = sorted(set(data) - known) if isinstance(data, dict) else data
            raise InputError(f"scene config has unknown fields: {extra}")
        return cls(**data)
