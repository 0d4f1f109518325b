"""Streaming ``.raw`` output: frames are appended batch by batch and the file gets its final
name only when every frame is written, so an interrupted or failed inflate never leaves a
file that looks complete."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np


class RawOutputError(Exception):
    """Writing the inflated frames failed (full disk, unwritable folder)."""


class RawWriter:
    """Append uint8 frames (N, H, W, 3) to ``path`` through a temporary file."""

    def __init__(self, path: Path, frame_hw: tuple[int, int]):
        self.path = Path(path)
        self.frame_hw = tuple(frame_hw)
        self.frames = 0
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._tmp, "wb")
        except OSError as exc:
            raise RawOutputError(f"{self.path}: cannot write inflated frames ({exc.strerror})") from None

    def write(self, frames: np.ndarray) -> None:
        if frames.dtype != np.uint8 or frames.shape[1:] != (*self.frame_hw, 3):
            raise RawOutputError(f"{self.path}: expected uint8 frames (N, {self.frame_hw[0]}, "
                                 f"{self.frame_hw[1]}, 3), got {frames.dtype} {frames.shape}")
        try:
            self._file.write(np.ascontiguousarray(frames).data)
        except OSError as exc:
            self.abort()
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise RawOutputError(f"{self.path}: writing inflated frames failed: {reason}") from None
        self.frames += frames.shape[0]

    def commit(self) -> int:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.abort()
            raise RawOutputError(f"{self.path}: finishing inflated frames failed ({exc.strerror})") from None
        return self.frames

    def abort(self) -> None:
        try:
            self._file.close()
        finally:
            if self._tmp.exists():
                self._tmp.unlink()

    def __enter__(self) -> "RawWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
