"""Other vehicles: boxes with plausible sizes and colours, moving along their lanes.

Each lane moves at its own smoothly varying speed and its vehicles keep fixed
gaps on a ring of ``RING`` metres around the ego car, so vehicles never
overlap; one leaving far behind re-enters far ahead (or the reverse), where
it is a few hazy pixels. The ego car's lane has a leader that keeps a varying
gap ahead of it, so the ego car never drives into anyone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tac_core.scenes.motion import EgoMotion, _Waves, _phases
from tac_core.scenes.world import Box, Road

MOVABLE = 3
RING = 420.0
BEHIND = 70.0           # ring positions run from -BEHIND to RING - BEHIND metres ahead

# (name, length, width, height, weight)
KINDS = (("car", 4.5, 1.8, 1.45, 0.62), ("suv", 4.8, 1.95, 1.75, 0.22), ("van", 5.4, 2.0, 2.4, 0.08),
         ("truck", 11.0, 2.5, 3.6, 0.08))
PAINT = ((222, 222, 218), (28, 29, 32), (168, 170, 174), (104, 106, 110), (34, 48, 88), (148, 24, 26),
         (40, 72, 140), (196, 184, 160), (46, 70, 52), (200, 200, 204))
PAINT_WEIGHTS = (0.22, 0.18, 0.16, 0.12, 0.07, 0.08, 0.06, 0.04, 0.03, 0.04)
GLASS = (42.0, 48.0, 58.0)
TYRE = (24.0, 24.0, 26.0)


@dataclass(frozen=True)
class Vehicle:
    """One vehicle: its kind, paint, lane offset jitter and where it sits on its lane's ring."""

    kind: int
    paint: tuple[float, float, float]
    lane: int
    jitter: float
    ring: float


class Traffic:
    """Seeded vehicles per lane; ``boxes(t, ego_s)`` places them at time ``t``."""

    def __init__(self, rng: np.random.Generator, road: Road, ego: EgoMotion, per_lane: int):
        self.road, self.ego = road, ego
        kinds = np.array([k[4] for k in KINDS])
        paints = np.array(PAINT_WEIGHTS)
        self.vehicles: list[Vehicle] = []
        self._lane_speed: dict[int, tuple[float, _Waves]] = {}
        for lane in range(road.lanes):
            base = ego.mid + rng.uniform(-6, 6) + (lane - road.lanes / 2) * 1.0
            self._lane_speed[lane] = (base, _Waves([rng.uniform(0.5, 2.0)], [rng.uniform(10, 25)], _phases(rng, 1)))
            offsets = (np.arange(per_lane) + rng.uniform(-0.25, 0.25, per_lane)) * (RING / max(per_lane, 1))
            offsets += rng.uniform(0, RING)
            for k in range(per_lane):
                kind = int(rng.choice(len(KINDS), p=kinds / kinds.sum()))
                if lane == ego.lane and kind == 3 and k == 0:
                    kind = 0          # a car, not a truck, leads the ego car
                paint = PAINT[int(rng.choice(len(PAINT), p=paints / paints.sum()))]
                ring = 0.0 if lane == ego.lane and k == 0 else float(offsets[k])
                self.vehicles.append(Vehicle(kind, tuple(float(c) for c in paint), lane,
                                             float(rng.uniform(-0.25, 0.25)), ring))
        self._gap = _Waves([0.6, 0.4], [rng.uniform(12, 30), rng.uniform(5, 9)], _phases(rng, 2))
        self._gap_base = rng.uniform(18, 30)

    def ahead_of_ego(self, vehicle: Vehicle, t: float, ego_s: float) -> float:
        """Signed distance (m) from the ego car's centre to ``vehicle``'s centre along the road."""
        if vehicle.lane == self.ego.lane:
            lead = self._gap_base + 10.0 * self._gap(t)            # 8 to 40 m ahead
            following = [v for v in self.vehicles if v.lane == vehicle.lane]
            rank = following.index(vehicle)
            return lead + rank * (RING / max(len(following), 1)) * 0.3
        base, waves = self._lane_speed[vehicle.lane]
        travelled = base * t + waves.integral(t) - ego_s
        return float((vehicle.ring + travelled + BEHIND) % RING - BEHIND)

    def boxes(self, t: float, ego_s: float, near: float = -40.0, far: float = 360.0) -> list[Box]:
        """The boxes of every vehicle whose centre is between ``near`` and ``far`` m ahead."""
        out: list[Box] = []
        for v in self.vehicles:
            ahead = self.ahead_of_ego(v, t, ego_s)
            if near <= ahead <= far:
                out.extend(vehicle_boxes(v, ego_s + ahead, self.road.lane_centre(v.lane) + v.jitter))
        return out


def vehicle_boxes(v: Vehicle, s: float, d: float) -> list[Box]:
    """A vehicle as boxes: body, cabin (or cargo box), four wheels."""
    _, length, width, height, _ = KINDS[v.kind]
    paint = v.paint
    clearance = 0.3
    wheel = 0.34
    boxes = []
    for ds in (-length * 0.32, length * 0.32):
        for dd in (-(width / 2 - 0.16), width / 2 - 0.16):
            boxes.append(Box(s + ds, d + dd, 2 * wheel, 0.3, 0.0, 2 * wheel, TYRE, "plain", MOVABLE))
    if v.kind == 3:                       # truck: cab in front, cargo box behind
        cab = 2.4
        boxes.append(Box(s + length / 2 - cab / 2, d, cab, width, clearance, height * 0.85, paint, "cab",
                         MOVABLE))
        boxes.append(Box(s - cab / 2, d, length - cab - 0.3, width, clearance + 0.5, height,
                         (218.0, 218.0, 214.0), "cargo", MOVABLE))
        return boxes
    belt = clearance + (height - clearance) * 0.5
    boxes.append(Box(s, d, length, width, clearance, belt, paint, "body", MOVABLE))
    cabin_len = length * (0.5 if v.kind < 2 else 0.8)
    boxes.append(Box(s - length * 0.05, d, cabin_len, width * 0.9, belt, height, paint, "cabin", MOVABLE))
    return boxes
