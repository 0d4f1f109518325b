"""Ray-cast rasterisation of rectangles and balls into colour, depth and class buffers.

A shape is drawn by casting the rays of the pixels in its screen bounding box
(camera rays are (rx[u], ry[v], 1), so every per-pixel term is a broadcast of
a row vector and a column vector) and keeping the hits nearer than the depth
buffer: occlusion is exact per pixel, whatever the drawing order::

    bounding box --rays--> hit distance t, face coordinates (a, b) in [0,1]^2
        --t < depth--> shader(a, b, t) -> colour; depth = t; class = cls
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from tac_core.scenes.camera import Camera

F32 = np.float32
NEAR = 0.15                                   # metres; nothing nearer is drawn

Shader = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]      # (a, b, t) -> (k, 3)
BallShader = Callable[[np.ndarray, np.ndarray], np.ndarray]            # (normals, t) -> (k, 3)


class Canvas:
    """Colour (H,W,3) float32 in 8-bit levels, depth (H,W) float32 metres along z, class map (H,W) uint8."""

    def __init__(self, camera: Camera):
        self.camera = camera
        h, w = camera.hw
        self.colour = np.zeros((h, w, 3), F32)
        self.depth = np.full((h, w), np.inf, F32)
        self.cls = np.zeros((h, w), np.uint8)

    def _bbox(self, points: np.ndarray) -> tuple[int, int, int, int] | None:
        """Pixel bounding box (r0, r1, c0, c1) of camera-frame points clipped to z >= NEAR, or None."""
        pts = points.tolist()
        if min(p[2] for p in pts) < NEAR:
            clipped = _clip_near(points)
            if len(clipped) == 0:
                return None
            pts = clipped.tolist()
        f, cx, cy = self.camera.focal, self.camera.cx, self.camera.cy
        us = [cx + f * p[0] / p[2] for p in pts]
        vs = [cy + f * p[1] / p[2] for p in pts]
        w, h = self.camera.size
        c0, c1 = max(0, math.floor(min(us))), min(w, math.ceil(max(us)) + 1)
        r0, r1 = max(0, math.floor(min(vs))), min(h, math.ceil(max(vs)) + 1)
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1

    def rectangle(self, p0: np.ndarray, e1: np.ndarray, e2: np.ndarray, shader: Shader, cls: int,
                  normal: np.ndarray | None = None) -> None:
        """Draw the parallelogram p0 + a e1 + b e2 (camera frame), seen from the side e1 x e2 points to."""
        if normal is None:
            normal = np.cross(e1, e2)
        if float(normal @ p0) >= 0:                 # facing away (or edge-on)
            return
        box = self._bbox(np.stack([p0, p0 + e1, p0 + e1 + e2, p0 + e2]))
        if box is None:
            return
        r0, r1, c0, c1 = box
        depth = self.depth[r0:r1, c0:c1]
        if float(min(p0[2], p0[2] + e1[2], p0[2] + e2[2], p0[2] + e1[2] + e2[2])) > float(depth.max()):
            return                                  # wholly behind what is already drawn
        rx = self.camera.rx[None, c0:c1]
        ry = self.camera.ry[r0:r1, None]
        n0, n1, n2 = (float(x) for x in normal)
        denom = n0 * rx + n1 * ry + n2
        with np.errstate(divide="ignore", invalid="ignore"):
            t = float(normal @ p0) / denom
        a = ((float(e1[0]) * rx + float(e1[1]) * ry + float(e1[2])) * t - float(e1 @ p0)) / float(e1 @ e1)
        b = ((float(e2[0]) * rx + float(e2[1]) * ry + float(e2[2])) * t - float(e2 @ p0)) / float(e2 @ e2)
        hit = (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1) & (t > NEAR) & (t < depth)
        if not hit.any():
            return
        th = t[hit]
        self.colour[r0:r1, c0:c1][hit] = shader(a[hit], b[hit], th)
        depth[hit] = th
        self.cls[r0:r1, c0:c1][hit] = cls

    def ball(self, centre: np.ndarray, radius: float, shader: BallShader, cls: int) -> None:
        """Draw a ball; the shader gets the unit normals (k, 3) in the camera frame and the depths."""
        cx, cy, cz = (float(x) for x in centre)
        if cz + radius <= NEAR:
            return
        corners = centre + radius * np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
        box = self._bbox(corners)
        if box is None:
            return
        r0, r1, c0, c1 = box
        rx = self.camera.rx[None, c0:c1]
        ry = self.camera.ry[r0:r1, None]
        qq = rx * rx + ry * ry + F32(1)
        qc = rx * cx + ry * cy + cz
        disc = qc * qc - qq * (cx * cx + cy * cy + cz * cz - radius * radius)
        with np.errstate(invalid="ignore"):
            t = (qc - np.sqrt(disc)) / qq
        depth = self.depth[r0:r1, c0:c1]
        hit = (disc > 0) & (t > NEAR) & (t < depth)
        if not hit.any():
            return
        th = t[hit]
        rxh = np.broadcast_to(rx, t.shape)[hit]
        ryh = np.broadcast_to(ry, t.shape)[hit]
        inv = F32(1.0 / radius)
        nx, ny, nz = (rxh * th - cx) * inv, (ryh * th - cy) * inv, (th - cz) * inv
        self.colour[r0:r1, c0:c1][hit] = shader(np.stack([nx, ny, nz], -1), th)
        depth[hit] = th
        self.cls[r0:r1, c0:c1][hit] = cls


def in_view(camera: Camera, points: np.ndarray) -> np.ndarray:
    """For point sets (n, k, 3): False where all lie behind NEAR or all project off one side of the image."""
    z = points[..., 2]
    front = z >= NEAR
    uv = camera.project(np.where(front[..., None], points, 1.0))
    w, h = camera.size
    off = np.zeros(len(points), bool)
    for axis, size in ((0, w), (1, h)):
        coord = uv[..., axis]
        off |= np.all(front, axis=1) & ((coord.max(axis=1) < 0) | (coord.min(axis=1) > size))
    return front.any(axis=1) & ~off


def _clip_near(points: np.ndarray) -> np.ndarray:
    """Clip a convex polygon (or a point cloud's hull, conservatively) to z >= NEAR."""
    z = points[:, 2]
    if np.all(z >= NEAR):
        return points
    if np.all(z < NEAR):
        return points[:0]
    out = []
    n = len(points)
    for i in range(n):
        p, q = points[i], points[(i + 1) % n]
        if p[2] >= NEAR:
            out.append(p)
        if (p[2] >= NEAR) != (q[2] >= NEAR):
            f = (NEAR - p[2]) / (q[2] - p[2])
            out.append(p + f * (q - p))
    if len(points) > 4:      # a point cloud: add every crossing, not just polygon edges
        inside, outside = points[z >= NEAR], points[z < NEAR]
        for p in inside:
            for q in outside:
                f = (NEAR - p[2]) / (q[2] - p[2])
                out.append(p + f * (q - p))
    return np.array(out)
