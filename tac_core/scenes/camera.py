"""The pinhole camera of the synthetic scenes, and the rotations that place it.

Frames (right-handed, metres and radians)::

    camera frame: x right, y down, z forward (along the optical axis)

              z (forward)
             /
            o------ x (right)        image: u = cx + f * x / z
            |                               v = cy + f * y / z
            y (down)

    level frame: the camera's position and heading, without its pitch and roll;
    the road is the plane y = +h (h ~ 1.2 m below the camera).

      side view        camera o --- optical axis (pitched up by +pitch) --->
                              |  \\
                          h   |    \\ ray through row v
                              |      \\
      road  y = h  ___________|________x____________  ground point (x, h, z)
                                       z = h * f / (v - v_horizon) when level

A rotation angle is positive by the right-hand rule about its axis, so with y
down: +pitch (about x) raises the nose, +yaw (about y) turns right, +roll
(about z) lowers the right side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tac_core import contract

F32 = np.float32


def rot_x(a: float) -> np.ndarray:
    """Rotation by ``a`` about x (pitch; positive raises the optical axis)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    """Rotation by ``a`` about y (yaw; positive turns the optical axis right)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a: float) -> np.ndarray:
    """Rotation by ``a`` about z (roll; positive lowers the right side of the image)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotvec_from_matrix(r: np.ndarray) -> np.ndarray:
    """The rotation vector (axis times angle, radians) of a 3x3 rotation matrix (angle < pi)."""
    cos_a = min(1.0, max(-1.0, (float(np.trace(r)) - 1.0) / 2.0))
    angle = math.acos(cos_a)
    vee = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    scale = 0.5 if angle < 1e-8 else angle / (2.0 * math.sin(angle))
    return vee * scale


def level_from_camera(pitch: float, roll: float) -> np.ndarray:
    """Rotation taking camera-frame vectors to the level frame: pitch applied after roll."""
    return rot_x(pitch) @ rot_z(roll)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera of ``size`` = (W, H) pixels, focal ``focal`` px, principal point at the centre.

    ``rx`` (W,) and ``ry`` (H,) are the camera-frame ray slopes of each column and row
    (pixel centres), so the ray of pixel (row v, column u) is (rx[u], ry[v], 1): every
    per-pixel quantity the renderer needs is a broadcast of these two vectors.
    """

    size: tuple[int, int] = contract.CAMERA_SIZE
    focal: float = contract.CAMERA_FOCAL_PX
    rx: np.ndarray = field(init=False, repr=False, compare=False)
    ry: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        w, h = self.size
        object.__setattr__(self, "rx", ((np.arange(w) + 0.5 - w / 2) / self.focal).astype(F32))
        object.__setattr__(self, "ry", ((np.arange(h) + 0.5 - h / 2) / self.focal).astype(F32))

    @property
    def hw(self) -> tuple[int, int]:
        return self.size[1], self.size[0]

    @property
    def cx(self) -> float:
        return self.size[0] / 2

    @property
    def cy(self) -> float:
        return self.size[1] / 2

    def project(self, points: np.ndarray) -> np.ndarray:
        """Camera-frame points (..., 3) with z > 0 -> pixel coordinates (..., 2) as (u, v)."""
        p = np.asarray(points, dtype=np.float64)
        z = p[..., 2]
        return np.stack([self.cx + self.focal * p[..., 0] / z, self.cy + self.focal * p[..., 1] / z], -1)
