"""Render one frame of a scene and its class map.

    ego state --pitch, roll--> level-frame rays (lx, ly, lz), one per pixel
      sky pass (ly <= 0)    -> gradient, clouds, hills             class 2
      ground pass (ly > 0)  -> asphalt, markings, verges           class 0 / 1 / 2
      objects (ray-cast, depth-tested): roadside boxes and trees   class 2
                                        vehicles                   class 3
      hood (fixed region at the bottom)                            class 4
    --vignette, [1,2,1] optical blur, sensor noise, round--> (H,W,3) uint8

Everything random comes from the config's seed through ``numpy.random.SeedSequence``,
and frame k depends only on (config, k).
"""

from __future__ import annotations

import math

import numpy as np

from tac_core.scenes import ground, objects, sky
from tac_core.scenes.camera import Camera, level_from_camera, rot_y
from tac_core.scenes.config import SceneConfig
from tac_core.scenes.motion import EgoMotion
from tac_core.scenes.shapes import Canvas
from tac_core.scenes.texture import Noise
from tac_core.scenes.traffic import Traffic
from tac_core.scenes.world import Road, roadside

F32 = np.float32
EGO = 4
SEED_DOMAIN = 0x7AC5            # separates scene seeds from any other use of the same integer
HOOD_TOP = 118                  # rows the hood rises above the bottom edge at the image centre
HOOD_SAG = 150                  # how much lower (rows) its outline is at the image's side edges
SIGHT = 360.0                   # metres ahead within which objects are drawn


def hood_mask(hw: tuple[int, int]) -> np.ndarray:
    """The ego car's hood: (H,W) bool, rows below a parabola bulging up at the image centre."""
    h, w = hw
    u = (np.arange(w) + 0.5 - w / 2) / (w / 2)
    top = (h - HOOD_TOP) + HOOD_SAG * u * u
    return (np.arange(h)[:, None] + 0.5) >= top[None, :]


