"""The road plane: asphalt, lane markings, shoulders and verges, with their class map.

Each ground pixel's ray meets the plane y = h at depth t; its road coordinates
(s, d) pick the surface. Textures are sampled in metres, and every pattern is
box-filtered over the pixel's footprint (t / f across, t^2 / (f h) along the
road), so markings and grain thin out smoothly with distance instead of
flickering::

    rays (lx, ly, lz) --t = h / ly--> (x, z) level frame --road frame--> (s, d)
        --> asphalt | marking | verge  --haze(t)--> colour, class, depth
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tac_core.scenes.motion import EgoState
from tac_core.scenes.texture import Noise, fade
from tac_core.scenes.world import LANE_WIDTH, Road

F32 = np.float32
ROAD, MARKING, UNDRIVABLE = 0, 1, 2
HAZE_DISTANCE = 420.0           # metres at which haze covers 1 - 1/e of a colour
ROAD_CLASS_RANGE = 700.0        # farther ground is labelled undrivable (a sub-pixel sliver)
DASH, DASH_PERIOD = 3.0, 12.0   # dashed lane lines: 3 m of paint every 12 m
LINE_HALF = 0.075               # half width of a painted line
GRAVEL = 1.2                    # gravel strip beyond the paved shoulder


@dataclass(frozen=True)
class GroundLook:
    """Seeded colours and textures of the ground."""

    asphalt: np.ndarray
    paint: np.ndarray
    gravel: np.ndarray
    grass: np.ndarray
    dirt: np.ndarray
    haze: np.ndarray
    dash_phase: float
    coarse: Noise
    fine: Noise

    @classmethod
    def seeded(cls, rng: np.random.Generator, haze: np.ndarray) -> "GroundLook":
        grey = rng.uniform(84, 104)
        return cls(asphalt=np.array([grey, grey, grey + rng.uniform(0, 5)], F32),
                   paint=np.array([226, 226, 218], F32), gravel=np.array([136, 130, 118], F32),
                   grass=np.array([rng.uniform(70, 95), rng.uniform(96, 112), rng.uniform(48, 62)], F32),
                   dirt=np.array([124, 112, 90], F32), haze=haze.astype(F32),
                   dash_phase=float(rng.uniform(0, DASH_PERIOD)), coarse=Noise(rng), fine=Noise(rng))


def _cover(dist: np.ndarray, half: float, fp: np.ndarray) -> np.ndarray:
    """Fraction of a pixel of width ``fp`` centred ``dist`` from a stripe's centre that the stripe covers."""
    hf = fp * F32(0.5)
    lo = np.maximum(dist - hf, F32(-half))
    hi = np.minimum(dist + hf, F32(half))
    return np.clip((hi - lo) / fp, F32(0), F32(1))


def _markings(s: np.ndarray, d: np.ndarray, road: Road, look: GroundLook,
              fp_l: np.ndarray, fp_s: np.ndarray) -> np.ndarray:
    """Paint coverage in [0, 1]: solid edge lines and dashed lines between lanes."""
    ad = np.abs(d)
    paint = _cover(np.abs(ad - F32(road.half_width - 0.15)), 0.1, fp_l)      # edge lines
    if road.lanes > 1:
        q = np.clip(np.rint((d + F32(road.half_width)) * F32(1 / LANE_WIDTH)), 1, road.lanes - 1)
        between = np.abs(d + F32(road.half_width) - q * F32(LANE_WIDTH))
        across = _cover(between, LINE_HALF, fp_l)
        period = F32(DASH_PERIOD)
        along = np.abs(np.mod(s - F32(look.dash_phase), period) - period * F32(0.5))
        dash = _cover(along, DASH / 2, fp_s)
        blend = np.clip((fp_s - F32((DASH_PERIOD - DASH) / 2)) * F32(1 / DASH_PERIOD), F32(0), F32(1))
        dash += (F32(DASH / DASH_PERIOD) - dash) * blend
        paint = np.maximum(paint, across * dash)
    return paint


def _octave(noise: Noise, s: np.ndarray, d: np.ndarray, fp_s: np.ndarray, cell: float,
            offset: float) -> np.ndarray:
    """Noise of texel ``cell`` m faded by footprint, sampled only in the rows where it is visible."""
    out = np.zeros_like(s)
    visible = np.nonzero(fp_s.min(axis=1) < F32(1.5 * cell))[0]
    if visible.size:
        r = int(visible[0])
        out[r:] = noise.sample(s[r:] * F32(1 / cell) + F32(offset), d[r:] * F32(1 / cell)) * fade(fp_s[r:], cell)
    return out


def shade(lx: np.ndarray, ly: np.ndarray, lz: np.ndarray, st: EgoState, road: Road, look: GroundLook,
          focal: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour (h,w,3), depth (h,w) and class (h,w) of the road plane for level-frame rays.

    Rays that do not point down get depth inf (the sky pass draws them).
    """
    down = ly > F32(1e-5)
    t = np.minimum(F32(st.height) / np.maximum(ly, F32(1e-5)), F32(1e5))
    x, z = t * lx, t * lz
    c, sn = F32(math.cos(st.psi)), F32(math.sin(st.psi))
    ahead = z * c - x * sn
    d = x * c + z * sn - road.lateral(st.s, ahead) + F32(st.d)
    s = ahead + F32(st.s)
    fp_l = np.maximum(t * F32(1 / focal), F32(1e-4))
    fp_s = fp_l * t * F32(1 / st.height)

    ad = np.abs(d)
    paved = _cover(ad, road.surface_half_width, fp_l)
    paint = _markings(s, d, road, look, fp_l, fp_s)
    coarse = look.coarse.sample(s * F32(1 / 3.0), d * F32(1 / 3.0))
    medium = _octave(look.fine, s, d, fp_s, 0.5, 0.0)
    grain = _octave(look.coarse, s, d, fp_s, 0.06, 77.0)
    lane_pos = np.abs(np.mod(d + F32(road.half_width), F32(LANE_WIDTH)) - F32(LANE_WIDTH / 2))
    tracks = np.exp(-np.square(lane_pos - F32(0.9)) * F32(12.0)) * fade(fp_l, 0.5)

    tone = F32(1) + F32(0.05) * coarse + F32(0.05) * medium + F32(0.09) * grain - F32(0.06) * tracks
    paint_tone = (F32(0.9) + F32(0.08) * coarse) * paint
    verge_mix = np.clip(F32(0.5) + F32(0.45) * coarse, F32(0), F32(1))
    gravel = _cover(np.abs(ad - F32(road.surface_half_width + GRAVEL / 2)), GRAVEL / 2, fp_l)
    verge_tone = F32(1) + F32(0.12) * medium + F32(0.1) * grain

    colour = np.empty(lx.shape + (3,), F32)
    haze = F32(1) - np.exp(-t * F32(1 / HAZE_DISTANCE))
    for ch in range(3):
        verge = look.grass[ch] + (look.dirt[ch] - look.grass[ch]) * verge_mix
        verge = (verge + (look.gravel[ch] - verge) * gravel) * verge_tone
        surface = look.asphalt[ch] * tone
        surface += (look.paint[ch] - surface) * paint_tone
        col = verge + (surface - verge) * paved
        colour[..., ch] = col + (look.haze[ch] - col) * haze
    cls = np.where(paved >= 0.5, np.where(paint >= 0.5, MARKING, ROAD), UNDRIVABLE).astype(np.uint8)
    cls[t > F32(ROAD_CLASS_RANGE)] = UNDRIVABLE
    depth = np.where(down, t, F32(np.inf))
    return colour, depth, cls
