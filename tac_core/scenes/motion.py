"""Ego-motion: speed, lane keeping, pitch, roll and bounce as smooth functions of time.

Every quantity is a closed-form function of t (sums of sinusoids and their
integrals), so any frame can be rendered on its own, in any order, with the
same result. The camera's world pose, and from it each pair's relative pose,
follows from the road's exact centre line.

Relative pose of a pair (frames a = 2i, b = 2i + 1), in camera frame a
(x right, y down, z forward; see ``camera``)::

    R = R_a^T R_b               (camera b's axes expressed in camera a)
    t = R_a^T (C_b - C_a)       (camera b's centre in camera a, metres)
    pose6 = (t_x, t_y, t_z, r_x, r_y, r_z),  r = rotation vector of R (axis * angle)

so driving forward gives t_z ~ speed / fps > 0, a right turn r_y > 0, the nose
rising r_x > 0, the right side dipping r_z > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tac_core.scenes.camera import rot_x, rot_y, rot_z, rotvec_from_matrix
from tac_core.scenes.world import Road

CAMERA_HEIGHT = 1.22    # metres above the road


@dataclass(frozen=True)
class EgoState:
    """The ego car at one instant: road coordinates, heading off the road's, camera attitude."""

    time: float
    s: float          # arc length along the road (m)
    d: float          # lateral offset, positive right (m)
    psi: float        # heading relative to the road's tangent, positive right (rad)
    speed: float      # m/s
    pitch: float      # camera pitch, positive nose up (rad)
    roll: float       # camera roll, positive right side down (rad)
    height: float     # camera height above the road (m)


class _Waves:
    """sum_k a_k sin(w_k t + p_k), with its derivative and its integral from 0."""

    def __init__(self, amps, periods, phases):
        self.a = np.asarray(amps, dtype=np.float64)
        self.w = 2 * np.pi / np.asarray(periods, dtype=np.float64)
        self.p = np.asarray(phases, dtype=np.float64)

    def __call__(self, t: float) -> float:
        return float(np.sum(self.a * np.sin(self.w * t + self.p)))

    def rate(self, t: float) -> float:
        return float(np.sum(self.a * self.w * np.cos(self.w * t + self.p)))

    def integral(self, t: float) -> float:
        return float(np.sum(-self.a / self.w * (np.cos(self.w * t + self.p) - np.cos(self.p))))


def _phases(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0, 2 * np.pi, n)


class EgoMotion:
    """The ego car's trajectory, seeded, for a road and a speed range."""

    def __init__(self, rng: np.random.Generator, road: Road, speed_min: float, speed_max: float):
        self.road = road
        self.mid = (speed_min + speed_max) / 2
        half = (speed_max - speed_min) / 2
        self._speed = _Waves([0.62 * half, 0.38 * half], [rng.uniform(30, 70), rng.uniform(9, 20)], _phases(rng, 2))
        self.lane = int(rng.integers(road.lanes))
        self._weave = _Waves([rng.uniform(0.1, 0.3), 0.05], [rng.uniform(5, 10), rng.uniform(2, 3)], _phases(rng, 2))
        self._pitch = _Waves([0.0035, 0.0015], [rng.uniform(0.8, 1.1), rng.uniform(0.35, 0.5)], _phases(rng, 2))
        self._roll = _Waves([0.0025, 0.001], [rng.uniform(1.1, 1.6), rng.uniform(0.4, 0.6)], _phases(rng, 2))
        self._bounce = _Waves([0.006, 0.002], [rng.uniform(0.5, 0.7), rng.uniform(0.25, 0.3)], _phases(rng, 2))

    def max_distance(self, seconds: float) -> float:
        """An upper bound on the distance driven in ``seconds``."""
        return seconds * (self.mid + float(np.sum(np.abs(self._speed.a)))) + 1.0

    def state(self, t: float) -> EgoState:
        """The ego state at time ``t`` seconds."""
        speed = self.mid + self._speed(t)
        accel = self._speed.rate(t)
        s = self.mid * t + self._speed.integral(t)
        d = self.road.lane_centre(self.lane) + self._weave(t)
        psi = math.atan2(self._weave.rate(t), speed)
        lateral_accel = speed * speed * float(self.road.curvature(s))
        pitch = self._pitch(t) - 0.002 * accel          # the nose dips when braking
        roll = self._roll(t) - 0.003 * lateral_accel    # the body leans out of a bend
        height = CAMERA_HEIGHT + self._bounce(t)
        return EgoState(t, s, d, psi, speed, pitch, roll, height)

    def camera_world(self, st: EgoState) -> tuple[np.ndarray, np.ndarray]:
        """Camera orientation R (camera -> world) and centre C in the world (X right, Y down, Z forward)."""
        theta = float(self.road.heading(st.s))
        x, z = self.road.centre(st.s)
        centre = np.array([x + st.d * math.cos(theta), -st.height, z - st.d * math.sin(theta)])
        r = rot_y(theta + st.psi) @ rot_x(st.pitch) @ rot_z(st.roll)
        return r, centre


def relative_pose(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """pose6 of camera b in camera a: (t_x, t_y, t_z, r_x, r_y, r_z), see the module docstring."""
    ra, ca = a
    rb, cb = b
    t = ra.T @ (cb - ca)
    return np.concatenate([t, rotvec_from_matrix(ra.T @ rb)])