class Scene:
    """A seeded world and ego trajectory; ``frame(k)`` renders frame k."""

    def __init__(self, config: SceneConfig):
        self.config = config
        rng = [np.random.default_rng(s) for s in np.random.SeedSequence([SEED_DOMAIN, config.seed]).spawn(6)]
        self.camera = Camera()
        length = config.speed_max * config.seconds + SIGHT + 50
        self.road = Road(rng[0], config.lanes, config.max_curvature, length)
        self.ego = EgoMotion(rng[1], self.road, config.speed_min, config.speed_max)
        self.boxes, self.balls = roadside(rng[2], self.road, length)
        self._box_s = np.array([b.s for b in self.boxes])
        self._ball_s = np.array([b.s for b in self.balls])
        self.traffic = Traffic(rng[3], self.road, self.ego, config.vehicles_per_lane)
        self.sky = sky.SkyLook.seeded(rng[4])
        self.ground = ground.GroundLook.seeded(rng[5], self.sky.horizon * F32(0.97))
        self.surface = Noise(rng[5])
        sun_elev, sun_az = rng[5].uniform(0.5, 1.0), rng[5].uniform(-np.pi, np.pi)
        self.sun_world = np.array([math.cos(sun_elev) * math.sin(sun_az), -math.sin(sun_elev),
                                   math.cos(sun_elev) * math.cos(sun_az)])
        h, w = self.camera.hw
        self.hood = hood_mask((h, w))
        self._hood_row = int(np.nonzero(self.hood.any(axis=1))[0][0])
        self._hood_colour = np.zeros((h, w, 3), F32)
        self._hood_colour[self.hood] = self._paint_hood()
        yy, xx = np.mgrid[0:h, 0:w]
        r2 = ((xx + 0.5 - w / 2) ** 2 + (yy + 0.5 - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        self._vignette = ((1.0 - 0.22 * r2) / 16).astype(F32)[..., None]

    def _paint_hood(self) -> np.ndarray:
        """Static hood colours (k,3) for the hood pixels: dark paint, a sky reflection near its edge."""
        h, w = self.camera.hw
        rows, cols = np.nonzero(self.hood)
        u = (cols + 0.5 - w / 2) / (w / 2)
        below = rows + 0.5 - ((h - HOOD_TOP) + HOOD_SAG * u * u)
        glow = np.exp(-below / 14.0) * 0.5 + np.exp(-((u + 0.35) / 0.25) ** 2) * np.exp(-below / 60.0) * 0.25
        grain = self.surface.sample(rows / 3.0, cols / 3.0) * 1.5
        base = np.array([30.0, 32.0, 36.0])
        colour = base + glow[:, None] * (self.sky.horizon - base) + grain[:, None]
        return colour.astype(F32)

    def frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``index``: RGB (H,W,3) uint8 and its class map (H,W) uint8."""
        st = self.ego.state(index / self.config.fps)
        cam = self.camera
        h = cam.hw[0]
        r_lc = level_from_camera(st.pitch, st.roll)
        rx, ry = cam.rx[None, :], cam.ry[:, None]
        ends = float(r_lc[1, 0]) * cam.rx[[0, -1]][None, :] + float(r_lc[1, 1]) * ry + float(r_lc[1, 2])
        below = np.nonzero(ends.max(axis=1) > 0)[0]          # rows that see some ground
        g0 = int(below[0]) if below.size else h
        above = np.nonzero(ends.min(axis=1) <= 1e-5)[0]      # rows that see some sky
        s1 = int(above[-1]) + 1 if above.size else 0

        def rays(r0: int, r1: int) -> list[np.ndarray]:
            return [float(r[0]) * rx + float(r[1]) * ry[r0:r1] + float(r[2]) for r in r_lc]

        canvas = Canvas(cam)
        if g0 < h:
            col, dep, cls = ground.shade(*rays(g0, h), st, self.road, self.ground, cam.focal)
            canvas.colour[g0:], canvas.depth[g0:], canvas.cls[g0:] = col, dep, cls
        yaw = float(self.road.heading(st.s)) + st.psi
        if s1 > 0:
            _, centre = self.ego.camera_world(st)
            lx, ly, lz = rays(0, s1)
            col, dep, cls = sky.shade(lx, ly, lz, yaw, (centre[0], centre[2]), self.sky, cam.focal)
            top = min(g0, s1)
            canvas.colour[:top], canvas.depth[:top], canvas.cls[:top] = col[:top], dep[:top], cls[:top]
            keep = ly[top:] <= F32(1e-5)
            np.copyto(canvas.colour[top:s1], col[top:], where=keep[..., None])
            np.copyto(canvas.depth[top:s1], dep[top:], where=keep)
            np.copyto(canvas.cls[top:s1], cls[top:], where=keep)

        sun_cam = (rot_y(-yaw) @ self.sun_world) @ r_lc    # world -> level -> camera
        painter = objects.Painter(canvas, self.surface, sun_cam, self.ground.haze, r_lc)
        lo, hi = np.searchsorted(self._box_s, [st.s - 30, st.s + SIGHT])
        boxes = self.boxes[lo:hi] + self.traffic.boxes(st.time, st.s, far=SIGHT)
        painter.boxes(boxes, objects.box_corners(boxes, st, self.road, r_lc))
        lo, hi = np.searchsorted(self._ball_s, [st.s - 30, st.s + SIGHT])
        balls = self.balls[lo:hi]
        painter.balls(balls, objects.ball_centres(balls, st, self.road, r_lc))

        r = self._hood_row
        np.copyto(canvas.colour[r:], self._hood_colour[r:], where=self.hood[r:, :, None])
        canvas.cls[r:][self.hood[r:]] = EGO
        return self._develop(canvas.colour, index), canvas.cls

    def _develop(self, colour: np.ndarray, index: int) -> np.ndarray:
        """A slight optical blur ([1,2,1] each way), vignette, sensor noise seeded by (seed, frame), uint8."""
        pair = colour[:-1] + colour[1:]                       # [1,2,1] = [1,1] * [1,1]
        out = np.empty_like(colour)
        np.add(pair[:-1], pair[1:], out=out[1:-1])
        out[0], out[-1] = pair[0] + 2 * colour[0], pair[-1] + 2 * colour[-1]    # edges replicated
        pair = out[:, :-1] + out[:, 1:]
        np.add(pair[:, :-1], pair[:, 1:], out=out[:, 1:-1])
        out[:, 0], out[:, -1] = pair[:, 0] + 2 * out[:, 0], pair[:, -1] + 2 * out[:, -1]
        out *= self._vignette                                 # includes the blur's 1/16
        sigma = self.config.sensor_noise
        noise = np.full(out.shape[:2], F32(0.5))
        if sigma > 0:
            rng = np.random.default_rng([SEED_DOMAIN, self.config.seed, 1, index])
            noise += rng.standard_normal(out.shape[:2], dtype=F32) * F32(sigma)
        out += noise[..., None]
        np.clip(out, F32(0), F32(255.49), out=out)
        return out.astype(np.uint8)
