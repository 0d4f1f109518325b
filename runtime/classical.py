"""Inflate a classical-codec member (HEVC, AV1 ... in Matroska): decode by the contest's
conversion, upsample bicubically to camera size, clamp, round, write uint8.

    member.mkv --decode + yuv420->rgb (tac_core.video)--> (h,w,3) u8
        --bicubic (align_corners=False) to 874x1164, clamp, round--> (874,1164,3) u8
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from tac_core import contract, video

from .rawout import RawWriter

BATCH_FRAMES = 8


def upsample_frames(frames: np.ndarray, hw: tuple[int, int], device: str = "cpu") -> np.ndarray:
    """(N,h,w,3) uint8 -> (N,H,W,3) uint8 by torch bicubic resampling, clamp and round half to even.

    Frames are resampled ``BATCH_FRAMES`` at a time (each frame on its own, so the result does not
    depend on it): the float intermediates of a whole clip would take many times its bytes."""
    import torch
    import torch.nn.functional as F

    if frames.shape[1:3] == tuple(hw):
        return frames
    out = np.empty((len(frames), *hw, frames.shape[3]), np.uint8)
    for i in range(0, len(frames), BATCH_FRAMES):
        x = torch.from_numpy(frames[i:i + BATCH_FRAMES]).to(device).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=tuple(hw), mode="bicubic", align_corners=False)
        out[i:i + BATCH_FRAMES] = x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return out


def _batches(path: Path) -> Iterator[np.ndarray]:
    batch = []
    for frame in video.decode_frames(path, expect_hw=None):
        batch.append(frame)
        if len(batch) == BATCH_FRAMES:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def inflate_member(member: Path, out: Path, device: str = "cpu") -> int:
    """Write ``out`` (.raw) from one classical-codec member; returns the frame count."""
    with RawWriter(out, contract.CAMERA_HW) as writer:
        for batch in video.prefetch(_batches(member), 2):
            writer.write(upsample_frames(batch, contract.CAMERA_HW, device))
    return writer.frames
