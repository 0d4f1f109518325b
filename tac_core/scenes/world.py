"""The static world: a curving road with lanes, and seeded roadside objects.

Positions on the ground are road coordinates (s, d): s is the arc length along
the road's centre line, d the signed lateral offset (positive to the right).
The road curves with a smooth curvature kappa(s) (positive bends right), so
its heading is theta(s) = integral of kappa and its centre line in the world
is (X, Z)(s) = integral of (sin theta, cos theta) (X right, Z forward at s = 0).

Near the ego car at (s_e, d_e), heading theta(s_e) + psi_e, a ground point is
mapped to and from the level camera frame with the small-angle road frame

    x_r = d - d_e + lat(z_r),   z_r = s - s_e,    (x, z) = rot_y(-psi_e) (x_r, z_r)
    lat(z) = Phi(s_e + z) - Phi(s_e) - theta(s_e) * z,   Phi = integral of theta

which is exact on a straight road and off by millimetres within 100 m on the
gentle curves used here (the poses come from the exact centre line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LANE_WIDTH = 3.6
SHOULDER = 0.6          # paved road beyond the edge lines, each side
GRID_STEP = 1.0         # metres between samples of theta and Phi
LOOK_AHEAD = 1400.0     # the road frame is evaluated up to this far ahead (beyond: haze)
LOOK_BEHIND = 250.0


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in road coordinates: centre (s, d), extents, height range in metres."""

    s: float
    d: float
    length: float
    width: float
    bottom: float
    top: float
    colour: tuple[float, float, float]
    style: str
    cls: int


@dataclass(frozen=True)
class Sphere:
    """A ball (a tree's canopy) centred at (s, d) and ``height`` above the road."""

    s: float
    d: float
    height: float
    radius: float
    colour: tuple[float, float, float]
    cls: int


class Road:
    """The road's curvature, heading and centre line, sampled once on a grid of ``GRID_STEP`` m."""

    def __init__(self, rng: np.random.Generator, lanes: int, max_curvature: float, length: float):
        self.lanes = lanes
        self.half_width = lanes * LANE_WIDTH / 2
        self.surface_half_width = self.half_width + SHOULDER
        share = rng.uniform(0.55, 0.8)
        scale = max_curvature * rng.uniform(0.6, 1.0)
        self._amp = np.array([share, 1 - share]) * scale
        self._w = 2 * np.pi / np.array([rng.uniform(500, 1100), rng.uniform(180, 420)])
        self._phase = rng.uniform(0, 2 * np.pi, 2)
        self.grid_start = -300.0
        n = int((length + LOOK_AHEAD + 10 - self.grid_start) / GRID_STEP) + 2
        self.grid = self.grid_start + GRID_STEP * np.arange(n)
        self.theta_grid = self.heading(self.grid)
        w, p, a = self._w, self._phase, self._amp
        g = self.grid[:, None]
        self.phi_grid = np.sum(-a / w * ((np.sin(w * g + p) - np.sin(p)) / w - g * np.cos(p)), axis=1)
        sin_t, cos_t = np.sin(self.theta_grid), np.cos(self.theta_grid)
        zero = int(round(-self.grid_start / GRID_STEP))
        self.x_grid = _cumulative(sin_t) - _cumulative(sin_t)[zero]
        self.z_grid = _cumulative(cos_t) - _cumulative(cos_t)[zero]

    def curvature(self, s):
        """kappa(s) in 1/m; positive bends right."""
        s = np.asarray(s, dtype=np.float64)[..., None]
        return np.sum(self._amp * np.sin(self._w * s + self._phase), axis=-1)

    def heading(self, s):
        """theta(s) = integral of kappa from 0 to s (0 at s = 0), radians; positive is right of Z."""
        s = np.asarray(s, dtype=np.float64)[..., None]
        w, p = self._w, self._phase
        return np.sum(-self._amp / w * (np.cos(w * s + p) - np.cos(p)), axis=-1)

    def centre(self, s: float) -> tuple[float, float]:
        """World (X, Z) of the centre line at arc length ``s``."""
        return (float(np.interp(s, self.grid, self.x_grid)), float(np.interp(s, self.grid, self.z_grid)))

    def lateral(self, s_e: float, z: np.ndarray) -> np.ndarray:
        """lat(z): how far right of the tangent at ``s_e`` the centre line is, ``z`` metres ahead."""
        phi_e = float(np.interp(s_e, self.grid, self.phi_grid))
        theta_e = float(np.interp(s_e, self.grid, self.theta_grid))
        z = np.clip(np.asarray(z), -LOOK_BEHIND, LOOK_AHEAD)   # farther is haze; keeps the grid's end unseen
        out = np.interp(z + s_e, self.grid, self.phi_grid) - phi_e - theta_e * z
        return out.astype(z.dtype) if z.dtype.kind == "f" else out

    def lane_centre(self, lane: int) -> float:
        """Lateral offset d of lane ``lane`` (0 is the leftmost)."""
        return -self.half_width + (lane + 0.5) * LANE_WIDTH


