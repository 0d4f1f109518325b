"""The ground-truth file written beside a clip: ``<stem>.npz``, streamed in and out.

An ordinary NumPy ``.npz`` (a zip of ``.npy`` members, deflated) that
``numpy.load`` reads, holding:

    class_maps  (N, H, W) uint8   per-frame classes: 0 road, 1 lane marking,
                                  2 undrivable, 3 movable object, 4 ego vehicle
    poses       (N // 2, 6) float64  per pair (2i, 2i+1): t_x, t_y, t_z (m), r_x, r_y, r_z
                                  (rotation vector, rad), camera 2i+1 in camera 2i's
                                  frame (x right, y down, z forward); see ``motion``
    config      ()  str           the ``SceneConfig`` as JSON
    frames      ()  int64         N
    version     ()  int64         the generator version that wrote it

Class maps are written one frame at a time, so memory stays bounded
whatever the clip's length; ``iter_class_maps`` reads them back the same way.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from tac_core.errors import InputError
from tac_core.scenes.config import SceneConfig

CLASS_MAPS = "class_maps.npy"


class TruthWriter:
    """Writes a ground-truth ``.npz`` to ``path``: ``add`` each class map, then ``close``."""

    def __init__(self, path: Path, frames: int, hw: tuple[int, int]):
        self.path, self.frames, self.hw = Path(path), frames, hw
        self._zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                                    allowZip64=True)
        self._member = self._zip.open(CLASS_MAPS, "w", force_zip64=True)
        np.lib.format.write_array_header_1_0(
            self._member, {"descr": "|u1", "fortran_order": False, "shape": (frames, *hw)})
        self.count = 0

    def add(self, class_map: np.ndarray) -> None:
        if class_map.shape != self.hw or class_map.dtype != np.uint8:
            raise ValueError(f"class map must be uint8 {self.hw}, got {class_map.dtype} {class_map.shape}")
        if self.count == self.frames:
            raise ValueError("more class maps than frames declared")
        self._member.write(np.ascontiguousarray(class_map).tobytes())
        self.count += 1

    def close(self, poses: np.ndarray, config: SceneConfig, version: int) -> None:
        """Finish the file; refuses if fewer class maps were added than declared."""
        if self.count != self.frames:
            raise ValueError(f"{self.count} class maps written, {self.frames} declared")
        self._member.close()
        for name, value in (("poses", np.asarray(poses, np.float64)), ("config", np.array(config.to_json())),
                            ("frames", np.array(self.frames, np.int64)), ("version", np.array(version, np.int64))):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, value, allow_pickle=False)
            self._zip.writestr(f"{name}.npy", buf.getvalue())
        self._zip.close()

    def abort(self) -> None:
        """Close the file without finishing it (the caller deletes it)."""
        try:
            self._member.close()
        finally:
            self._zip.close()


@dataclass(frozen=True)
class GroundTruth:
    """What a ground-truth file says besides its class maps."""

    poses: np.ndarray
    config: SceneConfig
    frames: int
    version: int


def read_ground_truth(path: Path) -> GroundTruth:
    """Poses, config, frame count and version of a ground-truth ``.npz`` (class maps not loaded)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return GroundTruth(poses=data["poses"], config=SceneConfig.from_json(str(data["config"])),
                               frames=int(data["frames"]), version=int(data["version"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a scene ground-truth file ({exc})") from None


def iter_class_maps(path: Path) -> Iterator[np.ndarray]:
    """The class maps of a ground-truth ``.npz``, one (H,W) uint8 array at a time."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf, zf.open(CLASS_MAPS) as f:
            np.lib.format.read_magic(f)
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            if dtype != np.uint8 or len(shape) != 3:
                raise ValueError(f"class maps are {dtype} {shape}")
            size = shape[1] * shape[2]
            for _ in range(shape[0]):
                data = f.read(size)
                if len(data) != size:
                    raise ValueError("truncated class maps")
                yield np.frombuffer(data, np.uint8).reshape(shape[1:])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: cannot read class maps ({exc})") from None
