"""The sky: a gradient by elevation, clouds on a plane high above, and distant hills.

Clouds are value noise painted on a plane ``CLOUD_HEIGHT`` m up, in world
coordinates, so they turn with the ego car's yaw and drift slowly as it drives;
like the ground, they fade where a pixel covers more than a texel (near the
horizon). Hills are a seeded silhouette of elevation against world azimuth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tac_core.scenes.texture import Noise, fade

F32 = np.float32
CLOUD_HEIGHT = 1500.0
CLOUD_CELL = 700.0
HILL_DEPTH = 5000.0
HILL_SAMPLES = 2048
_AZIMUTHS = np.arange(HILL_SAMPLES) * (2 * np.pi / HILL_SAMPLES)


@dataclass(frozen=True)
class SkyLook:
    """Seeded sky colours, cloud cover and hill silhouette."""

    zenith: np.ndarray
    horizon: np.ndarray
    cloud: np.ndarray
    hill: np.ndarray
    cover: float
    clouds: Noise
    hills: np.ndarray          # elevation (rad) of the hill tops at HILL_SAMPLES world azimuths

    @classmethod
    def seeded(cls, rng: np.random.Generator) -> "SkyLook":
        az = _AZIMUTHS
        ridge = np.zeros(HILL_SAMPLES)
        for k, amp in ((2, 0.012), (5, 0.008), (11, 0.005), (23, 0.003), (47, 0.0015)):
            ridge += amp * np.sin(k * az + rng.uniform(0, 2 * np.pi))
        hills = np.clip(ridge + rng.uniform(0.006, 0.016), 0.002, None)
        blue = rng.uniform(185, 215)
        return cls(zenith=np.array([blue * 0.42, blue * 0.62, blue], F32),
                   horizon=np.array([206, 214, 224], F32), cloud=np.array([242, 242, 244], F32),
                   hill=np.array([112, 128, 132], F32), cover=float(rng.uniform(0.0, 0.7)),
                   clouds=Noise(rng), hills=hills.astype(F32))


def _upsample2(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour 2x enlargement cropped to ``hw`` (the frame's blur smooths the steps)."""
    return np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)[: hw[0], : hw[1]]


def _gradient_and_clouds(lx: np.ndarray, ly: np.ndarray, lz: np.ndarray, yaw: float,
                         position: tuple[float, float], look: SkyLook, focal: float) -> np.ndarray:
    """Sky colour without hills; smooth, so the caller evaluates it at half resolution."""
    flat = np.sqrt(lx * lx + lz * lz)
    elev = -ly / flat
    up = np.maximum(elev, F32(0))
    blend = F32(1) - np.exp(-up * F32(1 / 0.28))
    colour = np.empty(lx.shape + (3,), F32)
    for ch in range(3):
        colour[..., ch] = look.horizon[ch] + (look.zenith[ch] - look.horizon[ch]) * blend

    # clouds: world coordinates of the ray's hit on the cloud plane
    reach = F32(CLOUD_HEIGHT) / np.maximum(up, F32(1e-3))
    cx, cz = reach * lx / flat, reach * lz / flat
    c, s = F32(math.cos(yaw)), F32(math.sin(yaw))
    wx = cx * c + cz * s + F32(position[0])
    wz = cz * c - cx * s + F32(position[1])
    footprint = reach * reach * F32(1 / (focal * CLOUD_HEIGHT))
    big = look.clouds.sample(wz * F32(1 / CLOUD_CELL), wx * F32(1 / CLOUD_CELL))
    small = look.clouds.sample(wz * F32(3 / CLOUD_CELL) + F32(50), wx * F32(3 / CLOUD_CELL))
    density = big + F32(0.45) * small * fade(footprint, CLOUD_CELL / 3)
    amount = np.clip((density - F32(1.2 - 1.6 * look.cover)) * F32(0.9), F32(0), F32(1))
    amount *= fade(footprint, CLOUD_CELL) * np.clip(up * F32(25), F32(0), F32(1))
    shadow = F32(1) - F32(0.18) * np.clip(small, F32(0), F32(1))
    for ch in range(3):
        colour[..., ch] += (look.cloud[ch] * shadow - colour[..., ch]) * amount

    return colour


def shade(lx: np.ndarray, ly: np.ndarray, lz: np.ndarray, yaw: float, position: tuple[float, float],
          look: SkyLook, focal: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour (h,w,3), depth (h,w) and class (h,w) of the sky for level-frame rays.

    ``yaw`` is the ego car's world heading, ``position`` its world (X, Z).
    """
    colour = _upsample2(_gradient_and_clouds(lx[::2, ::2], ly[::2, ::2], lz[::2, ::2], yaw, position, look,
                                             focal / 2), lx.shape)
    depth = np.full(lx.shape, np.inf, F32)
    cls = np.full(lx.shape, 2, np.uint8)
    r0 = max(0, lx.shape[0] - int(focal * (float(look.hills.max()) + 0.03)))   # rows the hills can reach
    flat = np.sqrt(lx[r0:] * lx[r0:] + lz[r0:] * lz[r0:])
    elev = -ly[r0:] / flat
    band = elev < F32(float(look.hills.max()) + 0.002)
    if band.any():
        az = np.arctan2(lx[r0:][band], lz[r0:][band]) + F32(yaw)
        top = np.interp(az, _AZIMUTHS, look.hills, period=2 * np.pi)
        hill = elev[band] < top
        rows = np.nonzero(band)
        hr, hc = rows[0][hill] + r0, rows[1][hill]
        tex = look.clouds.sample(az[hill] * F32(400), elev[band][hill] * F32(900))
        shade_ = F32(0.92) + F32(0.06) * tex
        for ch in range(3):
            colour[hr, hc, ch] = (look.hill[ch] + (look.horizon[ch] - look.hill[ch]) * F32(0.35)) * shade_
        depth[hr, hc] = F32(HILL_DEPTH)
    return colour, depth, cls