def _cumulative(values: np.ndarray) -> np.ndarray:
    """Trapezoidal running integral over the grid (first entry 0)."""
    out = np.zeros_like(values)
    out[1:] = np.cumsum((values[1:] + values[:-1]) * (GRID_STEP / 2))
    return out


# --- roadside objects ------------------------------------------------------
CONCRETE = (150.0, 148.0, 140.0)
POLE_GREY = (118.0, 120.0, 124.0)
TRUNK = (78.0, 62.0, 48.0)
FOLIAGE = ((52.0, 78.0, 38.0), (70.0, 92.0, 44.0), (40.0, 64.0, 36.0), (88.0, 98.0, 52.0))
FACADES = ((176.0, 160.0, 138.0), (150.0, 120.0, 100.0), (190.0, 188.0, 180.0), (120.0, 118.0, 120.0),
           (160.0, 90.0, 70.0), (200.0, 196.0, 170.0))
SIGNS = ((30.0, 105.0, 62.0), (36.0, 70.0, 150.0))
UNDRIVABLE = 2


def roadside(rng: np.random.Generator, road: Road, length: float) -> tuple[list[Box], list[Sphere]]:
    """Seeded poles, trees, buildings, signs and a median barrier along ``length`` m of road."""
    boxes: list[Box] = []
    spheres: list[Sphere] = []
    start, edge = -60.0, road.surface_half_width
    # one stream per family and side, each drawn in order of s: a longer road only adds objects
    poles, signs, left_trees, right_trees, left_houses, right_houses = rng.spawn(6)
    seg = 12.0  # median barrier in short straight pieces that follow the curve
    for s in np.arange(start, length, seg):
        boxes.append(Box(s + seg / 2, -(edge + 0.5), seg, 0.5, 0.0, 0.85, CONCRETE, "barrier", UNDRIVABLE))
    rng = poles
    pole_side = 1 if rng.random() < 0.7 else -1
    s = start + rng.uniform(0, 40)
    while s < length:
        d = pole_side * (edge + 2.0)
        boxes.append(Box(s, d, 0.25, 0.25, 0.0, 8.5, POLE_GREY, "pole", UNDRIVABLE))
        boxes.append(Box(s, d - pole_side * 1.3, 0.2, 2.4, 8.2, 8.4, POLE_GREY, "pole", UNDRIVABLE))
        s += rng.uniform(38, 55)
    for side, trees, houses in ((-1, left_trees, left_houses), (1, right_trees, right_houses)):
        _trees(trees, road, side, start, length, boxes, spheres)
        _buildings(houses, road, side, start, length, boxes)
    rng = signs
    s = start + rng.uniform(50, 250)
    while s < length:
        d = edge + 3.0
        colour = SIGNS[int(rng.integers(len(SIGNS)))]
        width = rng.uniform(2.5, 4.5)
        for off in (-width / 3, width / 3):
            boxes.append(Box(s, d + off, 0.15, 0.15, 0.0, 3.0, POLE_GREY, "pole", UNDRIVABLE))
        boxes.append(Box(s - 0.1, d, 0.1, width, 3.0, 3.0 + rng.uniform(1.2, 2.2), colour, "sign", UNDRIVABLE))
        s += rng.uniform(200, 450)
    boxes.sort(key=lambda b: b.s)
    spheres.sort(key=lambda b: b.s)
    return boxes, spheres


def _trees(rng, road: Road, side: int, start: float, length: float, boxes: list, spheres: list) -> None:
    wave, phase = 2 * math.pi / rng.uniform(150, 400), rng.uniform(0, 2 * math.pi)
    s = start
    while s < length:
        density = 0.5 + 0.45 * math.sin(wave * s + phase)          # trees per 10 m
        s += rng.exponential(10.0 / max(density, 0.08))
        d = side * (road.surface_half_width + 4.0 + rng.exponential(7.0))
        trunk = rng.uniform(1.5, 3.2)
        boxes.append(Box(s, d, 0.35, 0.35, 0.0, trunk + 0.5, TRUNK, "trunk", UNDRIVABLE))
        radius = rng.uniform(1.4, 3.0)
        colour = FOLIAGE[int(rng.integers(len(FOLIAGE)))]
        for _ in range(int(rng.integers(1, 4))):
            spheres.append(Sphere(s + rng.uniform(-1, 1) * radius * 0.5, d + rng.uniform(-1, 1) * radius * 0.5,
                                  trunk + radius * rng.uniform(0.7, 1.3), radius * rng.uniform(0.7, 1.0),
                                  colour, UNDRIVABLE))


def _buildings(rng, road: Road, side: int, start: float, length: float, boxes: list) -> None:
    s = start + rng.uniform(0, 80)
    while s < length:
        if rng.random() < 0.45:            # a gap without buildings
            s += rng.uniform(40, 160)
            continue
        size = rng.uniform(10, 28)
        depth = rng.uniform(8, 16)
        d = side * (road.surface_half_width + rng.uniform(14, 30) + depth / 2)
        colour = FACADES[int(rng.integers(len(FACADES)))]
        boxes.append(Box(s + size / 2, d, size, depth, 0.0, rng.uniform(4, 18), colour, "building",
                         UNDRIVABLE))
        s += size + rng.uniform(4, 25)
