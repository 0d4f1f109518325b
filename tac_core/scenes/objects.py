"""Boxes and balls placed in the camera frame and painted: roadside objects and vehicles.

A box's corners are numbered i * 4 + j * 2 + k with i = 0/1 its rear/front
(along s), j = 0/1 its left/right side (along d), k = 0/1 its bottom/top.
Each face is p0 + a e1 + b e2 with e1 x e2 pointing out of the box, so the
face coordinate b runs from its bottom (0) to its top (1) and a from left to
right as seen from outside.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tac_core.scenes.ground import HAZE_DISTANCE
from tac_core.scenes.motion import EgoState
from tac_core.scenes.shapes import Canvas, in_view
from tac_core.scenes.texture import Noise
from tac_core.scenes.traffic import GLASS
from tac_core.scenes.world import Box, Road, Sphere

F32 = np.float32
FACES = {"rear": (0, 2, 1), "front": (6, 4, 7), "left": (4, 0, 5), "right": (2, 6, 3), "top": (1, 3, 5)}
_SIGN = np.array([-0.5, 0.5])
TAIL_LIGHT = np.array([172.0, 22.0, 24.0], F32)
HEAD_LIGHT = np.array([214.0, 214.0, 204.0], F32)
PLATE = np.array([206.0, 206.0, 196.0], F32)
DARK = np.array([30.0, 30.0, 32.0], F32)
WINDOW = np.array([58.0, 68.0, 84.0], F32)
ROOF = np.array([92.0, 90.0, 92.0], F32)
WHITE = np.array([232.0, 232.0, 228.0], F32)


def _to_camera(s: np.ndarray, d: np.ndarray, height: np.ndarray, st: EgoState, road: Road,
               r_lc: np.ndarray) -> np.ndarray:
    """Road coordinates (s, d, height above the road) -> camera-frame points (..., 3)."""
    ahead = s - st.s
    across = d - st.d + road.lateral(st.s, ahead)
    c, sn = math.cos(st.psi), math.sin(st.psi)
    level = np.stack([c * across - sn * ahead, st.height - height, sn * across + c * ahead], -1)
    return level @ r_lc                  # level -> camera is R_lc^T, applied to row vectors


def box_corners(boxes: Sequence[Box], st: EgoState, road: Road, r_lc: np.ndarray) -> np.ndarray:
    """Camera-frame corners (n, 8, 3) of ``boxes``, numbered as in the module docstring."""
    if not boxes:
        return np.zeros((0, 8, 3))
    b = np.array([(x.s, x.d, x.length, x.width, x.bottom, x.top) for x in boxes])
    s = b[:, 0, None, None, None] + _SIGN[None, :, None, None] * b[:, 2, None, None, None]
    d = b[:, 1, None, None, None] + _SIGN[None, None, :, None] * b[:, 3, None, None, None]
    hgt = np.stack([b[:, 4], b[:, 5]], -1)[:, None, None, :]
    s, d, hgt = np.broadcast_arrays(s, d, hgt)
    return _to_camera(s.reshape(-1, 8), d.reshape(-1, 8), hgt.reshape(-1, 8), st, road, r_lc)


def ball_centres(balls: Sequence[Sphere], st: EgoState, road: Road, r_lc: np.ndarray) -> np.ndarray:
    """Camera-frame centres (n, 3) of ``balls``."""
    if not balls:
        return np.zeros((0, 3))
    b = np.array([(x.s, x.d, x.height) for x in balls])
    return _to_camera(b[:, 0], b[:, 1], b[:, 2], st, road, r_lc)


def _pick(mask: np.ndarray, yes: np.ndarray, no: np.ndarray) -> np.ndarray:
    return np.where(mask[:, None], yes, no)


class Painter:
    """Draws boxes and balls on a canvas with Lambert shading, surface noise and haze."""

    def __init__(self, canvas: Canvas, noise: Noise, sun_cam: np.ndarray, haze: np.ndarray, r_lc: np.ndarray):
        self.canvas, self.noise, self.sun, self.haze, self.r_lc = canvas, noise, sun_cam, haze, r_lc

    def _finish(self, albedo: np.ndarray, light, t: np.ndarray) -> np.ndarray:
        colour = albedo * (np.asarray(light, F32)[..., None] if np.ndim(light) else F32(light))
        fog = (F32(1) - np.exp(-t * F32(1 / HAZE_DISTANCE)))[:, None]
        return colour + (self.haze - colour) * fog

    def boxes(self, boxes: Sequence[Box], corners: np.ndarray) -> None:
        if not boxes:
            return
        idx = np.array(list(FACES.values()))
        p0 = corners[:, idx[:, 0]]
        e1 = corners[:, idx[:, 1]] - p0
        e2 = corners[:, idx[:, 2]] - p0
        normal = np.cross(e1, e2)
        facing = np.einsum("nfi,nfi->nf", normal, p0) < 0
        norm = np.maximum(np.linalg.norm(normal, axis=-1), 1e-12)
        light = 0.62 + 0.4 * np.maximum(normal @ self.sun / norm, 0.0)
        len1, len2 = np.linalg.norm(e1, axis=-1), np.linalg.norm(e2, axis=-1)
        names = list(FACES)
        visible = np.nonzero(in_view(self.canvas.camera, corners))[0]
        nearest = corners[visible, :, 2].min(axis=1)
        for n in visible[np.argsort(np.maximum(nearest, 0.0), kind="stable")]:   # near first: occluded faces skip
            box = boxes[n]
            for f in np.nonzero(facing[n])[0]:
                shader = self._box_shader(box, names[f], float(light[n, f]), float(len1[n, f]), float(len2[n, f]))
                self.canvas.rectangle(p0[n, f], e1[n, f], e2[n, f], shader, box.cls, normal[n, f])

    def _box_shader(self, box: Box, face: str, light: float, width: float, height: float):
        base = np.asarray(box.colour, F32)
        style = box.style
        offset = F32((box.s * 7.31 + box.d * 3.7) % 256.0)

        def shader(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
            grain = self.noise.sample(a * F32(width / 0.45) + offset, b * F32(height / 0.45))
            paint = base * (F32(1) + F32(0.05) * grain)[:, None]
            if style == "body" and face in ("rear", "front"):
                lamp = (b > 0.55) & (b < 0.85) & ((a < 0.17) | (a > 0.83))
                mid = (a > 0.38) & (a < 0.62) & (b > 0.15) & (b < 0.42)
                albedo = _pick(lamp, TAIL_LIGHT if face == "rear" else HEAD_LIGHT,
                               _pick(mid, PLATE if face == "rear" else DARK, paint))
            elif style == "body" and face != "top":
                albedo = _pick(b < 0.14, paint * F32(0.55), paint)
            elif style in ("cabin", "cab") and face != "top":
                reach = 0.5 if style == "cab" else 0.0
                pillar = (a < 0.07) | (a > 0.93) | (b > 0.88) | (b < reach)
                glass = GLASS + F32(30.0) * b[:, None] + F32(6.0) * grain[:, None]
                albedo = _pick(pillar, paint, glass)
            elif style == "cargo" and face == "rear":
                albedo = _pick((np.abs(a - 0.5) < 0.01) | (b < 0.07), DARK, paint)
            elif style == "building":
                if face == "top":
                    albedo = ROOF * (F32(1) + F32(0.05) * grain)[:, None]
                else:
                    u, v = a * F32(width / 3.0), b * F32(height / 3.2)
                    fu, fv = u - np.floor(u), v - np.floor(v)
                    window = (fu > 0.25) & (fu < 0.75) & (fv > 0.3) & (fv < 0.75) & (v > 0.4)
                    pane = WINDOW * (F32(0.85) + F32(0.15) * self.noise.nearest(np.floor(u) * 17 + offset,
                                                                             np.floor(v) * 5))[:, None]
                    albedo = _pick(window, pane, paint)
            elif style == "sign":
                if face == "rear":
                    border = (a < 0.04) | (a > 0.96) | (b < 0.08) | (b > 0.92)
                    lines = (np.mod(b * F32(3.0), F32(1)) > 0.35) & (np.mod(b * F32(3.0), F32(1)) < 0.65)
                    text = lines & (a > 0.15) & (a < 0.85) & (grain > -0.2)
                    albedo = _pick(border | text, WHITE, paint)
                else:
                    albedo = np.broadcast_to(ROOF, paint.shape)
            else:
                albedo = paint
            return self._finish(albedo, light, t)

        return shader

    def balls(self, balls: Sequence[Sphere], centres: np.ndarray) -> None:
        for ball, centre in zip(balls, centres):
            self.canvas.ball(centre, ball.radius, self._ball_shader(ball), ball.cls)

    def _ball_shader(self, ball: Sphere):
        base = np.asarray(ball.colour, F32)
        scale = F32(ball.radius / 0.5)
        offset = F32((ball.s * 5.3 + ball.d) % 256.0)
        r_cl = self.r_lc.T.astype(F32)
        sun = self.sun.astype(F32)

        def shader(normals: np.ndarray, t: np.ndarray) -> np.ndarray:
            level = normals @ r_cl                       # camera -> level, row vectors
            leaf = self.noise.sample(level[:, 1] * scale + offset, (level[:, 0] + level[:, 2]) * scale)
            light = F32(0.5) + F32(0.5) * np.maximum(normals @ sun, F32(0))
            albedo = base * (F32(0.8) + F32(0.2) * leaf)[:, None]
            return self._finish(albedo, light, t)

        return shader
